"""Reliability diagrams of a calibration run: teacher and student accuracy per confidence bin."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from fkd.book.plots import student_label
from fkd.book.present import WIDTH, legible
from fkd.config import eps_label
from fkd.experiments.calibration import N_BINS, CalibrationConfig, load, reliability_table


def plot_reliability(rel, students: Iterable[str], point: str = "clean", title: str = ""):
    """Reliability diagrams, one panel per student: teacher and student accuracy per confidence bin
    against the diagonal (perfect calibration); bar width is the bin, bar height its accuracy.

    Args:
        rel: ``reliability_table`` rows of one dataset.
    Returns:
        matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    students = list(students)
    cols = min(4, len(students))
    rows = -(-len(students) // cols)

    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, 2.3 * rows + 1.0), sharey=True, squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(students):]:
        ax.set_visible(False)
    for ax, st in zip(axes.flat, students):
        for model, colour, off in (("teacher", "tab:gray", 0.0), ("student", "tab:blue", 0.5)):
            r = rel[(rel.student == st) & (rel.point == point) & (rel.model == model) & (rel["count"] > 0)]
            w = (r.hi - r.lo) / 2
            ax.bar(r.lo + off * (r.hi - r.lo), r.accuracy, width=w, align="edge", color=colour, alpha=0.8, label=model)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", xticks=[0, 0.5, 1])
        ax.set_title(student_label(st, students))
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=2, frameon=False)
    fig.suptitle(title or f"reliability at the {point} points")
    return legible(fig)


def write_figures(run_dir: Path | str, cfg: CalibrationConfig, n_bins: int = N_BINS) -> Path:
    """Draw ``reliability_<point>.png`` (clean and EMPLB points) of calibration run ``run_dir`` of
    ``cfg`` with ``n_bins`` bins. Returns ``run_dir``."""
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    rel = reliability_table(load(run_dir), n_bins)
    for point in ("clean", "emplb"):
        label = "clean points" if point == "clean" else f"EMPLB points, eps {eps_label(cfg.eps)}"
        fig = plot_reliability(rel, cfg.students, point, f"{cfg.dataset.value}: reliability at the {label}")
        fig.savefig(run_dir / f"reliability_{point}.png", dpi=110)
        plt.close(fig)
    return run_dir
