"""Teacher and student at one shared input: the joint network, cross bounds and joint FAITHUB.

Eq. 11 bounds the teacher's and the student's confidences separately, each at its own worst point
of the ball, so it can never see that the two networks move together. Here they share x:

- ``joint_net(t, s)`` composes the two lowered networks in parallel on one input (output
  [z_t; z_s], 2K); the shallower one is padded with identity layers after a ReLU (exact: its
  input is non-negative). Every bound method (interval, CROWN, LP, MILP) then sees both at one x.
- ``cross_bounds`` bounds e_ij = d^t_ij - d^s_ij (d_ij = z_j - z_i) over the ball on the joint net:
  where teacher and student respond alike to x, the linear relaxations cancel and e is far tighter
  than the difference of the separate d bounds.
- ``joint_faithub`` maximises sigma_t,i - sigma_s,i (and the reverse) over the set
  {d^t in its bounds, d^s in its bounds, d^t - d^s in e's bounds}, which holds every pair
  (d^t(x), d^s(x)) one x can reach. Softmax is monotone in each d (eq. 10), so on a sub-box of the
  K - 1 student differences the maximum has a closed-form upper bound; branch and bound over those
  K - 1 dimensions (not the input's) closes the gap to the relaxation's maximum. The result is
  capped by eq. 11's value: never looser, by construction and by test.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .crown import crown_bounds, crown_linear
from .interval import Box, input_box
from .fp import logit_margin, pair_margin
from .network import DTYPE, Affine, MaxPool, Net, ReLU


def _kinds(ops) -> str:
    return "".join("A" if isinstance(o, Affine) else "R" if isinstance(o, ReLU) else "M" for o in ops)


def _pad(ops: list, n_pairs: int) -> list:
    """Insert ``n_pairs`` identity (Affine, ReLU) pairs before the final affine of an MLP-shaped
    op list (after its last ReLU, whose output is >= 0, so ReLU(I a) = a exactly)."""
    width = ops[-1].weight.shape[1]
    eye = Affine(torch.eye(width, dtype=DTYPE), torch.zeros(width, dtype=DTYPE))
    return ops[:-1] + [eye, ReLU()] * n_pairs + ops[-1:]


def _stack(a: Affine, b: Affine, shared: bool) -> Affine:
    w = torch.cat([a.weight, b.weight], 0) if shared else torch.block_diag(a.weight, b.weight)
    return Affine(w, torch.cat([a.bias, b.bias]))


def _side_by_side(a: Affine, b: Affine, shared: bool) -> Affine:
    """Two affine maps side by side (``shared``: both read one input), keeping the layers they
    merge (``Affine.parts``, aligned by identity layers in front) for the float32 error analysis."""
    out = _stack(a, b, shared)
    pa, pb = list(a.parts or (a,)), list(b.parts or (b,))
    if len(pa) == len(pb) == 1:
        return out
    for p, other in ((pa, pb), (pb, pa)):
        while len(p) < len(other):
            n = p[0].weight.shape[1]
            p.insert(0, Affine(torch.eye(n, dtype=DTYPE), torch.zeros(n, dtype=DTYPE)))
    parts = tuple(_stack(x, y, shared and i == 0) for i, (x, y) in enumerate(zip(pa, pb)))
    return Affine(out.weight, out.bias, parts)


def joint_net(teacher: Net, student: Net) -> Net:
    """Both networks on one shared input: output [z_t (K); z_s (K)].

    Raises ValueError if the inputs differ or the op sequences cannot be aligned (they must match
    op for op, or both be MLPs: Affine (ReLU Affine)*).
    """
    if teacher.input_shape != student.input_shape:
        raise ValueError(f"teacher and student take different inputs: {teacher.input_shape} vs {student.input_shape}")
    t_ops, s_ops = list(teacher.ops), list(student.ops)
    kt, ks = _kinds(t_ops), _kinds(s_ops)
    if kt != ks:
        mlp = all(set(k[1:].replace("RA", "")) == set() and k[0] == "A" for k in (kt, ks))
        if not mlp:
            raise ValueError(f"cannot align the networks' layers ({kt} vs {ks}): they must match op for op or be MLPs")
        diff = (len(kt) - len(ks)) // 2
        t_ops, s_ops = (t_ops, _pad(s_ops, diff)) if diff > 0 else (_pad(t_ops, -diff), s_ops)
    ops, wt, ws = [], teacher.in_dim, student.in_dim  # current widths of each part
    for k, (a, b) in enumerate(zip(t_ops, s_ops)):
        if isinstance(a, Affine):
            ops.append(_side_by_side(a, b, k == 0))
            wt, ws = a.out_dim, b.out_dim
        elif isinstance(a, ReLU):
            ops.append(ReLU())
        else:
            ops.append(MaxPool(torch.cat([a.windows, b.windows + wt], 0)))
            wt, ws = a.out_dim, b.out_dim
    return Net(tuple(ops), teacher.input_shape)


def _pair_rows(k: int) -> tuple[np.ndarray, np.ndarray, Tensor]:
    """Rows of e_ij = (z_t,j - z_t,i) - (z_s,j - z_s,i) over the joint output (2K), i != j."""
    ii, jj = np.nonzero(~np.eye(k, dtype=bool))
    coef = torch.zeros(len(ii), 2 * k, dtype=DTYPE)
    r = torch.arange(len(ii))
    coef[r, torch.as_tensor(jj)] += 1.0
    coef[r, torch.as_tensor(ii)] -= 1.0
    coef[r, torch.as_tensor(k + jj)] -= 1.0
    coef[r, torch.as_tensor(k + ii)] += 1.0
    return ii, jj, coef


@dataclass(frozen=True)
class CrossBounds:
    """Bounds (K, K) [i, j] on e_ij = d^t_ij - d^s_ij over the ball (FP margins included)."""
    lower: Tensor
    upper: Tensor


def cross_bounds(teacher: Net, student: Net, x0: Tensor, eps: float, method: str = "crown",
                 solver: str = "auto", time_limit: float = 10.0, clamp: bool = True,
                 margin: Tensor | None = None) -> CrossBounds:
    """Bounds on e_ij = d^t_ij - d^s_ij over B_eps(x0) cap [0, 1], on the joint network.

    Args:
        x0: one image (C, H, W); method: crown, or lp (CROWN, then one LP per side and pair on the
            joint network's triangle relaxation, intersected with CROWN; a failed or time-limited
            LP keeps the CROWN bound or its proven one).
        margin: (K, K) float32 margin of each e_ij, the sum of both networks' ``fp.pair_margin``
            (None: computed here from each network's CROWN bounds).
    """
    return cross_bounds_records(teacher, student, x0, eps, method, solver, time_limit, clamp, margin)[0]


def _cross_margin(teacher: Net, student: Net, box: Box) -> Tensor:
    """Float32 margin (K, K) of e_ij = d^t_ij - d^s_ij: four logits, each network's own margins."""
    return sum(pair_margin(logit_margin(n, box, crown_bounds(n, box))[0]) for n in (teacher, student))


def cross_bounds_records(teacher: Net, student: Net, x0: Tensor, eps: float, method: str = "crown",
                         solver: str = "auto", time_limit: float = 10.0,
                         clamp: bool = True, margin: Tensor | None = None) -> tuple[CrossBounds, list]:
    """``cross_bounds`` and the solver records (``milp.NeuronSolve``, none for CROWN)."""
    records: list = []
    net = joint_net(teacher, student)
    k = teacher.out_dim
    box = input_box(x0, eps, clamp)
    margin = _cross_margin(teacher, student, box) if margin is None else margin
    per_op = crown_bounds(net, box)
    ii, jj, coef = _pair_rows(k)
    e = crown_linear(net, box, coef, per_op)
    lo, hi = e.lower[0], e.upper[0]
    if method == "lp":
        from .milp import build_program, solve_linear

        program = build_program(net, box, per_op).relaxed()
        refined, records = solve_linear(program, coef.numpy(), Box(lo.clone(), hi.clone()), solver, time_limit)
        lo, hi = refined.lower, refined.upper
    elif method != "crown":
        raise ValueError(f"unknown cross-bound method {method!r}; choose one of: crown, lp")
    lower = torch.zeros(k, k, dtype=DTYPE)
    upper = torch.zeros(k, k, dtype=DTYPE)
    lower[ii, jj], upper[ii, jj] = lo - margin[ii, jj], hi + margin[ii, jj]  # four logits per row
    return CrossBounds(lower, upper), records


def _phi(w: np.ndarray) -> np.ndarray:
    """sigma_i as a function of the differences w_j = z_j - z_i, j != i (eq. 10's form); (..., K-1)."""
    return 1.0 / (1.0 + np.exp(np.clip(w, -700, 700)).sum(-1))


def joint_faithub(t_lower: Tensor, t_upper: Tensor, s_lower: Tensor, s_upper: Tensor, cross: CrossBounds,
                  tol: float = 1e-4, max_nodes: int = 5000) -> tuple[float, dict]:
    """Joint FAITHUB: an upper bound on max_x ||f_t(x) - f_s(x)||_inf using the d bounds of each
    network (K, K) [i, j] and the cross bounds on d^t - d^s, by branch and bound over the student's
    K - 1 differences per (class, direction).

    Returns:
        (bound in [0, 1], stats: nodes expanded, the relaxation's best feasible value, eq. 11's value).
    """
    k = t_lower.shape[0]
    tl, tu, sl, su = (np.asarray(a.detach().cpu().numpy(), dtype=np.float64) for a in (t_lower, t_upper, s_lower, s_upper))
    el, eu = cross.lower.numpy(), cross.upper.numpy()
    eq11 = 0.0
    heap, best_feasible, tick = [], 0.0, itertools.count()
    for i in range(k):
        j = [c for c in range(k) if c != i]
        # direction A over B: sigma_A,i - sigma_B,i; with A = t, v = d^t = u + e; with A = s, v = d^s = u - e
        for (alo, ahi, blo, bhi, clo, chi) in ((tl[i, j], tu[i, j], sl[i, j], su[i, j], el[i, j], eu[i, j]),
                                              (sl[i, j], su[i, j], tl[i, j], tu[i, j], -eu[i, j], -el[i, j])):
            eq11 = max(eq11, float(_phi(alo) - _phi(bhi)))
            node = _node(blo, bhi, alo, ahi, clo, chi)
            if node is not None:
                heapq.heappush(heap, (-node[0], next(tick), node, (alo, ahi, clo, chi)))
                best_feasible = max(best_feasible, node[1])
    nodes, bound = 0, 0.0
    while heap:
        _, _, (ub, _lb, ulo, uhi), (alo, ahi, clo, chi) = heapq.heappop(heap)
        bound = ub
        if ub - best_feasible <= tol or nodes >= max_nodes:
            break
        nodes += 1
        width = uhi - ulo
        d = int(np.argmax(width))
        mid = (ulo[d] + uhi[d]) / 2
        for lo_d, hi_d in ((ulo[d], mid), (mid, uhi[d])):
            nlo, nhi = ulo.copy(), uhi.copy()
            nlo[d], nhi[d] = lo_d, hi_d
            child = _node(nlo, nhi, alo, ahi, clo, chi)
            if child is not None:
                best_feasible = max(best_feasible, child[1])
                heapq.heappush(heap, (-child[0], next(tick), child, (alo, ahi, clo, chi)))
    else:
        bound = best_feasible  # every node closed: the relaxation's maximum was reached
    value = min(max(bound, best_feasible) + 1e-9, eq11, 1.0)
    return max(value, 0.0), {"nodes": nodes, "relaxation_feasible": best_feasible, "eq11": eq11}


def _node(ulo, uhi, alo, ahi, clo, chi):
    """(upper bound, feasible value, ulo, uhi) of max phi(v) - phi(u) over u in [ulo, uhi],
    v in [alo, ahi], v - u in [clo, chi]; None if the sub-box is empty."""
    vlo = np.maximum(alo, ulo + clo)
    vhi = np.minimum(ahi, uhi + chi)
    if (vlo > vhi).any():
        return None
    ub = float(_phi(vlo) - _phi(uhi))
    # a feasible point of the relaxation: u = uhi, v as small as allowed there
    v_at = np.maximum(alo, uhi + clo)
    lb = float(_phi(v_at) - _phi(uhi)) if (v_at <= np.minimum(ahi, uhi + chi)).all() else -1.0
    return ub, lb, ulo, uhi
