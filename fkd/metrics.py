"""Accuracy metrics: clean accuracy and PGD robust accuracy (section 6)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .attacks import CrossEntropy, pgd
from .data import to_float


@torch.inference_mode()
def clean_accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy in percent of an eval-mode ``model`` on images x (N, C, H, W), labels y (N,)."""
    dev = next(model.parameters()).device
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        correct += (model(to_float(x[i:i + batch_size]).to(dev)).argmax(1).cpu() == y[i:i + batch_size]).sum().item()
    return 100.0 * correct / x.shape[0]


def robust_accuracy(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, steps: int = 50,
                    step_size: float | None = None, restarts: int = 5, generator: torch.Generator | None = None,
                    batch_size: int = 500) -> float:
    """Percent of images still correctly classified at the CE-maximising PGD point (section 6).

    Default attack: PGD-50, step 2.5 * eps / 50, 5 random restarts. An image counts as robust only
    if it is correct at the clean point and at the best attack point found.
    """
    step_size = 2.5 * eps / max(steps, 1) if step_size is None else step_size
    dev = next(model.parameters()).device
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        xb, yb = to_float(x[i:i + batch_size]).to(dev), y[i:i + batch_size].to(dev)
        with torch.inference_mode():
            ok = model(xb).argmax(1) == yb
        x_adv, _ = pgd(CrossEntropy(model, yb), xb, eps, steps=steps, step_size=step_size,
                       restarts=restarts, generator=generator)
        with torch.inference_mode():
            ok &= model(x_adv).argmax(1) == yb
        correct += ok.sum().item()
    return 100.0 * correct / x.shape[0]
