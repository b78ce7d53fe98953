"""Sound logit bounds of one network over B_eps(x0), and bounds on its logit differences (eq. 9)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from ..config import parse
from .crown import crown_bounds, crown_linear
from .fp import logit_margin, pair_margin
from .interval import Box, input_box, intersect, interval_bounds, propagate
from .milp import NeuronSolve, Relax, build_program, solve_linear
from .modes import PAIR_MODES, BoundMethod, DiffMode, Tightening, default_tightening
from .network import DTYPE, Affine, Net, check_one_image, lower
from .obbt import OBBT_LIMIT, run_tightening
from .refine import DiffBounds, _pairs
from .sigma import diff_bounds_from_logits
from .solvers import Solver, Status


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
    method: BoundMethod
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


def output_bounds(model: nn.Module | Net, x0: Tensor, eps: float, method: BoundMethod | str = BoundMethod.CROWN,
                  solver: Solver | str = Solver.AUTO, time_limit: float = 60.0,
                  tightening: Tightening | str | None = None, clamp: bool = True,
                  obbt_limit: float = OBBT_LIMIT, obbt_budget: float | None = None) -> BoundReport:
    """Bounds on every logit of ``model`` over B_eps(x0) for ONE image.

    Args:
        model: nn.Sequential (lowered here) or a lowered Net.
        x0: one image (C, H, W) in [0, 1].
        method: interval | crown | lp | milp.
        solver: auto | gurobi | highs (lp, milp and tightening only).
        time_limit: seconds per solver call.
        tightening: none | lp | milp | obbt: progressive per-layer tightening before the final
            stage (default lp for the lp and milp methods, none otherwise); obbt: ``fkd.bounds.obbt``
            with ``obbt_limit`` seconds per MILP and ``obbt_budget`` CPU seconds in all.
        clamp: the ball intersected with [0, 1] (default), else the plain ball (``input_box``).
    Returns:
        BoundReport with lower, upper (K,).
    """
    method, solver = parse(BoundMethod, method), parse(Solver, solver)
    tightening = default_tightening(method) if tightening is None else parse(Tightening, tightening)
    check_one_image(x0, "output_bounds")
    t0 = time.perf_counter()
    net = as_net(model, x0.shape)
    box = input_box(x0, eps, clamp)
    per_op = interval_bounds(net, box) if method is BoundMethod.INTERVAL else crown_bounds(net, box)
    records: list[NeuronSolve] = []
    if tightening is not Tightening.NONE:
        per_op, records = run_tightening(tightening, net, box, per_op, solver, time_limit, obbt_limit, obbt_budget)
    out = Box(per_op[-1].lower[0], per_op[-1].upper[0])
    if method in (BoundMethod.LP, BoundMethod.MILP):
        program = build_program(net, box, per_op)
        k = net.out_dim
        out, recs = solve_linear(program.relaxed(), np.eye(k), out, solver, time_limit, op=len(net.ops) - 1)
        records += recs
        if method is BoundMethod.MILP:
            out, recs = solve_linear(program, np.eye(k), out, solver, time_limit, op=len(net.ops) - 1)
            records += recs
    margin = logit_margin(net, box, per_op)[0]
    return BoundReport(out.lower - margin, out.upper + margin, method, per_op, box, records,
                       time.perf_counter() - t0, margin)


def bounds(model: nn.Module | Net, x0: Tensor, eps: float, method: BoundMethod | str = BoundMethod.CROWN,
           solver: Solver | str = Solver.AUTO, time_limit: float = 60.0,
           tightening: Tightening | str | None = None) -> tuple[Tensor, Tensor]:
    """Sound logit bounds (lower, upper) over B_eps(x0).

    Args:
        x0: one image (C, H, W) -> bounds (K,); or a batch (B, C, H, W) -> (B, K) (interval and
            crown batch natively; lp and milp loop over images).
    Returns:
        (lower, upper) float64 tensors, the float32 margin (``fp.logit_margin``) included.
    """
    method = parse(BoundMethod, method)
    if x0.dim() == 3:
        r = output_bounds(model, x0, eps, method, solver, time_limit, tightening)
        return r.lower, r.upper
    net = as_net(model, x0.shape[1:])
    if method in (BoundMethod.INTERVAL, BoundMethod.CROWN) and tightening in (None, Tightening.NONE, "none"):
        box = input_box(x0, eps)
        per_op = interval_bounds(net, box) if method is BoundMethod.INTERVAL else crown_bounds(net, box)
        margin = logit_margin(net, box, per_op)
        return per_op[-1].lower - margin, per_op[-1].upper + margin
    rs = [output_bounds(net, x, eps, method, solver, time_limit, tightening) for x in x0]
    return torch.stack([r.lower for r in rs]), torch.stack([r.upper for r in rs])


def logit_diff_bounds(model: nn.Module | Net, x0: Tensor, eps: float, mode: DiffMode | str = DiffMode.TIGHT,
                      method: BoundMethod | str = BoundMethod.CROWN, solver: Solver | str = Solver.AUTO,
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
    mode, method = parse(DiffMode, mode), parse(BoundMethod, method)
    if mode in PAIR_MODES:
        raise ValueError(f"mode {mode.value} bounds a teacher-student pair, not one network: use "
                         f"faithub(..., mode={mode.value!r}); per network choose paper or tight")
    check_one_image(x0, "logit_diff_bounds")
    net = as_net(model, x0.shape)
    r = report or output_bounds(net, x0, eps, method, solver, time_limit, tightening, clamp)
    d_lo, d_up = diff_bounds_from_logits(r.lower, r.upper)
    if mode is DiffMode.PAPER:
        return d_lo, d_up, r
    k = net.out_dim
    ii, jj, coef = _pairs(k)
    if method is BoundMethod.INTERVAL:
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
    if method in (BoundMethod.LP, BoundMethod.MILP):
        # one maximisation of z_j - z_i per ordered pair (lower(d_ij) = -upper(d_ji)), one solver
        # session per relaxation; solver values carry their margin plus both logits' (refine.py)
        db = DiffBounds.from_bounds(net, r.box, r.per_op, d_lo, d_up, solver, margin=pair)
        db.refine_all(Relax.LP, time_limit)
        if method is BoundMethod.MILP:
            db.refine_all(Relax.MILP, time_limit)
        r.records += db.records
        d_lo, d_up = db.lower.clone(), db.upper.clone()
    return d_lo, d_up, r
