"""Teacher and student at one x with the softmax inside: FAITHUB mode ``joint_softmax``.

The two networks' softmax blocks (``fkd.bounds.softmax``) share their input variables: one program
holds [x, teacher's program, student's program] (each network's own tightened per-op bounds), so
the relaxation of the joint network (``fkd.bounds.joint.joint_net``) is inside it. On top, per class
i and network N, with phi(S) = 1 / (1 + S) convex and decreasing:

- qu_N,i <= an over-estimate of phi over the sound range of S_N,i (lower-bounding block, e >= exp
  tangents): the chord over [a, b] (``pieces`` = 1, no binaries), or the chords of ``pieces`` segments,
  one chosen by binaries (big-M from the chord values; exact at the breakpoints);
- ql_N,i >= tangents of phi (under-estimates) at points of the range of S_N,i (over-estimating
  block, e <= exp chords);
- qu, ql in the softmax bounds of the per-network stage.

Maximising qu_A,i - ql_B,i bounds sigma_A,i(x) - sigma_B,i(x) over the ball (A, B the teacher and
the student, both ways); it is applied to the largest term of eq. 11 first, until the largest term
has had its joint solve (the others keep their eq. 11 value). The value is capped by the
``softmax`` mode's and ``tight``'s. The float32 logits are in the program (``softmax``'s delta).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
import torch

from .budget import MIN_SOLVE, Budget, as_budget
from .milp import NeuronSolve, Program
from .softmax import TANGENTS, Block, Extension, SoftmaxBounds, pieces_above, tangent_points
from .solvers import open_session

__all__ = ["JointBlock", "merge_programs", "joint_block", "joint_softmax_faithub"]


def merge_programs(pt: Program, ps: Program, in_dim: int) -> tuple[Program, int]:
    """One program of both on shared inputs (the first ``in_dim`` columns of each); the student's
    other columns follow the teacher's. Returns (program, the shift of the student's columns)."""
    if not (np.array_equal(pt.lb[:in_dim], ps.lb[:in_dim]) and np.array_equal(pt.ub[:in_dim], ps.ub[:in_dim])):
        raise ValueError("the teacher's and the student's programs were built on different input boxes")
    shift = pt.n - in_dim
    n = pt.n + ps.n - in_dim
    a_s = ps.a.tocoo()
    cols = np.where(a_s.col < in_dim, a_s.col, a_s.col + shift)
    a = sp.vstack([sp.hstack([pt.a, sp.csr_matrix((pt.m, n - pt.n))]),
                   sp.csr_matrix((a_s.data, (a_s.row, cols)), shape=(ps.m, n))]).tocsr()
    prog = Program(n, np.r_[pt.lb, ps.lb[in_dim:]], np.r_[pt.ub, ps.ub[in_dim:]],
                   np.r_[pt.integer, ps.integer[in_dim:]], a, np.r_[pt.row_lo, ps.row_lo],
                   np.r_[pt.row_hi, ps.row_hi], np.zeros((0, 0)), np.zeros(0, dtype=np.int64), np.zeros(0))
    return prog, shift


def _moved(b: Block, shift: int) -> Block:
    """``b``'s column indices after ``merge_programs`` (-1 stays -1; no input column is indexed)."""
    mv = {f: np.where(getattr(b, f) >= 0, getattr(b, f) + shift, -1)
          for f in ("z", "delta", "d", "elo", "ehi", "slo", "shi")}
    beta = {key: cols + shift for key, cols in b.beta.items()}
    return replace(b, **mv, beta=beta, _sessions={})


@dataclass
class JointBlock:
    """The joint program and its layout: ``nets`` (teacher, student) Blocks in its columns; qu, ql
    (2, K) columns [network, class]; beta: per (network, class) the binaries of its pieces."""
    program: Program
    nets: tuple[Block, Block]
    qu: np.ndarray
    ql: np.ndarray
    beta: dict
    breaks: dict


def _psi(b: Block, i: int, s: np.ndarray | float, upper: bool) -> np.ndarray:
    """sigma_i as phi of the block's S variable: upper (lower-bounding block, floor of the terms left
    out) or lower (over-estimating block)."""
    c, far = (b.clo[i], b.far[i]) if upper else (b.chi[i], 0.0)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(c) * (np.asarray(s, dtype=float) + far))


def joint_block(t: SoftmaxBounds, s: SoftmaxBounds, pieces: int = 1, tangents: int = TANGENTS,
                exact: bool = False) -> JointBlock:
    """The joint program of two per-network stages (their blocks, their sound S and sigma bounds);
    ``exact``: the networks' ReLU binaries kept (a MILP), else their LP relaxation."""
    in_dim = t.db.net.in_dim
    base, shift = merge_programs(t.block.program, s.block.program, in_dim)
    blocks = (t.block, _moved(s.block, shift))
    lb, ub = base.lb.copy(), base.ub.copy()
    for b, sb in zip(blocks, (t, s)):   # the sound S ranges of the per-network stage, each side's from the other's
        with np.errstate(over="ignore"):
            up = np.exp(b.chi - b.clo) * sb.s_max * (1 + 1e-12)          # S_lo <= S / e^clo <= e^(chi - clo) S_hi
            down = np.exp(b.clo - b.chi) * (np.maximum(sb.s_min, 0) + b.far) * (1 - 1e-12)
        lb[b.slo] = np.minimum(np.maximum(lb[b.slo], sb.s_min), ub[b.slo])
        ub[b.slo] = np.maximum(np.minimum(ub[b.slo], up), lb[b.slo])
        ub[b.shi] = np.maximum(np.minimum(ub[b.shi], sb.s_max), lb[b.shi])
        lb[b.shi] = np.minimum(np.maximum(lb[b.shi], down), ub[b.shi])
    base = replace(base, lb=lb, ub=ub)
    ext = Extension(base)
    k = t.db.k
    qu, ql = np.zeros((2, k), dtype=np.int64), np.zeros((2, k), dtype=np.int64)
    beta, breaks = {}, {}
    for n, (b, sb) in enumerate(zip(blocks, (t, s))):
        sig_lo, sig_hi = sb.sigma.lower.numpy(), sb.sigma.upper.numpy()
        for i in range(k):
            qu[n, i] = ext.var(sig_lo[i], sig_hi[i])
            ql[n, i] = ext.var(sig_lo[i], sig_hi[i])
            a, bb = lb[b.slo[i]], ub[b.slo[i]]          # qu <= chords of phi over [a, bb]
            br = tangent_points(a, bb, pieces + 1) if pieces > 1 and bb - a > 1e-9 else np.array([a, bb])
            breaks[n, i] = br
            vals = _psi(b, i, br, True)
            if bb - a <= 1e-9:
                ext.row([qu[n, i]], [1.0], -np.inf, float(vals[0]))
            elif len(br) == 2:
                sl = (vals[1] - vals[0]) / (br[1] - br[0])
                ext.row([qu[n, i], b.slo[i]], [1.0, -sl], -np.inf, vals[0] - sl * br[0])
            else:
                beta[n, i] = pieces_above(ext, b.slo[i], qu[n, i], br, vals, float(vals[0]))
            a, bb = lb[b.shi[i]], ub[b.shi[i]]          # ql >= tangents of phi at points of [a, bb]
            with np.errstate(over="ignore"):
                for x in tangent_points(a, bb, tangents):
                    val = float(_psi(b, i, x, False))
                    der = -np.exp(b.chi[i]) * val * val
                    if np.isfinite(der):
                        ext.row([ql[n, i], b.shi[i]], [1.0, -der], val - der * x, np.inf)
    program = ext.program(np.r_[blocks[0].z, blocks[1].z], base_integer=exact)
    return JointBlock(program, blocks, qu, ql, beta, breaks)


def joint_softmax_faithub(t: SoftmaxBounds, s: SoftmaxBounds, pieces: int = 1, tangents: int = TANGENTS,
                          time_limit: float = 10.0, budget: Budget | float | None = None, solver=None,
                          exact: bool = False, terms: np.ndarray | None = None) -> tuple[float, list]:
    """Eq. 11 with its largest terms bounded by the joint program, largest first, until the largest
    term has had its joint solve or ``budget`` (CPU seconds; None: no limit) is spent. ``terms`` (2, K): sound bounds on each term to start from (e.g. an
    earlier joint call's; default eq. 11's), lowered in place. Returns (value in [0, 1], records)."""
    budget = as_budget(budget)
    if terms is None:
        terms = torch.stack([t.sigma.upper - s.sigma.lower, s.sigma.upper - t.sigma.lower]).numpy().copy()
    jb = joint_block(t, s, pieces, tangents, exact)
    ses = open_session(jb.program, solver or t.solver)
    records, done = [], set()
    while True:
        side, i = np.unravel_index(int(np.argmax(terms)), terms.shape)
        if (side, i) in done or terms[side, i] <= 0:
            break
        done.add((side, i))
        left = budget.limit(time_limit)
        if left <= MIN_SOLVE:
            break
        cost = np.zeros(jb.program.n)
        cost[jb.qu[side, i]], cost[jb.ql[1 - side, i]] = 1.0, -1.0  # side 0: teacher over student
        res = ses.maximize(cost, 0.0, left)
        kept = not res.bound < terms[side, i]
        terms[side, i] = min(terms[side, i], res.bound)
        records.append(NeuronSolve(-3, int(i), "teacher-student" if side == 0 else "student-teacher", res, kept))
    return float(np.clip(terms.max(), 0.0, 1.0)), records
