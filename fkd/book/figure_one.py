"""Figure 1: the gap slices of one image for each student, drawn and published with its record."""
from __future__ import annotations

from pathlib import Path

import torch

from fkd.config import EpsUnits
from fkd.experiments.runner import torch_threads
from fkd.experiments.slice import directions, gap_slice
from fkd.metrics import PAPER_ATTACK, Attack
from fkd.units import pixel_label, radius, resolve_units


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
    from fkd.data import eval_subset
    from fkd.book.plots import plot_gap_slices
    from fkd.zoo import load_model

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

    from fkd.provenance import record

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
