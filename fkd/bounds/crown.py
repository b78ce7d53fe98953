"""CROWN / DeepPoly back-substitution: linear bounds of neurons in terms of the input box.

Each ReLU with pre-activation bounds l < 0 < u is relaxed (Zhang et al., 2018; Singh et al., 2019;
the alpha_L, beta_L, alpha_U, beta_U of section 4.2):

    upper:  a <= u (z - l) / (u - l)
    lower:  a >= s z,  s = 1 if u > -l else 0 (the adaptive lower slope)

stable ReLUs are exact (identity or zero). A max-pool y = max_{j in W} a_j is relaxed by
    lower:  y >= a_{j*},  j* = argmax_j l_j
    upper:  y <= a_{j*} when l_{j*} >= u_j for every other j (exact), else y <= max_j u_j,
which is never looser than the monotone interval rule of the paper. Every layer's bounds are
intersected with the interval bounds computed from the already tightened previous layer, so the
result is always at least as tight as IBP.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .interval import Box, intersect, propagate
from .network import DTYPE, Affine, MaxPool, Net, ReLU


def _relu_relax(pre: Box) -> tuple[Tensor, Tensor, Tensor]:
    """Slopes and intercept of the ReLU relaxation, each (B, n): upper slope, upper intercept,
    lower slope (the lower intercept is 0)."""
    l, u = pre
    active, dead = l >= 0, u <= 0
    unstable = ~(active | dead)
    denom = torch.where(unstable, u - l, torch.ones_like(u))
    su = torch.where(unstable, u / denom, active.to(DTYPE))
    tu = torch.where(unstable, -l * u / denom, torch.zeros_like(u))
    sl = torch.where(unstable, (u > -l).to(DTYPE), active.to(DTYPE))
    return su, tu, sl


def _pool_relax(op: MaxPool, pre: Box) -> tuple[Tensor, Tensor, Tensor]:
    """Max-pool relaxation on inputs bounded by ``pre`` (B, n_in).

    Returns:
        (P_up (B, n_out, n_in), t_up (B, n_out), P_lo (B, n_out, n_in)) with
        P_lo a <= y <= P_up a + t_up.
    """
    l, u = pre.lower[:, op.windows], pre.upper[:, op.windows]  # (B, n_out, k)
    best_l, arg = l.max(-1)
    others_u = u.scatter(-1, arg[..., None], float("-inf")).amax(-1)
    exact = best_l >= others_u
    b, n_out = l.shape[0], l.shape[1]
    n_in = pre.lower.shape[1]
    idx = torch.gather(op.windows.expand(b, -1, -1), -1, arg[..., None])  # (B, n_out, 1)
    p_lo = torch.zeros(b, n_out, n_in, dtype=DTYPE).scatter_(-1, idx, 1.0)
    p_up = p_lo * exact[..., None].to(DTYPE)
    t_up = torch.where(exact, torch.zeros_like(best_l), u.amax(-1))
    return p_up, t_up, p_lo


def backsub(net: Net, k: int, coef: Tensor, bounds: list[Box], box: Box) -> Box:
    """Bounds of coef @ (output of op k) over the input box, by back-substitution.

    Args:
        net: lowered network.
        k: index of the op whose output the linear function reads.
        coef: (B, m, n_k) coefficients of m linear functions per image.
        bounds: sound bounds of the output of every op before k (the relaxations need them).
        box: input box (B, in_dim).
    Returns:
        Box of (B, m): lower and upper bounds of the m linear functions.
    """
    a_u, a_l = coef, coef
    c_u = torch.zeros(coef.shape[:2], dtype=DTYPE)
    c_l = torch.zeros(coef.shape[:2], dtype=DTYPE)
    for i in range(k, -1, -1):
        op = net.ops[i]
        if isinstance(op, Affine):
            c_u = c_u + a_u @ op.bias
            c_l = c_l + a_l @ op.bias
            a_u, a_l = a_u @ op.weight, a_l @ op.weight
        elif isinstance(op, ReLU):
            su, tu, sl = _relu_relax(bounds[i - 1])
            pos_u, neg_u = a_u.clamp(min=0), a_u.clamp(max=0)
            pos_l, neg_l = a_l.clamp(min=0), a_l.clamp(max=0)
            c_u = c_u + (pos_u * tu[:, None, :]).sum(-1)
            c_l = c_l + (neg_l * tu[:, None, :]).sum(-1)
            a_u = pos_u * su[:, None, :] + neg_u * sl[:, None, :]
            a_l = pos_l * sl[:, None, :] + neg_l * su[:, None, :]
        else:
            p_up, t_up, p_lo = _pool_relax(op, bounds[i - 1])
            pos_u, neg_u = a_u.clamp(min=0), a_u.clamp(max=0)
            pos_l, neg_l = a_l.clamp(min=0), a_l.clamp(max=0)
            c_u = c_u + (pos_u * t_up[:, None, :]).sum(-1)
            c_l = c_l + (neg_l * t_up[:, None, :]).sum(-1)
            a_u = pos_u @ p_up + neg_u @ p_lo
            a_l = pos_l @ p_lo + neg_l @ p_up
    lo, hi = box.lower[:, :, None], box.upper[:, :, None]
    upper = c_u + (a_u.clamp(min=0) @ hi + a_u.clamp(max=0) @ lo).squeeze(-1)
    lower = c_l + (a_l.clamp(min=0) @ lo + a_l.clamp(max=0) @ hi).squeeze(-1)
    return Box(lower, upper)


def crown_bounds(net: Net, box: Box, prefix: list[Box] | None = None) -> list[Box]:
    """CROWN bounds of every op's output, intersected with interval bounds layer by layer.

    Args:
        net: lowered network.
        box: input box (B, in_dim), e.g. ``interval.input_box(x0, eps)``.
        prefix: sound bounds of the first len(prefix) ops (e.g. LP-tightened), kept as they are.
    Returns:
        One Box per op (B, n_out), like ``interval.interval_bounds``, never looser than it; the last
        entry bounds the logits (B, K).
    """
    out: list[Box] = list(prefix or [])
    for i, op in enumerate(net.ops):
        if i < len(out):
            continue
        ibp = propagate(op, out[-1] if out else box)
        if isinstance(op, Affine) and i > 0:
            eye = torch.eye(op.out_dim, dtype=DTYPE).expand(box.lower.shape[0], -1, -1)
            ibp = intersect(ibp, backsub(net, i, eye, out, box))
        out.append(ibp)
    return out


def crown_linear(net: Net, box: Box, coef: Tensor, bounds: list[Box] | None = None) -> Box:
    """Bounds of linear functions coef @ z of the logits z over the input box (eq. 9, tight mode:
    rows e_j - e_i give z_j - z_i directly).

    Args:
        coef: (m, K) or (B, m, K).
        bounds: per-op bounds from ``crown_bounds`` (computed if None).
    Returns:
        Box of (B, m).
    """
    bounds = crown_bounds(net, box) if bounds is None else bounds
    if coef.dim() == 2:
        coef = coef.expand(box.lower.shape[0], -1, -1)
    return backsub(net, len(net.ops) - 1, coef.to(DTYPE), bounds, box)
