"""Interval bound propagation (IBP) over the input box B_eps(x0) intersected with [0, 1].

Section 4.2 of the paper: bounds on every neuron from bounds on the previous layer; max-pool
bounds propagate monotonically (MaxPool(l) <= MaxPool(a) <= MaxPool(u)).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .network import DTYPE, Affine, MaxPool, Net, Op, ReLU


class Box(NamedTuple):
    """Elementwise bounds ``lower <= v <= upper``, each (B, n) (or (n,))."""
    lower: Tensor
    upper: Tensor


def input_box(x0: Tensor, eps: float) -> Box:
    """The l-inf ball around x0 intersected with [0, 1], flattened.

    Args:
        x0: one image (C, H, W) or a batch (B, C, H, W) in [0, 1].
        eps: radius >= 0 in pixel units.
    Returns:
        Box of (B, C*H*W) float64 tensors (B = 1 for a single image).
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    x = x0.detach().to("cpu", DTYPE)
    x = x.reshape(1, -1) if x.dim() == 3 else x.reshape(x.shape[0], -1)
    return Box((x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0))


def propagate(op: Op, box: Box) -> Box:
    """Interval image of ``box`` (B, n_in) under one op: (B, n_out) bounds."""
    lo, hi = box
    if isinstance(op, Affine):
        mid, rad = (hi + lo) / 2, (hi - lo) / 2
        c = mid @ op.weight.T + op.bias
        r = rad @ op.weight.abs().T
        return Box(c - r, c + r)
    if isinstance(op, ReLU):
        return Box(lo.clamp(min=0), hi.clamp(min=0))
    assert isinstance(op, MaxPool)
    return Box(lo[:, op.windows].amax(-1), hi[:, op.windows].amax(-1))


def interval_bounds(net: Net, box: Box) -> list[Box]:
    """IBP through ``net``.

    Args:
        net: lowered network.
        box: input bounds (B, in_dim).
    Returns:
        One Box per op: the bounds of that op's output, (B, n_out). The entry before a ReLU or
        MaxPool is that op's pre-activation bounds; the last entry bounds the logits (B, K).
    """
    out: list[Box] = []
    for op in net.ops:
        box = propagate(op, box)
        out.append(box)
    return out


def intersect(a: Box, b: Box) -> Box:
    """Elementwise intersection of two sound boxes (both hold, so their intersection does)."""
    return Box(torch.maximum(a.lower, b.lower), torch.minimum(a.upper, b.upper))
