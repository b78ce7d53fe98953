"""The verifier's domain under the normalised reading: FAITHUB over the ball intersected with [0, 1]
beside FAITHUB over the plain ball, each beside the paper's. A dataset's runs are those of its
published reading where that is normalised, else of the first normalised reading with both runs
(input-norm, then normalised on [0, 1] inputs)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fkd.book.tolerance import TOLERANCE, within
from fkd.config import Dataset, eps_label, parse
from fkd.paths import RESULTS, reading_runs
from fkd.units import Reading, published_reading


def domain_reading(dataset: Dataset | str, results: Path | str = RESULTS) -> Reading | None:
    """The normalised reading whose clamped and plain-ball runs ``domain_table`` compares (None: none has both)."""
    d = parse(Dataset, dataset)
    for reading in dict.fromkeys([published_reading(d), Reading.INPUT_NORM, Reading.NORMALISED]):
        dirs = reading_runs(d.value, reading.value, published_reading(d).value, results)
        if reading is not Reading.PIXEL and all((r / "verify.csv.gz").exists() for r in (dirs.certified, dirs.certified_plain)):
            return reading
    return None


def domain_table(dataset: Dataset | str, results: Path | str = RESULTS, mode: str = "paper"):
    """The verifier's domain under the normalised reading: mean FAITHUB (``mode``) over the ball
    intersected with [0, 1] (``certified``) and over the plain ball (``certified-plain``), on the
    images both runs cover, beside the paper's; also the mean EMPLB of each domain.

    Returns:
        DataFrame indexed by (eps, student): n, EMPLB and FAITHUB per domain, the paper's FAITHUB.
    """
    import pandas as pd

    from fkd.book.paper_numbers import _paper_column, paper_faithub

    d = parse(Dataset, dataset)
    reading = domain_reading(d, results)
    if reading is None:
        raise FileNotFoundError(f"no normalised reading of {d.value} has both a clamped and a plain-ball run "
                                f"published. Fix: see results/units/README.md")
    dirs = reading_runs(d.value, reading.value, published_reading(d).value, results)
    runs = {domain: pd.read_csv(run / "verify.csv.gz") for domain, run in
            (("clamped", dirs.certified), ("plain", dirs.certified_plain))}
    keys = ["student", "eps", "image"]
    common = runs["clamped"][keys].merge(runs["plain"][keys])
    cols = {}
    for domain, rows in runs.items():
        r = rows.merge(common)
        g = r.groupby(["eps", "student"])
        cols[("EMPLB", domain)] = g.emplb.mean()
        cols[("FAITHUB", domain)] = g[f"faithub_{mode}"].mean()
        cols[("n", "")] = g.image.nunique()
    out = pd.DataFrame(cols)
    out[("FAITHUB", "paper")] = paper_faithub(d, out.index)
    out.index = pd.MultiIndex.from_tuples([(eps_label(e), _paper_column(d, s) or s) for e, s in out.index],
                                          names=["eps", "student"])
    return out[[("n", ""), ("EMPLB", "clamped"), ("EMPLB", "plain"), ("FAITHUB", "clamped"), ("FAITHUB", "plain"),
                ("FAITHUB", "paper")]].round(3)


def domain_tables(results: Path | str = RESULTS, mode: str = "paper") -> dict[str, Any]:
    """``domain_table`` of every dataset whose plain-ball run is published: {dataset: table}."""
    out = {}
    for d in Dataset:
        if domain_reading(d, results) is not None:
            out[d.value] = domain_table(d, results, mode)
    return out


def domain_findings(results: Path | str = RESULTS) -> str:
    """One sentence per dataset with a published plain-ball run: how many of the paper's FAITHUB cells
    each domain reproduces (``fkd.book.tolerance.within``), from ``domain_table``."""
    tol = TOLERANCE["table2"]
    parts = []
    for d, t in domain_tables(results).items():
        paper = t[("FAITHUB", "paper")]
        n = int(paper.notna().sum())
        hits = {dom: int(within(t[("FAITHUB", dom)] - paper, "table2").sum()) for dom in ("clamped", "plain")}
        reading = domain_reading(d, results).value
        parts.append(f"On {d} ({reading} reading), FAITHUB over the plain ball is within {tol:g} of the paper's in {hits['plain']} of "
                     f"{n} cells, over the ball intersected with [0, 1] in {hits['clamped']} of {n}.")
    return " ".join(parts) or "No plain-ball run is published yet."
