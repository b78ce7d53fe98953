"""Exact delta* with a certified gap: branch and bound over input splits (beyond the paper).

delta* = max_{x in B} ||f_t(x) - f_s(x)||_inf (eq. 8) sits between EMPLB (a point) and FAITHUB (a
relaxation). Here the ball B = B_eps(x0) cap [0, 1] is split into sub-boxes, best first:

- a node's **upper bound** comes from one CROWN pass on the joint network (``fkd.bounds.joint``:
  teacher and student on shared input variables) over the sub-box: bounds on each network's
  logit differences d_ij = z_j - z_i and on e_ij = d^t_ij - d^s_ij, combined as in the root node
  of ``joint_faithub`` (sigma_A,i - sigma_B,i <= phi(max(d^A_lo, d^B_lo + e_lo)) - phi(d^B_hi), eq. 10's
  phi), which is never looser than eq. 11 on that box;
- a node's **lower bound** is the gap at real points of the sub-box: its centre, then a few signed
  gradient steps on the class and sign that decide its upper bound (the value of a point, a witness);
- the node with the largest upper bound is split in half along the input coordinate with the largest
  |gradient| x width at its centre. Nodes whose upper bound is within ``tol`` of the best point are
  closed (their bound is kept: the reported upper bound covers them too).

As a box shrinks every ReLU becomes stable and the relaxation exact, so the gap closes; how fast
depends on the input dimension: a few splits per coordinate that matters. Every node of a batch
shares one CROWN pass. The result is (lower, upper) with lower <= delta* <= upper.
"""
from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .budget import Budget
from .crown import crown_bounds, crown_linear
from .interval import Box, input_box, project
from .joint import joint_net
from .fp import logit_margin, pair_margin
from .logits import as_net
from .network import DTYPE, Net
from .real import as_float64, real_gap
from .sigma import diff_bounds_from_logits


@dataclass(frozen=True)
class DeltaStar:
    """delta* of one image and pair: ``lower`` <= delta* <= ``upper``, ``point`` (C, H, W) where the gap
    is ``lower``; nodes expanded, seconds, status (closed: upper - lower <= tol; budget: stopped by
    max_nodes or time_limit, the bounds still hold) and the root node's upper bound."""
    lower: float
    upper: float
    point: Tensor
    nodes: int
    seconds: float
    status: str
    root_upper: float

    @property
    def gap(self) -> float:
        return self.upper - self.lower


def _rows(k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Coefficients over the joint output [z_t; z_s] (2K) of d^t_ij, d^s_ij and e_ij, i != j, and
    the (i, j) index of each row: (3 K (K-1), 2K), (K (K-1),), (K (K-1),)."""
    ii, jj = torch.nonzero(~torch.eye(k, dtype=torch.bool), as_tuple=True)
    m = len(ii)
    r = torch.arange(m)
    coef = torch.zeros(3 * m, 2 * k, dtype=DTYPE)
    coef[r, jj] += 1.0
    coef[r, ii] -= 1.0
    coef[m + r, k + jj] += 1.0
    coef[m + r, k + ii] -= 1.0
    coef[2 * m:] = coef[:m] - coef[m:2 * m]
    return coef, ii, jj


def _phi(w: Tensor) -> Tensor:
    """sigma_i from the differences w_ij = z_j - z_i, (..., K, K) with zero diagonal -> (..., K)."""
    return torch.exp(-torch.logsumexp(w, dim=-1))


def class_bounds(joint: Net, k: int, lo: Tensor, hi: Tensor, margin: Tensor | None = None) -> Tensor:
    """Upper bounds on sigma_t,i - sigma_s,i and on sigma_s,i - sigma_t,i over each box, by one
    batched CROWN pass on the joint network.

    Args:
        joint: ``joint_net(teacher, student)`` (output [z_t; z_s], 2K); k: classes K.
        lo, hi: boxes (N, n) inside [0, 1].
        margin: (2K,) float32 margin of each logit, valid over every box (``fp.logit_margin`` of a
            box holding them all); None: computed over the boxes' hull from its CROWN bounds.
    Returns:
        (N, K, 2) bounds, [..., 0] for sigma_t - sigma_s, [..., 1] for the reverse.
    """
    box = Box(lo.to(DTYPE), hi.to(DTYPE))
    if margin is None:
        hull = Box(box.lower.amin(0, keepdim=True), box.upper.amax(0, keepdim=True))
        margin = logit_margin(joint, hull, crown_bounds(joint, hull))[0]
    per_op = crown_bounds(joint, box)
    coef, ii, jj = _rows(k)
    b = crown_linear(joint, box, coef, per_op)
    m = len(ii)
    n = lo.shape[0]

    def mat(v: Tensor, pad: Tensor) -> Tensor:
        out = torch.zeros(n, k, k, dtype=DTYPE)
        out[:, ii, jj] = v + pad[ii, jj]
        return out

    mt, ms = pair_margin(margin[:k]), pair_margin(margin[k:])
    tl, tu = mat(b.lower[:, :m], -mt), mat(b.upper[:, :m], mt)
    sl, su = mat(b.lower[:, m:2 * m], -ms), mat(b.upper[:, m:2 * m], ms)
    # intersected with eq. 9 from the logit intervals (the paper mode), as the tight mode does
    z = per_op[-1]
    for part, (dl, du) in enumerate(((tl, tu), (sl, su))):
        pm = margin[part * k:(part + 1) * k]
        pl, pu = diff_bounds_from_logits(z.lower[:, part * k:(part + 1) * k] - pm,
                                         z.upper[:, part * k:(part + 1) * k] + pm)
        torch.maximum(dl, pl, out=dl)
        torch.minimum(du, pu, out=du)
    el, eu = mat(b.lower[:, 2 * m:], -(mt + ms)), mat(b.upper[:, 2 * m:], mt + ms)
    # sigma_t,i - sigma_s,i: v = d^t = d^s + e >= max(d^t_lo, d^s_lo + e_lo); the student at d^s_hi
    t_over_s = _phi(torch.maximum(tl, sl + el)) - _phi(su)
    s_over_t = _phi(torch.maximum(sl, tl - eu)) - _phi(tu)
    return torch.stack([t_over_s, s_over_t], -1)


def node_bounds(joint: Net, k: int, lo: Tensor, hi: Tensor,
                margin: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Upper bounds on max ||f_t - f_s||_inf over each box (``class_bounds``, maximised; ``margin``
    as there).

    Returns:
        (upper (N,) in [0, 1], the deciding class (N,), its sign (N,): +1 for sigma_t - sigma_s).
    """
    both = class_bounds(joint, k, lo, hi, margin).reshape(lo.shape[0], -1)  # (N, 2K): class-major, sign-minor
    upper, arg = both.max(-1)
    sign = 1.0 - 2.0 * (arg % 2).to(DTYPE)
    return upper.clamp(0.0, 1.0), arg // 2, sign


def probe(teacher: nn.Module, student: nn.Module, lo: Tensor, hi: Tensor, cls: Tensor, sign: Tensor,
          shape: tuple[int, ...], steps: int = 8) -> tuple[Tensor, Tensor, Tensor]:
    """Lower bounds: the best gap at the centre of each box and along signed gradient steps on
    sign * (sigma_t,cls - sigma_s,cls), staying in the box.

    Args:
        lo, hi: boxes (N, n); cls, sign: (N,); shape: the image shape (C, H, W).
    Returns:
        (best gap (N,), its point (N, n), |gradient| at the centre (N, n), for branching).
    """
    lo32, hi32 = lo.float(), hi.float()
    x = ((lo32 + hi32) / 2).requires_grad_(True)
    step = (hi32 - lo32) / 4
    rows = torch.arange(len(cls))
    best_v = torch.full((len(cls),), -1.0)
    best_x = x.detach().clone()
    grad0 = None
    for t in range(steps + 1):
        xi = x.view(-1, *shape)
        pt, ps = teacher(xi).softmax(-1), student(xi).softmax(-1)
        with torch.no_grad():
            v = (pt - ps).abs().amax(-1)
            better = v > best_v
            best_v = torch.where(better, v, best_v)
            best_x = torch.where(better[:, None], x.detach(), best_x)
        if t == steps:
            break
        obj = sign.float() * (pt[rows, cls] - ps[rows, cls])
        (g,) = torch.autograd.grad(obj.sum(), x)
        if grad0 is None:
            grad0 = g.abs()
        x = torch.minimum(torch.maximum(x.detach() + step * g.sign(), lo32), hi32).requires_grad_(True)
        step = step * 0.7
    return best_v, best_x.to(DTYPE), grad0 if grad0 is not None else torch.zeros_like(lo32)


def exact_delta(teacher: nn.Module, student: nn.Module, x0: Tensor, eps: float, *, tol: float = 1e-3,
                max_nodes: int = 20_000, time_limit: float = 60.0, batch: int = 32,
                start_points: Tensor | None = None, t_net: Net | None = None,
                s_net: Net | None = None) -> DeltaStar:
    """Branch and bound over input splits for delta* = max_{x in B_eps(x0) cap [0,1]} ||f_t(x) - f_s(x)||_inf.

    Args:
        teacher, student: eval-mode torch models (float32) with K outputs; x0: one image (C, H, W).
        tol: stop when upper - lower <= tol. max_nodes, time_limit: budget (nodes split, CPU seconds);
            past it the current bounds are returned (status ``budget``), still sound.
        batch: nodes split per CROWN pass. start_points: (P, C, H, W) candidate points inside the
            ball (e.g. the EMPLB point); t_net, s_net: lowered networks (computed if None).
    Returns:
        DeltaStar with lower <= delta* <= upper.
    """
    t0, budget = time.perf_counter(), Budget(time_limit)
    shape = tuple(x0.shape)
    t_net = t_net or as_net(teacher, shape)
    s_net = s_net or as_net(student, shape)
    joint, k = joint_net(t_net, s_net), t_net.out_dim
    root = input_box(x0, eps)
    t64, s64 = as_float64(teacher), as_float64(student)  # lower bounds: real gaps at points of the ball
    cands = x0[None] if start_points is None else torch.cat([x0[None], start_points.to(x0.dtype)])
    cands = project(cands, x0, eps)
    gaps = real_gap(t64, s64, cands)
    best = int(gaps.argmax())
    lower, point = float(gaps[best]), cands[best].reshape(-1).to(DTYPE)
    margin = logit_margin(joint, root, crown_bounds(joint, root))[0]  # holds on every sub-box
    ub, cls, sign = node_bounds(joint, k, root.lower, root.upper, margin)
    root_upper = float(ub[0])
    tick = itertools.count()
    heap = [(-root_upper, next(tick), root.lower[0], root.upper[0], int(cls[0]), float(sign[0]))]
    closed_upper, nodes, status = 0.0, 0, "closed"
    while heap:
        upper = max(-heap[0][0], closed_upper)
        if upper - lower <= tol:
            break
        if nodes >= max_nodes or budget.expired():
            status = "budget"
            break
        take = [heapq.heappop(heap) for _ in range(min(batch, len(heap)))]
        for n in [n for n in take if -n[0] - lower <= tol]:  # the best point rose past them
            closed_upper = max(closed_upper, -n[0])
        take = [n for n in take if -n[0] - lower > tol]
        if not take:
            continue
        lo = torch.stack([n[2] for n in take])
        hi = torch.stack([n[3] for n in take])
        v, pts, grad = probe(teacher, student, lo, hi, torch.as_tensor([n[4] for n in take]),
                             torch.as_tensor([n[5] for n in take]), shape)
        if float(v.max()) > lower:  # the probe's float32 value ranks; the real gap decides
            best_pt = project(pts[int(v.argmax())].to(x0.dtype).reshape(shape), x0, eps)
            g = float(real_gap(t64, s64, best_pt[None])[0])
            if g > lower:
                lower, point = g, best_pt.reshape(-1).to(DTYPE)
        width = hi - lo
        score = (grad.to(DTYPE) + 1e-3 * grad.to(DTYPE).mean(-1, keepdim=True) + 1e-12) * width
        dim = score.argmax(-1)
        rows = torch.arange(len(take))
        mid = (lo[rows, dim] + hi[rows, dim]) / 2
        left_hi, right_lo = hi.clone(), lo.clone()
        left_hi[rows, dim], right_lo[rows, dim] = mid, mid
        c_lo, c_hi = torch.cat([lo, right_lo]), torch.cat([left_hi, hi])
        c_ub, c_cls, c_sign = node_bounds(joint, k, c_lo, c_hi, margin)
        parent = torch.as_tensor([-n[0] for n in take], dtype=DTYPE).repeat(2)
        c_ub = torch.minimum(c_ub, parent)  # the parent's bound holds on its halves too
        nodes += len(take)
        for j in range(len(c_lo)):
            u = float(c_ub[j])
            if u - lower <= tol:
                closed_upper = max(closed_upper, u)
            else:
                heapq.heappush(heap, (-u, next(tick), c_lo[j], c_hi[j], int(c_cls[j]), float(c_sign[j])))
    upper = max([-h[0] for h in heap] + [closed_upper, lower])
    return DeltaStar(lower, min(upper, 1.0), point.to(x0.dtype).reshape(shape), nodes,
                     time.perf_counter() - t0, status, root_upper)
