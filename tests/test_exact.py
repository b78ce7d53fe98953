"""Exact delta* (fkd.bounds.exact): the branch and bound brackets the grid's delta*, its witness is
real, it is never looser than eq. 11, a budget stop stays sound; the study's rows keep the sandwich."""
import pytest
import torch

from fkd.bounds import faithub
from fkd.bounds.exact import exact_delta, node_bounds
from fkd.bounds.interval import input_box
from fkd.bounds.joint import joint_net
from fkd.bounds import as_net
from fkd.metrics import confidence_gap
from test_bounds import _grid_delta, _mlp, _toy_pair

X0 = torch.tensor([[[0.3, 0.55]]])


@pytest.mark.parametrize("eps", [0.05, 0.25])
def test_branch_and_bound_brackets_the_grid_maximum(pinned, eps):
    teacher, student = _toy_pair(pinned)
    gaps, _ = _grid_delta(teacher, student, X0, eps)
    grid = float(gaps.max())  # a lower bound on delta* itself (301 x 301 points of the ball)
    d = exact_delta(teacher, student, X0, eps, tol=1e-4)
    assert d.status == "closed" and d.gap <= 1e-4
    assert d.upper >= grid - 1e-6            # sound: above every point of the ball
    assert d.lower >= grid - 2e-4            # and closed: the grid cannot beat the witness by more
    inside = ((d.point - X0).abs() <= eps + 1e-6).all() and d.point.min() >= 0 and d.point.max() <= 1
    assert inside and abs(float(confidence_gap(teacher, student, d.point[None])[0]) - d.lower) < 1e-6
    assert d.upper <= faithub(teacher, student, X0, eps, mode="tight", method="crown").value + 1e-9


def test_the_root_bound_is_never_looser_than_eq11_and_a_budget_stop_is_sound(pinned):
    teacher, student = _mlp(pinned, [6, 12, 12, 4], 2.0), _mlp(pinned, [6, 8, 4], 2.0)
    x0 = torch.rand(1, 1, 6, generator=pinned)
    for eps in (0.02, 0.1, 0.3):
        box = input_box(x0, eps)
        ub, _, _ = node_bounds(joint_net(as_net(teacher, x0.shape), as_net(student, x0.shape)), 4, box.lower, box.upper)
        eq11 = faithub(teacher, student, x0, eps, mode="tight", method="crown").value
        assert float(ub[0]) <= eq11 + 1e-9
        stopped = exact_delta(teacher, student, x0, eps, max_nodes=0)
        assert stopped.status in ("budget", "closed") and stopped.nodes == 0
        assert abs(stopped.upper - max(float(ub[0]), stopped.lower)) < 1e-9
        full = exact_delta(teacher, student, x0, eps, tol=1e-2, time_limit=5)
        # both runs are sound brackets of the same number, so they overlap, and splitting only tightens
        assert full.lower <= stopped.upper + 1e-9 and stopped.lower <= full.upper + 1e-9
        assert full.upper <= stopped.upper + 1e-9 and full.lower >= stopped.lower - 1e-9


def test_children_of_a_box_bound_at_most_their_parent_and_cover_samples(pinned):
    teacher, student = _toy_pair(pinned)
    j = joint_net(as_net(teacher, X0.shape), as_net(student, X0.shape))
    box = input_box(X0, 0.2)
    lo = torch.stack([box.lower[0], box.lower[0] + torch.tensor([0.2, 0.0], dtype=torch.float64)])
    hi = torch.stack([box.upper[0] - torch.tensor([0.2, 0.0], dtype=torch.float64), box.upper[0]])
    ub, _, _ = node_bounds(j, 3, lo, hi)
    for b in range(2):  # every sampled point of a half lies below that half's bound
        pts = lo[b] + (hi[b] - lo[b]) * torch.rand(2000, 2, generator=pinned, dtype=torch.float64)
        assert float(confidence_gap(teacher, student, pts.float().view(-1, 1, 1, 2)).max()) <= float(ub[b]) + 1e-6


@pytest.mark.slow
def test_exact_study_rows_keep_the_sandwich(tmp_path, pinned):
    from fkd.experiments.exact_study import ExactConfig, exact_study
    from fkd.metrics import Attack
    cfg = ExactConfig(pair="mnist-7x7", students=("fd",), eps=(0.02,), n_images=1, time_limit=2,
                      attack=Attack(10, 1), bound_method="crown", global_time_limit=5)
    rows = exact_study(cfg, tmp_path, progress=False)
    r = rows.iloc[0]
    assert r.emplb <= r.delta_upper + 1e-6 and r.delta_lower <= r.delta_upper
    assert r.delta_lower >= r.emplb - 1e-9                   # started from the EMPLB point
    assert r.delta_upper <= min(r.faithub_paper, r.faithub_tight, r.faithub_joint) + 1e-9
    again = exact_study(cfg, tmp_path, progress=False)     # resumes: nothing recomputed
    assert again.equals(rows)
    with pytest.raises(ValueError, match="different run"):
        exact_study(ExactConfig(students=("fd",), eps=(0.02,), n_images=1, tol=0.5), tmp_path, progress=False)
    with pytest.raises(ValueError, match="choose one of: mnist-7x7"):
        ExactConfig(pair="mnist-3x3")


def _gurobi() -> bool:
    from test_bounds import _gurobi_usable

    return _gurobi_usable()


@pytest.mark.skipif(not _gurobi(), reason="Gurobi (pip licence) not usable here")
@pytest.mark.parametrize("eps", [0.05, 0.25])
def test_global_minlp_agrees_with_the_grid_and_the_branch_and_bound(pinned, eps):
    from fkd.bounds.global_nl import global_delta

    teacher, student = _mlp(pinned, [2, 8, 8, 3], 3.0), _mlp(pinned, [2, 6, 6, 3], 3.0)  # same depth
    gaps, _ = _grid_delta(teacher, student, X0, eps)
    grid = float(gaps.max())
    g = global_delta(teacher, student, as_net(teacher, X0.shape), as_net(student, X0.shape), X0, eps, time_limit=20)
    b = exact_delta(teacher, student, X0, eps, tol=1e-4)
    assert g.status == "optimal" and g.lower <= g.upper
    assert g.upper >= grid - 1e-6 and g.lower >= grid - 2e-4     # brackets the grid's maximum, tightly
    assert g.lower <= b.upper + 1e-9 and b.lower <= g.upper + 1e-9  # the two exact methods agree
    assert abs(float(confidence_gap(teacher, student, g.point[None].float())[0]) - g.lower) < 1e-6


@pytest.mark.skipif(not _gurobi(), reason="Gurobi (pip licence) not usable here")
def test_global_minlp_beyond_the_pip_licence_names_the_limit(pinned):
    from fkd.bounds.global_nl import global_delta
    from fkd.bounds.solvers import SolverUnavailable

    teacher, student = _mlp(pinned, [250, 6, 3], 1.0), _mlp(pinned, [250, 4, 3], 1.0)
    x0 = torch.rand(1, 1, 250, generator=pinned)
    with pytest.raises(SolverUnavailable, match="200"):
        global_delta(teacher, student, as_net(teacher, x0.shape), as_net(student, x0.shape), x0, 0.3, time_limit=5)
