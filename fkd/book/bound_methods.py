"""Which bound method reproduces the paper's FAITHUB: paper-mode FAITHUB (eqs. 9 to 11 from each
network's per-logit bounds) computed with every bound method, over the ball intersected with [0, 1]
and over the plain ball, on the same images, beside the paper's Table 2.

The paper names its method only loosely (section 4.2: MILP for small networks, an LP relaxation
otherwise). Per-logit bounds nest: interval contains CROWN contains LP over CROWN's intermediate
bounds contains LP with every layer tightened by LP contains the exact (MILP) range, so a paper value
above ours by every tight method points at a looser method, a larger domain or other models. The runs:
the published certified runs (LP, every layer tightened; ``results/certified/<dataset>`` and
``results/certified-plain/<dataset>``) and the method sweep's runs
(``fkd.paths.methods_base``: one run directory per method and domain).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from fkd.book.tolerance import within
from fkd.bounds.modes import BoundMethod, Tightening, default_tightening
from fkd.config import Dataset, Domain, eps_label, parse
from fkd.paths import RESULTS, methods_base, published_runs


class Setting(NamedTuple):
    """One way of bounding each logit: a bound method and its per-layer tightening."""
    method: BoundMethod
    tightening: Tightening

    @property
    def label(self) -> str:
        if self.method is BoundMethod.LP:
            return "LP, layers tightened by LP" if self.tightening is Tightening.LP else "LP on CROWN's bounds"
        return {BoundMethod.INTERVAL: "interval", BoundMethod.CROWN: "CROWN"}.get(
            self.method, f"{self.method.value}, tightening {self.tightening.value}")


#: loosest to tightest: the order the tables and the figure list the settings in
ORDER = [Setting(BoundMethod.INTERVAL, Tightening.NONE), Setting(BoundMethod.CROWN, Tightening.NONE),
         Setting(BoundMethod.LP, Tightening.NONE), Setting(BoundMethod.LP, Tightening.LP),
         Setting(BoundMethod.MILP, Tightening.LP)]
#: one colour per setting in the figure (colour-blind safe, loosest grey)
COLOURS = dict(zip([s.label for s in ORDER], ["#999999", "#E69F00", "#56B4E9", "#009E73", "#D55E00"]))


def _setting(run: Path) -> Setting:
    """The method and tightening a run directory's ``config.json`` records (None: the method's default)."""
    cfg = json.loads((run / "config.json").read_text())["config"]
    method = parse(BoundMethod, cfg["method"])
    tightening = default_tightening(method) if cfg.get("tightening") is None else parse(Tightening, cfg["tightening"])
    return Setting(method, tightening)


def method_runs(dataset: Dataset | str, results: Path | str = RESULTS) -> dict[tuple[Setting, Domain], Path]:
    """Every run of ``dataset`` with rows: {(setting, domain): run directory}, the sweep's and the
    published certified runs (clamped and plain ball)."""
    import pandas as pd

    d = parse(Dataset, dataset)
    pub = published_runs(d.value, results)
    candidates = [pub.certified, pub.certified_plain]
    base = methods_base(d.value, results)
    if base.is_dir():
        candidates += sorted(p for p in base.iterdir() if p.is_dir())
    out = {}
    for run in candidates:
        if not (run / "verify.csv.gz").exists() or not (run / "config.json").exists():
            continue
        domain = parse(Domain, pd.read_csv(run / "verify.csv.gz", usecols=["domain"]).domain.iloc[0])
        out.setdefault((_setting(run), domain), run)
    return out


def method_table(dataset: Dataset | str, results: Path | str = RESULTS):
    """Mean paper-mode FAITHUB per (eps, student) under every setting and domain, on the images all
    the runs cover, beside the paper's.

    Returns:
        DataFrame indexed by (eps, student) with columns (setting label, domain) loosest first, then
        ("paper", ""); ``.attrs["n_images"]`` the number of images.
    """
    import pandas as pd

    from fkd.book.paper_numbers import ORDER as COLUMNS, _paper_column, paper_faithub

    d = parse(Dataset, dataset)
    runs = method_runs(d, results)
    if len(runs) < 2:
        raise FileNotFoundError(f"fewer than two bound settings have rows for {d.value}. Fix: run the method sweep "
                                f"(results/certified-methods/README.md) or publish the certified runs")
    rows = {k: pd.read_csv(run / "verify.csv.gz", usecols=["student", "eps", "image", "faithub_paper"])
            for k, run in runs.items()}
    keys = ["student", "eps", "image"]
    common = None
    for r in rows.values():
        common = r[keys] if common is None else common.merge(r[keys])
    keyorder = sorted(rows, key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else len(ORDER), k[1].value))
    cols = {(k[0].label, k[1].value): rows[k].merge(common).groupby(["eps", "student"]).faithub_paper.mean()
            for k in keyorder}
    out = pd.DataFrame(cols)
    out[("paper", "")] = paper_faithub(d, out.index)
    out = out[out[("paper", "")].notna()]
    out = out.loc[sorted(out.index, key=lambda k: (k[0], COLUMNS.index(_paper_column(d, k[1]))))]
    out.index = pd.MultiIndex.from_tuples([(eps_label(e), _paper_column(d, s)) for e, s in out.index],
                                          names=["eps", "student"])
    out.attrs["n_images"] = int(common.image.nunique())
    return out.round(3)


def method_summary(dataset: Dataset | str, results: Path | str = RESULTS):
    """Per setting and domain: how many of the paper's FAITHUB cells it reproduces
    (``fkd.book.tolerance.within``, Table 2's rule) and its mean difference from the paper's.

    Returns:
        DataFrame indexed by (bound method, domain): images, cells, within, mean diff (ours - paper's),
        mean |diff|.
    """
    import pandas as pd

    t = method_table(dataset, results)
    paper = t[("paper", "")]
    out = []
    for col in t.columns.drop(("paper", "")):
        diff = t[col] - paper
        out.append({"bound method": col[0], "domain": col[1], "images": t.attrs["n_images"], "cells": len(diff),
                    "within": int(within(diff, "table2").sum()), "mean diff": diff.mean(), "mean |diff|": diff.abs().mean()})
    return pd.DataFrame(out).set_index(["bound method", "domain"]).round(3)


def method_findings(results: Path | str = RESULTS) -> str:
    """One sentence per dataset with at least two settings: which setting reproduces the most of the
    paper's FAITHUB cells, and on which side of the paper's the tightest one lies."""
    parts = []
    for d in Dataset:
        try:
            s = method_summary(d, results)
        except FileNotFoundError:
            continue
        best = s.sort_values(["within", "mean |diff|"], ascending=[False, True]).index[0]
        labels = list(dict.fromkeys(s.index.get_level_values(0)))  # loosest to tightest
        tightest = (labels[-1], Domain.CLAMPED.value) if (labels[-1], Domain.CLAMPED.value) in s.index else s.index[-1]
        side = "below" if s.loc[tightest, "mean diff"] < 0 else "above"
        parts.append(f"On {d.value} ({int(s.images.iloc[0])} images), {best[0]} over the {best[1]} ball reproduces the most "
                     f"of the paper's FAITHUB cells ({int(s.loc[best, 'within'])} of {int(s.loc[best, 'cells'])}); "
                     f"the tightest method run, {tightest[0]} over the {tightest[1]} ball, lies {side} the paper's by "
                     f"{abs(s.loc[tightest, 'mean diff']):.3f} in the mean.")
    return " ".join(parts) or "No method sweep is published yet."


def plot_methods(dataset: Dataset | str, results: Path | str = RESULTS):
    """Mean paper-mode FAITHUB against eps, one panel per student: one colour per bound method (solid:
    the clamped ball, dotted: the plain ball), the paper's in black, dashed.

    Returns:
        a matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from fkd.book.present import WIDTH, legible

    d = parse(Dataset, dataset)
    t = method_table(d, results)
    students = list(dict.fromkeys(t.index.get_level_values("student")))
    eps = list(dict.fromkeys(t.index.get_level_values("eps")))
    settings = list(dict.fromkeys(c[0] for c in t.columns if c[0] != "paper"))
    colours = {label: COLOURS.get(label, "#CC79A7") for label in settings}
    fig, axes = plt.subplots(1, len(students), figsize=(WIDTH, 3.4), sharey=True, squeeze=False, layout="constrained")
    for ax, st in zip(axes[0], students):
        sub = t.xs(st, level="student").reindex(eps)
        for (label, domain) in t.columns:
            if label == "paper":
                ax.plot(range(len(eps)), sub[("paper", "")], "ks--", ms=3, lw=1.5)
            else:
                ax.plot(range(len(eps)), sub[(label, domain)], "o-" if domain == Domain.CLAMPED.value else "o:",
                        color=colours[label], ms=3)
        ax.set_xticks(range(len(eps)), eps, rotation=45)
        ax.set(title=st, xlabel="eps", ylim=(0, 1.05))
    axes[0][0].set_ylabel("mean FAITHUB (paper mode)")
    handles = [Line2D([], [], color=colours[s], lw=2, label=s) for s in settings]
    handles += [Line2D([], [], color="#444444", lw=1, ls="-", label="solid: clamped ball"),
                Line2D([], [], color="#444444", lw=1, ls=":", label="dotted: plain ball"),
                Line2D([], [], color="k", ls="--", marker="s", ms=3, label="paper")]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False)
    fig.suptitle(f"{d.value}: the paper's FAITHUB beside ours by each bound method ({t.attrs['n_images']} images)")
    return legible(fig)
