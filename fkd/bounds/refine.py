"""On-demand refinement of the logit-difference bounds d_ij = z_j - z_i (eq. 9, tight mode) and a
FAITHUB (eqs. 10-11) that only pays for the solves that can lower it.

Three facts make it cheap without leaving the paper's FAITHUB (eqs. 9-11 with better d_ij bounds):

- antisymmetry: d_ij = -d_ji exactly, so lower(d_ij) = -upper(d_ji). One maximisation per ordered
  pair gives both sides: K(K-1) solves per network instead of 2K(K-1).
- one program and one solver session per network, image and relaxation (LP, MILP), reused across
  every objective (only the cost vector changes; LPs keep their basis between solves).
- eq. 11 is a max over 2K terms (ub_t,i - lb_s,i and ub_s,i - lb_t,i). ``faithub_refined`` refines
  greedily the pairs feeding the current largest term, stops when that term is already refined at
  this stage, and skips a pair whose best possible gain is negligible. The gain bound uses a
  feasible point, the clean image x0: min_x d_ij <= d_ij(x0) <= max_x d_ij, so refining the upper
  bound of d_ij can lower exp(d_ij^ub) to exp(d_ij(x0)) at best (the lower bound symmetrically).
  Skipping a solve keeps the CROWN / earlier bound, which is sound, so soundness never depends on it.

Every bound read from a solver is its proven (dual) bound with the solver margin (``solvers``),
widened by the float32 margins of both logits (``fp.pair_margin``), and intersected with the bound it
replaces, so a failed or time-limited solve can only leave the earlier bound in place.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .budget import MIN_SOLVE, Budget, as_budget, cpu_seconds
from .crown import crown_bounds, crown_linear
from .interval import Box, input_box
from .milp import NeuronSolve, Program, Relax, build_program
from .obbt import OBBT_LIMIT, run_tightening
from .fp import logit_margin, pair_margin
from .network import DTYPE, Net
from .sigma import faithub_from_sigma, softmax_bounds
from .solvers import Session, Solver, Status, open_session

__all__ = ["DiffBounds", "faithub_refined", "RefineStats"]


def _pairs(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows e_j - e_i for all i != j: (index i, index j, coefficients (k(k-1), k))."""
    ii, jj = np.nonzero(~np.eye(k, dtype=bool))
    coef = np.zeros((len(ii), k))
    coef[np.arange(len(ii)), jj] = 1.0
    coef[np.arange(len(ii)), ii] -= 1.0
    return ii, jj, coef


@dataclass
class DiffBounds:
    """Sound bounds on d_ij = z_j - z_i of one network over B_eps(x0), refined on demand.

    ``upper`` (K, K) float64 is an upper bound on d_ij (index [i, j], diagonal 0); the lower bound
    is ``-upper.T``. ``stage`` (K, K) int: 0 CROWN, 1 LP, 2 MILP: the strongest stage already applied
    to that pair. ``clean`` (K, K): d_ij at x0 (a feasible point, for gain estimates only).
    ``margin`` (K, K): the float32 margin of each d_ij (``fp.pair_margin``), added to solver bounds.
    """
    net: Net
    box: Box
    per_op: list[Box]
    upper: Tensor
    clean: Tensor
    solver: Solver | str = Solver.AUTO
    stage: np.ndarray = field(default=None)
    records: list[NeuronSolve] = field(default_factory=list)
    seconds: float = 0.0
    margin: Tensor | None = None
    _program: Program | None = None
    _sessions: dict = field(default_factory=dict)

    @classmethod
    def start(cls, net: Net, x0: Tensor, eps: float, solver: Solver | str = Solver.AUTO,
              tightening: Relax | str | None = None, time_limit: float = 10.0, clamp: bool = True,
              obbt_limit: float = OBBT_LIMIT, obbt_budget: float | None = None) -> "DiffBounds":
        """CROWN tight-mode bounds (intersected with the CROWN logit intervals, eq. 9) for one image.

        Args:
            x0: one image (C, H, W) in [0, 1].
            tightening: None, or lp / milp progressive per-layer tightening of the intermediate
                bounds before anything else (``milp.tighten``), or obbt (``obbt.obbt``: LP, then
                MILPs of ``obbt_limit`` seconds each within ``obbt_budget`` CPU seconds).
        """
        t0 = time.perf_counter()
        box = input_box(x0, eps, clamp)
        per_op = crown_bounds(net, box)
        records: list[NeuronSolve] = []
        per_op, records = run_tightening(tightening, net, box, per_op, solver, time_limit, obbt_limit, obbt_budget)
        k = net.out_dim
        ii, jj, coef = _pairs(k)
        direct = crown_linear(net, box, torch.as_tensor(coef), per_op)
        lo, hi = per_op[-1].lower[0], per_op[-1].upper[0]
        up = torch.zeros(k, k, dtype=DTYPE)
        # max d_ij <= min(crown(e_j - e_i), u_j - l_i, -crown_lower(e_i - e_j))
        up[ii, jj] = torch.minimum(direct.upper[0], hi[jj] - lo[ii])
        low = torch.zeros(k, k, dtype=DTYPE)
        low[ii, jj] = torch.maximum(direct.lower[0], lo[jj] - hi[ii])
        margin = pair_margin(logit_margin(net, box, per_op)[0])
        up = torch.minimum(up, -low.T) + margin
        up.fill_diagonal_(0.0)
        z = net.forward(x0[None].detach().cpu())[0]
        out = cls.from_bounds(net, box, per_op, -up.T, up, solver, clean=z[None, :] - z[:, None], margin=margin)
        out.records, out.seconds = records, time.perf_counter() - t0
        return out

    @classmethod
    def from_bounds(cls, net: Net, box: Box, per_op: list[Box], d_lower: Tensor, d_upper: Tensor,
                    solver: Solver | str = Solver.AUTO, clean: Tensor | None = None,
                    margin: Tensor | None = None) -> "DiffBounds":
        """Wrap sound d bounds (K, K) [i, j] (FP margins included) of one image; both sides are
        merged by antisymmetry: upper[i, j] = min(d_upper[i, j], -d_lower[j, i]). ``clean``: d at a
        feasible point (only for gain estimates; without it the box midpoint is used). ``margin``
        (K, K): each d_ij's float32 margin for later solver bounds (None: ``fp.logit_margin`` of
        ``per_op``)."""
        k = net.out_dim
        up = torch.minimum(d_upper, -d_lower.T).to(DTYPE).clone()
        up.fill_diagonal_(0.0)
        if clean is None:
            z = net.forward((box.lower + box.upper) / 2)[0]
            clean = z[None, :] - z[:, None]
        if margin is None:
            margin = pair_margin(logit_margin(net, box, per_op)[0])
        return cls(net, box, per_op, up, clean.to(DTYPE), solver, np.zeros((k, k), dtype=int), margin=margin)

    @property
    def k(self) -> int:
        return self.net.out_dim

    @property
    def lower(self) -> Tensor:
        return -self.upper.T

    def sigma(self) -> Box:
        """Eq. 10 softmax bounds (K,) from the current d bounds."""
        return Box(*softmax_bounds(self.lower, self.upper))

    def session(self, relax: Relax) -> Session:
        """The one solver session of this network and image for ``relax`` (built once)."""
        if self._program is None:
            self._program = build_program(self.net, self.box, self.per_op)
        if relax not in self._sessions:
            self._sessions[relax] = open_session(self._program.relaxed() if relax is Relax.LP else self._program,
                                                 self.solver)
        return self._sessions[relax]

    def refine(self, pairs, relax: Relax | str = Relax.LP, time_limit: float = 10.0,
               budget: Budget | float | None = None) -> int:
        """Maximise z_j - z_i for each (i, j) in ``pairs`` not yet refined at this stage; the proven
        bound (plus ``margin[i, j]``) replaces upper[i, j] where smaller.

        Args:
            pairs: (i, j) pairs; relax: LP or MILP; time_limit: seconds per solve.
            budget: CPU seconds (a running ``Budget`` or seconds; None: no limit): no solve starts
                once it is spent, and none runs past it.
        Returns:
            the number of solves.
        """
        from ..config import parse

        relax = parse(Relax, relax)
        level = 1 if relax is Relax.LP else 2
        budget = as_budget(budget)
        t0 = time.perf_counter()
        n = 0
        for i, j in pairs:
            if i == j or self.stage[i, j] >= level:
                continue
            limit = budget.limit(time_limit)
            if limit <= MIN_SOLVE:
                break
            ses = self.session(relax)
            c = np.zeros(self.k)
            c[j], c[i] = 1.0, -1.0
            cost, const = self._program.objective(c)
            res = ses.maximize(cost, const, limit)
            value = res.bound + float(self.margin[i, j])
            kept = not value < float(self.upper[i, j])
            if not kept:
                self.upper[i, j] = value
            if res.status is Status.OPTIMAL or level == 1:
                self.stage[i, j] = level  # a time-limited MILP may be retried with a longer limit
            self.records.append(NeuronSolve(-1, i * self.k + j, "upper", res, kept or res.status is Status.FAILED))
            n += 1
        self.seconds += time.perf_counter() - t0
        return n

    def refine_all(self, relax: Relax | str = Relax.LP, time_limit: float = 10.0) -> int:
        ii, jj, _ = _pairs(self.k)
        return self.refine(zip(ii.tolist(), jj.tolist()), relax, time_limit)


@dataclass
class RefineStats:
    """What one ``faithub_refined`` call did: solves made, cut by their limit, failed; wall seconds
    and this process's CPU seconds (the clock of its budget)."""
    solves: int = 0
    time_limited: int = 0
    failed: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def _needed(db: DiffBounds, i: int, side: str, rel_tol: float) -> list[tuple[int, int]]:
    """Pairs whose upper bound feeds sigma_i's ``side`` bound (eq. 10), minus those whose best
    possible effect is below ``rel_tol`` of the sum in eq. 10."""
    k = db.k
    js = [j for j in range(k) if j != i]
    if side == "lower":   # sigma_i^lb = 1 / sum_j exp(d_ij^ub): refine upper[i, j]
        terms = torch.exp(db.upper[i])
        total = float(terms.sum())
        gain = terms - torch.exp(torch.minimum(db.clean[i], db.upper[i]))
        return [(i, j) for j in js if float(gain[j]) > rel_tol * total]
    # sigma_i^ub = 1 / sum_j exp(d_ij^lb), d_ij^lb = -upper[j, i]: refine upper[j, i]
    terms = torch.exp(db.lower[i])
    total = float(terms.sum())
    gain = torch.exp(torch.maximum(db.clean[i], db.lower[i])) - terms
    return [(j, i) for j in js if float(gain[j]) > rel_tol * total]


def faithub_refined(teacher: DiffBounds, student: DiffBounds, stages=(Relax.LP,), time_limit: float = 1.0,
                    budget: Budget | float | None = None, rel_tol: float = 1e-3) -> tuple[float, Box, Box, RefineStats]:
    """FAITHUB (eq. 11) with the d_ij bounds of both networks refined where they decide its value.

    For each stage (e.g. LP then MILP): repeatedly take the largest of the 2K terms of eq. 11; if
    its pairs were already refined at this stage, stop; otherwise refine them (both networks) and
    recompute. ``budget`` (CPU seconds of all stages, a running ``Budget`` or seconds; None: no
    limit) stops refining early; the bound stays sound.
    ``teacher`` may be shared between students of the same image: its refinements are kept.

    Returns:
        (value in [0, 1], teacher sigma Box, student sigma Box, RefineStats of this call).
    """
    from ..config import parse

    t0, c0 = time.perf_counter(), cpu_seconds()
    budget = as_budget(budget)
    stats = RefineStats()
    n0 = len(teacher.records), len(student.records)
    for stage in stages:
        stage = parse(Relax, stage)
        done: set = set()
        while True:
            st, ss = teacher.sigma(), student.sigma()
            gaps = torch.stack([st.upper - ss.lower, ss.upper - st.lower])  # (2, K)
            side, i = divmod(int(gaps.argmax()), teacher.k)
            if (side, i) in done:
                break
            done.add((side, i))
            up_net, lo_net = (teacher, student) if side == 0 else (student, teacher)
            for db, which in ((up_net, "upper"), (lo_net, "lower")):
                db.refine(_needed(db, i, which, rel_tol), stage, time_limit, budget)
            if budget.expired():
                break
        if budget.expired():
            break
    st, ss = teacher.sigma(), student.sigma()
    new = teacher.records[n0[0]:] + student.records[n0[1]:]
    stats.solves = len(new)
    stats.time_limited = sum(r.result.status is Status.TIME_LIMIT for r in new)
    stats.failed = sum(r.result.status is Status.FAILED for r in new)
    stats.seconds, stats.cpu_seconds = time.perf_counter() - t0, cpu_seconds() - c0
    return float(faithub_from_sigma(st, ss)), st, ss, stats
