"""Certified distillation agreement: can any x' in the ball make teacher and student disagree?

For an image where teacher and student agree (class c), one MILP over the joint network
(``fkd.bounds.joint``: both networks on shared input variables) decides it. Binaries a_i, b_j
pick the teacher's and the student's top class at x', with a_i + b_i <= 1 (different classes), and

    maximise m  s.t.  z_t,i - z_t,k >= m - M (1 - a_i),   z_s,j - z_s,k >= m - M (1 - b_j)   for all k,

so m is the smaller of the two top-1 margins at a disagreeing x'. A proven bound m < 0 certifies
agreement (no x' in the ball, ties included, lets them pick different classes; below minus the
float32 margins of two logits, ``fp.logit_margin``, so that it holds for the float32 forward too); a solution with
m > 0 is a counterexample once a float32 forward pass of the torch models confirms it. Anything
else (time limit, unconfirmed point) is unknown. Cheaper checks come first: both networks
certifiably keep class c (CROWN on z_c - z_j) certifies at once, and the PGD agreement attack
(eq. 14) may find a counterexample without any solver.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from .crown import crown_bounds, crown_linear
from ..units import Radius
from .interval import input_box, project
from .joint import joint_net
from .milp import Program, build_program
from .fp import logit_margin
from .network import DTYPE, Net
from .real import as_float64, real_top1
from .solvers import Solver, Status, open_session


class Outcome(str, enum.Enum):
    CERTIFIED = "certified"            # no x' in the ball makes them disagree (proof)
    COUNTEREXAMPLE = "counterexample"  # an x' where they disagree, confirmed by a forward pass
    UNKNOWN = "unknown"                # neither within the time limit
    DISAGREE_CLEAN = "disagree_clean"  # they disagree at x itself: not in S_OA (Definition 3)


@dataclass(frozen=True)
class AgreementResult:
    """One image: the outcome, how it was decided (crown | attack | milp | clean), the proven upper
    bound on the disagreement margin m (nan unless the MILP ran), seconds, solver, the MILP's
    status (optimal | time_limit | failed; none without a MILP), and the counterexample point
    (C, H, W) if there is one."""
    outcome: Outcome
    decided_by: str
    margin_bound: float
    seconds: float
    solver: str
    point: Tensor | None = None
    status: str = "none"


def _both_keep_class(joint: Net, box, per_op, c: int, margin: Tensor) -> bool:
    """CROWN on the joint network proves z_c > z_j for every j != c, for teacher and student, in
    float32 too (``margin`` (2K,): each logit's ``fp.logit_margin``)."""
    k = joint.out_dim // 2
    others = torch.as_tensor([j for j in range(k) if j != c])
    coef = torch.zeros(2 * (k - 1), 2 * k, dtype=DTYPE)
    for part in (0, 1):
        rows = torch.arange(k - 1) + part * (k - 1)
        coef[rows, part * k + c] = 1.0
        coef[rows, part * k + others] = -1.0
    slack = (coef.abs() @ margin).reshape(-1)  # m_c + m_j per row
    return bool((crown_linear(joint, box, coef, per_op).lower[0] > slack).all())


def disagreement_program(joint: Net, box, per_op) -> tuple[Program, int]:
    """The MILP of the module docstring over the joint network (output [z_t; z_s], 2K).

    Returns:
        (program, index of the margin variable m); the input pixels are variables 0 .. in_dim - 1.
    """
    base = build_program(joint, box, per_op)
    k = joint.out_dim // 2
    zl, zu = per_op[-1].lower.reshape(-1), per_op[-1].upper.reshape(-1)
    spread = float(max((zu[:k].max() - zl[:k].min()), (zu[k:].max() - zl[k:].min()))) + 1.0
    big = 2 * spread + 1.0                     # valid big-M: m <= 1 and z_i - z_k >= -spread
    n0 = base.n
    a_idx, b_idx, m_idx = n0 + np.arange(k), n0 + k + np.arange(k), n0 + 2 * k
    n = n0 + 2 * k + 1
    rows, lo, hi = [], [], []

    def add(cols, vals, rlo, rhi):
        rows.append((np.asarray(cols), np.asarray(vals, dtype=float)))
        lo.append(rlo), hi.append(rhi)

    add(a_idx, np.ones(k), 1.0, 1.0)
    add(b_idx, np.ones(k), 1.0, 1.0)
    for i in range(k):
        add([a_idx[i], b_idx[i]], [1.0, 1.0], -np.inf, 1.0)
    coef, cols, const = base.out_coef, base.out_cols, base.out_const
    for part, sel in ((0, a_idx), (k, b_idx)):
        for i in range(k):
            for kk in range(k):
                if kk == i:
                    continue
                # (z_i - z_k) - m - M a_i >= -M - (const_i - const_k)
                w = coef[part + i] - coef[part + kk]
                add(np.concatenate([cols, [m_idx, sel[i]]]), np.concatenate([w, [-1.0, -big]]),
                    -big - float(const[part + i] - const[part + kk]), np.inf)
    extra = sp.csr_matrix((np.concatenate([r[1] for r in rows]),
                           (np.concatenate([np.full(len(r[0]), j) for j, r in enumerate(rows)]),
                            np.concatenate([r[0] for r in rows]))), shape=(len(rows), n))
    a = sp.vstack([sp.hstack([base.a, sp.csr_matrix((base.m, n - n0))]), extra]).tocsr()
    lb = np.concatenate([base.lb, np.zeros(2 * k), [-spread]])
    ub = np.concatenate([base.ub, np.ones(2 * k), [1.0]])
    integer = np.concatenate([base.integer, np.ones(2 * k, dtype=bool), [False]])
    program = Program(n, lb, ub, integer, a, np.concatenate([base.row_lo, lo]), np.concatenate([base.row_hi, hi]),
                      base.out_coef, base.out_cols, base.out_const)
    return program, int(m_idx)


def certify_agreement(teacher: nn.Module, student: nn.Module, t_net: Net, s_net: Net, x0: Tensor, eps: Radius,
                      solver: Solver | str = Solver.AUTO, time_limit: float = 60.0,
                      attack_point: Tensor | None = None) -> AgreementResult:
    """Decide whether some x' in B_eps(x0) cap [0, 1] makes teacher and student disagree.

    Args:
        teacher, student: the torch models (eval mode) that confirm a counterexample; t_net, s_net
            their lowered networks. x0: one image (C, H, W). attack_point: a candidate
            counterexample (C, H, W) found by the caller, e.g. ``fkd.metrics.disagreement_point``'s
            PGD point, checked before any bound (None: none).
    Returns:
        AgreementResult: certified, a confirmed counterexample, a clean disagreement or unknown.
    """
    t0 = time.perf_counter()
    x = x0[None]
    teacher, student = as_float64(teacher), as_float64(student)  # top-1 classes of the real-valued networks
    c_t, c_s = int(real_top1(teacher, x)[0]), int(real_top1(student, x)[0])
    if c_t != c_s:
        return AgreementResult(Outcome.DISAGREE_CLEAN, "clean", float("nan"), time.perf_counter() - t0, "none")

    def confirmed(point: Tensor) -> bool:
        """Whether ``point`` (already in the ball: ``project``) makes the two networks disagree."""
        return int(real_top1(teacher, point)) != int(real_top1(student, point))

    if attack_point is not None:
        attack_point = project(attack_point.detach().to(x0.dtype), x0, eps)
        if confirmed(attack_point):
            return AgreementResult(Outcome.COUNTEREXAMPLE, "attack", float("nan"), time.perf_counter() - t0,
                                   "none", attack_point)
    box = input_box(x0, eps)
    joint = joint_net(t_net, s_net)
    per_op = crown_bounds(joint, box)
    margin = logit_margin(joint, box, per_op)[0]
    if _both_keep_class(joint, box, per_op, c_t, margin):
        return AgreementResult(Outcome.CERTIFIED, "crown", float("nan"), time.perf_counter() - t0, "none")
    program, m_idx = disagreement_program(joint, box, per_op)
    session = open_session(program, solver)
    cost = np.zeros(program.n)
    cost[m_idx] = 1.0
    res = session.maximize(cost, 0.0, time_limit)
    # in float32 a top-1 margin z_i - z_k may be off by m_i + m_k: certified below minus that
    if res.status is not Status.FAILED and res.bound < -2 * float(margin.max()):
        return AgreementResult(Outcome.CERTIFIED, "milp", res.bound, time.perf_counter() - t0, res.solver,
                               status=res.status.value)
    sol = session.solution()
    if sol is not None and sol[m_idx] > 0:
        point = torch.as_tensor(sol[:t_net.in_dim], dtype=x0.dtype).reshape(x0.shape)
        point = project(point, x0, eps)
        if confirmed(point):
            return AgreementResult(Outcome.COUNTEREXAMPLE, "milp", res.bound, time.perf_counter() - t0,
                                   res.solver, point, res.status.value)
    return AgreementResult(Outcome.UNKNOWN, "milp", res.bound, time.perf_counter() - t0, res.solver,
                           status=res.status.value)

