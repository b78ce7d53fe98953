"""The verifier's domain under the normalised reading: FAITHUB over the ball intersected with [0, 1]
beside FAITHUB over the plain ball, each beside the paper's."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fkd.book.units_report import TOLERANCE
from fkd.config import Dataset, eps_label, parse
from fkd.paths import RESULTS, kind_dirs, units_base


def domain_table(dataset: Dataset | str, results: Path | str = RESULTS, mode: str = "paper"):
    """The verifier's domain under the normalised reading: mean FAITHUB (``mode``) over the ball
    intersected with [0, 1] (``certified``) and over the plain ball (``certified-plain``), on the
    images both runs cover, beside the paper's; also the mean EMPLB of each domain.

    Returns:
        DataFrame indexed by (eps, student): n, EMPLB and FAITHUB per domain, the paper's FAITHUB.
    """
    import pandas as pd

    from fkd.book.tables import PAPER_DATASET, _paper_column, paper_table

    d = parse(Dataset, dataset)
    base = units_base(d.value, results)
    runs = {}
    dirs = kind_dirs(base)
    for domain, run in (("clamped", dirs.certified), ("plain", dirs.certified_plain)):
        path = run / "verify.csv.gz"
        if path.exists():
            runs[domain] = pd.read_csv(path)
    if len(runs) < 2:
        raise FileNotFoundError(f"the plain-ball run of {d.value} is not published ({base}/certified-plain). "
                                f"Fix: see results/units/README.md")
    keys = ["student", "eps", "image"]
    common = runs["clamped"][keys].merge(runs["plain"][keys])
    ref = paper_table("table2_faithfulness")
    ref = ref[(ref.dataset == PAPER_DATASET[d]) & (ref.bound == "FAITHUB")]
    ref = ref.assign(eps=ref.eps.astype(float).round(6)).set_index(["eps", "student"])["mean"]
    cols = {}
    for domain, rows in runs.items():
        r = rows.merge(common)
        g = r.groupby(["eps", "student"])
        cols[("EMPLB", domain)] = g.emplb.mean()
        cols[("FAITHUB", domain)] = g[f"faithub_{mode}"].mean()
        cols[("n", "")] = g.image.nunique()
    out = pd.DataFrame(cols)
    out[("FAITHUB", "paper")] = [ref.get((round(e, 6), _paper_column(d, s)), float("nan")) for e, s in out.index]
    out.index = pd.MultiIndex.from_tuples([(eps_label(e), _paper_column(d, s) or s) for e, s in out.index],
                                          names=["eps", "student"])
    return out[[("n", ""), ("EMPLB", "clamped"), ("EMPLB", "plain"), ("FAITHUB", "clamped"), ("FAITHUB", "plain"),
                ("FAITHUB", "paper")]].round(3)


def domain_tables(results: Path | str = RESULTS, mode: str = "paper") -> dict[str, Any]:
    """``domain_table`` of every dataset whose plain-ball run is published: {dataset: table}."""
    out = {}
    for d in Dataset:
        if (kind_dirs(units_base(d.value, results)).certified_plain / "verify.csv.gz").exists():
            out[d.value] = domain_table(d, results, mode)
    return out


def domain_findings(results: Path | str = RESULTS) -> str:
    """One sentence per dataset with a published plain-ball run: how many of the paper's FAITHUB cells
    each domain reproduces (within ``TOLERANCE['table2']``), from ``domain_table``."""
    tol = TOLERANCE["table2"]
    parts = []
    for d, t in domain_tables(results).items():
        paper = t[("FAITHUB", "paper")]
        n = int(paper.notna().sum())
        hits = {dom: int(((t[("FAITHUB", dom)] - paper).abs() <= tol).sum()) for dom in ("clamped", "plain")}
        parts.append(f"On {d}, FAITHUB over the plain ball is within {tol:g} of the paper's in {hits['plain']} of "
                     f"{n} cells, over the ball intersected with [0, 1] in {hits['clamped']} of {n}.")
    return " ".join(parts) or "No plain-ball run is published yet."
