"""Table 2 in every FAITHUB mode: the paper's (eq. 9), tight, and the modes beyond the paper (joint,
softmax, joint_softmax), beside EMPLB and the paper's FAITHUB, on the images one run covers.

The published run of a dataset is ``results/certified/<dataset>-modes`` (``fkd.paths.modes_run``):
``python -m fkd verify --mode paper,tight,softmax,joint_softmax --method lp`` on the first images of
the fixed subset. Each mode is capped by the one it builds on (``fkd.book.ladder.RUNGS``), so the
means nest; ``modes_table`` checks that every row does. Nothing here holds a number of its own.
"""
from __future__ import annotations

from pathlib import Path

from fkd.book.ladder import RUNGS
from fkd.config import Dataset, eps_label, parse
from fkd.paths import RESULTS, modes_run

#: the modes in the order of the ladder (loosest first)
MODES = tuple(mode for mode, _, _ in RUNGS)


def modes_rows(dataset: Dataset | str, results: Path | str = RESULTS):
    """Rows of the published run of ``dataset`` in every mode (``fkd.experiments.verify`` columns),
    or None where it is not published."""
    import pandas as pd

    path = modes_run(parse(Dataset, dataset).value, results) / "verify.csv.gz"
    return pd.read_csv(path) if path.exists() else None


def modes_table(rows, dataset: Dataset | str):
    """Mean EMPLB and mean FAITHUB of each mode in ``rows`` per eps and student, the best mode's
    FAITHUB / EMPLB (ratio of the means), the median seconds per (image, student) summed over the
    modes, and the paper's FAITHUB.

    Args:
        rows: verify rows with ``faithub_<mode>`` columns for two or more of ``MODES``.
    Returns:
        DataFrame indexed by (eps label, student); columns n, EMPLB, one per mode, best / EMPLB,
        seconds, paper's FAITHUB.
    Raises:
        ValueError if a row breaks EMPLB <= every mode or a mode is looser than the one it builds on
        (a bug: each mode is capped by its base).
    """
    import pandas as pd

    from fkd.book.paper_numbers import _paper_column, paper_faithub

    d = parse(Dataset, dataset)
    modes = [m for m in MODES if f"faithub_{m}" in rows.columns]
    if len(modes) < 2:
        raise ValueError(f"rows hold {len(modes)} FAITHUB mode(s); modes_table compares two or more of {', '.join(MODES)}")
    base = {mode: on for mode, on, _ in RUNGS}
    for m in modes:
        if (rows.emplb > rows[f"faithub_{m}"]).any():  # EMPLB is a real gap (fkd.bounds.real): no slack
            raise ValueError(f"a row has EMPLB above FAITHUB ({m}): the bound is unsound there")
        if base[m] in modes and (rows[f"faithub_{m}"] > rows[f"faithub_{base[m]}"] + 1e-9).any():
            raise ValueError(f"a row has FAITHUB ({m}) above the {base[m]} mode it builds on")
    rows = rows.assign(eps=rows.eps.astype(float).round(6))
    g = rows.groupby(["eps", "student"])
    out = pd.DataFrame({"n": g.image.nunique(), "EMPLB": g.emplb.mean()})
    for m in modes:
        out[m] = g[f"faithub_{m}"].mean()
    out["best / EMPLB"] = out[modes].min(axis=1) / out.EMPLB
    seconds = rows[[f"seconds_{m}" for m in modes if f"seconds_{m}" in rows.columns]].sum(axis=1)
    out["seconds"] = seconds.groupby([rows.eps, rows.student]).median()
    out["paper's FAITHUB"] = paper_faithub(d, out.index)
    out.index = pd.MultiIndex.from_tuples([(eps_label(e), _paper_column(d, s) or s) for e, s in out.index],
                                          names=["eps", "student"])
    return out.round({"EMPLB": 4, **{m: 4 for m in modes}, "best / EMPLB": 2, "seconds": 2, "paper's FAITHUB": 3})


def modes_findings(table) -> str:
    """What the modes beyond the paper remove, computed from a ``modes_table``: the share of tight
    mode's mean FAITHUB the tightest mode removes, per eps (the median over students), and the range
    of the best FAITHUB / EMPLB."""
    modes = [m for m in MODES if m in table.columns]
    beyond = [m for m in modes if m not in ("paper", "tight")]
    if "tight" not in modes or not beyond:
        return "This run has no mode beyond tight."
    last = beyond[-1]
    removed = (1 - table[last] / table.tight).groupby(level="eps", sort=False).median()
    parts = ", ".join(f"{100 * v:.0f} % at {e}" for e, v in removed.items())
    ratio = table["best / EMPLB"]
    return (f"The {last} mode removes (median over students) {parts} of tight mode's mean FAITHUB; "
            f"the best mode's FAITHUB / EMPLB ranges from {ratio.min():.2f} to {ratio.max():.2f} "
            f"over the {len(table)} cells.")


def published(dataset: Dataset | str, results: Path | str = RESULTS):
    """The page's view of the published run in every mode: (``modes_table``, ``modes_findings``, its
    record as ``fkd.book.chapters.provenance`` gives it), or None where it is not published."""
    from fkd.book.chapters import provenance

    d = parse(Dataset, dataset)
    rows = modes_rows(d, results)
    if rows is None:
        return None
    t = modes_table(rows, d)
    return t, modes_findings(t), provenance(modes_run(d.value, results))
