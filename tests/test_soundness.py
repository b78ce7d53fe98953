"""EMPLB <= delta* <= FAITHUB on the shipped zoo: the strongest attack never beats a certified bound."""
import pytest
import torch

from fkd.bounds import DiffBounds, as_net, faithub, faithub_refined
from fkd.data import eval_subset
from fkd.empirical_bound import emplb
from fkd.metrics import Attack
from fkd.zoo import load_model


@pytest.mark.parametrize("student", ["sd", "fd"])
@pytest.mark.parametrize("eps", [0.025, 0.1])
def test_emplb_never_exceeds_faithub_on_zoo_pairs(student, eps):
    x, _, _ = eval_subset("mnist", 10)
    t, s = load_model("mnist", "rt"), load_model("mnist", student)
    lower = emplb(t, s, x, eps, Attack(50, 5), "both", torch.Generator().manual_seed(0)).value
    nt, ns = as_net(t, x.shape[1:]), as_net(s, x.shape[1:])
    for i in range(len(x)):
        upper = float(faithub(nt, ns, x[i], eps, mode="tight", method="crown").value)
        assert lower[i] <= upper + 1e-6, (i, float(lower[i]), upper)
        if i >= 3:
            continue
        # the LP refinement of the deciding pairs (fkd.bounds.refine) is never looser, and still above EMPLB
        refined, *_ = faithub_refined(DiffBounds.start(nt, x[i], eps, solver="auto"),
                                      DiffBounds.start(ns, x[i], eps, solver="auto"), stages=("lp",))
        assert lower[i] <= refined + 1e-6 and refined <= upper + 1e-9, (i, float(lower[i]), refined, upper)


@pytest.mark.slow
def test_faithub_is_above_delta_star_where_the_small_pair_closed_it():
    """The published exact study of the 7 x 7 pair closed delta* on some rows (lower and upper within
    1e-4): every FAITHUB mode, recomputed by CROWN, stays above it, and above the LP values published
    beside it (CROWN is never tighter than the LP refinement)."""
    import pandas as pd

    from fkd.bounds.shared import ImageBounds
    from fkd.small import get_pair, load_small, small_subset

    rows = pd.read_csv("results/beyond/exact-mnist-7x7/exact.csv")
    closed = rows[rows.status == "closed"]
    assert len(closed) >= 10 and (closed.delta_upper - closed.delta_lower).max() <= 2e-4
    pair = get_pair("mnist-7x7")
    x, _, idx = small_subset(pair, 10)
    nets = {m: as_net(load_small(pair, m), pair.input_shape) for m in ("rt", "fd", "sd")}
    for r in closed.itertuples():
        ib = ImageBounds(x[idx.index(r.image)], r.eps, "crown")
        t, s = nets["rt"], nets[r.student.split("-")[0]]
        paper, tight, joint = (getattr(ib, mode)(t, s).value for mode in ("paper", "tight", "joint"))
        assert paper >= tight >= joint >= r.delta_upper, (r.student, r.eps, r.image, joint, r.delta_upper)
        assert tight >= r.faithub_tight - 1e-6 and paper >= r.faithub_paper - 1e-6


def test_every_published_row_sandwiches_delta_and_its_modes_nest():
    """Every row of every published ``verify.csv.gz`` under ``results/``, every reading: EMPLB is a
    number at most each FAITHUB mode's value (no slack: EMPLB is a real gap at a point of the ball,
    ``fkd.bounds.real``), every FAITHUB a number, each mode at most the one it builds on, and every
    solve's status one a run reports (a time-limited or failed solve keeps a proven bound)."""
    import pandas as pd

    from fkd.book.ladder import RUNGS
    from fkd.paths import RESULTS

    runs = sorted(RESULTS.rglob("verify.csv.gz"))
    assert len(runs) >= 20, runs
    for run in runs:
        rows = pd.read_csv(run)
        modes = [c.removeprefix("faithub_") for c in rows if c.startswith("faithub_")]
        assert modes and len(rows), run
        assert rows.emplb.notna().all() and set(rows.status) <= {"ok", "time_limit", "failed"}, run
        for m in modes:
            v = rows[f"faithub_{m}"]
            assert v.notna().all() and (rows.emplb <= v).all(), (run, m, rows[rows.emplb > v].head())
        for a, b, _ in RUNGS:   # each mode and the one it builds on
            if a in modes and b in modes:
                assert (rows[f"faithub_{a}"] <= rows[f"faithub_{b}"]).all(), (run, a, b)
