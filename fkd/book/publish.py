"""Publish a run directory: its rows, run records and the tables and figures they feed.

The experiments write rows into a run directory; these functions copy a finished one to where the
book reads it (``results/empirical/<dataset>``, ``results/certified/<dataset>``) and render its
tables and figures there.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from fkd.book.plots import plot_bound_histograms
from fkd.book.tables import emplb_table, fidelity_table, strategy_table, table1, table2
from fkd.experiments.evaluate import collect

RECORDS = ("config.json", "run.json", "runs.jsonl")


def export_empirical(out: Path | str, dest: Path | str) -> Path:
    """Publish a run directory: ``empirical.csv.gz`` (all rows), ``config.json``, ``run.json`` (the
    last invocation), ``runs.jsonl`` (every invocation) and the
    tables it feeds as small CSVs (``table1.csv``, ``emplb.csv``, ``emplb_strategies.csv``,
    ``fidelity.csv``). Returns ``dest``."""
    out, dest = Path(out), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    df = collect(out)
    df.to_csv(dest / "empirical.csv.gz", index=False)
    for name in RECORDS:
        if (out / name).exists():
            shutil.copyfile(out / name, dest / name)
    dataset = df.dataset.iloc[0]
    t1 = table1(df, dataset)
    t1.columns = [" ".join(filter(None, c)) for c in t1.columns]  # "robust RT ours", ...
    t1.to_csv(dest / "table1.csv")
    if (df.metric == "emplb").any() and (df.eps > 0).any():
        emplb_table(df, dataset).to_csv(dest / "emplb.csv", index=False)
        strategy_table(df).to_csv(dest / "emplb_strategies.csv", index=False)
    if (df.metric == "kl").any():
        fidelity_table(df).to_csv(dest / "fidelity.csv", index=False)
    return dest


def export_certified(out: Path | str, dest: Path | str) -> Path:
    """Publish a run (or merged) directory: ``verify.csv.gz`` (all rows), the run records, Table 2
    per FAITHUB mode (``table2_<mode>.csv``) and Figures 2/3 (``histograms_<mode>.png``). Returns ``dest``."""
    import matplotlib.pyplot as plt
    import pandas as pd

    out, dest = Path(out), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    df = pd.read_csv(out / "verify.csv")
    df.to_csv(dest / "verify.csv.gz", index=False)
    for name in RECORDS:
        if (out / name).exists():
            shutil.copyfile(out / name, dest / name)
    for mode in (c.removeprefix("faithub_") for c in df.columns if c.startswith("faithub_")):
        table2(df, df.dataset.iloc[0], mode).to_csv(dest / f"table2_{mode}.csv", index=False)
        fig = plot_bound_histograms(df, mode)
        fig.savefig(dest / f"histograms_{mode}.png", dpi=110)
        plt.close(fig)
    return dest
