"""Certified distillation agreement (fkd.bounds.agreement): a grid oracle on a 2-input pair, the
MILP path alone, verify's columns, and the table that sets it beside the empirical agreement."""
import copy

import pytest
import torch

from fkd.bounds import as_net
from fkd.bounds.agreement import Outcome, certify_agreement
from test_bounds import _grid_delta, _mlp


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(0)
    teacher = _mlp(g, [2, 8, 8, 3], scale=3.0)
    student = copy.deepcopy(teacher)  # a noisy copy: agrees in most places, not everywhere
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn(p.shape, generator=g))
    return teacher, student


@pytest.mark.slow
@pytest.mark.parametrize("attack", [None, "pgd"])
def test_outcomes_match_a_dense_grid(pair, attack):
    from fkd.metrics import Attack, disagreement_point

    teacher, student = pair
    seen = set()
    for a in (0.1, 0.5, 0.9):
        for b in (0.1, 0.5, 0.9):
            x0 = torch.tensor([[[a, b]]])
            nt, ns = as_net(teacher, x0.shape), as_net(student, x0.shape)
            for eps in (0.02, 0.1, 0.3):
                point = disagreement_point(teacher, student, x0, eps, Attack(20, 2) if attack else None,
                                           torch.Generator().manual_seed(0))
                r = certify_agreement(teacher, student, nt, ns, x0, eps, solver="highs", attack_point=point)
                _, pts = _grid_delta(teacher, student, x0, eps)
                with torch.no_grad():
                    grid_disagrees = bool((teacher(pts).argmax(-1) != student(pts).argmax(-1)).any())
                assert not (r.outcome is Outcome.CERTIFIED and grid_disagrees), (a, b, eps)
                if r.outcome is Outcome.COUNTEREXAMPLE:  # a real, confirmed point of the ball
                    assert (r.point - x0).abs().max() <= eps + 1e-6 and r.point.min() >= 0
                    with torch.no_grad():
                        assert teacher(r.point[None]).argmax() != student(r.point[None]).argmax()
                if r.outcome is not Outcome.DISAGREE_CLEAN:
                    assert r.outcome is not Outcome.UNKNOWN  # tiny programs: always decided
                    if grid_disagrees:  # a disagreement exists: the MILP (or the attack) must find one
                        assert r.outcome is Outcome.COUNTEREXAMPLE, (a, b, eps)
                seen.add((r.outcome, r.decided_by))
    outcomes = {o for o, _ in seen}
    assert {Outcome.CERTIFIED, Outcome.COUNTEREXAMPLE} <= outcomes
    assert (Outcome.CERTIFIED, "milp") in seen  # the MILP proves what CROWN cannot
    if attack is None:
        assert (Outcome.COUNTEREXAMPLE, "milp") in seen


def test_verify_adds_agreement_and_the_table_sandwiches_it(tmp_path):
    from fkd.experiments.evaluate import eval_config, evaluate
    from fkd.book.tables import agreement_table
    from fkd.experiments.verify import verify
    from fkd.experiments.verify_config import VerifyConfig

    cfg = VerifyConfig("mnist", ("sd", "fd"), (0.05,), 4, agreement=True, time_limit=20)
    rows = verify(cfg, tmp_path / "v", progress=False)
    assert set(rows.agreement) <= {o.value for o in Outcome} and (rows.seconds_agreement > 0).all()
    emp = evaluate(eval_config("mnist", ("sd", "fd"), eps=(0.05,), n_images=4), tmp_path / "e", progress=False)
    table = agreement_table(rows, emp)
    for _, r in table.iterrows():
        assert r["certified %"] <= r["empirical %"] + 1e-9
    doctored = emp.copy()
    certified = rows[rows.agreement == "certified"].iloc[0]
    doctored.loc[(doctored.metric == "agree") & (doctored.image == certified.image)
                 & (doctored.student == certified.student), "value"] = 0
    with pytest.raises(AssertionError, match="soundness bug"):
        agreement_table(rows, doctored)
    with pytest.raises(ValueError, match="--agreement"):
        agreement_table(rows.drop(columns="agreement"))
    assert VerifyConfig("mnist", ("sd",), (0.05,), 4).fingerprint() != cfg.fingerprint()
