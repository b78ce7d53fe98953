"""The units question for the book: the same paper read with eps in pixel and in normalised units.

Every reading's runs side by side (``fkd.units.Reading``: pixel, the earlier zoo ``zoo/pixel``;
normalised on [0, 1] inputs, ``results/units/zoo-normalised``; input-norm, trained behind the
normalisation, ``zoo/<dataset>``), each beside the paper's numbers; the dataset's published reading
in ``results/<kind>/<dataset>``, the others where ``fkd.paths.reading_runs`` puts them. A paper cell counts as reproduced when ours is within
``fkd.book.tolerance.TOLERANCE`` of it once ours is rounded as the paper prints it (``within``): 2 points of accuracy
(Table 1, one decimal), 0.05 of a bound's mean (Table 2, three decimals). Nothing here
holds a number of its own: every value is read from the rows and the zoo's metadata.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from fkd.config import Dataset, Domain, EpsUnits, eps_label, parse

from fkd.book.tolerance import within
from fkd.paths import RESULTS
from fkd.paths import reading_runs as reading_dirs
from fkd.units import Reading, published_reading

#: The readings of eps with published runs: label -> the units of eps (``fkd.units.Reading``).
READINGS: dict[str, EpsUnits] = {r.value: r.units for r in Reading}
COLOURS = {"pixel": "tab:orange", "normalised": "tab:blue", "input-norm": "tab:green"}


class ReadingRuns(NamedTuple):
    """One reading's published runs of one dataset (None where a run is not published)."""
    units: EpsUnits
    empirical: Any   # fkd.experiments.evaluate rows
    certified: Any   # fkd.experiments.verify rows


def run_dirs(dataset: Dataset | str, units: EpsUnits | str, results: Path | str = RESULTS,
             domain: Domain | str = Domain.CLAMPED) -> tuple[Path, Path]:
    """(empirical, certified) run directories of one reading's published runs (``units``: a key of
    ``READINGS`` or an ``EpsUnits``); ``domain`` plain: the certified run over the plain ball."""
    d, results = parse(Dataset, dataset), Path(results)
    label = getattr(units, "value", units)
    if label not in READINGS:
        raise ValueError(f"unknown reading {label!r}; choose one of: {', '.join(READINGS)}")
    dirs = reading_dirs(d.value, label, published_reading(d).value, results)
    return dirs.empirical, dirs.certified if parse(Domain, domain) is Domain.CLAMPED else dirs.certified_plain


def reading_runs(dataset: Dataset | str, units: EpsUnits | str, results: Path | str = RESULTS,
                 domain: Domain | str = Domain.CLAMPED) -> ReadingRuns:
    """The published rows of ``dataset`` under one reading (certified: over ``domain``)."""
    import pandas as pd

    from fkd.experiments.evaluate import load_results

    emp_dir, cert_dir = run_dirs(dataset, units, results, domain)
    emp = load_results(emp_dir) if any((emp_dir / n).exists() for n in ("empirical.csv", "empirical.csv.gz")) else None
    cert_file = next((cert_dir / n for n in ("verify.csv.gz", "verify.csv") if (cert_dir / n).exists()), None)
    cert = pd.read_csv(cert_file) if cert_file else None
    return ReadingRuns(READINGS[getattr(units, "value", units)], emp, cert)


def _table1_cells(rows, dataset: Dataset, methods: str = "ours"):
    """Table 1 as long cells: eps, quantity (robust RT, agree FD, ...), ours, paper, diff; the
    agreement cells by ``AGREEMENT[methods]`` (``paper``: by the paper's attack where the rows have
    it, else by the one agreement the run measured, ours)."""
    from fkd.book.tables import table1

    t = table1(rows, dataset).drop(columns="n_images", level=0)
    long = t.stack(level=0, future_stack=True).reset_index()
    long.columns = ["eps", "quantity", *long.columns[2:]]
    paper_attack = long.quantity.str.startswith("agree_paper ")
    if AGREEMENT[methods] == "agree_paper" and paper_attack.any():
        long = long[~long.quantity.str.startswith("agree ")]
        long = long.assign(quantity=long.quantity.str.replace("agree_paper ", "agree ", regex=False))
    else:
        long = long[~paper_attack]
    return long[["eps", "quantity", "ours", "paper", "diff"]].dropna(subset=["paper"])


def _table2_cells(rows, dataset: Dataset, mode: str):
    """Table 2 as long cells: eps, bound, student, ours (mean), paper (mean), diff, n images."""
    from fkd.book.tables import table2

    t = table2(rows, dataset, mode)
    return t.rename(columns={"eps_label": "eps", "mean": "ours", "paper_mean": "paper",
                             "diff_mean": "diff"})[["eps", "bound", "student", "n", "ours", "paper", "diff"]]


#: What "the paper's methods" and "ours" mean for Table 2: (EMPLB metric of the empirical run,
#: FAITHUB mode of the certified run). The paper's: PGD on the inf-norm (emplb_max) and eq. 9 from
#: per-logit bounds; ours: both objectives, per-image maximum (emplb) and d_ij bounded directly.
METHODS = {"paper": ("emplb_max", "paper"), "ours": ("emplb", "tight")}
#: and for Table 1's agreement: the paper's attack (plain PGD's last iterates, ``agree_paper``, where
#: a run has it) or our flip search (``agree``); ``fkd.metrics.AgreementAttack``
AGREEMENT = {"paper": "agree_paper", "ours": "agree"}


def cells(dataset: Dataset | str, results: Path | str = RESULTS, methods: str = "paper", domain: Domain | str = Domain.CLAMPED):
    """Every paper cell of Tables 1 and 2 that a reading's published runs cover, with ours beside it.

    Args:
        methods: ``paper`` (the paper's own methods: Table 1's agreement by its attack, plain PGD's
            last iterates, where the run has those rows; Table 2's EMPLB by PGD on the inf-norm over
            the empirical run's images, FAITHUB in paper mode, eq. 9 from per-logit bounds) or
            ``ours`` (agreement by the flip search, EMPLB with the per-class objectives too, FAITHUB
            in tight mode); ``METHODS``, ``AGREEMENT``.
        domain: FAITHUB over the ball intersected with [0, 1] (``clamped``) or the plain ball.
    Returns:
        DataFrame: units, table (table1 | table2), eps, cell (e.g. "robust RT", "FAITHUB FD"), ours,
        paper, diff, n (images), within (``fkd.book.tolerance.within``).
    """
    import pandas as pd

    from fkd.book.tables import _beside_paper

    if methods not in METHODS:
        raise ValueError(f"unknown methods {methods!r}; choose one of: {', '.join(METHODS)}")
    metric, mode = METHODS[methods]
    d = parse(Dataset, dataset)
    frames = []
    for units in READINGS:
        runs = reading_runs(d, units, results, domain)
        if runs.empirical is not None:
            t1 = _table1_cells(runs.empirical, d, methods).rename(columns={"quantity": "cell"})
            n = int(runs.empirical.image.nunique())
            frames.append(t1.assign(units=units, table="table1", n=n))
            if (runs.empirical.metric == metric).any():
                e = _beside_paper(runs.empirical, d, {metric: "EMPLB"})
                frames.append(pd.DataFrame({"eps": e.eps_label, "cell": "EMPLB " + e.student, "ours": e["mean"],
                                            "paper": e.paper_mean, "diff": e.diff_mean, "n": e.n,
                                            "units": units, "table": "table2"}))
        if runs.certified is not None and f"faithub_{mode}" in runs.certified.columns:
            t2 = _table2_cells(runs.certified, d, mode)
            t2 = t2[t2.bound == "FAITHUB"]
            t2 = t2.assign(cell=t2.bound + " " + t2.student, units=units, table="table2")
            frames.append(t2.drop(columns=["bound", "student"]))
    if not frames:
        raise FileNotFoundError(f"no published run of {d.value} under either reading. Fix: see results/units/README.md")
    out = pd.concat(frames, ignore_index=True).dropna(subset=["paper"])
    out["within"] = [bool(within(d, t)) for d, t in zip(out["diff"], out.table)]
    return out[["units", "table", "eps", "cell", "ours", "paper", "diff", "n", "within"]]


def shares(dataset: Dataset | str, results: Path | str = RESULTS, methods: str = "paper", domain: Domain | str = Domain.CLAMPED):
    """Share of the paper's cells reproduced within tolerance, per reading and table.

    Returns:
        DataFrame indexed by (units, table): cells (how many the runs cover), within (how many are
        within tolerance), share (%).
    """
    c = cells(dataset, results, methods, domain)
    g = c.groupby(["units", "table"]).within
    out = g.agg(cells="size", within="sum")
    out["share"] = (100 * out.within / out.cells).round(1)
    return out


def side_by_side(dataset: Dataset | str, student: str = "fd", results: Path | str = RESULTS):
    """Teacher and ``student`` under both readings over the eps grid: robust accuracy (%),
    distillation agreement (%), mean EMPLB and mean FAITHUB (paper and tight modes, where the
    certified run covers the eps), with the paper's values.

    Returns:
        long DataFrame: units, eps, quantity, ours, paper, n (images).
    """
    import pandas as pd

    from fkd.config import model_name, resolve_model
    from fkd.book.paper_numbers import _paper_column

    d = parse(Dataset, dataset)
    name = model_name(*resolve_model(d, student))
    col = _paper_column(d, name)
    frames = []
    for units in READINGS:
        runs = reading_runs(d, units, results)
        if runs.empirical is not None:
            c = _table1_cells(runs.empirical, d)
            keep = c[c.quantity.isin(["robust RT", f"robust {col}", f"agree {col}"])]
            n = runs.empirical.groupby("eps").image.nunique()
            frames.append(keep.assign(units=units, n=int(n.max()))[["units", "eps", "quantity", "ours", "paper", "n"]])
            e = _emplb_cells(runs.empirical, d, col)
            frames.append(e.assign(units=units))
        if runs.certified is not None:
            for mode in ("paper", "tight"):
                if f"faithub_{mode}" not in runs.certified.columns:
                    continue
                t = _table2_cells(runs.certified, d, mode)
                t = t[(t.bound == "FAITHUB") & (t.student == col)]
                frames.append(pd.DataFrame({"units": units, "eps": t.eps, "quantity": f"FAITHUB {mode}",
                                            "ours": t.ours, "paper": t.paper, "n": t.n}))
    return pd.concat(frames, ignore_index=True)


def _emplb_cells(rows, dataset: Dataset, column: str):
    import pandas as pd

    from fkd.book.tables import emplb_table

    t = emplb_table(rows, dataset)
    t = t[t.student == column]
    return pd.DataFrame({"eps": t.eps_label, "quantity": "EMPLB", "ours": t["mean"], "paper": t.paper_mean,
                         "n": t.n})


def chosen_reading(dataset: Dataset | str, results: Path | str = RESULTS) -> Reading | None:
    """The reading whose zoo teacher is closer to the paper's (mean |diff| over the RT row and clean
    accuracy), or None while only one reading has been evaluated."""
    from fkd.book.teacher_runs import teacher_table

    t = teacher_table(dataset, results)
    readings = [r.value for r in Reading if r.value in t.columns.levels[0]]  # the zoo teachers
    if len(readings) < 2:
        return None
    dist = {r: float(t[r]["diff"].abs().mean()) for r in readings}
    return Reading(min(dist, key=dist.get))


def plot_readings(dataset: Dataset | str, student: str = "fd", results: Path | str = RESULTS):
    """Robust accuracy of teacher and ``student``, EMPLB and FAITHUB against eps: the pixel reading
    and the normalised reading (solid) beside the paper (dashed)."""
    import matplotlib.pyplot as plt

    from fkd.config import PAPER_EPS

    d = parse(Dataset, dataset)
    s = side_by_side(d, student, results)
    order = [eps_label(e) for e in PAPER_EPS[d]]
    panels = [("robust RT", "teacher robust accuracy (%)"), (None, "student robust accuracy (%)"),
              ("EMPLB", "mean EMPLB"), ("FAITHUB paper", "mean FAITHUB (paper mode)")]
    student_q = next(q for q in s.quantity.unique() if q.startswith("robust ") and q != "robust RT")
    colours = COLOURS
    from fkd.book.present import WIDTH, legible

    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 6.4), layout="constrained")
    axes = axes.flatten()
    for ax, (q, title) in zip(axes, panels):
        q = q or student_q
        sub = s[s.quantity == q]
        for units, g in sub.groupby("units"):
            g = g.set_index("eps").reindex([e for e in order if e in set(g.eps)])
            x = [order.index(e) for e in g.index]
            ax.plot(x, g.ours, "o-", color=colours[units], label=f"ours, {units}")
        ref = sub.drop_duplicates("eps").set_index("eps").reindex([e for e in order if e in set(sub.eps)])
        ax.plot([order.index(e) for e in ref.index], ref.paper, "k--", marker="s", ms=4, label="paper")
        ax.set_xticks(range(len(order)), order)
        ax.set_title(title)
        ax.set_xlabel("eps")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=3, frameon=False)
    fig.suptitle(f"{d.value}: teacher and {student_q.split()[1]} under both readings of eps")
    return legible(fig)


def findings(dataset: Dataset | str, results: Path | str = RESULTS) -> str:
    """One paragraph computed from the rows: each reading's share of reproduced cells and the
    teacher's distance to the paper, and which reading the evidence supports."""
    d = parse(Dataset, dataset)
    from fkd.book.teacher_runs import teacher_table

    sh = shares(d, results)
    t = teacher_table(d, results)
    parts = []
    for units in [u for u in READINGS if u in set(sh.index.get_level_values(0))]:
        bits = [f"{int(r.within)} of {int(r.cells)} {tab.replace('table', 'Table ')} cells ({r.share:g} %)"
                for (u, tab), r in sh.iterrows() if u == units]
        reading = "in normalised units behind the normalisation" if units == "input-norm" else f"in {units} units"
        dist = f"{float(t[units]['diff'].abs().mean()):.1f}" if units in t.columns.levels[0] else "an unknown number of"
        parts.append(f"read {reading}, {' and '.join(bits)} are within tolerance and the teacher is "
                     f"{dist} points from the paper on average")
    choice = chosen_reading(d, results)
    verdict = (f" The evidence supports the {choice.value} reading." if choice is not None else
               " Only one reading has been evaluated so far.")
    return f"On {d.value}, " + "; ".join(parts) + "." + verdict


def radius_table():
    """What each reading means in pixels: the pixel radius of every eps of the paper's grids,
    per dataset and reading (CIFAR-10 per channel, under both std conventions in use).

    Returns:
        DataFrame: dataset, eps, then the pixel radius read in pixel units, in normalised units
        (the dataset's std, ``fkd.units.STD``) and, for CIFAR-10, with the other std convention.
    """
    import pandas as pd

    from fkd.config import PAPER_EPS
    from fkd.units import CIFAR10_STD, STD, channels, radius

    def short(r) -> str:  # per channel, three significant digits: it fits the page
        return " / ".join(f"{v:.3g}" for v in channels(r))

    rows = []
    for d in Dataset:
        for e in PAPER_EPS[d][1:]:
            row = {"dataset": d.value, "eps": eps_label(e), "pixel": short(radius(e, "pixel", d)),
                   "normalised": short(radius(e, "normalised", d))}
            if d is Dataset.CIFAR10:
                other = next(n for n, s in CIFAR10_STD.items() if s != STD[d])
                row[f"normalised, {other} std"] = short(radius(e, "normalised", d, std=CIFAR10_STD[other]))
            rows.append(row)
    return pd.DataFrame(rows).fillna("")
