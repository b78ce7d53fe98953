"""All distillation methods on one page: the paper's four students beside the related
methods (KDIGA, adversarial TFKD, FDBOTH), from the published runs with their run records.

The related students' runs live in ``results/related/<dataset>/{empirical,certified,calibration}``;
the paper's students' in ``results/empirical/<dataset>`` and ``results/certified/<dataset>``.
Comparisons use only the images both runs evaluated (the related runs cover the first images of
the same fixed subset), so every student is measured on the same images with the same attack.
Certified distillation agreement is read from ``results/beyond/agreement-<dataset>/verify.csv(.gz)``
(columns student, eps, image, agreement) where that file exists, with the related students' own
run ``results/related/<dataset>/agreement`` (then on the images both have).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from fkd.config import (PAPER_EPS, RELATED_HPARAMS, RELATED_PARAMS, Dataset, Method, eps_label, parse,
                     resolve_model)

from fkd.book.tables import ORDER as PAPER_ORDER
from fkd.losses import RELATED_STUDENTS
from fkd.paths import RESULTS, kind_dirs, published_runs, related_base
#: Column order of every table: teacher, the paper's students, the related students.
ORDER = (*PAPER_ORDER, *(s.upper() for s in RELATED_STUDENTS))
RELATED = tuple(Method(m) for m in RELATED_STUDENTS)


def label(student: str) -> str:
    """Display name of a zoo model name: ``kdiga-a0.5`` -> ``KDIGA``."""
    return student.split("-a")[0].upper()


def _ordered(columns) -> list:
    return sorted(columns, key=lambda c: ORDER.index(c) if c in ORDER else len(ORDER))


def hyperparameters():
    """Our hyper-parameters of the related methods (fkd.config.RELATED_HPARAMS, RELATED_PARAMS):
    one row per (dataset, method) with T, weight decay, lr0, lr_min, alpha and method parameters."""
    import pandas as pd

    rows = [{"dataset": d.value, "method": m.value, "T": T, "weight decay": wd, "lr0": lr0, "lr_min": lr_min,
             "alpha": a, **RELATED_PARAMS.get(m, {})} for (d, m), (T, wd, lr0, lr_min, a) in RELATED_HPARAMS.items()]
    return pd.DataFrame(rows)


def zoo_accuracy(datasets=(Dataset.MNIST, Dataset.FASHION_MNIST)):
    """Clean test accuracy (%, whole test set) of the teacher and every student in the zoo, from the
    models' metadata: index student label, one column per dataset; the epochs run beside it."""
    import pandas as pd

    from fkd.zoo import list_zoo

    names = {parse(Dataset, d).value for d in datasets}
    rows = [{"dataset": r["dataset"], "student": label(r["file"].removesuffix(".safetensors")),
             "clean acc. %": r["clean_acc"], "epochs": f"{r['epochs_run']} ({r['best_epoch']})"}
            for r in list_zoo() if r["dataset"] in names and resolve_model(r["dataset"], r["method"])[1] == r["alpha"]]
    frame = pd.DataFrame(rows).pivot(index="student", columns="dataset", values=["clean acc. %", "epochs"])
    return frame.reindex(_ordered(frame.index))


class RelatedRuns(NamedTuple):
    """One dataset's published rows of all students, on the images every run has, and their records."""
    dataset: Dataset
    empirical: Any            # evaluate rows (fkd.experiments.evaluate), teacher and all students
    certified: Any            # verify rows (fkd.experiments.verify) or None
    calibration: Any          # calibration rows (fkd.experiments.calibration) or None
    agreement: Any            # certified agreement rows (results/beyond) or None
    records: list[dict[str, Any]]


def _read_verify(d: Path):
    import pandas as pd

    for name in ("verify.csv.gz", "verify.csv"):
        if (d / name).exists():
            return pd.read_csv(d / name)
    return None


def related_runs(dataset: Dataset | str, results: Path | str = RESULTS) -> RelatedRuns:
    """Read and join the published runs of ``dataset`` (the paper's students and the related ones).

    Raises FileNotFoundError naming the missing directory if the related empirical run is absent.
    """
    import pandas as pd

    from fkd.book.chapters import provenance
    from fkd.experiments.calibration import load as load_calibration
    from fkd.experiments.evaluate import load_results

    d, results = parse(Dataset, dataset), Path(results)
    rel, pub = kind_dirs(related_base(results) / d.value), published_runs(d.value, results)
    if not rel.empirical.exists():
        raise FileNotFoundError(f"no related run at {rel.empirical}. Fix: see results/related/README.md.")
    new = load_results(rel.empirical)
    old = load_results(pub.empirical)
    images = set(new.image)
    new = new[new.student != "rt"]                      # the teacher's rows: the paper's run has them
    emp = pd.concat([old[old.image.isin(images)], new], ignore_index=True)
    cert_new, cert_old = _read_verify(rel.certified), _read_verify(pub.certified)
    cert = None
    if cert_new is not None and cert_old is not None:
        shared = set(cert_new.image) & set(cert_old.image)
        cert = pd.concat([cert_old, cert_new], ignore_index=True)
        cert = cert[cert.image.isin(shared)].reset_index(drop=True)
    cal = load_calibration(rel.calibration) if (rel.calibration / "calibration.csv.gz").exists() else None
    agr_dir = pub.agreement
    agr, agr_new = _read_verify(agr_dir), _read_verify(rel.agreement)
    if agr is not None and agr_new is not None:  # the related students' own run: on the shared images
        shared = set(agr.image) & set(agr_new.image)
        agr = pd.concat([agr, agr_new], ignore_index=True)
        agr = agr[agr.image.isin(shared)].reset_index(drop=True)
    dirs = [pub.empirical, rel.empirical, pub.certified, rel.certified, rel.calibration] + \
        ([agr_dir, rel.agreement] if agr is not None else [])
    records = [provenance(p) for p in dirs if (p / "run.json").exists()]
    return RelatedRuns(d, emp.reset_index(drop=True), cert, cal, agr, records)


def _by_eps(rows, names: dict[str, str], scale: float, digits: int):
    """Mean of long rows (metric, value) per eps (index, labelled) and (names[metric], student label)."""
    rows = rows.assign(who=rows.student.map(label), eps=rows.eps.astype(float).round(6))
    t = rows.pivot_table(index="eps", columns=["metric", "who"], values="value", aggfunc="mean") * scale
    t = t.rename(columns=names, level=0)
    t = t[[(q, w) for q in names.values() for w in _ordered(t[q].columns)]].round(digits)
    t[("n_images", "")] = rows.groupby("eps").image.nunique()
    t.index = [eps_label(e) for e in t.index]
    t.index.name = "eps"
    return t


def table1_all(runs: RelatedRuns):
    """Table 1 with every student: robust accuracy (%) of teacher and students and empirical
    distillation agreement (%), per eps, ours only (the paper has no related students).

    Returns:
        DataFrame indexed by eps label; columns (quantity robust | agree, student label); n_images.
    """
    rows = runs.empirical[runs.empirical.metric.isin(["correct", "agree"])]
    return _by_eps(rows, {"correct": "robust", "agree": "agree"}, 100, 1)


def table2_all(runs: RelatedRuns, mode: str = "tight"):
    """Table 2 with every student: mean EMPLB and mean FAITHUB (eq. 11, ``mode``) per eps, from the
    certified runs on the images both runs verified.

    Returns:
        DataFrame indexed by eps label; columns (bound EMPLB | FAITHUB, student label); n_images.
    """
    from fkd.book.tables import verify_long

    if runs.certified is None:
        raise FileNotFoundError(f"no certified related run of {runs.dataset.value}")
    return _by_eps(verify_long(runs.certified, mode), {"emplb": "EMPLB", "faithub": "FAITHUB"}, 1, 3)


def ece_overview(runs: RelatedRuns):
    """ECE of teacher and student and their difference per student, clean and at the EMPLB points
    (``fkd.experiments.calibration.ece_table``), students in the book's order."""
    from fkd.experiments.calibration import ece_table

    if runs.calibration is None:
        raise FileNotFoundError(f"no calibration run of {runs.dataset.value} in results/related")
    t = ece_table(runs.calibration)
    t.insert(1, "who", t.pop("student").map(label))
    t["order"] = t.who.map(ORDER.index)
    return t.sort_values(["point", "order"]).drop(columns=["order", "dataset"]).reset_index(drop=True)


def main_eps(dataset: Dataset | str) -> float:
    """The paper's main radius of ``dataset`` (fkd.experiments.calibration.MAIN_EPS), on the dataset's grid."""
    from fkd.experiments.calibration import MAIN_EPS

    d = parse(Dataset, dataset)
    return min(PAPER_EPS[d], key=lambda e: abs(e - MAIN_EPS[d]))


def overview(runs: RelatedRuns, eps: float | None = None):
    """One row per student at ``eps`` (default the main radius): clean and robust accuracy (%),
    empirical agreement (%) and certified agreement (% certified, where published) on the same images
    (the certified agreement run's where the student has one, so that certified <= empirical holds;
    else empirical over the empirical run's), mean EMPLB and mean FAITHUB (tight) on the same images
    (the certified run's where there is one, so that EMPLB <= FAITHUB holds of the means too; else
    EMPLB over the empirical run's), and ECE of the student and its difference to the teacher's
    (student - teacher, same points), clean and at the EMPLB points.
    Missing measurements are NaN."""
    import pandas as pd

    eps = main_eps(runs.dataset) if eps is None else eps
    e = runs.empirical.assign(eps=runs.empirical.eps.astype(float).round(6), who=runs.empirical.student.map(label))
    at = lambda metric, r: e[(e.metric == metric) & (e.eps == round(r, 6))].groupby("who").value.mean()  # noqa: E731
    frame = pd.DataFrame({"clean acc.": at("correct", 0.0) * 100, "robust acc.": at("correct", eps) * 100,
                          "agreement": at("agree", eps) * 100, "EMPLB": at("emplb", eps)})
    frame["FAITHUB"] = float("nan")
    if runs.certified is not None:
        c = runs.certified[runs.certified.eps.astype(float).round(6) == round(eps, 6)]
        frame["FAITHUB"] = c.groupby(c.student.map(label)).faithub_tight.mean()
        frame["EMPLB"] = c.groupby(c.student.map(label)).emplb.mean().reindex(frame.index).fillna(frame["EMPLB"])
    frame["certified agreement"] = float("nan")
    if runs.agreement is not None:  # and empirical agreement on its images: certified <= empirical per student
        a = runs.agreement[runs.agreement.eps.astype(float).round(6) == round(eps, 6)]
        frame["certified agreement"] = (a.agreement == "certified").groupby(a.student.map(label)).mean() * 100
        same = e[(e.metric == "agree") & (e.eps == round(eps, 6)) & e.image.isin(set(a.image))]
        same = same[same.student.isin(set(a.student))].groupby("who").value.mean() * 100
        frame["agreement"] = same.reindex(frame.index).fillna(frame["agreement"])
    t = ece_overview(runs) if runs.calibration is not None else None
    for point in ("clean", "emplb"):
        frame[f"ECE {point}"] = frame[f"ECE diff {point}"] = float("nan")
        if t is not None:
            frame[f"ECE {point}"] = t[t.point == point].set_index("who").ece_student
            frame[f"ECE diff {point}"] = t[t.point == point].set_index("who").ece_diff
    frame = frame.reindex(_ordered(frame.index))
    frame.index.name = f"{runs.dataset.value}, eps {eps_label(eps)}"
    return frame.round(3)


def plot_overview(frames: dict[str, Any]):
    """Faithfulness against accuracy, every student of every dataset on one figure: rows are
    datasets, columns mean EMPLB, mean FAITHUB and certified agreement; each student is a vertical
    segment from its robust accuracy (filled) to its clean accuracy (hollow) at its faithfulness.

    Args:
        frames: dataset name -> ``overview`` DataFrame.
    Returns:
        matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from fkd.book.present import WIDTH, colour, legible

    measures = (("EMPLB", "mean EMPLB (lower: more faithful)"), ("FAITHUB", "mean FAITHUB, tight (certified)"),
                ("certified agreement", "certified agreement (%)"))

    fig, axes = plt.subplots(len(frames), 3, figsize=(WIDTH, 3.3 * len(frames) + 0.4), squeeze=False, sharey="row",
                             layout="constrained")
    for row, (name, f) in zip(axes, frames.items()):
        f = f.drop(index="RT", errors="ignore")
        for ax, (col, title) in zip(row, measures):
            have = f[f[col].notna()]
            if have.empty:
                ax.text(0.5, 0.5, f"no {col} published", ha="center", va="center", transform=ax.transAxes)
                ax.set_xticks([])
            for who, r in have.iterrows():
                c = colour(who)
                ax.plot([r[col]] * 2, [r["robust acc."], r["clean acc."]], color=c, lw=1)
                ax.scatter(r[col], r["robust acc."], color=c, s=28, zorder=3)
                ax.scatter(r[col], r["clean acc."], facecolor="white", edgecolor=c, s=28, zorder=3)
            ax.set_title(f"{f.index.name}: {title}")
        row[0].set_ylabel("accuracy (%)")

    who = list(dict.fromkeys(w for f in frames.values() for w in f.index if w != "RT"))
    handles = [Line2D([], [], color=colour(w), marker="o", lw=1, label=w) for w in who]
    handles += [Line2D([], [], color="k", marker="o", ls="none", label="robust"),
                Line2D([], [], color="k", marker="o", mfc="white", ls="none", label="clean")]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, frameon=False)  # a legend, not labels that overlap
    return legible(fig)


def statements(frame) -> list[str]:
    """Plain sentences computed from an ``overview`` frame: which student is best on each measure,
    and where each related student ranks among the seven students."""
    f = frame.drop(index="RT", errors="ignore")
    out = []
    for col, better in (("robust acc.", "max"), ("agreement", "max"), ("EMPLB", "min"), ("FAITHUB", "min"),
                        ("certified agreement", "max"), ("|ECE diff emplb|", "min")):
        s = (f[col.strip("|")].abs() if col.startswith("|") else f[col]).dropna()
        if s.empty:
            out.append(f"{col}: not published for {f.index.name}.")
            continue
        best = s.idxmax() if better == "max" else s.idxmin()
        ranks = s.rank(ascending=better == "min", method="min").astype(int)
        new = ", ".join(f"{w} {ranks[w]}" for w in (m.value.upper() for m in RELATED) if w in ranks)
        new = f"rank of the related students among {len(s)}: {new}" if new else "no related student measured"
        out.append(f"{col} ({f.index.name}): best {best} ({s[best]:.3g}); {new}.")
    return out


def publish(datasets=(Dataset.MNIST, Dataset.FASHION_MNIST), results: Path | str = RESULTS) -> Path:
    """Write the one-page comparison beside the published runs: per dataset
    ``results/related/<dataset>/{table1_all.csv, table2_all_tight.csv, overview.csv}`` and
    ``results/related/overview.png`` (the chapter's figure). Returns ``results/related``."""
    import matplotlib.pyplot as plt

    dest = related_base(results)
    frames = {}
    for d in datasets:
        runs = related_runs(d, results)
        base = dest / runs.dataset.value
        table1_all(runs).to_csv(base / "table1_all.csv")
        if runs.certified is not None:
            table2_all(runs).to_csv(base / "table2_all_tight.csv")
        frames[runs.dataset.value] = overview(runs)
        frames[runs.dataset.value].to_csv(base / "overview.csv")
    fig = plot_overview(frames)
    fig.savefig(dest / "overview.png", dpi=110)
    plt.close(fig)
    return dest
