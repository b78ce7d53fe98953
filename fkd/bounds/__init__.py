"""Certified bounds over B_eps(x0) = l-inf ball intersected with [0, 1] (section 4.2).

Entry points (auto_LiRPA-shaped):

- ``bounds(net, x0, eps, method=...)`` -> (lower, upper) logit bounds, (K,) or (B, K);
- ``logit_diff_bounds(net, x0, eps, mode=...)`` -> bounds on d_ij = z_j - z_i (eq. 9), (K, K);
- ``softmax_bounds(d_lower, d_upper)`` -> bounds on softmax (eq. 10);
- ``faithub(teacher, student, x0, eps, ...)`` -> FAITHUB (eq. 11), an upper bound on delta*.

Methods, loosest to tightest (each result is intersected with the previous stage, so they nest):
``interval`` (IBP) -> ``crown`` (back-substitution) -> ``lp`` (triangle LP per logit after
progressive LP tightening) -> ``milp`` (exact big-M MILP per logit). Every returned bound is
widened outward per logit by ``fp.logit_margin`` (the rigorous float32 forward error of the network
over the input box, at least ``FP_MARGIN``; a difference z_j - z_i by both logits' margins); solver
bounds also carry the solver margin of ``solvers.SOLVER_ABS_TOL``.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ..config import parse
from .crown import crown_bounds, crown_linear
from .interval import Box, input_box, intersect, interval_bounds, propagate
from .milp import NeuronSolve, Relax, build_program, solve_linear, tighten
from .fp import logit_margin, pair_margin
from .network import DTYPE, FP_MARGIN, Affine, Net, check_net, check_one_image, check_pair, lower
from .refine import DiffBounds, RefineStats, _pairs, faithub_refined
from .solvers import SolveResult, Solver, SolverUnavailable, Status

__all__ = ["Box", "Method", "DiffMode", "Tightening", "Solver", "Status", "BoundReport", "Faithub", "FP_MARGIN",
           "as_net", "bounds", "output_bounds", "logit_diff_bounds", "softmax_bounds", "faithub",
           "SolverUnavailable", "SolveResult", "lower", "DiffBounds", "RefineStats", "faithub_refined", "check_net",
           "check_pair", "check_one_image"]


class Method(str, enum.Enum):
    INTERVAL = "interval"
    CROWN = "crown"
    LP = "lp"
    MILP = "milp"


class DiffMode(str, enum.Enum):
    PAPER = "paper"  # eq. 9 from logit intervals: d_ij in [l_j - u_i, u_j - l_i]
    TIGHT = "tight"  # bound z_j - z_i directly, intersected with the paper bounds
    JOINT = "joint"  # tight, plus teacher and student at one shared x (fkd.bounds.joint); FAITHUB only
    SOFTMAX = "softmax"  # tight, then each network's softmax inside its LP/MILP (fkd.bounds.softmax); FAITHUB only
    JOINT_SOFTMAX = "joint_softmax"  # softmax, then both networks' softmax at one x (fkd.bounds.joint_softmax)


class Tightening(str, enum.Enum):
    NONE = "none"
    LP = "lp"
    MILP = "milp"


@dataclass
class BoundReport:
    """Logit bounds of one image and how they were obtained.

    lower, upper: (K,) float64, ``margin`` (K,) included (``fp.logit_margin``: the float32 forward
    error over the box, at least FP_MARGIN). ``per_op``: the per-op bounds used (1, n) each.
    ``records``: every solver call (tightening and final). ``degraded``: True if any solve failed
    or hit its time limit (the bound is still sound: the earlier stage or the dual bound was used).
    """
    lower: Tensor
    upper: Tensor
    method: Method
    per_op: list[Box]
    box: Box
    records: list[NeuronSolve] = field(default_factory=list)
    seconds: float = 0.0
    margin: Tensor | None = None

    @property
    def degraded(self) -> bool:
        return any(r.result.status is not Status.OPTIMAL for r in self.records)


def as_net(model: nn.Module | Net, input_shape) -> Net:
    """``model`` lowered (and checked) for inputs of ``input_shape`` (C, H, W); a Net passes through."""
    return model if isinstance(model, Net) else lower(model, tuple(input_shape))


def _default_tightening(method: Method) -> Tightening:
    # progressive LP tightening pays for itself before any solver stage (results/benchmarks/bounds_groundwork.md)
    return Tightening.LP if method in (Method.LP, Method.MILP) else Tightening.NONE


def output_bounds(model: nn.Module | Net, x0: Tensor, eps: float, method: Method | str = Method.CROWN,
                  solver: Solver | str = Solver.AUTO, time_limit: float = 60.0,
                  tightening: Tightening | str | None = None, clamp: bool = True) -> BoundReport:
    """Bounds on every logit of ``model`` over B_eps(x0) for ONE image.

    Args:
        model: nn.Sequential (lowered here) or a lowered Net.
        x0: one image (C, H, W) in [0, 1].
        method: interval | crown | lp | milp.
        solver: auto | gurobi | highs (lp, milp and tightening only).
        time_limit: seconds per solver call.
        tightening: none | lp | milp: progressive per-layer tightening before the final stage
            (default lp for the lp and milp methods, none otherwise).
        clamp: the ball intersected with [0, 1] (default), else the plain ball (``input_box``).
    Returns:
        BoundReport with lower, upper (K,).
    """
    method, solver = parse(Method, method), parse(Solver, solver)
    tightening = _default_tightening(method) if tightening is None else parse(Tightening, tightening)
    check_one_image(x0, "output_bounds")
    t0 = time.perf_counter()
    net = as_net(model, x0.shape)
    box = input_box(x0, eps, clamp)
    per_op = interval_bounds(net, box) if method is Method.INTERVAL else crown_bounds(net, box)
    records: list[NeuronSolve] = []
    if tightening is not Tightening.NONE:
        per_op, records = tighten(net, box, per_op, relax=Relax(tightening.value), solver=solver, time_limit=time_limit)
    out = Box(per_op[-1].lower[0], per_op[-1].upper[0])
    if method in (Method.LP, Method.MILP):
        program = build_program(net, box, per_op)
        k = net.out_dim
        out, recs = solve_linear(program.relaxed(), np.eye(k), out, solver, time_limit, op=len(net.ops) - 1)
        records += recs
        if method is Method.MILP:
            out, recs = solve_linear(program, np.eye(k), out, solver, time_limit, op=len(net.ops) - 1)
            records += recs
    margin = logit_margin(net, box, per_op)[0]
    return BoundReport(out.lower - margin, out.upper + margin, method, per_op, box, records,
                       time.perf_counter() - t0, margin)


def bounds(model: nn.Module | Net, x0: Tensor, eps: float, method: Method | str = Method.CROWN,
           solver: Solver | str = Solver.AUTO, time_limit: float = 60.0,
           tightening: Tightening | str | None = None) -> tuple[Tensor, Tensor]:
    """Sound logit bounds (lower, upper) over B_eps(x0).

    Args:
        x0: one image (C, H, W) -> bounds (K,); or a batch (B, C, H, W) -> (B, K) (interval and
            crown batch natively; lp and milp loop over images).
    Returns:
        (lower, upper) float64 tensors, the float32 margin (``fp.logit_margin``) included.
    """
    method = parse(Method, method)
    if x0.dim() == 3:
        r = output_bounds(model, x0, eps, method, solver, time_limit, tightening)
        return r.lower, r.upper
    net = as_net(model, x0.shape[1:])
    if method in (Method.INTERVAL, Method.CROWN) and tightening in (None, Tightening.NONE, "none"):
        box = input_box(x0, eps)
        per_op = interval_bounds(net, box) if method is Method.INTERVAL else crown_bounds(net, box)
        margin = logit_margin(net, box, per_op)
        return per_op[-1].lower - margin, per_op[-1].upper + margin
    rs = [output_bounds(net, x, eps, method, solver, time_limit, tightening) for x in x0]
    return torch.stack([r.lower for r in rs]), torch.stack([r.upper for r in rs])


def diff_bounds_from_logits(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 9 from logit intervals: d_ij = z_j - z_i in [l_j - u_i, u_j - l_i]; d_ii = 0.

    Args: lower, upper (..., K). Returns: (d_lower, d_upper) (..., K, K), index [i, j].
    """
    d_lo = lower[..., None, :] - upper[..., :, None]
    d_up = upper[..., None, :] - lower[..., :, None]
    eye = torch.eye(lower.shape[-1], dtype=torch.bool)
    return d_lo.masked_fill(eye, 0.0), d_up.masked_fill(eye, 0.0)


def logit_diff_bounds(model: nn.Module | Net, x0: Tensor, eps: float, mode: DiffMode | str = DiffMode.TIGHT,
                      method: Method | str = Method.CROWN, solver: Solver | str = Solver.AUTO,
                      time_limit: float = 60.0, tightening: Tightening | str | None = None,
                      report: BoundReport | None = None, clamp: bool = True) -> tuple[Tensor, Tensor, BoundReport]:
    """Bounds on d_ij = z_j - z_i over B_eps(x0) for one image (eq. 9).

    ``paper``: from the logit bounds of ``method``. ``tight``: z_j - z_i bounded directly by the
    same method (interval: the last affine layer on the penultimate intervals; crown: back-
    substitution of e_j - e_i; lp/milp: one maximisation per ordered pair, lower(d_ij) = -upper(d_ji)), intersected with the paper
    bounds, so never looser.

    Args:
        x0: one image (C, H, W).
        report: a ``BoundReport`` of this model, image and method to reuse (skips recomputation).
    Returns:
        (d_lower, d_upper) (K, K) float64 indexed [i, j], diagonal 0; and the BoundReport.
    """
    mode, method = parse(DiffMode, mode), parse(Method, method)
    if mode in (DiffMode.JOINT, DiffMode.SOFTMAX, DiffMode.JOINT_SOFTMAX):
        raise ValueError(f"mode {mode.value} bounds a teacher-student pair, not one network: use faithub(..., mode={mode.value!r}); "
                         "per network choose paper or tight")
    check_one_image(x0, "logit_diff_bounds")
    net = as_net(model, x0.shape)
    r = report or output_bounds(net, x0, eps, method, solver, time_limit, tightening, clamp)
    d_lo, d_up = diff_bounds_from_logits(r.lower, r.upper)
    if mode is DiffMode.PAPER:
        return d_lo, d_up, r
    k = net.out_dim
    ii, jj, coef = _pairs(k)
    if method is Method.INTERVAL:
        last = net.ops[-1]
        diff = Affine(torch.as_tensor(coef, dtype=DTYPE) @ last.weight, torch.as_tensor(coef, dtype=DTYPE) @ last.bias)
        direct = propagate(diff, r.per_op[-2])
    else:
        direct = crown_linear(net, r.box, torch.as_tensor(coef), r.per_op)
    pair = pair_margin(r.margin)
    direct = Box(direct.lower[0] - pair[ii, jj], direct.upper[0] + pair[ii, jj])
    prev = intersect(direct, Box(d_lo[ii, jj], d_up[ii, jj]))
    d_lo, d_up = d_lo.clone(), d_up.clone()
    d_lo[ii, jj], d_up[ii, jj] = prev.lower, prev.upper
    if method in (Method.LP, Method.MILP):
        # one maximisation of z_j - z_i per ordered pair (lower(d_ij) = -upper(d_ji)), one solver
        # session per relaxation; solver values carry their margin plus both logits' (refine.py)
        db = DiffBounds.from_bounds(net, r.box, r.per_op, d_lo, d_up, solver, margin=pair)
        db.refine_all(Relax.LP, time_limit)
        if method is Method.MILP:
            db.refine_all(Relax.MILP, time_limit)
        r.records += db.records
        d_lo, d_up = db.lower.clone(), db.upper.clone()
    return d_lo, d_up, r


def softmax_bounds(d_lower: Tensor, d_upper: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 10: sigma_i in [1 / sum_j exp(d_ij^ub), 1 / sum_j exp(d_ij^lb)] (j = i gives exp(0) = 1).

    Args: d_lower, d_upper (..., K, K) indexed [i, j] with zero diagonal.
    Returns: (sigma_lower, sigma_upper) (..., K), within [0, 1].
    """
    lo = torch.exp(-torch.logsumexp(d_upper, dim=-1))
    hi = torch.exp(-torch.logsumexp(d_lower, dim=-1))
    return lo.clamp(0.0, 1.0), hi.clamp(0.0, 1.0)


class Faithub(NamedTuple):
    """FAITHUB of one image (eq. 11) with its ingredients: softmax bounds (K,) of each network."""
    value: float
    teacher_sigma: Box
    student_sigma: Box
    teacher: BoundReport
    student: BoundReport


def faithub_from_sigma(t: Box, s: Box) -> Tensor:
    """Eq. 11 capped at 1: max_i max(ub_t,i - lb_s,i, ub_s,i - lb_t,i). Boxes (..., K) -> (...)."""
    gap = torch.maximum(t.upper - s.lower, s.upper - t.lower).amax(-1)
    return gap.clamp(0.0, 1.0)


def faithub(teacher: nn.Module | Net, student: nn.Module | Net, x0: Tensor, eps: float,
            mode: DiffMode | str = DiffMode.TIGHT, method: Method | str = Method.CROWN,
            solver: Solver | str = Solver.AUTO, time_limit: float = 60.0,
            tightening: Tightening | str | None = None, clamp: bool = True) -> Faithub:
    """FAITHUB (eqs. 9-11): a sound upper bound on delta* = max_{x in B} ||f_t(x) - f_s(x)||_inf.

    Args:
        teacher, student: networks with the same number of classes K.
        x0: one image (C, H, W) in [0, 1]; eps: radius in pixel units.
        mode: paper (eq. 9 from logit intervals) | tight (z_j - z_i bounded directly) | joint (tight,
            then both networks at one shared x: ``fkd.bounds.joint``; never looser than tight).
        method: interval | crown | lp | milp, for both networks (joint: cross bounds by CROWN, or
            by LP on the joint network for lp / milp).
    Returns:
        Faithub(value in [0, 1], softmax bounds of each network, their BoundReports).
    """
    mode = parse(DiffMode, mode)
    check_one_image(x0, "faithub")
    per_net = DiffMode.TIGHT if mode in (DiffMode.JOINT, DiffMode.SOFTMAX, DiffMode.JOINT_SOFTMAX) else mode
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
        from .joint import cross_bounds, joint_faithub

        cross = "lp" if parse(Method, method) in (Method.LP, Method.MILP) else "crown"
        margin = pair_margin(reps[0].margin) + pair_margin(reps[1].margin)
        cb = cross_bounds(*nets, x0, eps, cross, solver, time_limit, clamp, margin)
        value = min(value, joint_faithub(*diffs, cb)[0])
    if mode in (DiffMode.SOFTMAX, DiffMode.JOINT_SOFTMAX):  # the sigma boxes returned stay tight mode's
        from .shared import ImageBounds

        ib = ImageBounds(x0, eps, method, solver, time_limit, tightening, clamp=clamp)
        value = min(value, getattr(ib, mode.value)(*nets).value)
    return Faithub(value, sig[0], sig[1], reps[0], reps[1])
