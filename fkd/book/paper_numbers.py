"""The paper's published numbers as our code reads them: reference tables, dataset names, rows.

The published values live in ``fkd/reference/*.csv`` (copied from the paper; each file's first
line says so). ``ORDER`` is the paper's rows (its teacher, then its students), ``PAPER_DATASET``
its dataset names, and ``_paper_column`` the paper's column of one of our zoo models.
"""
from __future__ import annotations

from fkd.config import Dataset, Method, resolve_model
from fkd.losses import PAPER_STUDENTS
from fkd.paths import REFERENCE

PAPER_DATASET = {Dataset.MNIST: "MNIST", Dataset.FASHION_MNIST: "FashionMNIST", Dataset.CIFAR10: "CIFAR10"}
ORDER = ("RT", *(s.upper() for s in PAPER_STUDENTS))  # the paper's rows: its teacher, then its students


def paper_table(name: str):
    """A reference table by file stem, e.g. ``table1_robustness``: the paper's numbers, not ours."""
    import pandas as pd

    path = REFERENCE / f"{name}.csv"
    if not path.exists():
        options = ", ".join(sorted(p.stem for p in REFERENCE.glob("*.csv")))
        raise ValueError(f"unknown reference table {name!r}; choose one of: {options}")
    return pd.read_csv(path, comment="#", dtype={"eps_label": str})


def paper_faithub(dataset: Dataset, cells) -> list[float]:
    """The paper's mean FAITHUB (Table 2) of each (eps, student) in ``cells`` (eps as floats, our
    student names); NaN where the paper gives none."""
    ref = paper_table("table2_faithfulness")
    ref = ref[(ref.dataset == PAPER_DATASET[dataset]) & (ref.bound == "FAITHUB")]
    ref = ref.assign(eps=ref.eps.astype(float).round(6)).set_index(["eps", "student"])["mean"]
    return [ref.get((round(float(e), 6), _paper_column(dataset, s)), float("nan")) for e, s in cells]


def _paper_column(dataset: Dataset, student: str) -> str | None:
    """The paper's column name (SD, ..., FD) of a zoo model, or None if the paper has no such model
    (a student at another alpha than the paper's)."""
    method, alpha = resolve_model(dataset, student)
    if method.value.upper() not in ORDER:  # a related method (KDIGA, TFKD, FDBOTH): not in the paper's tables
        return None
    if method is not Method.RT and resolve_model(dataset, method.value)[1] != alpha:
        return None
    return method.value.upper()
