"""Solver-agnostic MILP / LP encodings of one network over the input box (section 4.2, eq. 9).

``build_program(net, box, bounds)`` encodes the network exactly (Tjeng et al., 2019, MIPVerify):

- inputs x in [lo, hi] (the ball intersected with [0, 1]);
- affine layers are substituted into the rows that use them (no pre-activation variables);
- a ReLU with pre-activation bounds [l, u]: u <= 0 -> the constant 0; l >= 0 -> a = z; otherwise
  a in [0, u], a >= z, a <= z - l (1 - d), a <= u d with a binary d (big-M from the tightened
  bounds, binaries only for unstable ReLUs);
- a max-pool y = max_{j in W} a_j: inputs whose upper bound is below the largest lower bound are
  dropped; one survivor -> y = a_j; otherwise y >= a_j, y <= a_j + (U - l_j)(1 - d_j),
  sum_j d_j = 1 with binaries d_j (exact).

``Program.relaxed()`` drops integrality: for a ReLU the LP relaxation of the big-M encoding is the
triangle relaxation (Ehlers, 2017), for a max-pool a valid convex relaxation. ``tighten`` runs
progressive bound tightening (LP or short-MILP per unstable neuron, layer by layer).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
import torch

from .crown import crown_bounds
from .interval import Box, intersect
from .network import Affine, MaxPool, Net, ReLU
from .solvers import SolveResult, Solver, Status, open_session


class Relax(str, enum.Enum):
    MILP = "milp"
    LP = "lp"


@dataclass(frozen=True)
class Program:
    """max cost @ v over {lb <= v <= ub, row_lo <= a v <= row_hi, v[integer] in {0, 1}}, with the
    output of the encoded op as the affine expression ``out_coef @ v[out_cols] + out_const``.

    Shapes: lb, ub, integer (n,); a (m, n) sparse; row_lo, row_hi (m,); out_coef (K, len(out_cols)).
    """
    n: int
    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray
    a: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    out_coef: np.ndarray
    out_cols: np.ndarray
    out_const: np.ndarray
    relax: bool = False

    @property
    def m(self) -> int:
        return self.a.shape[0]

    def integer_vars(self) -> np.ndarray:
        """Mask (n,) of the variables the solver must keep integral (none when relaxed)."""
        return np.zeros(self.n, dtype=bool) if self.relax else self.integer

    def relaxed(self) -> "Program":
        """The LP relaxation (integrality dropped)."""
        return replace(self, relax=True)

    def objective(self, c: np.ndarray) -> tuple[np.ndarray, float]:
        """Cost vector (n,) and constant of the linear function c @ output, c (K,)."""
        cost = np.zeros(self.n)
        cost[self.out_cols] = c @ self.out_coef
        return cost, float(c @ self.out_const)


@dataclass
class _Builder:
    lb: list = field(default_factory=list)
    ub: list = field(default_factory=list)
    integer: list = field(default_factory=list)
    rows: list = field(default_factory=list)   # (cols, vals, lo, hi) per row
    n: int = 0

    def var(self, lo: float, hi: float, integer: bool = False) -> int:
        self.lb.append(lo), self.ub.append(hi), self.integer.append(integer)
        self.n += 1
        return self.n - 1

    def row(self, cols: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> None:
        keep = vals != 0
        self.rows.append((np.asarray(cols)[keep], np.asarray(vals, dtype=float)[keep], lo, hi))


def build_program(net: Net, box: Box, bounds: list[Box], upto: int | None = None) -> Program:
    """Encode ``net`` up to the output of op ``upto`` (default: the logits) for one image.

    Args:
        box: input bounds, (1, in_dim) or (in_dim,).
        bounds: sound per-op bounds (``crown_bounds``), (1, n) or (n,) each; used as big-M.
        upto: index of an Affine op whose output is the program's output expression.
    Returns:
        Program (exact MILP; ``.relaxed()`` for the LP).
    """
    upto = len(net.ops) - 1 if upto is None else upto
    if not isinstance(net.ops[upto], Affine):
        raise ValueError("the encoded output must be the output of an affine op")
    flat = [(b.lower.reshape(-1).numpy(), b.upper.reshape(-1).numpy()) for b in bounds]
    lo, hi = (t.reshape(-1).numpy() for t in box)
    bld = _Builder()
    cols = np.array([bld.var(float(a), float(b)) for a, b in zip(lo, hi)], dtype=np.int64)
    coef, const = np.eye(len(cols)), np.zeros(len(cols))     # current vector = coef @ v[cols] + const
    for i, op in enumerate(net.ops[:upto + 1]):
        if isinstance(op, Affine):
            w, b = op.weight.numpy(), op.bias.numpy()
            coef, const = w @ coef, w @ const + b
        elif isinstance(op, ReLU):
            coef, const, cols = _relu(bld, coef, const, cols, *flat[i - 1])
        else:
            coef, const, cols = _maxpool(bld, op, coef, const, cols, *flat[i - 1])
    a = sp.csr_matrix((np.concatenate([r[1] for r in bld.rows]) if bld.rows else np.zeros(0),
                       (np.concatenate([np.full(len(r[0]), k) for k, r in enumerate(bld.rows)]) if bld.rows else np.zeros(0, int),
                        np.concatenate([r[0] for r in bld.rows]) if bld.rows else np.zeros(0, int))),
                      shape=(len(bld.rows), bld.n))
    return Program(bld.n, np.array(bld.lb), np.array(bld.ub), np.array(bld.integer, dtype=bool), a,
                   np.array([r[2] for r in bld.rows], dtype=float), np.array([r[3] for r in bld.rows], dtype=float),
                   coef, cols, const)


def _relu(bld: _Builder, coef, const, cols, l, u):
    """Big-M ReLU encoding; returns the post-activation expression over new variables."""
    n = len(l)
    new_cols = np.zeros(n, dtype=np.int64)
    live = []
    for r in range(n):
        if u[r] <= 0:
            continue
        e_r, c_r = coef[r], const[r]
        if l[r] >= 0:
            a = bld.var(float(l[r]), float(u[r]))
            bld.row(np.r_[a, cols], np.r_[1.0, -e_r], c_r, c_r)                      # a = z
        else:
            a = bld.var(0.0, float(u[r]))
            d = bld.var(0.0, 1.0, integer=True)
            bld.row(np.r_[a, cols], np.r_[1.0, -e_r], c_r, np.inf)                   # a >= z
            bld.row(np.r_[a, d, cols], np.r_[1.0, -l[r], -e_r], -np.inf, c_r - l[r])  # a <= z - l (1 - d)
            bld.row(np.r_[a, d], np.r_[1.0, -u[r]], -np.inf, 0.0)                    # a <= u d
        new_cols[r] = a
        live.append(r)
    out = np.zeros((n, len(live)))
    out[live, np.arange(len(live))] = 1.0
    return out, np.zeros(n), new_cols[live]


def _maxpool(bld: _Builder, op: MaxPool, coef, const, cols, l, u):
    """Exact max-pool encoding; returns the output expression over old columns and new variables."""
    windows = op.windows.numpy()
    rows_old, rows_new, new_vars = [], [], []
    for w in windows:
        best_l = l[w].max()
        cand = [j for j in w if u[j] >= best_l]
        if len(cand) == 1:
            rows_old.append((coef[cand[0]], const[cand[0]])), rows_new.append(None)
            continue
        big_u = max(u[j] for j in cand)
        y = bld.var(float(best_l), float(big_u))
        ds = [bld.var(0.0, 1.0, integer=True) for _ in cand]
        for j, d in zip(cand, ds):
            bld.row(np.r_[y, cols], np.r_[1.0, -coef[j]], const[j], np.inf)                         # y >= a_j
            m = big_u - l[j]
            bld.row(np.r_[y, d, cols], np.r_[1.0, m, -coef[j]], -np.inf, const[j] + m)             # y <= a_j + M (1 - d_j)
        bld.row(np.array(ds), np.ones(len(ds)), 1.0, 1.0)                                          # one d_j = 1
        rows_old.append((np.zeros(len(cols)), 0.0)), rows_new.append(len(new_vars))
        new_vars.append(y)
    out = np.zeros((len(windows), len(cols) + len(new_vars)))
    out_const = np.zeros(len(windows))
    for k, ((e, c), nv) in enumerate(zip(rows_old, rows_new)):
        out[k, :len(cols)], out_const[k] = e, c
        if nv is not None:
            out[k, len(cols) + nv] = 1.0
    return out, out_const, np.r_[cols, np.array(new_vars, dtype=np.int64)]


@dataclass(frozen=True)
class NeuronSolve:
    """One bound from a solver: op index, neuron, side ('lower'/'upper'), the result, and whether
    the previous (CROWN/interval) bound was kept because the solver's was looser or failed."""
    op: int
    neuron: int
    side: str
    result: SolveResult
    kept_previous: bool


def solve_linear(program: Program, coefs: np.ndarray, previous: Box, solver: Solver | str,
                 time_limit: float, op: int = -1) -> tuple[Box, list[NeuronSolve]]:
    """Bounds of each coefs[r] @ output by maximising and minimising it, intersected with ``previous``.

    Args:
        coefs: (m, K) linear functions of the program's output.
        previous: sound bounds (m,) from an earlier stage; kept where the solver fails or is looser.
    Returns:
        (Box of (m,) float64 tensors, one NeuronSolve record per solve).
    """
    session = open_session(program, solver)
    lower, upper = previous.lower.clone(), previous.upper.clone()
    records = []
    for r, c in enumerate(coefs):
        for side, sign in (("upper", 1.0), ("lower", -1.0)):
            cost, const = program.objective(sign * c)
            res = session.maximize(cost, const, time_limit)
            value = sign * res.bound
            if side == "upper":
                kept = not value < upper[r]
                upper[r] = min(float(upper[r]), value)
            else:
                kept = not value > lower[r]
                lower[r] = max(float(lower[r]), value)
            records.append(NeuronSolve(op, r, side, res, kept or res.status is Status.FAILED))
    return Box(lower, upper), records


def tighten(net: Net, box: Box, bounds: list[Box] | None = None, relax: Relax | str = Relax.LP,
            solver: Solver | str = Solver.AUTO, time_limit: float = 10.0) -> tuple[list[Box], list[NeuronSolve]]:
    """Progressive tightening (MIPVerify): for each pre-activation layer in order, solve an LP (or a
    time-limited MILP) per unstable neuron for its lower and upper bound, then recompute CROWN for
    the later layers from the tightened ones (intersected with the previous bounds).

    Args:
        box: input bounds of one image, (1, in_dim).
        bounds: starting per-op bounds (``crown_bounds`` if None), (1, n) each.
    Returns:
        (tightened per-op bounds (1, n) each, the solve records).
    """
    from ..config import parse

    relax = parse(Relax, relax)
    bounds = crown_bounds(net, box) if bounds is None else list(bounds)
    records: list[NeuronSolve] = []
    for i, op in enumerate(net.ops[:-1]):
        if i == 0 or not isinstance(op, Affine) or isinstance(net.ops[i + 1], Affine):
            continue  # the first affine layer's interval bounds are exact already
        l, u = bounds[i].lower[0], bounds[i].upper[0]
        unstable = ((l < 0) & (u > 0)).nonzero().flatten()
        if len(unstable) == 0:
            continue
        program = build_program(net, box, bounds, upto=i)
        program = program.relaxed() if relax is Relax.LP else program
        eye = np.eye(op.out_dim)[unstable.numpy()]
        new, recs = solve_linear(program, eye, Box(l[unstable], u[unstable]), solver, time_limit, op=i)
        records += [replace(r, neuron=int(unstable[r.neuron])) for r in recs]
        l, u = l.clone(), u.clone()
        l[unstable], u[unstable] = new.lower, new.upper
        bounds[i] = Box(l[None], u[None])
        later = crown_bounds_from(net, box, bounds[:i + 1])
        bounds = bounds[:i + 1] + [intersect(a, b) for a, b in zip(later[i + 1:], bounds[i + 1:])]
    return bounds, records


def crown_bounds_from(net: Net, box: Box, prefix: list[Box]) -> list[Box]:
    """``crown_bounds`` with the first len(prefix) ops' bounds fixed to ``prefix``."""
    return crown_bounds(net, box, prefix=prefix)
