"""The "Beyond the paper" chapter's tables and figures: certified agreement beside the
empirical one, joint FAITHUB beside eq. 11, and exact delta* beside EMPLB and FAITHUB.

Reads the published runs in ``results/beyond/`` (``agreement-<dataset>``, ``joint-<dataset>``,
``exact-<pair>``: each a ``verify.csv.gz`` or ``exact.csv`` with its ``run.json``) or any run
directory given; nothing here computes bounds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fkd.config import Dataset, eps_label, parse

from fkd.paths import BEYOND as RESULTS
DATASETS = tuple(d.value for d in Dataset)


def _rows(run: Path, name: str):
    import pandas as pd

    for candidate in (run / f"{name}.csv.gz", run / f"{name}.csv"):
        if candidate.exists():
            return pd.read_csv(candidate)
    raise FileNotFoundError(f"no {name}.csv(.gz) in {run}. Fix: run the command in results/beyond/README.md "
                            f"or pass the run directory you made")


def agreement_rows(dataset: Dataset | str, run: Path | str | None = None):
    """Certified-agreement rows (``python -m fkd verify --agreement``) of a dataset: the published run
    ``results/beyond/agreement-<dataset>`` unless ``run`` names another directory."""
    d = parse(Dataset, dataset)
    return _rows(Path(run) if run else RESULTS / f"agreement-{d.value}", "verify")


def agreement(dataset: Dataset | str, run: Path | str | None = None, empirical=None):
    """Certified agreement beside Table 1's empirical agreement on the same images
    (``fkd.book.tables.agreement_table``; raises if an image certified to agree was attacked into
    disagreement). ``empirical``: evaluation rows (default: the published full run)."""
    from fkd.book.chapters import published
    from fkd.book.tables import agreement_table

    rows = agreement_rows(dataset, run)
    if empirical is None:
        empirical = published(dataset).empirical
    return agreement_table(rows, empirical)


def plot_agreement(tables: dict[str, Any]):
    """Stacked bars per dataset, eps and student: certified, unknown, counterexample (and
    disagreeing at x itself), with the empirical agreement on the same images as a black tick.

    Args:
        tables: dataset -> ``agreement(...)`` frame.
    Returns:
        matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    from fkd.book.present import WIDTH, legible

    fig, axes = plt.subplots(len(tables), 1, figsize=(WIDTH, 2.9 * len(tables) + 0.6), squeeze=False, sharey=True,
                             layout="constrained")
    colours = {"certified %": "#2b8a3e", "unknown %": "#adb5bd", "counterexample %": "#c92a2a",
               "disagree_clean %": "#862e9c"}
    for ax, (name, t) in zip(axes[:, 0], tables.items()):
        labels = [f"{r.eps_label}\n{r.student.split('-a')[0].upper()}" for r in t.itertuples()]
        bottom = 0.0
        for col, colour in colours.items():
            ax.bar(range(len(t)), t[col], bottom=bottom, color=colour, label=col.removesuffix(" %").replace("disagree_clean", "disagree at x"),
                   width=0.8)
            bottom = bottom + t[col]
        if "empirical %" in t:
            ax.scatter(range(len(t)), t["empirical %"], marker="_", s=160, color="black", zorder=3,
                       label="empirical (PGD)")
        ax.set_xticks(range(len(t)), labels)
        ax.set_title(f"{name}: {int(t.n.max())} images")
        ax.set_ylim(0, 100)
        ax.set_ylabel("% of images")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=len(names), frameon=False)
    return legible(fig, font=9.0)


def joint_rows(dataset: Dataset | str, run: Path | str | None = None):
    """Rows of the published joint-FAITHUB run (``verify --mode paper,tight,joint``) of a dataset."""
    d = parse(Dataset, dataset)
    return _rows(Path(run) if run else RESULTS / f"joint-{d.value}", "verify")


def joint_summary(rows):
    """Mean EMPLB and FAITHUB (paper, tight, joint) per dataset, eps and student, the median seconds
    per (image, student) of tight and joint, and joint / tight (the ratio of the means)."""
    g = rows.assign(eps=rows.eps.round(6)).groupby(["dataset", "eps", "student"])
    modes = [m for m in ("paper", "tight", "joint") if f"faithub_{m}" in rows]
    out = g[["emplb", *(f"faithub_{m}" for m in modes)]].mean()
    out.columns = ["emplb", *modes]
    out["s_tight"] = g.seconds_tight.median()
    out["s_joint"] = g.seconds_joint.median()
    out["joint/tight"] = out.joint / out.tight
    out = out.reset_index()
    out.insert(2, "eps_label", [eps_label(e) for e in out.eps])
    order = {d: i for i, d in enumerate(DATASETS)}
    return out.sort_values(["dataset", "eps", "student"], key=lambda c: c.map(order) if c.name == "dataset" else c,
                           ignore_index=True).round(4)


def exact_rows(pair: str = "mnist-7x7", run: Path | str | None = None):
    """Rows of an exact-delta* run (``python -m fkd exact``): the published ``results/beyond/exact-<pair>``."""
    return _rows(Path(run) if run else RESULTS / f"exact-{pair}", "exact")


def exact_table(rows):
    """Where EMPLB and FAITHUB sit relative to delta*, per eps and student: means of EMPLB, delta*'s
    certified interval, FAITHUB (paper, tight, joint); images closed to the tolerance; the share of
    the FAITHUB - EMPLB gap that lies above delta* (1 - (delta*_up - EMPLB) / (FAITHUB tight - EMPLB),
    i.e. how much of the gap is FAITHUB's looseness rather than EMPLB's); median seconds."""
    r = rows.assign(eps=rows.eps.round(6), closed=rows.status == "closed")
    g = r.groupby(["eps", "student"])
    out = g[["emplb", "delta_lower", "delta_upper", "faithub_joint", "faithub_tight", "faithub_paper"]].mean()
    out.insert(0, "images", g.size())
    out.insert(1, "closed", g.closed.sum())
    span = (r.faithub_tight - r.emplb).clip(lower=1e-12)
    r = r.assign(above=1 - (r.delta_upper - r.emplb) / span)
    out["FAITHUB looseness share"] = r.groupby(["eps", "student"]).above.mean()
    out["median s (exact)"] = g.seconds_exact.median() + g.seconds_global.median()
    out = out.reset_index()
    out.insert(0, "eps_label", [eps_label(e) for e in out.eps])
    return out.drop(columns="eps").round(4)


def plot_exact(rows):
    """Per image (x) and eps (panels): EMPLB, delta*'s certified interval, FAITHUB tight and joint.

    Returns:
        matplotlib Figure, one row of panels per student.
    """
    import matplotlib.pyplot as plt

    students = sorted(rows.student.unique())
    eps = sorted(rows.eps.unique())
    from fkd.book.present import WIDTH, legible

    fig, axes = plt.subplots(len(students), len(eps), figsize=(WIDTH, 2.6 * len(students) + 0.8),
                             squeeze=False, sharey=True, layout="constrained")
    for i, s in enumerate(students):
        for j, e in enumerate(eps):
            ax = axes[i][j]
            t = rows[(rows.student == s) & (rows.eps == e)].reset_index(drop=True)
            x = range(len(t))
            ax.vlines(x, t.delta_lower, t.delta_upper, color="black", lw=6, label="delta* (certified interval)")
            ax.scatter(x, t.emplb, marker="v", color="#1971c2", zorder=3, label="EMPLB (PGD)")
            ax.scatter(x, t.faithub_tight, marker="^", color="#e8590c", zorder=3, label="FAITHUB tight (eq. 11)")
            ax.scatter(x, t.faithub_joint, marker="x", color="#c2255c", zorder=3, label="FAITHUB joint")
            ax.set_xticks(list(x), [str(v) for v in t.image], rotation=90)
            ax.set_title(f"{s.split('-a')[0].upper()}, eps {eps_label(e)}")
            ax.set_ylim(0, 1.02)
    for ax in axes[-1]:
        ax.set_xlabel("test image")
    for ax in axes[:, 0]:
        ax.set_ylabel("||f_t - f_s||_inf")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=2, frameon=False)
    return legible(fig)


def exact_experiment(profile: str = "quick", seed: int = 0, out: str | Path = "_build/reproduce",
                     pair: str = "mnist-7x7"):
    """Run (or resume) an exact-delta* study sized by the profile into ``out/exact-<pair>``; its rows.

    quick: the first image, FD, eps 0.02, 5 s of branch and bound and 10 s per global solve (seconds);
    full: the published run's settings (``results/beyond/README.md``).
    """
    from fkd.paths import under_root
    from fkd.config import Profile
    from fkd.experiments.exact_study import ExactConfig, exact_study
    from fkd.experiments.runner import torch_threads

    quick = parse(Profile, profile) is Profile.QUICK
    cfg = ExactConfig(pair=pair, students=("fd",) if quick else ("sd", "fd"), eps=(0.02,) if quick else (0.02, 0.05, 0.1),
                      n_images=1 if quick else 5, time_limit=5.0 if quick else 30.0,
                      global_time_limit=10.0 if quick else 30.0, seed=seed)
    out = under_root(out)
    with torch_threads(1):
        return exact_study(cfg, out / f"exact-{pair}", progress=False)


def records(kind: str) -> list[dict[str, Any]]:
    """Run records (``fkd.book.chapters.provenance``) of every published ``results/beyond/<kind>-*`` run."""
    from fkd.book.chapters import provenance

    return [provenance(p) for p in sorted(RESULTS.glob(f"{kind}-*")) if (p / "run.json").exists()]


def has_run(kind: str, dataset: Dataset | str) -> bool:
    """Whether ``results/beyond/<kind>-<dataset>`` holds a published run."""
    return (RESULTS / f"{kind}-{parse(Dataset, dataset).value}" / "run.json").exists()


def all_joint_rows():
    """The published joint-FAITHUB rows of every dataset, concatenated."""
    import pandas as pd

    return pd.concat([joint_rows(d) for d in DATASETS if has_run("joint", d)], ignore_index=True)


def agreement_long(tables: dict[str, Any]):
    """The agreement tables of several datasets as one frame with a dataset column."""
    import pandas as pd

    return pd.concat([t.assign(dataset=d) for d, t in tables.items()], ignore_index=True).set_index(
        ["dataset", "eps_label", "student"])


def agreement_findings(tables: dict[str, Any]) -> str:
    """What the agreement runs show, in sentences computed from the tables."""
    out = []
    for d, t in tables.items():
        gap = (t["empirical %"] - t["certified %"]) if "empirical %" in t else None
        last = t[t.eps_label == t.eps_label.iloc[-1]]
        top = last[last["certified %"] == last["certified %"].max()]
        who = " and ".join(f"{r.student} (empirical {getattr(r, 'empirical_pct', float('nan')):.0f} %)"
                           for r in top.rename(columns={"empirical %": "empirical_pct"}).itertuples())
        parts = [f"**{d}** ({int(t.n.max())} images): at eps {top.eps_label.iloc[0]} the most certified agreement is "
                 f"{top['certified %'].iloc[0]:.0f} %: {who}; "
                 f"unknown (MILP time limit) on {t['unknown %'].mean():.1f} % of the image-student cells on average"]
        if gap is not None and gap.notna().any():
            missing = sorted(set(t.eps_label[gap.isna()]))
            gap = gap.dropna()
            parts.append(f"empirical agreement exceeds the certified one by {gap.min():.0f} to {gap.max():.0f} points "
                         f"(never below it: {'holds' if (gap >= -1e-9).all() else 'VIOLATED'})"
                         + (f"; no empirical run at eps {', '.join(missing)}" if missing else ""))
        out.append("; ".join(parts) + ".")
    return "\n\n".join(out)


def joint_findings(summary) -> str:
    """Where joint FAITHUB helps most and least, from ``joint_summary``."""
    best = summary.loc[summary["joint/tight"].idxmin()]
    small = (summary["joint/tight"] > 0.99).mean() * 100
    return (f"Joint FAITHUB is never looser than the tight mode (capped by it; tested). The largest gain: "
            f"{best.dataset} {best.student} at eps {best.eps_label}, {best.tight:.3f} -> {best.joint:.3f} "
            f"(joint / tight {best['joint/tight']:.3f}); the median ratio over all {len(summary)} cells is "
            f"{summary['joint/tight'].median():.3f}, and {small:.0f} % of the cells gain less than 1 %. "
            f"It costs {summary.s_joint.median():.2f} s per image and student (median) against "
            f"{summary.s_tight.median():.2f} s for the tight mode.")


def exact_findings(rows) -> str:
    """Where EMPLB and FAITHUB sit relative to delta*, in sentences computed from exact-study rows."""
    closed = rows.status == "closed"
    at_emplb = (rows.delta_upper - rows.emplb) <= 1e-3
    r = rows[closed]
    ratio_t = (r.faithub_tight / r.delta_upper).median() if len(r) else float("nan")
    ratio_j = (r.faithub_joint / r.delta_upper).median() if len(r) else float("nan")
    gain = (r.delta_lower - r.emplb)
    span = (r.faithub_tight - r.emplb)
    share = ((r.faithub_tight - r.delta_upper)[span > 1e-3] / span[span > 1e-3]).mean() * 100
    return (f"delta* is pinned to within 0.001 on {int(closed.sum())} of {len(rows)} (image, student, eps) cells; "
            f"on {int(at_emplb.sum())} cells EMPLB itself is within 0.001 of the proven upper bound (PGD found "
            f"the worst point). Where delta* is pinned, EMPLB falls short of it by {gain.mean():.4f} on average "
            f"(at most {gain.max():.4f}), while FAITHUB is {ratio_t:.2f} x delta* in the tight mode and "
            f"{ratio_j:.2f} x in the joint mode (medians): {share:.0f} % of the gap between EMPLB and FAITHUB "
            f"(tight) lies above delta*, i.e. is the relaxation's looseness rather than the attack's weakness."
            + _open_clause(rows[~closed]))


def _open_clause(o) -> str:
    if not len(o):
        return ""
    eps = ", ".join(eps_label(e) for e in sorted(o.eps.unique()))
    return (f" On the other {len(o)} cells (eps {eps}) the budget ran out first: the certified interval is "
            f"{(o.delta_upper - o.delta_lower).mean():.3f} wide on average, and its upper end is still "
            f"{(o.faithub_tight - o.delta_upper).mean():.3f} below FAITHUB (tight), while the best point found "
            f"beats EMPLB by {(o.delta_lower - o.emplb).mean():.4f} on average.")
