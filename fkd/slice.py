"""The confidence gap ||f_t(x) - f_s(x)||_inf over a 2-D slice of the eps-ball (Figure 1).

The slice through x0 is spanned by two directions in pixel space: ``d1`` points at the EMPLB point
(the worst point PGD finds, so the slice contains it at (1, 0)) and ``d2`` is a random sign vector.
The point at slice coordinates (a, b) in [-1, 1]^2 is x0 + eps (a d1 + b d2), projected onto
B_eps(x0) intersected with [0, 1] (clipping coordinate-wise is that projection), so every point
of the slice is a point of the ball the bounds are about.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .attacks import forward
from .config import EpsUnits
from .metrics import PAPER_ATTACK, Attack, emplb
from .runner import torch_threads
from .units import Radius, as_tensor, pixel_label, positive, radius, resolve_units


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


@torch_threads(1)
def figure_one(dataset: str = "mnist", eps: float = 0.1, students=("sd", "fd"), digit: int | None = 3,
               position: int | None = None, grid: int = 81, seed: int = 0, attack: Attack = PAPER_ATTACK,
               units: EpsUnits | str | None = None):
    """Figure 1 from the zoo: the gap slices of one image for each student, side by side.

    Args:
        eps, units: the nominal radius and its reading (None: the dataset's; its zoo is used).
        digit: use the first image of the fixed subset with this label (the paper's "3"), unless
            ``position`` (index into the subset) is given.
    Returns:
        (matplotlib Figure, {student: Slice}, test-set index of the image).
    """
    from .data import eval_subset
    from .plots import plot_gap_slices
    from .zoo import load_model

    x, y, idx = eval_subset(dataset)
    if position is None:
        hits = (y == digit).nonzero().flatten() if digit is not None else torch.tensor([0])
        if len(hits) == 0:
            raise ValueError(f"no image with label {digit} in the {dataset} subset")
        position = int(hits[0])
    units = resolve_units(units, dataset)
    r = radius(eps, units, dataset)
    teacher = load_model(dataset, "rt", units=units).eval()
    slices = {}
    for s in students:
        model = load_model(dataset, s, units=units).eval()
        d1, d2, value = directions(teacher, model, x[position], r, torch.Generator().manual_seed(seed), attack)
        slices[s.upper()] = gap_slice(teacher, model, x[position], r, d1, d2, grid, value)
    title = (f"{dataset} test image {idx[position]} (label {int(y[position])}): ||f_t - f_s||_inf over a slice "
             f"of the eps = {eps:g} ball ({units.value} units)")
    return plot_gap_slices(slices, eps, title), slices, idx[position]


def slice_summary(slices: dict):
    """Per student: the largest gap on its slice and the share of the slice where teacher and
    student predict different classes (a DataFrame indexed by student)."""
    import pandas as pd

    return pd.DataFrame({"largest gap on the slice": {n: float(s.gap.max()) for n, s in slices.items()},
                         "share of the slice where they disagree": {n: float(s.disagree.float().mean())
                                                                    for n, s in slices.items()}}).rename_axis("student")


def publish_figure_one(dest, dataset: str = "mnist", eps: float = 0.1, students=("sd", "fd"), digit: int = 3,
                       grid: int = 101, seed: int = 0, units: EpsUnits | str | None = None) -> Path:
    """Write Figure 1 (``figure1.png``) with its slice statistics and run record (``figure1.json``:
    config, seed, test image, largest gap and disagreeing share per student, packages, wall time)."""
    import json
    import time

    import matplotlib.pyplot as plt

    from .provenance import record

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    units = resolve_units(units, dataset)
    fig, slices, test_index = figure_one(dataset, eps, tuple(students), digit=digit, grid=grid, seed=seed, units=units)
    fig.savefig(dest / "figure1.png", dpi=110)
    plt.close(fig)
    stats = {name: {"largest_gap": round(float(s.gap.max()), 4), "disagree_share": round(float(s.disagree.float().mean()), 4)}
             for name, s in slices.items()}
    run = {"config": {"dataset": dataset, "eps": eps, "units": units.value,
                      "eps_pixel": pixel_label(radius(eps, units, dataset)), "students": list(students),
                      "digit": digit, "grid": grid},
           "seed": seed, "test_index": int(test_index), "slices": stats,
           "wall_time_s": round(time.perf_counter() - t0, 1), **record()}
    (dest / "figure1.json").write_text(json.dumps(run, indent=1) + "\n")
    return dest
