"""The confidence gap ||f_t(x) - f_s(x)||_inf over a 2-D slice of the eps-ball (Figure 1).

The slice through x0 is spanned by two directions in pixel space: ``d1`` points at the EMPLB point
(the worst point PGD finds, so the slice contains it at (1, 0)) and ``d2`` is a random sign vector.
The point at slice coordinates (a, b) in [-1, 1]^2 is x0 + eps (a d1 + b d2), projected onto
B_eps(x0) intersected with [0, 1] (clipping coordinate-wise is that projection), so every point
of the slice is a point of the ball the bounds are about.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from fkd.attacks import forward
from fkd.empirical_bound import emplb
from fkd.metrics import PAPER_ATTACK, Attack
from fkd.units import Radius, as_tensor, pixel_label, positive


class Slice(NamedTuple):
    """A gap map of one image. ``coords`` (n,) slice coordinates in [-1, 1]; ``gap`` (n, n)
    ||f_t - f_s||_inf at (coords[i], coords[j]) = (a, b) (row i: d1, column j: d2); ``teacher_top``
    and ``student_top`` (n, n) their top-1 classes; ``emplb`` the attack's value at (1, 0)."""
    coords: Tensor
    gap: Tensor
    teacher_top: Tensor
    student_top: Tensor
    teacher_conf: Tensor
    student_conf: Tensor
    emplb: float

    @property
    def disagree(self) -> Tensor:
        """(n, n) bool: teacher and student predict different classes."""
        return self.teacher_top != self.student_top

    def worst(self, where: Tensor | None = None) -> tuple[float, float] | None:
        """Slice coordinates (a, b) of the largest gap (among ``where`` if given; None if empty)."""
        g = self.gap if where is None else self.gap.masked_fill(~where, -1.0)
        if where is not None and not where.any():
            return None
        i, j = divmod(int(g.argmax()), g.shape[1])
        return float(self.coords[i]), float(self.coords[j])


def directions(teacher: nn.Module, student: nn.Module, x0: Tensor, eps: Radius, generator: torch.Generator,
               attack: Attack = PAPER_ATTACK) -> tuple[Tensor, Tensor, float]:
    """The slice directions of one image: d1 = (EMPLB point - x0) / eps, d2 random signs.

    Args:
        x0: one image (C, H, W) in [0, 1]; eps: the pixel radius (float or (C, 1, 1)), > 0.
    Returns:
        d1, d2 (C, H, W) with entries in [-1, 1], and the EMPLB value (at x0 + eps d1).
    """
    if not positive(eps):
        raise ValueError(f"eps must be > 0 for a slice of the ball, got {pixel_label(eps)}")
    e = emplb(teacher, student, x0[None], eps, attack, "both", generator)
    d1 = (e.point[0] - x0) / eps
    d2 = torch.randint(0, 2, x0.shape, generator=generator).to(x0.dtype) * 2 - 1
    return d1, d2, float(e.value[0])


def slice_points(x0: Tensor, eps: Radius, d1: Tensor, d2: Tensor, coords: Tensor) -> Tensor:
    """The points x0 + eps (a d1 + b d2) for a, b in ``coords`` (n,), projected onto B_eps(x0)
    cap [0, 1]: (n * n, C, H, W), a-major (row i = coords[i] along d1)."""
    a, b = torch.meshgrid(coords, coords, indexing="ij")
    r = as_tensor(eps, x0)
    pts = x0 + r * (a.reshape(-1, 1, 1, 1) * d1 + b.reshape(-1, 1, 1, 1) * d2)
    return torch.minimum(torch.maximum(pts, (x0 - r).clamp(min=0.0)), (x0 + r).clamp(max=1.0))


@torch.no_grad()
def gap_slice(teacher: nn.Module, student: nn.Module, x0: Tensor, eps: Radius, d1: Tensor, d2: Tensor,
              n: int = 41, emplb_value: float = float("nan")) -> Slice:
    """||f_t - f_s||_inf and both networks' top-1 classes on an n x n grid of the slice.

    Args:
        x0: one image (C, H, W) in [0, 1]; d1, d2: directions (C, H, W) (``directions``).
        n: grid points per axis (odd n puts x0 at the centre).
    Returns:
        Slice with (n, n) maps.
    """
    coords = torch.linspace(-1.0, 1.0, n)
    pts = slice_points(x0, eps, d1, d2, coords)
    pt, ps = forward(teacher, pts).softmax(-1), forward(student, pts).softmax(-1)
    tc, tt = pt.max(-1)
    sc, st = ps.max(-1)
    gap = (pt - ps).abs().amax(-1)
    shape = (n, n)
    return Slice(coords, gap.reshape(shape), tt.reshape(shape), st.reshape(shape), tc.reshape(shape),
                 sc.reshape(shape), emplb_value)
