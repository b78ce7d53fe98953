"""The float32 forward error of a lowered network over an input box, a priori and rigorous.

Every bound of ``fkd.bounds`` is computed for the real-arithmetic network; the networks run in
float32. Standard forward error analysis (Higham, *Accuracy and Stability of Numerical
Algorithms*, sec. 3.1) bounds the difference per logit over the whole box:

- a length-n dot product plus a bias, summed in any order, with or without fused multiply-add,
  errs by at most gamma_{n+1} (|w| . |a| + |b|), gamma_n = n u / (1 - n u), u = 2^-24 (zero
  weights, inputs that are 0 in both arithmetics over the box and a zero bias contribute exact
  zeros, so n counts a row's terms that can be nonzero; a row that copies one input, 1 a + 0, is
  exact); underflow adds at most ETA = 2^-149 per product;
- an affine layer on an input already off by e (elementwise) adds |W| e, and its input's magnitude
  is at most m + e, m = max(|l|, |u|) from sound bounds [l, u] of the exact activations (interval,
  CROWN or tightened bounds: anything sound over the box);
- ReLU and max-pool are exact in floating point and 1-Lipschitz in the inf-norm: the error passes
  through (max-pool: the largest error of its window); a ReLU whose pre-activation is <= 0 in
  both arithmetics (upper bound u plus error e <= 0) outputs 0 in both: its error is 0;
- the input itself is rounded to float32: e_0 = u |x| + ETA (0 where x is 0);
- tighter, since signs cancel: the float32 logits differ from the exact ones by sum_k M_k delta_k,
  delta_k the rounding of layer k (bounded as above) and M_k the product of the later layers' W
  with each ReLU's slope s in [0, 1] (1 or 0 where the neuron is stable in both arithmetics; a
  max-pool: a convex combination of its window); an interval enclosure of every M_k, computed
  backwards from the logits, bounds the sum.

A merged affine map (``Affine.parts``, e.g. a convolution followed by a Linear without a ReLU
between) is analysed layer by layer, as torch computes it, with interval bounds between its parts.
The bound assumes IEEE float32 dot products (CPU GEMM and direct convolutions); reduced-precision
modes such as TF32 convolutions on recent GPUs, or Winograd / FFT convolutions, are not covered.

``logit_margin`` is what the public entry points add outward to every logit: the derived bound,
at least the absolute floor ``FP_MARGIN`` (which covers the float64 rounding of the bound
computations themselves, about 1e-12 on these networks). A logit difference d_ij = z_j - z_i
takes the margins of both logits (``pair_margin``). Being a worst case over every rounding, the
bound is far above the error one observes (on the shipped zoo 1e-4 to 8e-2 logits against 2e-7 to
6e-6 observed between float32 and float64 forwards, growing with eps as more ReLUs turn unstable).
Not covered: the float32 rounding of the softmax itself (about (K + 3) u per probability).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .interval import Box, interval_bounds, propagate
from .network import DTYPE, FP_MARGIN, Affine, MaxPool, Net, ReLU

__all__ = ["U", "ETA", "gamma", "forward_error", "logit_margin", "pair_margin"]

#: Unit roundoff of float32 (round to nearest).
U = 2.0 ** -24
#: Smallest positive subnormal float32: the absolute error of one product that underflows.
ETA = 2.0 ** -149


def gamma(n: Tensor | int) -> Tensor:
    """gamma_n = n u / (1 - n u), float64; ValueError if n u >= 1 (no bound exists)."""
    n = torch.as_tensor(n, dtype=DTYPE)
    if bool((n * U >= 1).any()):
        raise ValueError("a dot product of 2^24 terms or more has no float32 error bound")
    return n * U / (1 - n * U)


def _local_error(op: Affine, w_abs: Tensor, mag: Tensor, err: Tensor) -> Tensor:
    """The rounding of one affine layer itself: gamma_n (|W| (m + e) + |b|) + p ETA, n the row's
    terms (p products whose weight and input can be nonzero, plus the bias unless it is 0); 0 for a
    row that copies one input (1 a + 0).

    Args: w_abs |W| (n_out, n_in); mag (B, n_in) bound on |exact input|; err (B, n_in) bound on
        |float32 - exact input|.
    Returns: (B, n_out).
    """
    nonzero = (w_abs != 0).to(DTYPE)
    products = ((mag + err) > 0).to(DTYPE) @ nonzero.T
    n = products + (op.bias != 0).to(DTYPE)
    local = gamma(n) * ((mag + err) @ w_abs.T + op.bias.abs()) + products * ETA
    copy = (nonzero.sum(1) == 1) & (op.bias == 0) & (w_abs.amax(1) == 1)
    return local * ~copy


def _magnitude(box: Box) -> Tensor:
    return torch.maximum(box.lower.abs(), box.upper.abs())


def _forward(net: Net, box: Box, per_op: list[Box]) -> tuple[Tensor, Tensor, list]:
    """Forward pass: the error bound through |W| (e' = |W| e + local), and per op what the backward
    pass needs (affine: (part, |W|, local error) per part; ReLU: dead, active masks; max-pool: the
    window's argmax of the lower bounds and whether it decides the window in both arithmetics).
    Returns (error (B, K), the input's rounding (B, in_dim), steps)."""
    mag = _magnitude(box)
    err = (U * mag + ETA) * (mag > 0)  # 0 converts exactly
    first, steps, inp = err, [], box
    for i, op in enumerate(net.ops):
        if isinstance(op, Affine):
            part_in, locs = inp, []
            for part in op.parts or (op,):
                w_abs = part.weight.abs()
                local = _local_error(part, w_abs, _magnitude(part_in), err)
                err = err @ w_abs.T + local
                locs.append((part, w_abs, local))
                part_in = propagate(part, part_in)
            steps.append(locs)
        elif isinstance(op, ReLU):
            dead, active = inp.upper + err <= 0, inp.lower - err >= 0
            steps.append((dead, active))
            err = err * ~dead
        else:
            assert isinstance(op, MaxPool)
            lo = (inp.lower - err)[:, op.windows]
            hi = (inp.upper + err)[:, op.windows]
            best, arg = lo.max(-1)
            exact = best >= hi.scatter(-1, arg[..., None], float("-inf")).amax(-1)
            steps.append((arg, exact, inp.lower.shape[1]))
            err = err[:, op.windows].amax(-1)
        inp = per_op[i]
    return err, first, steps


def _pool_back(op: MaxPool, step, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    """Interval sensitivities (B, K, n_out) through a max-pool to its input (B, K, n_in): a
    window's change is a convex combination of its inputs' changes (weights in [0, 1]), or the
    change of its deciding input."""
    arg, exact, n_in = step
    b, k, n_out = lo.shape
    width = op.windows.shape[1]
    loose = (~exact)[:, None, :]
    new_lo = torch.zeros(b, k, n_in, dtype=DTYPE)
    new_hi = torch.zeros(b, k, n_in, dtype=DTYPE)
    flat = op.windows.reshape(-1)
    new_lo.index_add_(2, flat, (lo.clamp(max=0) * loose).repeat_interleave(width, dim=2))
    new_hi.index_add_(2, flat, (hi.clamp(min=0) * loose).repeat_interleave(width, dim=2))
    idx = torch.gather(op.windows.expand(b, -1, -1), -1, arg[..., None])[..., 0]
    idx = idx[:, None, :].expand(b, k, n_out)
    new_lo.scatter_add_(2, idx, lo * ~loose)
    new_hi.scatter_add_(2, idx, hi * ~loose)
    return new_lo, new_hi


def forward_error(net: Net, box: Box, per_op: list[Box] | None = None) -> Tensor:
    """A bound on |float32 forward(x) - exact forward(x)| per logit, valid for every x in ``box``.

    Two rigorous bounds, the smaller kept per logit: the forward pass through |W|, and the sum
    over layers of each layer's own rounding times an interval enclosure of the logits'
    sensitivity to it (W's with ReLU slopes in [0, 1], 0 or 1 where stable; signs cancel).

    Args:
        net: lowered network.
        box: input bounds (B, in_dim).
        per_op: sound bounds of every op's exact output (B, n_out) over ``box`` (``crown_bounds``,
            ``interval_bounds`` or tightened ones); None computes interval bounds.
    Returns:
        (B, K) float64 error bounds, the input's own rounding to float32 included.
    """
    per_op = interval_bounds(net, box) if per_op is None else per_op
    err, first, steps = _forward(net, box, per_op)
    b, k = err.shape
    lo = torch.eye(k, dtype=DTYPE).expand(b, k, k).clone()
    hi = lo.clone()
    total = torch.zeros(b, k, dtype=DTYPE)
    for op, step in zip(reversed(net.ops), reversed(steps)):
        if isinstance(op, Affine):
            for part, w_abs, local in reversed(step):
                total += (torch.maximum(lo.abs(), hi.abs()) @ local[..., None])[..., 0]
                mid, rad = (hi + lo) / 2 @ part.weight, (hi - lo) / 2 @ w_abs
                lo, hi = mid - rad, mid + rad
        elif isinstance(op, ReLU):
            dead, active = step
            loose = (~(dead | active))[:, None, :]
            keep = (~dead)[:, None, :]
            lo = torch.where(loose, lo.clamp(max=0), lo) * keep
            hi = torch.where(loose, hi.clamp(min=0), hi) * keep
        else:
            lo, hi = _pool_back(op, step, lo, hi)
    total += (torch.maximum(lo.abs(), hi.abs()) @ first[..., None])[..., 0]
    return torch.minimum(err, total)


def logit_margin(net: Net, box: Box, per_op: list[Box] | None = None) -> Tensor:
    """The margin added outward to each logit bound: ``forward_error``, at least ``FP_MARGIN``.

    Returns: (B, K) float64.
    """
    return forward_error(net, box, per_op).clamp(min=FP_MARGIN)


def pair_margin(margin: Tensor) -> Tensor:
    """Margins of d_ij = z_j - z_i from per-logit margins: (..., K) -> (..., K, K), m_i + m_j,
    diagonal 0 (d_ii = 0 exactly)."""
    out = margin[..., :, None] + margin[..., None, :]
    return out * (1 - torch.eye(margin.shape[-1], dtype=out.dtype))
