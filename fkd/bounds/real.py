"""The networks in real arithmetic at concrete points: the value a bound reports for a point.

A lower bound on delta* is the gap of the real-valued networks at a point of the ball; a
counterexample is a point of the ball where their top-1 classes differ. Both are evaluated here in
float64 on float64 copies of the (float32) networks, at points that ``fkd.bounds.interval.project``
has put inside the verifier's ball exactly. In float32, confidences within 1e-7 of 1 round the gap
by more than the gap itself (results/certified/README.md names the one published row where a
float32 EMPLB stood 4e-8 above a sound FAITHUB); in float64 the error is a few units of 1e-16.
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

__all__ = ["REAL_TOL", "as_float64", "real_gap", "real_top1"]

#: How far a float64 evaluation of a point's gap may sit from the real-valued one (a few float64
#: ulps of 1 through a softmax, with room): a lower bound above a proven upper bound by more is a bug.
REAL_TOL = 1e-12


def as_float64(model: nn.Module) -> nn.Module:
    """``model`` itself if its parameters are float64 already, else an eval-mode float64 copy."""
    p = next(model.parameters(), None)
    if p is not None and p.dtype == torch.float64:
        return model
    return copy.deepcopy(model).double().eval()


def _logits(model: nn.Module, x: Tensor) -> Tensor:
    lead = x.shape[:-3]
    return model(x.reshape(-1, *x.shape[-3:]).double()).reshape(*lead, -1)


@torch.no_grad()
def real_gap(teacher: nn.Module, student: nn.Module, x: Tensor) -> Tensor:
    """||f_t(x) - f_s(x)||_inf at T = 1 (eq. 8's objective) in float64: (..., C, H, W) -> (...) float64.

    The networks are copied to float64 (``as_float64``), never changed; pass float64 copies to
    save the copy in a loop."""
    t, s = as_float64(teacher), as_float64(student)
    return (_logits(t, x).softmax(-1) - _logits(s, x).softmax(-1)).abs().amax(-1)


@torch.no_grad()
def real_top1(model: nn.Module, x: Tensor) -> Tensor:
    """Top-1 class in float64: (..., C, H, W) -> (...) long."""
    return _logits(as_float64(model), x).argmax(-1)
