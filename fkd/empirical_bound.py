"""EMPLB (section 4.1): the largest ||f_t - f_s||_inf PGD finds in the ball, a lower bound on delta*.

The search's objectives (``EmplbStrategy``): the inf-norm itself, one signed objective per class,
both, or both then APGD. Images and radii as in ``fkd.metrics``: x (N, C, H, W) in [0, 1], eps a
pixel radius (``fkd.units.Radius``).

The search runs in float32; the value it reports does not. The best point is moved onto the nearest
float32 input inside the verifier's ball (``fkd.bounds.interval.project``: float32 rounding of
x0 + r may sit a hair outside it) and the gap is evaluated there in float64
(``fkd.bounds.real.real_gap``). So EMPLB is the gap of the real-valued networks at a point of the
ball, as delta* and FAITHUB are: in float32 a saturated softmax (a confidence within 1e-7 of 1)
rounds the gap by more than the gap itself, and a float32 value could exceed a sound FAITHUB.
"""
from __future__ import annotations

import enum
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .attacks import ConfidenceGap, apgd, forward
from .bounds.interval import project
from .bounds.real import real_gap
from .metrics import PAPER_ATTACK, Attack, check_inputs, confidence_gap
from .units import Radius, positive


class EmplbStrategy(str, enum.Enum):
    """How PGD maximises the max over classes in ||f_t - f_s||_inf."""
    MAX = "max"          # ascend the inf-norm itself (its gradient flows through the arg-max class only)
    CLASSES = "classes"  # one smooth objective per class and sign, +-(f_t - f_s)_c; keep the best
    BOTH = "both"        # run both and keep the larger gap: the default, never weaker than either
    STRONG = "strong"    # both, then APGD on the same objectives with the same budget: never weaker than both


class Emplb(NamedTuple):
    """EMPLB per image: ``value`` (N,) float64 = ||f_t - f_s||_inf at ``point`` (N, C, H, W), the best
    point found, inside the ball, evaluated in float64 (``fkd.bounds.real.real_gap``); ``by_strategy`` maps each
    strategy run to its own (float32, search) value (N,)."""
    value: Tensor
    point: Tensor
    by_strategy: dict[EmplbStrategy, Tensor]


def _pgd(attack: Attack, objective, x: Tensor, eps: Radius, generator, clamp: bool):
    return attack.run(objective, x, eps, generator, clamp)


def _apgd(attack: Attack, objective, x: Tensor, eps: Radius, generator, clamp: bool):
    return apgd(objective, x, eps, steps=attack.steps, restarts=attack.restarts, generator=generator, clamp=clamp)


def _gap_max(teacher, student, x, eps, attack, generator, clamp, search=_pgd) -> tuple[Tensor, Tensor]:
    point, _ = search(attack, ConfidenceGap(teacher, student), x, eps, generator, clamp)
    return confidence_gap(teacher, student, point), point


def _gap_classes(teacher, student, x, eps, attack, generator, clamp, search=_pgd) -> tuple[Tensor, Tensor]:
    n = x.shape[0]
    with torch.no_grad():
        k = forward(teacher, x[:1]).shape[-1]
    objectives = 2 * k                                  # (class, sign) pairs, objective-major
    cls = torch.arange(k, device=x.device).repeat_interleave(2).repeat_interleave(n)
    sign = torch.tensor([1.0, -1.0], device=x.device).repeat(k).repeat_interleave(n)
    tiled = x.repeat(objectives, *(1,) * (x.dim() - 1))
    if x.is_contiguous(memory_format=torch.channels_last) and x.dim() == 4:
        tiled = tiled.contiguous(memory_format=torch.channels_last)
    points, _ = search(attack, ConfidenceGap(teacher, student, cls, sign), tiled, eps, generator, clamp)
    gaps = confidence_gap(teacher, student, points).view(objectives, n)
    best = gaps.argmax(0)
    return gaps.gather(0, best[None]).squeeze(0), points.view(objectives, n, *x.shape[1:])[best, torch.arange(n)]


def emplb(teacher: nn.Module, student: nn.Module, x: Tensor, eps: Radius, attack: Attack = PAPER_ATTACK,
          strategy: EmplbStrategy | str = EmplbStrategy.BOTH, generator: torch.Generator | None = None,
          clamp: bool = True) -> Emplb:
    """Empirical maximum prediction lower bound (section 4.1): the largest ||f_t - f_s||_inf PGD finds
    in B_eps(x) intersected with [0, 1]. A lower bound on delta* (eq. 8), never above it.

    Args:
        x: (N, C, H, W) in [0, 1].
        strategy: ``max`` (the paper's objective), ``classes`` (2K signed per-class objectives),
            ``both`` (the larger of the two per image) or ``strong`` (both, then APGD with the same
            steps and restarts on the same objectives, its points added: beyond the paper, about
            1.6x both's time; ``results/benchmarks/emplb_strength.md``).
        clamp: search the ball intersected with [0, 1] (default), else the plain ball.
    Returns:
        Emplb(value (N,) float64, point (N, C, H, W), by_strategy). At eps = 0, the gap at x. The
        value is the float64 gap at the point (``real_gap``), the point inside the ball (``project``).
    """
    from .config import parse

    strategy = parse(EmplbStrategy, strategy)
    check_inputs(x, eps, {"teacher": teacher, "student": student})
    clean = (confidence_gap(teacher, student, x), x)
    if not positive(eps):
        return Emplb(real_gap(teacher, student, x), x, {strategy: clean[0]})
    runs = {EmplbStrategy.MAX: _gap_max, EmplbStrategy.CLASSES: _gap_classes}
    chosen = list(runs) if strategy in (EmplbStrategy.BOTH, EmplbStrategy.STRONG) else [strategy]
    # PGD starts at random points and may never visit x itself: x is a candidate of every strategy
    results = {s: _better(clean, runs[s](teacher, student, x, eps, attack, generator, clamp)) for s in chosen}
    value, point = clean
    for s in chosen:
        value, point = _better((value, point), results[s])
    if strategy is EmplbStrategy.STRONG:
        for run in runs.values():
            value, point = _better((value, point), run(teacher, student, x, eps, attack, generator, clamp, _apgd))
        results[EmplbStrategy.STRONG] = (value, point)
    point = project(point, x, eps, clamp)
    return Emplb(real_gap(teacher, student, point), point, {s: r[0] for s, r in results.items()})


def _better(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Per image, the (value (N,), point (N, ...)) pair with the larger value (a on ties)."""
    take = b[0] > a[0]
    return torch.where(take, b[0], a[0]), torch.where(take.view(-1, *(1,) * (a[1].dim() - 1)), b[1], a[1])
