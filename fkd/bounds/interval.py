"""Interval bound propagation (IBP) over the input box B_eps(x0) intersected with [0, 1].

Section 4.2 of the paper: bounds on every neuron from bounds on the previous layer; max-pool
bounds propagate monotonically (MaxPool(l) <= MaxPool(a) <= MaxPool(u)).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..units import Radius, as_tensor, check_radius
from .network import DTYPE, Affine, MaxPool, Net, Op, ReLU


class Box(NamedTuple):
    """Elementwise bounds ``lower <= v <= upper``, each (B, n) (or (n,))."""
    lower: Tensor
    upper: Tensor


def input_box(x0: Tensor, eps: Radius, clamp: bool = True) -> Box:
    """The l-inf ball around x0 intersected with [0, 1], flattened: [x0 - r, x0 + r] & [0, 1].

    Args:
        x0: one image (C, H, W) or a batch (B, C, H, W) in [0, 1].
        eps: the pixel radius r >= 0: a float, or a (C, 1, 1) tensor of per-channel radii
            (``fkd.units.radius`` makes it from an eps and its units).
        clamp: intersect with [0, 1] (the valid images); False: the plain ball [x0 - r, x0 + r],
            as a verifier on normalised inputs without the pixel box would bound.
    Returns:
        Box of (B, C*H*W) float64 tensors (B = 1 for a single image).
    """
    check_radius(eps)
    check_image(x0)
    x = x0.detach().cpu()
    x = x.unsqueeze(0) if x.dim() == 3 else x
    lo, hi = ball(x, eps, clamp)
    return Box(lo.reshape(x.shape[0], -1), hi.reshape(x.shape[0], -1))


def ball(x0: Tensor, eps: Radius, clamp: bool = True) -> tuple[Tensor, Tensor]:
    """The ball's bounds in float64, x0 -/+ r (capped to [0, 1] when ``clamp``), in x0's shape:
    the one place the verifier's input set is computed (``input_box``, ``project``)."""
    x = x0.detach().to(DTYPE)
    r = as_tensor(eps, x)
    lo, hi = x - r, x + r
    return (lo.clamp(0.0, 1.0), hi.clamp(0.0, 1.0)) if clamp else (lo, hi)


def check_image(x0: Tensor) -> None:
    """ValueError unless ``x0`` holds finite pixel values in [0, 1] (a NaN pixel or an image
    outside [0, 1] would give a meaningless bound or an empty ball)."""
    if not torch.isfinite(x0).all():
        raise ValueError("the image has NaN or infinite pixels; pass images with values in [0, 1]")
    lo, hi = float(x0.min()), float(x0.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"the image's pixels span [{lo:.4g}, {hi:.4g}], outside [0, 1]: pass unnormalised "
                         f"images in [0, 1] (fkd.data.eval_subset gives them; the networks normalise nothing)")


def project(point: Tensor, x0: Tensor, eps: Radius, clamp: bool = True) -> Tensor:
    """``point`` moved onto the nearest input of its dtype inside the ball of pixel radius ``eps``
    around ``x0`` (capped to [0, 1] when ``clamp``): the ball's bounds taken in float64 as
    ``input_box`` takes them and rounded inwards to ``point``'s dtype, so the result lies in the
    verifier's ball exactly (float32 rounding of x0 + r may sit a hair outside it).

    Args:
        point: (C, H, W) or (N, C, H, W); x0: (C, H, W) or (N, C, H, W), broadcasting against it.
    Returns:
        ``point``'s shape and dtype.
    """
    lo, hi = ball(x0.to(point.device), eps, clamp)
    lo_p, hi_p = lo.to(point.dtype), hi.to(point.dtype)
    lo_p = torch.where(lo_p.double() < lo, torch.nextafter(lo_p, torch.full_like(lo_p, 2.0)), lo_p)
    hi_p = torch.where(hi_p.double() > hi, torch.nextafter(hi_p, torch.full_like(hi_p, -1.0)), hi_p)
    # a radius below the dtype's resolution can leave no such input but x0 itself, which is inside
    empty = lo_p > hi_p
    centre = x0.to(point.dtype)
    lo_p, hi_p = torch.where(empty, centre, lo_p), torch.where(empty, centre, hi_p)
    return torch.minimum(torch.maximum(point, lo_p), hi_p)


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
