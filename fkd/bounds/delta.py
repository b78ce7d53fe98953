"""FAITHUB of one teacher-student pair and one image (eqs. 9-11): an upper bound on delta*."""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from ..config import parse
from .fp import pair_margin
from .interval import Box
from .joint import cross_bounds, joint_faithub
from .logits import BoundReport, as_net, logit_diff_bounds
from .modes import PAIR_MODES, BoundMethod, DiffMode, Tightening
from .network import Net, check_one_image, check_pair
from .shared import ImageBounds
from .sigma import faithub_from_sigma, softmax_bounds
from .solvers import Solver


class Faithub(NamedTuple):
    """FAITHUB of one image (eq. 11) with its ingredients: softmax bounds (K,) of each network."""
    value: float
    teacher_sigma: Box
    student_sigma: Box
    teacher: BoundReport
    student: BoundReport


def faithub(teacher: nn.Module | Net, student: nn.Module | Net, x0: Tensor, eps: float,
            mode: DiffMode | str = DiffMode.TIGHT, method: BoundMethod | str = BoundMethod.CROWN,
            solver: Solver | str = Solver.AUTO, time_limit: float = 60.0,
            tightening: Tightening | str | None = None, clamp: bool = True) -> Faithub:
    """FAITHUB (eqs. 9-11): a sound upper bound on delta* = max_{x in B} ||f_t(x) - f_s(x)||_inf.

    Args:
        teacher, student: networks with the same number of classes K.
        x0: one image (C, H, W) in [0, 1]; eps: radius in pixel units.
        mode: paper (eq. 9 from logit intervals) | tight (z_j - z_i bounded directly) | joint (tight,
            then both networks at one shared x: ``fkd.bounds.joint``; never looser than tight) |
            softmax (tight, then each network's softmax inside its LP/MILP: ``fkd.bounds.softmax``) |
            joint_softmax (softmax, then both softmaxes at one x: ``fkd.bounds.joint_softmax``).
        method: interval | crown | lp | milp, for both networks (joint: cross bounds by CROWN, or
            by LP on the joint network for lp / milp).
    Returns:
        Faithub(value in [0, 1], softmax bounds of each network, their BoundReports).
    """
    mode = parse(DiffMode, mode)
    check_one_image(x0, "faithub")
    per_net = DiffMode.TIGHT if mode in PAIR_MODES else mode
    nets = [as_net(m, x0.shape) for m in (teacher, student)]
    check_pair(*nets)
    sig, reps, diffs = [], [], []
    for net in nets:
        d_lo, d_up, rep = logit_diff_bounds(net, x0, eps, per_net, method, solver, time_limit, tightening,
                                            clamp=clamp)
        sig.append(Box(*softmax_bounds(d_lo, d_up)))
        reps.append(rep)
        diffs += [d_lo, d_up]
    value = float(faithub_from_sigma(*sig))
    if mode is DiffMode.JOINT:
        cross = "lp" if parse(BoundMethod, method) in (BoundMethod.LP, BoundMethod.MILP) else "crown"
        margin = pair_margin(reps[0].margin) + pair_margin(reps[1].margin)
        cb = cross_bounds(*nets, x0, eps, cross, solver, time_limit, clamp, margin)
        value = min(value, joint_faithub(*diffs, cb)[0])
    if mode in (DiffMode.SOFTMAX, DiffMode.JOINT_SOFTMAX):  # the sigma boxes returned stay tight mode's
        ib = ImageBounds(x0, eps, method, solver, time_limit, tightening, clamp=clamp)
        value = min(value, ib.faithub(mode, *nets).value)
    return Faithub(value, sig[0], sig[1], reps[0], reps[1])
