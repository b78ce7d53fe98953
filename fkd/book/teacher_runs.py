"""The robust teacher under every published training protocol, beside the paper's Table 1 RT row.

A teacher is the cleanest test of how the paper trained: its clean accuracy and robust accuracy
over the eps grid are in Table 1. Published teachers:
- the zoo teacher of each reading (``fkd.units.Reading``: pixel, normalised on [0, 1] inputs,
  input-norm), evaluated in that reading's empirical run (``fkd.paths.reading_runs``), its
  metadata in that reading's zoo (``fkd.paths.reading_zoo``);
- variants in ``results/units/<dataset>/teacher-<variant>/`` (the evaluation and the teacher
  itself, ``rt.json`` with its training config): CIFAR-10's std conventions ``population`` and
  ``kuangliu``, trained on [0, 1] inputs.
Nothing here holds a number: every value is read from the rows and the teachers' metadata.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from fkd.config import Dataset, parse

from fkd.paths import RESULTS, reading_runs, reading_zoo, units_base
from fkd.units import Reading, published_reading

#: what each published variant changes against the normalised reading's zoo teacher
VARIANTS = {
    "population": "normalised, population std",
    "kuangliu": "normalised, kuangliu std",
}


class TeacherRun(NamedTuple):
    """One published teacher: its label, evaluation run directory and training metadata."""
    label: str
    run: Path
    meta: dict[str, Any]


def teacher_runs(dataset: Dataset | str, results: Path | str = RESULTS) -> list[TeacherRun]:
    """Every published teacher of ``dataset`` with an evaluation, in the order of the module docstring."""
    from fkd.zoo import load_meta

    d, results = parse(Dataset, dataset), Path(results)
    runs = []
    for reading in Reading:
        run = reading_runs(d.value, reading.value, published_reading(d).value, results).empirical
        if _evaluated(run):
            try:
                meta = load_meta(d, "rt", root=reading_zoo(reading.value, results), units=reading.units)
            except LookupError:  # the zoo of that reading has no teacher of this dataset yet
                continue
            runs.append(TeacherRun(reading.value, run, meta))
    for variant, label in VARIANTS.items():
        run = units_base(d.value, results, f"teacher-{variant}")
        if _evaluated(run) and (run / "rt.json").exists():
            runs.append(TeacherRun(label, run, json.loads((run / "rt.json").read_text())))
    return runs


def _evaluated(run: Path) -> bool:
    return any((run / n).exists() for n in ("empirical.csv", "empirical.csv.gz"))


def teacher_table(dataset: Dataset | str, results: Path | str = RESULTS):
    """Each published teacher of ``dataset`` beside the paper's Table 1 RT row and clean accuracy.

    Returns:
        DataFrame indexed by eps label (first row: clean accuracy on the whole test set, from the
        teacher's metadata); columns (teacher, ours | paper | diff).
    Raises:
        FileNotFoundError where no teacher of ``dataset`` is published.
    """
    import pandas as pd

    from fkd.experiments.evaluate import load_results
    from fkd.book.units_report import _table1_cells
    from fkd.zoo import paper_clean_accuracy

    d = parse(Dataset, dataset)
    paper_clean = paper_clean_accuracy()[(d.value, "rt", None)]
    cols = {}
    for t in teacher_runs(d, results):
        c = _table1_cells(load_results(t.run), d)
        c = c[c.quantity == "robust RT"].set_index("eps")[["ours", "paper", "diff"]]
        clean = float(t.meta["clean_acc"])
        head = pd.DataFrame({"ours": [clean], "paper": [paper_clean], "diff": [clean - paper_clean]},
                            index=["clean (test set)"])
        cols[t.label] = pd.concat([head, c]).round(1)
    if not cols:
        raise FileNotFoundError(f"no teacher of {d.value} is published. Fix: see results/units/README.md")
    return pd.concat(cols, axis=1)


def cells_within(dataset: Dataset | str, tolerance: float = 2.0, results: Path | str = RESULTS):
    """Per published teacher: how many of the RT row's cells (clean accuracy and robust accuracy per
    eps) lie within ``tolerance`` points of the paper's, and the largest distance.

    Returns:
        DataFrame indexed by teacher: within, cells, largest |diff|, epochs run, status.
    """
    import pandas as pd

    t = teacher_table(dataset, results)
    rows = {}
    for label, meta in ((r.label, r.meta) for r in teacher_runs(dataset, results)):
        diff = t[label]["diff"].abs()
        rows[label] = {"within": int((diff <= tolerance).sum()), "cells": int(diff.notna().sum()),
                       "largest |diff|": float(diff.max()), "epochs run": meta.get("epochs_run"),
                       "status": meta.get("status")}
    return pd.DataFrame.from_dict(rows, orient="index")
