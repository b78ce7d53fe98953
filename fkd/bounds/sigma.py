"""Eqs. 9-11 as arithmetic: logit differences from logit intervals, softmax bounds from
difference bounds, FAITHUB from two networks' softmax bounds."""
from __future__ import annotations

import torch
from torch import Tensor

from .interval import Box


def diff_bounds_from_logits(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 9 from logit intervals: d_ij = z_j - z_i in [l_j - u_i, u_j - l_i]; d_ii = 0.

    Args: lower, upper (..., K). Returns: (d_lower, d_upper) (..., K, K), index [i, j].
    """
    d_lo = lower[..., None, :] - upper[..., :, None]
    d_up = upper[..., None, :] - lower[..., :, None]
    eye = torch.eye(lower.shape[-1], dtype=torch.bool)
    return d_lo.masked_fill(eye, 0.0), d_up.masked_fill(eye, 0.0)


def softmax_bounds(d_lower: Tensor, d_upper: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 10: sigma_i in [1 / sum_j exp(d_ij^ub), 1 / sum_j exp(d_ij^lb)] (j = i gives exp(0) = 1).

    Args: d_lower, d_upper (..., K, K) indexed [i, j] with zero diagonal.
    Returns: (sigma_lower, sigma_upper) (..., K), within [0, 1].
    """
    lo = torch.exp(-torch.logsumexp(d_upper, dim=-1))
    hi = torch.exp(-torch.logsumexp(d_lower, dim=-1))
    return lo.clamp(0.0, 1.0), hi.clamp(0.0, 1.0)


def faithub_from_sigma(t: Box, s: Box) -> Tensor:
    """Eq. 11 capped at 1: max_i max(ub_t,i - lb_s,i, ub_s,i - lb_t,i). Boxes (..., K) -> (...)."""
    gap = torch.maximum(t.upper - s.lower, s.upper - t.lower).amax(-1)
    return gap.clamp(0.0, 1.0)
