"""EMPLB <= delta* <= FAITHUB on the shipped zoo: the strongest attack never beats a certified bound."""
import pytest
import torch

from fkd.bounds import DiffBounds, as_net, faithub, faithub_refined
from fkd.data import eval_subset
from fkd.metrics import Attack, emplb
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
