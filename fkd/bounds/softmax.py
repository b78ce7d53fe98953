"""The softmax inside the program: FAITHUB mode ``softmax``.

Eq. 10 bounds each sigma_i = 1 / (1 + S_i), S_i = sum_{j != i} exp(d_ij), from the d_ij bounds alone,
each d_ij at its own extreme. Here S_i is bounded over the network's program (``milp.build_program``
with the per-op bounds of its ``DiffBounds``), where the d_ij move together:

- the float32 logits: z_k = (program's output k) + delta_k, |delta_k| <= m_k (``fp.logit_margin``),
  so the program holds the float32 logits (not only the real-arithmetic ones); d_ij = z_j - z_i in
  the current ``DiffBounds`` bounds [l_ij, u_ij] (FP margins included);
- upper side of sigma_i: e_ij >= tangents of exp (convex, so under-estimators) at ``tangents`` points
  of [l_ij, u_ij]; min S_i over the LP relaxation (its safe dual bound) gives sigma_i <= 1/(1 + S_min);
- lower side: e_ij <= the chord of exp over [l_ij, u_ij] (an over-estimator); max S_i over the LP,
  then on a budget over the exact MILP (binaries for unstable ReLUs; proven bound), gives
  sigma_i >= 1/(1 + S_max); optionally (``pieces``) the MILP also takes exp's chords over ``pieces``
  segments of [l_ij, u_ij], one chosen by binaries (``pieces_above``), exact at the breakpoints;
- ``softmax_faithub`` spends the solves where eq. 11 is decided: the largest of its 2K terms
  ub_A,i - lb_B,i has sigma_A,i's upper and sigma_B,i's lower side solved, per stage (LP, then
  MILP on both sides within a budget), until the largest term was solved at that stage.

Scaling: e_ij stands for exp(d_ij - c_i) with c_i = max_j l_ij (lower-bounding block ``lo``) or
max_j u_ij (over-estimating block ``hi``), so the numbers stay O(1); a term of ``lo`` with
u_ij - c_i > FAR leaves the program and keeps its constant floor exp(l_ij - c_i) (valid: the terms
are positive). Every row is widened outward by SLACK (relative) for the float64 rounding of its
constants, every sigma bound by 1e-12; solver values count only through their sound bounds
(``solvers``), and each new sigma bound is intersected with eq. 10's, so the mode is never looser
than ``tight`` (and is capped by its value). Not covered, as elsewhere: the float32 rounding of the
softmax itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from .budget import MIN_SOLVE, Budget, as_budget
from .fp import logit_margin
from .interval import Box
from .milp import NeuronSolve, Program, Relax, build_program
from .sigma import faithub_from_sigma
from .refine import DiffBounds
from .solvers import Session, Status, open_session

__all__ = ["TANGENTS", "FAR", "SLACK", "Block", "softmax_block", "Extension", "tangent_points",
           "SoftmaxBounds", "softmax_faithub"]

TANGENTS = 4
FAR = 20.0
SLACK = 1e-12
SIGMA_TOL = 1e-12


class Extension:
    """New variables and rows appended to a base ``Program`` (columns numbered after base.n)."""

    def __init__(self, base: Program):
        self.base, self.lb, self.ub, self.int, self.rows = base, [], [], [], []

    def var(self, lo: float, hi: float, integer: bool = False) -> int:
        self.lb.append(float(lo)), self.ub.append(float(hi)), self.int.append(integer)
        return self.base.n + len(self.lb) - 1

    def row(self, cols, vals, lo: float = -np.inf, hi: float = np.inf) -> None:
        """lo <= vals @ v[cols] <= hi, each finite side widened outward by SLACK (relative)."""
        lo = lo - SLACK * (1 + abs(lo)) if np.isfinite(lo) else lo
        hi = hi + SLACK * (1 + abs(hi)) if np.isfinite(hi) else hi
        self.rows.append((np.asarray(cols, dtype=np.int64), np.asarray(vals, dtype=float), lo, hi))

    def program(self, out_cols: np.ndarray, base_integer: bool = True) -> Program:
        """The base program plus the new parts; output: the variables ``out_cols`` themselves."""
        b, n = self.base, self.base.n + len(self.lb)
        r = np.concatenate([np.full(len(c), k) for k, (c, *_) in enumerate(self.rows)]).astype(np.int64)
        new = sp.csr_matrix((np.concatenate([v for _, v, *_ in self.rows]),
                             (r, np.concatenate([c for c, *_ in self.rows]))), shape=(len(self.rows), n))
        a = sp.vstack([sp.hstack([b.a, sp.csr_matrix((b.m, n - b.n))]), new]).tocsr()
        integer = np.r_[b.integer & base_integer, np.array(self.int, dtype=bool)]
        out_cols = np.asarray(out_cols, dtype=np.int64)
        return Program(n, np.r_[b.lb, self.lb], np.r_[b.ub, self.ub], integer, a,
                       np.r_[b.row_lo, [x[2] for x in self.rows]], np.r_[b.row_hi, [x[3] for x in self.rows]],
                       np.eye(len(out_cols)), out_cols, np.zeros(len(out_cols)))


def pieces_above(ext: Extension, x: int, y: int, breaks: np.ndarray, vals: np.ndarray, y_max: float) -> np.ndarray:
    """y <= the chord of a convex f over the segment of ``breaks`` that x lies in, the segment chosen
    by binaries (exact at the breakpoints); vals = f(breaks), y_max >= y anywhere (big-M: a chord
    extended beyond its segment stays below f). x must lie in [breaks[0], breaks[-1]]. Returns the
    binaries' columns."""
    lo, hi = breaks[0], breaks[-1]
    bs = np.array([ext.var(0.0, 1.0, integer=True) for _ in range(len(breaks) - 1)])
    ext.row(bs, np.ones(len(bs)), 1.0, 1.0)
    for p, bv in enumerate(bs):
        sl = (vals[p + 1] - vals[p]) / (breaks[p + 1] - breaks[p])
        big = y_max - min(vals[p] + sl * (lo - breaks[p]), vals[p] + sl * (hi - breaks[p]))
        ext.row([x, bv], [1.0, -(breaks[p] - lo)], lo, np.inf)                         # x >= B_p when chosen
        ext.row([x, bv], [1.0, hi - breaks[p + 1]], -np.inf, hi)                       # x <= B_p+1 when chosen
        ext.row([y, x, bv], [1.0, -sl, big], -np.inf, vals[p] - sl * breaks[p] + big)  # y <= chord_p(x)
    return bs


def tangent_points(lo: float, hi: float, n: int) -> np.ndarray:
    """n points of [lo, hi], both ends included, denser near lo (where a minimum sits)."""
    if n <= 1 or hi - lo < 1e-9:
        return np.array([lo])
    return lo + (hi - lo) * np.linspace(0.0, 1.0, n) ** 2


@dataclass
class Block:
    """One network's program with the softmax block; column indices into ``program``'s variables.

    z, delta (K,); d, elo, ehi (K, K) [i, j] (-1 on the diagonal, and in elo for the terms left
    out); slo, shi (K,). clo, chi (K,): the shifts c_i; far (K,): the constant floor of the terms
    left out of elo, in exp(. - clo) units. d_lower, d_upper: the d bounds the rows were built on.
    beta, breaks: per pair (i, j) with pieces, the binaries and breakpoints (in d) of exp's chords.
    """
    program: Program
    net_n: int
    z: np.ndarray
    delta: np.ndarray
    d: np.ndarray
    elo: np.ndarray
    ehi: np.ndarray
    slo: np.ndarray
    shi: np.ndarray
    clo: np.ndarray
    chi: np.ndarray
    far: np.ndarray
    d_lower: np.ndarray
    d_upper: np.ndarray
    beta: dict = field(default_factory=dict)
    breaks: dict = field(default_factory=dict)
    _sessions: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return len(self.z)

    def session(self, relax: Relax, solver) -> Session:
        if relax not in self._sessions:
            prog = self.program.relaxed() if relax is Relax.LP else self.program
            self._sessions[relax] = open_session(prog, solver)
        return self._sessions[relax]

    def sigma_upper(self, i: int, s_min: float) -> float:
        """sigma_i <= 1 / (1 + S_i) from a sound lower bound on slo[i] (exp(. - clo) units)."""
        with np.errstate(over="ignore"):
            return float(1.0 / (1.0 + np.exp(self.clo[i]) * (max(s_min, 0.0) + self.far[i]))) + SIGMA_TOL

    def sigma_lower(self, i: int, s_max: float) -> float:
        """sigma_i >= 1 / (1 + S_i) from a sound upper bound on shi[i] (exp(. - chi) units)."""
        with np.errstate(over="ignore"):
            return max(float(1.0 / (1.0 + np.exp(self.chi[i]) * s_max)) - SIGMA_TOL, 0.0)


def softmax_block(db: DiffBounds, tangents: int = TANGENTS, pieces: int = 1, classes=()) -> Block:
    """The program of ``db``'s network (its per-op bounds) with z, delta, d, e and S variables; for
    the classes in ``classes``, exp's chords also in ``pieces`` pieces chosen by binaries."""
    prog = db._program if db._program is not None else build_program(db.net, db.box, db.per_op)
    k = db.k
    lo, hi = db.lower.numpy().astype(float), db.upper.numpy().astype(float)
    m = logit_margin(db.net, db.box, db.per_op)[0].numpy()
    zl, zu = db.per_op[-1].lower[0].numpy() - m, db.per_op[-1].upper[0].numpy() + m
    ext = Extension(prog)
    z = np.array([ext.var(zl[r], zu[r]) for r in range(k)])
    delta = np.array([ext.var(-m[r], m[r]) for r in range(k)])
    for r in range(k):   # z_r = out_r(v) + delta_r
        c = prog.out_coef[r]
        ext.row(np.r_[z[r], delta[r], prog.out_cols], np.r_[1.0, -1.0, -c], prog.out_const[r], prog.out_const[r])
    d, elo, ehi = (np.full((k, k), -1, dtype=np.int64) for _ in range(3))
    for i in range(k):
        for j in range(k):
            if i != j:
                d[i, j] = ext.var(lo[i, j], hi[i, j])
                ext.row([d[i, j], z[j], z[i]], [1.0, -1.0, 1.0], 0.0, 0.0)
    clo, chi, far = np.zeros(k), np.zeros(k), np.zeros(k)
    beta, breaks = {}, {}
    slo, shi = np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64)
    for i in range(k):
        js = [j for j in range(k) if j != i]
        clo[i], chi[i] = max(lo[i, js]), max(hi[i, js])
        terms = []
        for j in js:          # lower-bounding block: tangents of exp(d - c) at t
            l, u = lo[i, j] - clo[i], hi[i, j] - clo[i]
            if u > FAR:
                far[i] += np.exp(l)
                continue
            elo[i, j] = ext.var(np.exp(l), np.exp(u))
            for t in tangents_of(l, u, tangents):
                ext.row([elo[i, j], d[i, j]], [1.0, -np.exp(t)], np.exp(t) * (1.0 - t - clo[i]), np.inf)
            terms.append(elo[i, j])
        slo[i] = ext.var(sum(ext.lb[c - prog.n] for c in terms), sum(ext.ub[c - prog.n] for c in terms))
        ext.row(np.r_[slo[i], terms], np.r_[1.0, -np.ones(len(terms))], 0.0, 0.0)
        for j in js:          # over-estimating block: the chord of exp(d - c) over [l, u]
            l, u = lo[i, j] - chi[i], hi[i, j] - chi[i]
            ehi[i, j] = ext.var(np.exp(l), np.exp(u))
            if u - l > 1e-9:
                s = (np.exp(u) - np.exp(l)) / (u - l)
                ext.row([ehi[i, j], d[i, j]], [1.0, -s], -np.inf, np.exp(l) - s * (l + chi[i]))
                if pieces > 1 and i in classes:
                    breaks[i, j] = np.linspace(lo[i, j], hi[i, j], pieces + 1)
                    beta[i, j] = pieces_above(ext, d[i, j], ehi[i, j], breaks[i, j],
                                              np.exp(breaks[i, j] - chi[i]), np.exp(u))
        cols = ehi[i, js]
        shi[i] = ext.var(sum(ext.lb[c - prog.n] for c in cols), sum(ext.ub[c - prog.n] for c in cols))
        ext.row(np.r_[shi[i], cols], np.r_[1.0, -np.ones(len(cols))], 0.0, 0.0)
    program = ext.program(z)
    return Block(program, prog.n, z, delta, d, elo, ehi, slo, shi, clo, chi, far, lo, hi, beta, breaks)


def tangents_of(l: float, u: float, n: int) -> np.ndarray:
    """Tangent points (in shifted units) for one term: ``tangent_points`` capped at FAR."""
    return tangent_points(l, min(u, FAR), n)


@dataclass
class SoftmaxBounds:
    """Softmax bounds (K,) of one network from its block, refined in place (``stage``: per class and
    side, 0 none, 1 LP, 2 MILP; s_min, s_max (K,): sound bounds on the block's slo and shi)."""
    db: DiffBounds
    block: Block
    sigma: Box
    solver: str
    stage: np.ndarray
    s_min: np.ndarray = None
    s_max: np.ndarray = None
    records: list = field(default_factory=list)
    pieces: int = 1
    tangents: int = TANGENTS
    _pieced: dict = field(default_factory=dict)

    @classmethod
    def start(cls, db: DiffBounds, tangents: int = TANGENTS, pieces: int = 1) -> "SoftmaxBounds":
        """``pieces`` > 1: the MILP stage of the lower side uses exp's chords in pieces (binaries)."""
        sig = db.sigma()
        b = softmax_block(db, tangents)
        return cls(db, b, Box(sig.lower.clone(), sig.upper.clone()), db.solver, np.zeros((db.k, 2), dtype=int),
                   b.program.lb[b.slo].copy(), b.program.ub[b.shi].copy(), pieces=pieces, tangents=tangents)

    def block_for(self, i: int, side: str, relax: Relax) -> Block:
        """The block a solve uses: with pieces, the lower side's MILP has its own (class i pieced)."""
        if self.pieces <= 1 or side != "lower" or relax is Relax.LP:
            return self.block
        if i not in self._pieced:
            self._pieced[i] = softmax_block(self.db, self.tangents, self.pieces, {i})
        return self._pieced[i]

    def refine(self, i: int, side: str, relax: Relax, time_limit: float) -> bool:
        """One solve for sigma_i's ``side`` (upper: min S over tangents; lower: max S over chords)."""
        level, s = (1 if relax is Relax.LP else 2), int(side == "lower")
        if self.stage[i, s] >= level or time_limit <= MIN_SOLVE:
            return False
        b = self.block_for(i, side, relax)
        same = np.array_equal(b.d_lower, self.block.d_lower) and np.array_equal(b.d_upper, self.block.d_upper)
        cost = np.zeros(b.program.n)
        cost[b.slo[i] if side == "upper" else b.shi[i]] = -1.0 if side == "upper" else 1.0
        res = b.session(relax, self.solver).maximize(cost, 0.0, time_limit)
        if side == "upper":
            self.s_min[i] = max(self.s_min[i], -res.bound)   # sound bounds on slo[i], shi[i] (joint block)
            new = b.sigma_upper(i, -res.bound)
            kept = not new < float(self.sigma.upper[i])
            self.sigma.upper[i] = min(float(self.sigma.upper[i]), new)
        else:
            if same:
                self.s_max[i] = min(self.s_max[i], res.bound)
            new = b.sigma_lower(i, res.bound)
            kept = not new > float(self.sigma.lower[i])
            self.sigma.lower[i] = max(float(self.sigma.lower[i]), new)
        if res.status is Status.OPTIMAL or level == 1:
            self.stage[i, s] = level
        self.records.append(NeuronSolve(-2, i, side, res, kept or res.status is Status.FAILED))
        return True


def softmax_faithub(teacher: SoftmaxBounds, student: SoftmaxBounds, stages=(Relax.LP,), time_limit: float = 10.0,
                    budget: Budget | float | None = None, milp_sides=("lower", "upper")) -> tuple[float, list]:
    """FAITHUB (eq. 11) from softmax bounds refined where they decide it: per stage, take the largest
    of the 2K terms ub_A,i - lb_B,i; refine sigma_A,i's upper and sigma_B,i's lower side (MILP
    stages: the sides in ``milp_sides`` only); stop when that term was refined at this stage, or
    when ``budget`` (CPU seconds, a running ``Budget`` or seconds; None: no limit) is spent.

    Returns: (value in [0, 1], the solve records of this call).
    """
    budget = as_budget(budget)
    n0 = len(teacher.records), len(student.records)
    for stage in stages:
        done: set = set()
        while True:
            gaps = torch.stack([teacher.sigma.upper - student.sigma.lower, student.sigma.upper - teacher.sigma.lower])
            side, i = divmod(int(gaps.argmax()), teacher.db.k)
            if (side, i) in done:
                break
            done.add((side, i))
            up, low = (teacher, student) if side == 0 else (student, teacher)
            for sb, which in ((up, "upper"), (low, "lower")):
                if stage is Relax.LP or which in milp_sides:
                    sb.refine(i, which, stage, budget.limit(time_limit))
            if budget.expired():
                break
    value = float(faithub_from_sigma(teacher.sigma, student.sigma))
    return value, teacher.records[n0[0]:] + student.records[n0[1]:]
