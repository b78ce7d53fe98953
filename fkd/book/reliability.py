"""Relative calibration on the page: reliability diagrams (teacher and student accuracy per
confidence bin) of a calibration run, and the chapter's own calibration run."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from fkd.book.plots import student_label
from fkd.book.present import WIDTH, legible
from fkd.book.related import ORDER, RelatedRuns, ece_overview, label
from fkd.config import Dataset, Profile, eps_label, parse
from fkd.experiments.calibration import N_BINS, CalibrationConfig, calibration_config, load, reliability_table, run
from fkd.losses import RELATED_STUDENTS
from fkd.paths import kind_dirs, under_root


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
        where = "clean points" if point == "clean" else f"EMPLB points, eps {eps_label(cfg.eps)}"
        fig = plot_reliability(rel, cfg.students, point, f"{cfg.dataset.value}: reliability at the {where}")
        fig.savefig(run_dir / f"reliability_{point}.png", dpi=110)
        plt.close(fig)
    return run_dir


def reliability_figure(runs: RelatedRuns, point: str = "emplb"):
    """Reliability diagrams of every student (teacher beside it) at ``point`` (clean or emplb) of a
    dataset's published calibration run (``fkd.book.related.related_runs``)."""
    rel = reliability_table(runs.calibration)
    students = sorted(rel.student.unique(), key=lambda s: ORDER.index(label(s)))
    eps = runs.calibration[runs.calibration.point == point].eps.iloc[0]
    where = "clean points" if point == "clean" else f"EMPLB points, eps {eps_label(float(eps))}"
    return plot_reliability(rel, students, point, f"{runs.dataset.value}: reliability at the {where}")


def live_calibration(profile: str = "quick", dataset: Dataset | str = Dataset.MNIST, *, n_images: int | None = None,
                     seed: int = 0, out: Path | str = "_build/reproduce",
                     students=("fd", *RELATED_STUDENTS)):
    """The chapter's own calibration run (quick: 20 images; full: the subset's 1000) into
    ``out/<dataset>/calibration`` (a finished run of the same config is reused).

    Returns:
        (ECE table as ``ece_overview`` gives it, the run directory).
    """
    d, p = parse(Dataset, dataset), parse(Profile, profile)
    n = n_images or (20 if p is Profile.QUICK else 1000)
    run_dir = run(calibration_config(d, students, n_images=n, seed=seed), kind_dirs(under_root(out) / d.value).calibration)
    runs = RelatedRuns(d, None, None, load(run_dir), None, [])
    return ece_overview(runs), run_dir
