"""delta* by global nonlinear optimisation (Gurobi's spatial branch and bound), for tiny pairs.

Per class i and sign, one mixed-integer nonlinear program over shared input variables x in the ball:

    maximise  sign * (p_t - p_s),   p_A = 1 / (1 + sum_{j != i} exp(d^A_ij)),   d^A_ij = z_A,j - z_A,i,

with both networks encoded exactly (stable ReLUs as linear expressions, unstable ones by big-M with
CROWN pre-activation bounds on the joint network; exp and the reciprocal as Gurobi nonlinear
constraints). Gurobi proves a global bound (``ObjBound``, widened by ``SOLVER_ABS_TOL``); (class,
sign) pairs whose CROWN bound cannot beat the best point found are skipped with that bound.
The pip licence allows 200 variables once anything is nonlinear: the input plus two per unstable
ReLU plus 2K: the 49-input small pair fits (85 to 181 variables at eps 0.02 to 0.1); anything larger raises
``SolverUnavailable`` naming the limit.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .budget import Budget
from .crown import crown_bounds
from .exact import class_bounds
from .interval import input_box, project
from .joint import joint_net
from .fp import logit_margin, pair_margin
from .network import FP_MARGIN, Affine, Net, ReLU
from .real import as_float64, real_gap
from .dual import SOLVER_ABS_TOL
from .solvers import SolverUnavailable


@dataclass(frozen=True)
class GlobalDelta:
    """delta* of one image: ``lower`` (a point's gap) <= delta* <= ``upper`` (proven); status optimal
    (every class and sign closed), time_limit (a solve stopped: its proven bound is kept), budget
    (pairs left unsolved keep their CROWN bound) or failed (a solve failed: its CROWN bound kept)."""
    lower: float
    upper: float
    point: Tensor
    seconds: float
    status: str
    solves: int
    variables: int


def _encode(m, gp, net: Net, x, per_op, offset: list[int]) -> list:
    """Linear expressions of the logits of ``net``, whose units sit at ``offset[k]`` in the joint
    network's op k bounds ``per_op``; unstable ReLUs get a variable and a binary (big-M with CROWN bounds)."""
    h = list(x)
    for k, op in enumerate(net.ops):
        if isinstance(op, Affine):
            w, b = op.weight.numpy(), op.bias.numpy()
            h = [gp.LinExpr(list(w[r]), h) + float(b[r]) if all(isinstance(v, gp.Var) for v in h)
                 else gp.quicksum(float(w[r, c]) * h[c] for c in range(len(h)) if w[r, c] != 0) + float(b[r])
                 for r in range(w.shape[0])]
        elif isinstance(op, ReLU):
            lo = per_op[k - 1].lower[0].numpy()
            hi = per_op[k - 1].upper[0].numpy()
            out = []
            for r, pre in enumerate(h):
                l, u = float(lo[offset[k - 1] + r]) - FP_MARGIN, float(hi[offset[k - 1] + r]) + FP_MARGIN
                if l >= 0:
                    out.append(pre)
                elif u <= 0:
                    out.append(gp.LinExpr(0.0))
                else:
                    a = m.addVar(lb=0.0, ub=u)
                    z = m.addVar(vtype=gp.GRB.BINARY)
                    m.addConstr(a >= pre)
                    m.addConstr(a <= pre - l * (1 - z))
                    m.addConstr(a <= u * z)
                    out.append(a)
            h = out
        else:
            raise ValueError("global_delta encodes MLPs (Affine and ReLU ops) only")
    return h


def global_delta(teacher: nn.Module, student: nn.Module, t_net: Net, s_net: Net, x0: Tensor, eps: float, *,
                 time_limit: float = 60.0, budget: float | None = None, start: float = 0.0,
                 start_point: Tensor | None = None, cap: float = 1.0) -> GlobalDelta:
    """delta* = max over B_eps(x0) cap [0, 1] of ||f_t(x) - f_s(x)||_inf by Gurobi's global MINLP.

    Args:
        teacher, student: eval-mode torch MLPs; t_net, s_net: their lowered networks (same depth).
        x0: one image (C, H, W). time_limit: seconds per (class, sign) solve.
        budget: CPU seconds for all solves of the image (``fkd.bounds.budget``); past it the remaining (class, sign) pairs keep
            their CROWN bound (status budget). Pairs are solved in decreasing order of that bound.
        start, start_point: a known gap and its point (e.g. EMPLB), to skip hopeless classes.
        cap: a proven upper bound on delta* from elsewhere (e.g. branch and bound), capping every pair.
    Returns:
        GlobalDelta with lower <= delta* <= upper.
    """
    try:
        import gurobipy as gp
        from gurobipy import nlfunc
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SolverUnavailable("gurobipy is not installed: pip install gurobipy") from e
    t0, spend = time.perf_counter(), Budget(budget)
    if len(t_net.ops) != len(s_net.ops):
        raise ValueError("global_delta needs teacher and student of the same depth")
    k = t_net.out_dim
    box = input_box(x0, eps)
    joint = joint_net(t_net, s_net)
    per_op = crown_bounds(joint, box)
    t64, s64 = as_float64(teacher), as_float64(student)  # lower bounds: real gaps at points of the ball
    lower = max(start, float(real_gap(t64, s64, x0[None])[0]))
    point = start_point if start_point is not None and start >= lower else x0
    t_widths, w = [], t_net.in_dim
    for op in t_net.ops:  # in the joint net, op k's output is [teacher's (t_widths[k]); student's]
        w = op.out_dim if isinstance(op, Affine) else w
        t_widths.append(w)
    margin = logit_margin(joint, box, per_op)[0]
    # a logit difference off by at most delta moves a softmax output by at most delta / 4
    sigma_margin = max(2 * FP_MARGIN, float(pair_margin(margin[:k]).max() + pair_margin(margin[k:]).max()) / 4)
    bounds = np.minimum(class_bounds(joint, k, box.lower, box.upper, margin)[0].numpy(), cap)
    try:
        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.setParam("Threads", 1)
        env.start()
    except gp.GurobiError as e:
        raise SolverUnavailable(f"Gurobi error {e.errno}: {e}. Fix: install a Gurobi licence") from e
    upper, status, solves, n_vars = lower, "optimal", 0, 0
    order = sorted(((cls, col) for cls in range(k) for col in (0, 1)), key=lambda p: -bounds[p])
    for cls, col in order:
        sign, cap = 1.0 - 2.0 * col, float(bounds[cls, col])
        if cap <= lower + 1e-6:
            upper = max(upper, cap)
            continue
        if spend.expired():
            upper, status = max(upper, cap), "budget" if status == "optimal" else status
            continue
        m = gp.Model(env=env)
        m.Params.TimeLimit = max(float(time_limit), 1e-3)
        m.Params.MIPGap, m.Params.MIPGapAbs = 1e-4, 1e-4  # tighter gaps left it SUBOPTIMAL (status 13)
        x = [m.addVar(lb=float(box.lower[0, r]), ub=float(box.upper[0, r])) for r in range(box.lower.shape[1])]
        zt = _encode(m, gp, t_net, x, per_op, [0] * len(t_widths))
        zs = _encode(m, gp, s_net, x, per_op, t_widths)
        probs = []
        for z in (zt, zs):
            e = []
            for j in range(k):
                if j == cls:
                    continue
                v = m.addVar(lb=0.0, ub=float("inf"))
                m.addGenConstrNL(v, nlfunc.exp(z[j] - z[cls]))
                e.append(v)
            p = m.addVar(lb=0.0, ub=1.0)
            m.addGenConstrNL(p, 1.0 / (1.0 + gp.quicksum(e)))
            probs.append(p)
        m.setObjective(sign * (probs[0] - probs[1]), gp.GRB.MAXIMIZE)
        m.update()
        n_vars = max(n_vars, m.NumVars)
        try:
            m.optimize()
            if m.Status == gp.GRB.SUBOPTIMAL:  # numerical trouble: once more, careful with numerics
                m.Params.NumericFocus = 3
                m.Params.TimeLimit = max(float(time_limit) - m.Runtime, 1.0)
                m.optimize()
        except gp.GurobiError as e:
            raise SolverUnavailable(f"Gurobi error {e.errno}: {e} ({m.NumVars} variables; the pip licence "
                                    f"allows 200 once anything is nonlinear). Fix: a smaller pair, or a full "
                                    f"Gurobi licence") from e
        solves += 1
        if m.Status not in (gp.GRB.OPTIMAL, gp.GRB.TIME_LIMIT) or not np.isfinite(m.ObjBound):
            upper, status = max(upper, cap), "failed"  # a failed solve keeps the CROWN bound
            continue
        if m.Status == gp.GRB.TIME_LIMIT:
            status = "time_limit" if status in ("optimal", "budget") else status
        upper = max(upper, min(cap, m.ObjBound + SOLVER_ABS_TOL + sigma_margin))
        if m.SolCount > 0:
            cand = torch.tensor([v.X for v in x], dtype=x0.dtype).reshape(x0.shape)
            cand = project(cand, x0, eps)
            g = float(real_gap(t64, s64, cand[None])[0])  # the real gap at a point of the ball
            if g > lower:
                lower, point = g, cand
    env.dispose()
    return GlobalDelta(lower, max(upper, lower), point, time.perf_counter() - t0, status, solves, n_vars)
