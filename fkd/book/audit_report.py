"""The audit's report: one self-contained, offline HTML page read from ``audit.csv`` and ``run.json``.

``summary(rows)`` gives the table per eps, ``reference(dataset, units, eps)`` the shipped zoo's FD
student at the same radii (its published certified run), ``verdict`` the paragraph a reader needs
first, and ``write_report(out)`` the page: verdict, table beside the reference, histograms of EMPLB
and FAITHUB per eps and the gap slice (Figure 1's map) of the image with the largest FAITHUB.
Figures are embedded as base64 PNG; the page loads nothing (no script, no font, no stylesheet).
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from fkd.config import Dataset, EpsUnits, parse

#: the shipped student a user's pair is set beside: the paper's faithful distillation (FD)
REFERENCE_STUDENT = "fd"
STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}"
         "table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;"
         "text-align:right}th{background:#f3f3f3}caption{caption-side:bottom;text-align:left;font-size:.9em;"
         "color:#555;padding-top:.4em}figure{margin:1.5em 0}figcaption{font-size:.9em;color:#555}"
         "img{max-width:100%}.verdict{background:#f6f8fa;border-left:4px solid #36c;padding:.6em 1em}"
         "code{font-size:.9em}")


def example(profile: str = "quick", out: Path | str = "_build/reproduce", seed: int = 0):
    """The chapter's pair as a user would bring it: the pixel-reading zoo's MNIST teacher and FD
    student exported to ONNX files, and the audit of them (quick: 10 images at eps 0.05 and 0.1;
    full: the first 100 images over the paper's grid), both in pixel units.

    Returns:
        (AuditConfig, run directory ``out/audit/mnist-pixel-fd``).
    """
    from fkd.experiments.audit import AuditConfig
    from fkd.paths import audit_example
    from fkd.onnx_import import export
    from fkd.zoo import load_model

    run = audit_example(out)
    files = {name: export(load_model("mnist", name, units="pixel"), run / "files" / f"{name}.onnx", (1, 28, 28))
             for name in ("rt", "fd")}
    quick = profile == "quick"
    cfg = AuditConfig(str(files["rt"]), str(files["fd"]), dataset="mnist", units="pixel", seed=seed,
                      eps=(0.05, 0.1) if quick else (), n_images=10 if quick else 100)
    return cfg, run


def load(out: Path | str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The audit's rows (numeric columns as numbers) and its run record."""
    out = Path(out)
    rows = pd.read_csv(out / "audit.csv")
    return rows, json.loads((out / "run.json").read_text())


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per eps: images, accuracies, agreement, mean and max EMPLB and FAITHUB, seconds.

    EMPLB is found (an attack's point, a lower bound on delta*); FAITHUB is certified (an upper bound).
    """
    def per_eps(g: pd.DataFrame) -> pd.Series:
        s = {"images": len(g)}
        if g["teacher_correct"].notna().any():
            s["teacher acc. %"] = 100 * g["teacher_correct"].mean()
            s["student acc. %"] = 100 * g["student_correct"].mean()
        s["empirical agreement %"] = 100 * g["empirical_agreement"].mean()
        if g["agreement"].notna().any():
            s["certified agreement %"] = 100 * (g["agreement"] == "certified").mean()
            s["counterexamples"] = int((g["agreement"] == "counterexample").sum())
        s.update({"mean EMPLB": g["emplb"].mean(), "max EMPLB": g["emplb"].max(),
                  "mean FAITHUB": g["faithub"].mean(), "max FAITHUB": g["faithub"].max(),
                  "median s": g["seconds"].median()})
        return pd.Series(s, dtype=object)

    table = rows.groupby(["eps", "units", "eps_pixel"], sort=True)[list(rows.columns)].apply(per_eps)
    return table.reset_index()


def reference(dataset: str | None, units: str, eps) -> pd.DataFrame | None:
    """Mean EMPLB and FAITHUB (tight mode) of the shipped zoo's FD student at the audited eps, from its
    published certified run of the same reading; None where no such run is published."""
    if not dataset:
        return None
    from fkd.book.units_report import run_dirs

    d = parse(Dataset, dataset)
    path = run_dirs(d, parse(EpsUnits, units))[1]
    csv = next((path / n for n in ("verify.csv.gz", "verify.csv") if (path / n).exists()), None)
    if csv is None:
        return None
    pub = pd.read_csv(csv)
    pub = pub[pub["student"].str.split("-a").str[0] == REFERENCE_STUDENT]
    if d is Dataset.CIFAR10:
        pub = pub[pub["student"] == pub["student"].min()]  # one alpha: the first FD student listed
    pub = pub[pub["eps"].round(6).isin([round(float(e), 6) for e in eps])]
    if pub.empty:
        return None
    ref = pub.groupby("eps").agg(images=("image", "size"), emplb=("emplb", "mean"), faithub=("faithub_tight", "mean"),
                                 student=("student", "first"), method=("bound_method", "first"))
    return ref.reset_index().rename(columns={"emplb": "zoo FD mean EMPLB", "faithub": "zoo FD mean FAITHUB",
                                             "images": "zoo FD images", "method": "zoo FD bound"})


def report_tables(rows: pd.DataFrame, record: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """The per-eps summary split to fit a page: (accuracy and agreement, bounds beside the zoo's FD
    reference, the reference itself or None)."""
    cfg = record["config"]
    table = summary(rows).rename(columns={"eps_pixel": "pixel radius"}).drop(columns=["units"])
    ref = reference(cfg.get("dataset"), cfg["units"], table["eps"])
    bounds = ["eps", "mean EMPLB", "max EMPLB", "mean FAITHUB", "max FAITHUB", "median s"]
    accuracy = table[[c for c in table.columns if c not in bounds[1:]]]
    shown = table[bounds] if ref is None else table[bounds].merge(
        ref.drop(columns=["student", "zoo FD bound"]), on="eps", how="left")
    return accuracy, shown, ref


def verdict(rows: pd.DataFrame, record: dict[str, Any]) -> str:
    """The paragraph a reader needs first: how far the student's confidences can drift, certified and found."""
    cfg = record["config"]
    n = rows["image"].nunique()
    parts = []
    for eps, g in rows.groupby("eps", sort=True):
        worst = g.loc[g["faithub"].idxmax()]
        parts.append(f"{eps:g}: {g['faithub'].mean():.3f} certified, {g['emplb'].mean():.3f} found "
                     f"(worst image {int(worst['image'])}: {worst['faithub']:.3f} certified)")
    text = (f"Over {n} images, no input of the eps-ball moves any class confidence of the student further from "
            f"the teacher's than FAITHUB (certified), and the attack found moves as large as EMPLB; on the average "
            f"image, per eps ({cfg['units']} units): " + "; ".join(parts) + ". ")
    if rows["agreement"].notna().any():
        top = rows[rows["eps"] == rows["eps"].max()]
        text += (f"At the largest eps the top-1 classes provably agree on {int((top['agreement'] == 'certified').sum())} "
                 f"of {len(top)} images ({int((top['agreement'] == 'counterexample').sum())} with a counterexample). ")
    ratio = (rows["faithub"] / rows["emplb"].clip(lower=1e-12)).median()
    return text + (f"On the median row the certified bound is {ratio:.1f} times the found move: the largest move "
                   "delta* lies between them.")


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def histograms(rows: pd.DataFrame):
    """EMPLB (found) and FAITHUB (certified) per image, one panel per eps (like the paper's Figures 2-3)."""
    import matplotlib.pyplot as plt

    eps = sorted(rows["eps"].unique())
    fig, axes = plt.subplots(1, len(eps), figsize=(3.2 * len(eps), 2.8), squeeze=False, sharey=True)
    for ax, e in zip(axes[0], eps):
        g = rows[rows["eps"] == e]
        bins = [i / 20 for i in range(21)]
        ax.hist(g["emplb"], bins=bins, histtype="step", linewidth=2, label="EMPLB (found)")
        ax.hist(g["faithub"], bins=bins, histtype="step", linewidth=2, linestyle="--", label="FAITHUB (certified)")
        ax.set_title(f"eps {e:g}", fontsize=11)
        ax.set_xlabel("largest confidence gap", fontsize=10)
    axes[0][0].set_ylabel("images", fontsize=10)
    axes[0][0].legend(fontsize=9)
    fig.tight_layout()
    return fig


def worst_slice(out: Path | str, rows: pd.DataFrame, record: dict[str, Any]):
    """Figure 1's gap map on the image and eps with the largest FAITHUB (the pair reloaded from its files)."""
    import matplotlib.pyplot as plt
    import torch

    from fkd.experiments.audit import AuditConfig, load_pair, pixel_radius
    from fkd.book.plots import draw_gap
    from fkd.experiments.slice import directions, gap_slice

    cfg = AuditConfig.from_dict(record["config"])
    pair, x, _, ids = load_pair(cfg)
    row = rows.loc[rows["faithub"].idxmax()]
    pos, eps = ids.index(int(row["image"])), float(row["eps"])
    r = pixel_radius(cfg, eps)
    g = torch.Generator().manual_seed(cfg.seed)
    d1, d2, value = directions(pair.teacher.model, pair.student.model, x[pos], r, g, cfg.attack)
    s = gap_slice(pair.teacher.model, pair.student.model, x[pos], r, d1, d2, n=41, emplb_value=value)
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    im = draw_gap(ax, s)
    fig.colorbar(im, ax=ax, label="||f_t - f_s||_inf")
    ax.set_xlabel("towards the EMPLB point", fontsize=10)
    ax.set_ylabel("a random direction", fontsize=10)
    ax.set_title(f"image {int(row['image'])}, eps {eps:g}", fontsize=11)
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
    return fig, row


def _table(df: pd.DataFrame, caption: str) -> str:
    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) and v < 1 else (f"{v:.1f}" if isinstance(v, float) else v)

    body = df.map(fmt).to_html(index=False, na_rep="–", border=0)
    return body.replace("</table>", f"<caption>{html.escape(caption)}</caption></table>", 1)


def write_report(out: Path | str, slice_figure: bool = True) -> Path:
    """``out/report.html`` from ``out/audit.csv`` and ``out/run.json``; returns its path."""
    out = Path(out)
    rows, record = load(out)
    cfg = record["config"]
    accuracy, shown, ref = report_tables(rows, record)
    ref_note = ("No published run of the shipped zoo at these radii to compare with." if ref is None else
                f"The zoo FD columns: the shipped {ref['student'].iloc[0]} student's published certified run "
                f"({cfg.get('dataset')}, {cfg['units']} units; FAITHUB in tight mode, {ref['zoo FD bound'].iloc[0]} "
                "bounds), a reference point for a faithful student.")
    files = record.get("files", {})
    lines = []
    for role in ("teacher", "student"):
        f = files.get(role, {})
        check = f.get("check")
        conv = (f"; ONNX conversion checked against onnxruntime {check['onnxruntime']} on {check['inputs']} inputs: "
                f"max |difference| {check['max_abs_diff']:.2g} ({check['compared']}), allowed {check['tolerance']:.2g}"
                if check else "")
        notes = f"; {'; '.join(f['notes'])}" if f.get("notes") else ""
        lines.append(f"<li><b>{role}</b>: <code>{html.escape(str(f.get('path')))}</code> ({f.get('kind')}, sha256 "
                     f"<code>{str(f.get('sha256'))[:16]}…</code>){html.escape(conv + notes)}</li>")
    figs = [f'<figure><img alt="histograms" src="{_png(histograms(rows))}"><figcaption>Figure 1. EMPLB (found by '
            "PGD) and FAITHUB (certified) per image, one panel per eps. Every image's FAITHUB lies at or above its "
            "EMPLB; the distance between the two is what the bounds leave open.</figcaption></figure>"]
    if slice_figure:
        fig, row = worst_slice(out, rows, record)
        figs.append(f'<figure><img alt="gap slice" src="{_png(fig)}"><figcaption>Figure 2. The confidence gap on a '
                    f"2-D slice of the ball around image {int(row['image'])} at eps {row['eps']:g}, the row with the "
                    "largest FAITHUB: the star is the EMPLB point, hatching marks inputs where the two networks' top "
                    "classes differ.</figcaption></figure>")
    run = (f"{cfg['method']} bounds, FAITHUB modes {', '.join(cfg['modes'])} (the tightest is reported), "
           f"PGD-{cfg['attack']['steps']} x {cfg['attack']['restarts']} attack, seed {cfg['seed']}; "
           f"fkd at {record.get('git_commit', '?')}, torch {record.get('packages', {}).get('torch', '?')}, "
           f"{record.get('wall_time_s', '?')} s wall time in the last invocation.")
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>fkd audit</title>
<style>{STYLE}</style></head><body>
<h1>Audit of a distilled student</h1>
<p class="verdict">{html.escape(verdict(rows, record))}</p>
<h2>What was audited</h2><ul>{''.join(lines)}</ul>
<p>Images: {html.escape(str(cfg.get('dataset') or cfg.get('images')))}; {html.escape(run)}</p>
<h2>Per eps</h2>
{_table(accuracy, f"Table 1. Per eps ({cfg['units']} units; the pixel radius beside it): accuracy where labels "
                  "are known, empirical top-1 agreement (no attack point found where the classes differ) and "
                  "certified agreement (proven for every input of the ball), with the counterexamples found.")}
{_table(shown, "Table 2. Per eps: EMPLB (found by PGD, a lower bound on the largest confidence gap delta*) and "
               "FAITHUB (certified, an upper bound), mean and largest over the images, and the median seconds per "
               "image. " + ref_note)}
<h2>Figures</h2>{''.join(figs)}
<p>Rows: <code>audit.csv</code>; run record: <code>run.json</code>. Made by <code>python -m fkd audit</code>.</p>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page)
    return path
