"""The reproduction's own fidelity across datasets: the share of the paper's cells of Tables 1 and 2
reproduced within tolerance per dataset, reading and table (by the paper's methods and by ours), and
one "ours against the paper's" scatter per table. The cells come from ``fkd.book.units_report.cells``."""
from __future__ import annotations

from pathlib import Path

from fkd.book.tolerance import TOLERANCE
from fkd.book.units_report import COLOURS, cells, shares
from fkd.config import Dataset, Domain, parse
from fkd.paths import RESULTS


def all_shares(datasets=(Dataset.MNIST, Dataset.FASHION_MNIST, Dataset.CIFAR10), results: Path | str = RESULTS,
               methods: str = "paper", domain: Domain | str = Domain.CLAMPED):
    """``shares`` of every dataset with a published run, one table: (dataset, units, table) ->
    cells, within, share (%)."""
    import pandas as pd

    frames = {}
    for d in datasets:
        try:
            frames[parse(Dataset, d).value] = shares(d, results, methods, domain)
        except FileNotFoundError:
            continue
    return pd.concat(frames, names=["dataset"])


def plot_scatter(datasets=(Dataset.MNIST, Dataset.FASHION_MNIST, Dataset.CIFAR10), results: Path | str = RESULTS,
                 methods: str = "paper"):
    """Ours against the paper's, one point per cell, one panel per table: Table 1 (accuracy, %) and
    Table 2 (mean EMPLB and FAITHUB by ``methods``, see ``cells``). The diagonal is an exact reproduction; the band is
    the tolerance. Colour: the reading; marker: the dataset."""
    import matplotlib.pyplot as plt
    import pandas as pd

    frames = []
    for d in datasets:
        try:
            frames.append(cells(d, results, methods).assign(dataset=parse(Dataset, d).value))
        except FileNotFoundError:
            continue
    c = pd.concat(frames, ignore_index=True)
    colours = COLOURS
    markers = {"mnist": "o", "fashion-mnist": "s", "cifar10": "^"}
    from fkd.book.present import WIDTH, legible

    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 5.6), layout="constrained")
    for ax, (table, lim, label) in zip(axes, [("table1", (0, 100), "Table 1: accuracy and agreement (%)"),
                                               ("table2", (0, 1), f"Table 2: mean EMPLB and FAITHUB ({methods} methods)")]):
        tol = TOLERANCE[table]
        ax.fill_between(lim, [lim[0] - tol, lim[1] - tol], [lim[0] + tol, lim[1] + tol], color="0.9", lw=0)
        ax.plot(lim, lim, color="0.4", lw=0.8)
        for (units, dataset), g in c[c.table == table].groupby(["units", "dataset"]):
            share = 100 * g.within.mean()
            ax.scatter(g.paper, g.ours, s=14, alpha=0.75, color=colours[units], marker=markers[dataset],
                       label=f"{dataset}, {units} ({share:.0f} % within)")
        ax.set(xlim=lim, ylim=lim, xlabel="paper", ylabel="ours")
        ax.set_title(label)
        ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.15))  # below the panel: no point hidden
    return legible(fig)


def fidelity(datasets=(Dataset.MNIST, Dataset.FASHION_MNIST, Dataset.CIFAR10), results: Path | str = RESULTS):
    """The reproduction's own fidelity: ``all_shares`` by the paper's methods (FAITHUB over the ball
    intersected with [0, 1], and over the plain ball where that run is published) beside ours (same
    cells of Table 1; Table 2's EMPLB and FAITHUB by each side's methods)."""
    import pandas as pd

    out = {"paper's methods": all_shares(datasets, results, "paper"),
           "paper's methods, plain ball": all_shares(datasets, results, "paper", "plain"),
           "our methods": all_shares(datasets, results, "ours")}
    return pd.concat(out, axis=1)
