"""One batched l-inf PGD (and APGD) with random start, restarts and pluggable objectives.

Every objective maps a batch of inputs shaped (R, B, C, H, W) (R restarts of B examples) to one
value per (restart, example), shaped (R, B), to be maximised. Per-example tensors it closes over
(labels, teacher logits at the clean point) have shape (B,) or (B, K) and broadcast across R.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .units import Radius, as_tensor, check_radius, positive


class Objective(Protocol):
    models: tuple[nn.Module, ...]

    def __call__(self, x: Tensor) -> Tensor: ...


def forward(model: nn.Module, x: Tensor) -> Tensor:
    """Run ``model`` on inputs with any number of leading batch dims: (..., C, H, W) -> (..., K)."""
    lead = x.shape[:-3]
    return model(x.reshape(-1, *x.shape[-3:])).reshape(*lead, -1)


def per_example_kl(teacher_logits: Tensor, student_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """KL(softmax(t/T) || softmax(s/T)) per example: (..., K), (..., K) -> (...)."""
    lt = F.log_softmax(teacher_logits / temperature, dim=-1)
    ls = F.log_softmax(student_logits / temperature, dim=-1)
    return (lt.exp() * (lt - ls)).sum(-1)


# Added to an objective's value (never to its gradient) where the attack has already succeeded,
# so that best-point tracking keeps a successful iterate over one with a higher loss but no flip.
FLIP_BONUS = 1e4


def _ce(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy per example, fused: logits (..., B, K), labels (B,) -> (..., B)."""
    flat = labels.expand(logits.shape[:-1]).reshape(-1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), flat, reduction="none").view(logits.shape[:-1])


@dataclass
class CrossEntropy:
    """CE of ``model`` against ``labels`` (B,): robust accuracy, Madry training, ARD.

    With ``prefer_errors`` the value gains FLIP_BONUS where the model's top-1 differs from the
    label (same gradient), so the best point kept is a misclassified one whenever PGD met one.
    """
    model: nn.Module
    labels: Tensor
    prefer_errors: bool = False

    @property
    def models(self) -> tuple[nn.Module, ...]:
        return (self.model,)

    def __call__(self, x: Tensor) -> Tensor:
        logits = forward(self.model, x)
        value = _ce(logits, self.labels)
        if self.prefer_errors:
            value = value + FLIP_BONUS * (logits.detach().argmax(-1) != self.labels).to(value.dtype)
        return value


@dataclass
class Disagreement:
    """Distillation-agreement attack (eq. 14): the student's CE against the teacher's hard
    prediction at the clean point, ``labels`` (B,), plus FLIP_BONUS where teacher and student
    disagree at the attacked point (the teacher is evaluated there without gradient)."""
    student: nn.Module
    teacher: nn.Module
    labels: Tensor

    @property
    def models(self) -> tuple[nn.Module, ...]:
        return (self.student, self.teacher)

    def __call__(self, x: Tensor) -> Tensor:
        logits = forward(self.student, x)
        with torch.no_grad():
            c_t = forward(self.teacher, x.detach()).argmax(-1)
        return _ce(logits, self.labels) + FLIP_BONUS * (logits.detach().argmax(-1) != c_t).to(logits.dtype)


@dataclass
class KLDivergence:
    """KL(teacher || student) at temperature T. With ``teacher_logits`` (B, K) fixed (the teacher
    at the clean point: RSLAD), else both networks at the same attacked point (FD)."""
    student: nn.Module
    teacher: nn.Module
    teacher_logits: Tensor | None = None
    temperature: float = 1.0

    @property
    def models(self) -> tuple[nn.Module, ...]:
        return (self.student, self.teacher)

    def __call__(self, x: Tensor) -> Tensor:
        t = self.teacher_logits if self.teacher_logits is not None else forward(self.teacher, x)
        return per_example_kl(t, forward(self.student, x), self.temperature)


@dataclass
class ConfidenceGap:
    """The confidence gap ||f_t(x) - f_s(x)||_inf at T = 1 (eq. 8), or, with ``cls`` (B,) and
    ``sign`` +-1 (a float or a (B,) tensor), the signed gap sign * (f_t(x) - f_s(x))[cls] of one
    class per example."""
    teacher: nn.Module
    student: nn.Module
    cls: Tensor | None = None
    sign: float | Tensor = 1.0

    @property
    def models(self) -> tuple[nn.Module, ...]:
        return (self.teacher, self.student)

    def __call__(self, x: Tensor) -> Tensor:
        diff = forward(self.teacher, x).softmax(-1) - forward(self.student, x).softmax(-1)
        if self.cls is None:
            return diff.abs().amax(-1)
        return self.sign * diff.gather(-1, self.cls.expand(diff.shape[:-1]).unsqueeze(-1)).squeeze(-1)


@contextlib.contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put ``models`` in eval mode and restore each module's own previous mode afterwards."""
    saved = [(m, m.training) for model in models for m in model.modules()]
    try:
        for model in models:
            model.eval()
        yield
    finally:
        for m, mode in saved:
            m.training = mode


def _tile(t: Tensor, r: int) -> Tensor:
    """(B, ...) -> (r, B, ...), each slice a copy of ``t`` in ``t``'s own (dense) memory layout."""
    out = torch.empty_strided((r, *t.shape), (t.numel(), *t.stride()), dtype=t.dtype, device=t.device)
    return out.copy_(t.expand_as(out))


def pgd(objective: Objective, x0: Tensor, eps: Radius, *, steps: int, step_size: Radius,
        restarts: int = 1, random_start: bool = True, generator: torch.Generator | None = None,
        keep: Literal["best", "last", "final"] = "best", clamp: bool = True) -> tuple[Tensor, Tensor | None]:
    """Projected gradient ascent on ``objective`` over B_eps(x0) intersected with [0, 1].

    All restarts run as one batch. With ``keep="best"`` every iterate (the start point, each
    step, the final point) is scored and the best point per example across steps and restarts
    is returned; with ``keep="last"`` (adversarial training) the last iterate of restart 0; with
    ``keep="final"`` the last iterate of every restart, shaped (R, B, C, H, W) (a plain PGD
    evaluation that counts an example as attacked if any restart's final point is). The iterates
    do not depend on ``keep``: same objective gradient and generator state, same trajectories.

    Args:
        objective: maps (R, B, C, H, W) to values (R, B) to maximise.
        x0: clean inputs (B, C, H, W) in [0, 1].
        eps: l-inf radius in pixel units, >= 0: a float, or a (C, 1, 1) tensor per channel
            (``fkd.units.radius`` makes it from an eps and its units).
        step_size: the signed-gradient step in pixel units, a float or (C, 1, 1) like ``eps``.
        generator: seeds the random start; same generator state, same result.
        clamp: keep the iterates in [0, 1] (the valid images, default); False searches the plain ball.

    Returns:
        x_adv (B, C, H, W) inside the ball and [0, 1] ((R, B, C, H, W) with ``keep="final"``), and
        its objective value (B,) (None with ``keep="last"`` or ``"final"``, which skip the extra
        forward pass that scoring the last iterate costs).
    """
    check_radius(eps)
    if steps < 0 or restarts < 1:
        raise ValueError(f"need steps >= 0 and restarts >= 1, got {steps} and {restarts}")
    if keep not in ("best", "last", "final"):
        raise ValueError(f"unknown keep {keep!r}; choose one of: best, last, final")
    x0 = x0.detach()
    if not (x0.is_contiguous() or x0.is_contiguous(memory_format=torch.channels_last)):
        x0 = x0.contiguous()
    shape = (restarts, *x0.shape)
    per_channel = isinstance(eps, Tensor)
    r = as_tensor(eps, x0) if per_channel else float(eps)
    step = as_tensor(step_size, x0) if isinstance(step_size, Tensor) else None
    # the iterate and its bounds share one memory layout (x0's, e.g. channels_last), tiled over
    # restarts: clamping same-layout tensors in place avoids the slow broadcasting/strided paths
    # (measured in benchmarks/train_throughput.py)
    lo, hi = x0 - r, x0 + r
    if clamp:
        lo, hi = lo.clamp_(min=0.0), hi.clamp_(max=1.0)
    lo, hi, x = (_tile(t, restarts) for t in (lo, hi, x0))
    if random_start and positive(eps):
        noise = torch.rand(shape, generator=generator, device=generator.device if generator else "cpu")
        x.add_(noise.to(x0.device, x0.dtype).mul_(2 * r).sub_(r)).clamp_(lo, hi)
    best_x, best_v = None, None
    expand = (1,) * (x0.dim() - 1)
    with eval_mode(*objective.models), torch.enable_grad():
        for i in range(steps + 1):
            final = i == steps
            if final and keep != "best":
                break
            x.requires_grad_(not final)
            with torch.set_grad_enabled(not final):
                value = objective(x)
            if keep == "best":
                v = value.detach()
                if best_v is None:
                    best_v, best_x = v, x.detach().clone()  # a copy: the step below updates x in place
                else:
                    better = v > best_v
                    best_v = torch.where(better, v, best_v)
                    best_x = torch.where(better.view(better.shape + expand), x.detach(), best_x)
            if final:
                break
            (grad,) = torch.autograd.grad(value.sum(), x)
            if step is None:
                x = x.detach().add_(grad.sign_(), alpha=float(step_size)).clamp_(lo, hi)
            else:
                x = x.detach().add_(grad.sign_().mul_(step)).clamp_(lo, hi)
    if keep == "last":
        return x.detach()[0], None
    if keep == "final":
        return x.detach(), None
    r = best_v.argmax(0)  # (B,)
    b = torch.arange(x0.shape[0], device=x0.device)
    return best_x[r, b], best_v[r, b]


def apgd_checkpoints(steps: int) -> set[int]:
    """APGD's checkpoints ceil(p_j * steps): p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return {min(steps, -int(-q * steps // 1)) for q in p[1:]}


def apgd(objective: Objective, x0: Tensor, eps: Radius, *, steps: int, restarts: int = 1,
         generator: torch.Generator | None = None, clamp: bool = True, rho: float = 0.75,
         momentum: float = 0.75) -> tuple[Tensor, Tensor]:
    """APGD (Croce and Hein, 2020) ascent on ``objective`` over B_eps(x0) intersected with [0, 1]:
    step 2 eps, halved at a checkpoint where fewer than ``rho`` of the steps since the last one
    improved the best value (or the best has not moved), restarting from the best point; momentum.

    Args:
        objective: maps (R, B, C, H, W) to values (R, B) to maximise.
        x0: clean inputs (B, C, H, W) in [0, 1].
        eps: l-inf radius in pixel units, a float or a (C, 1, 1) tensor per channel.
        clamp: keep the iterates in [0, 1] (default); False searches the plain ball.
    Returns:
        the best point per example over every iterate and restart (B, C, H, W), and its value (B,).
    """
    check_radius(eps)
    if steps < 1 or restarts < 1:
        raise ValueError(f"need steps >= 1 and restarts >= 1, got {steps} and {restarts}")
    x0 = x0.detach()
    r = as_tensor(eps, x0)
    lo, hi = x0 - r, x0 + r
    if clamp:
        lo, hi = lo.clamp(min=0.0), hi.clamp(max=1.0)
    shape = (restarts, *x0.shape)
    view = shape[:2] + (1,) * (x0.dim() - 1)
    noise = torch.rand(shape, generator=generator, device=generator.device if generator else "cpu").to(x0)
    x = (x0 + (2 * noise - 1) * r).clamp(lo, hi)
    eta = (2 * r).expand(shape).clone()
    marks = apgd_checkpoints(steps)

    def value_grad(z: Tensor) -> tuple[Tensor, Tensor]:
        z = z.detach().requires_grad_(True)
        v = objective(z)
        return v.detach(), torch.autograd.grad(v.sum(), z)[0]

    with eval_mode(*objective.models), torch.enable_grad():
        v, g = value_grad(x)
        best_v, best_x, x_prev = v.clone(), x.clone(), x.clone()
        x = (x + eta * g.sign()).clamp(lo, hi)
        wins, last, at_mark, halved = torch.zeros_like(v), 0, best_v.clone(), torch.zeros_like(v, dtype=torch.bool)
        for k in range(1, steps + 1):
            v, g = value_grad(x)
            better = v > best_v
            wins += better.to(wins.dtype)
            best_v, best_x = torch.where(better, v, best_v), torch.where(better.view(view), x, best_x)
            if k == steps:
                break
            if k in marks:
                halve = (wins < rho * (k - last)) | (~halved & (best_v <= at_mark))
                eta = torch.where(halve.view(view), eta / 2, eta)
                x = torch.where(halve.view(view), best_x, x)
                halved, wins, last, at_mark = halve, torch.zeros_like(v), k, best_v.clone()
                if halve.any():
                    v, g = value_grad(x)
            z = (x + eta * g.sign()).clamp(lo, hi)
            x, x_prev = (x + momentum * (z - x) + (1 - momentum) * (x - x_prev)).clamp(lo, hi), x
    i = best_v.argmax(0)
    b = torch.arange(x0.shape[0], device=x0.device)
    return best_x[i, b], best_v[i, b]
