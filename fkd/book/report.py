"""The reproduction report: the paper's claims (i) to (v) checked on our result rows, and how far
each table's cells sit from the paper's.

Every function takes result rows (``fkd.experiments.evaluate`` long rows, ``fkd.experiments.verify`` rows) and returns a
DataFrame; nothing here holds a number of its own. A claim is checked cell by cell (one cell: one
eps, student and quantity) and reported as ``holds`` (every cell), ``partly`` (some) or ``fails``.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

from fkd.config import Dataset, eps_label, model_name, parse, resolve_model
from fkd.book.tables import table1, table2
from fkd.losses import PAPER_STUDENTS, get_method

ADVERSARIAL = tuple(s.upper() for s in PAPER_STUDENTS if get_method(s).adversarial)  # ARD, RSLAD, FD


class Miss(NamedTuple):
    """One cell where a claim does not hold: ``claimed`` should beat ``rival`` on ``quantity``
    (robust, agree, emplb or faithub_<mode>) at ``eps`` but does not. Students are zoo names; the
    rival is taken at ``rival_eps`` when given (claim (iv): the same student at the smaller eps)."""
    claim: str
    dataset: str
    quantity: str
    eps: float
    claimed: str
    rival: str
    rival_eps: float | None = None

    @property
    def rival_at(self) -> float:
        """The eps at which the rival is read: ``rival_eps``, else the cell's own."""
        return self.eps if self.rival_eps is None else self.rival_eps


def _zoo(dataset: str, paper_name: str) -> str:
    """The zoo model of a paper column (``FD`` -> ``fd-a1`` on CIFAR-10)."""
    return model_name(*resolve_model(dataset, paper_name.lower()))


def _verdict(held: int, total: int) -> str:
    if total == 0:
        return "no data"
    return "holds" if held == total else "fails" if held == 0 else "partly"


def _row(claim: str, dataset: Dataset | str, held: int, total: int, detail: str,
         misses: list[Miss] | None = None) -> dict[str, Any]:
    name = dataset.value if isinstance(dataset, Dataset) else dataset
    return {"claim": claim, "dataset": name, "verdict": _verdict(held, total), "cells": f"{held}/{total}",
            "detail": detail, "misses": misses or []}


def _student_means(rows, metric_col: str):
    """Mean of ``metric_col`` per (eps, paper student name) over images, paper's students only."""
    from fkd.book.paper_numbers import _paper_column

    d = parse(Dataset, rows.dataset.iloc[0])
    r = rows.assign(column=[_paper_column(d, s) for s in rows.student])
    r = r[r.column.notna()]
    return r.pivot_table(index="eps", columns="column", values=metric_col, aggfunc="mean")


CLAIM_I = "(i) adversarial distillation beats SD"


def claim_i(empirical) -> list[dict[str, Any]]:
    """(i) ARD, RSLAD and FD beat SD on robust accuracy and on agreement, at every eps > 0."""
    out = []
    for d, rows in empirical.groupby("dataset"):
        t = table1(rows, d)
        eps_of = {eps_label(e): e for e in rows.eps.unique()}
        held, total, misses, found = 0, 0, [], []
        for q in ("robust", "agree"):
            for eps in t.index[1:]:
                sd = t.loc[eps, (f"{q} SD", "ours")]
                for s in ADVERSARIAL:
                    total += 1
                    if t.loc[eps, (f"{q} {s}", "ours")] >= sd:
                        held += 1
                    else:
                        misses.append(f"{q} {s} at {eps}")
                        found.append(Miss(CLAIM_I, d, q, eps_of[eps], _zoo(d, s), _zoo(d, "SD")))
        out.append(_row(CLAIM_I, d, held, total,
                        "below SD: " + ", ".join(misses) if misses else "every ARD, RSLAD, FD cell >= SD", found))
    return out


def claim_ii(certified: Mapping[str, Any], mode: str = "tight") -> list[dict[str, Any]]:
    """(ii) FD has the lowest mean FAITHUB among the four students, at every eps, on each dataset."""
    out = []
    for d, rows in certified.items():
        m = _student_means(rows, f"faithub_{mode}")
        lowest = m.idxmin(axis=1)
        misses = [f"{eps_label(e)}: {lowest[e]} {m.loc[e, lowest[e]]:.3f} < FD {m.loc[e, 'FD']:.3f}"
                  for e in m.index if lowest[e] != "FD"]
        claim = f"(ii) FD lowest mean FAITHUB ({mode})"
        dd = rows.dataset.iloc[0]
        found = [Miss(claim, d, f"faithub_{mode}", e, _zoo(dd, "FD"), _zoo(dd, lowest[e]))
                 for e in m.index if lowest[e] != "FD"]
        out.append(_row(claim, d, len(m) - len(misses), len(m), "; ".join(misses) or "FD lowest at every eps", found))
    return out


def claim_iii(empirical) -> list[dict[str, Any]]:
    """(iii) RSLAD is empirically best on Fashion-MNIST: highest robust accuracy and agreement and
    lowest mean EMPLB among the students, at every eps > 0."""
    rows = empirical[empirical.dataset == Dataset.FASHION_MNIST.value]
    if rows.empty:
        return [_row("(iii) RSLAD empirically best", Dataset.FASHION_MNIST, 0, 0, "no Fashion-MNIST rows")]
    t = table1(rows, Dataset.FASHION_MNIST)
    emplb = _student_means(rows[rows.metric == "emplb"].rename(columns={"value": "v"}), "v")
    held, total, misses, found = 0, 0, [], []
    students = ("SD", *ADVERSARIAL)
    d, claim = Dataset.FASHION_MNIST.value, "(iii) RSLAD empirically best"
    eps_of = {eps_label(e): e for e in rows.eps.unique()}
    for eps in t.index[1:]:
        for q in ("robust", "agree"):
            vals = {s: t.loc[eps, (f"{q} {s}", "ours")] for s in students}
            total += 1
            best = max(vals, key=vals.get)
            held += vals["RSLAD"] >= vals[best]
            if vals["RSLAD"] < vals[best]:
                misses.append(f"{q} at {eps}: {best}")
                found.append(Miss(claim, d, q, eps_of[eps], _zoo(d, "RSLAD"), _zoo(d, best)))
    for e in emplb.index:
        total += 1
        best = emplb.loc[e].idxmin()
        held += best == "RSLAD"
        if best != "RSLAD":
            misses.append(f"EMPLB at {eps_label(e)}: {best}")
            found.append(Miss(claim, d, "emplb", e, _zoo(d, "RSLAD"), _zoo(d, best)))
    return [_row(claim, d, held, total, "best instead: " + ", ".join(misses) if misses else "RSLAD best in every cell",
                 found)]


def claim_iv(certified: Mapping[str, Any], mode: str = "tight") -> list[dict[str, Any]]:
    """(iv) FAITHUB loosens towards 1 as eps grows: each student's mean FAITHUB never falls from one
    eps to the next."""
    out = []
    for d, rows in certified.items():
        m = _student_means(rows, f"faithub_{mode}").sort_index()
        steps = [(s, a, b) for s in m.columns for a, b in zip(m.index[:-1], m.index[1:])]
        falls = [(s, a, b) for s, a, b in steps if m.loc[b, s] < m.loc[a, s]]
        misses = [f"{s} {eps_label(a)}->{eps_label(b)}" for s, a, b in falls]
        last = m.iloc[-1]
        # a miss compares a student at the larger eps (claimed: looser) with itself at the smaller one
        found = [Miss(f"(iv) FAITHUB grows with eps ({mode})", d, f"faithub_{mode}", b, _zoo(rows.dataset.iloc[0], s),
                      _zoo(rows.dataset.iloc[0], s), float(a)) for s, a, b in falls]
        out.append(_row(f"(iv) FAITHUB grows with eps ({mode})", d, len(steps) - len(falls), len(steps),
                        ("falls: " + ", ".join(misses) + "; " if misses else "monotone; ")
                        + f"at {eps_label(m.index[-1])}: " + ", ".join(f"{s} {v:.3f}" for s, v in last.items()), found))
    return out


def claim_v(cifar_rows, mode: str = "tight") -> list[dict[str, Any]]:
    """(v) On CIFAR-10, FD with alpha 1.0 has a lower mean FAITHUB than with alpha 0.5 and 0.75."""
    fd = cifar_rows[cifar_rows.student.str.startswith("fd-a")]
    alphas = {s: resolve_model(Dataset.CIFAR10, s)[1] for s in fd.student.unique()}
    if not {0.5, 0.75, 1.0} <= set(alphas.values()):
        return [_row("(v) FD alpha 1.0 best", Dataset.CIFAR10, 0, 0,
                     f"needs fd-a0.5, fd-a0.75 and fd-a1 rows; have {sorted(alphas)}")]
    m = fd.assign(alpha=fd.student.map(alphas)).pivot_table(index="eps", columns="alpha",
                                                             values=f"faithub_{mode}", aggfunc="mean")
    held, total, misses, found = 0, 0, [], []
    claim, name = f"(v) FD alpha 1.0 best ({mode})", {a: s for s, a in alphas.items()}
    for e in m.index:
        for a in (0.5, 0.75):
            total += 1
            if m.loc[e, 1.0] <= m.loc[e, a]:
                held += 1
            else:
                misses.append(f"{eps_label(e)}: alpha {a} {m.loc[e, a]:.3f} < 1.0 {m.loc[e, 1.0]:.3f}")
                found.append(Miss(claim, Dataset.CIFAR10.value, f"faithub_{mode}", e, name[1.0], name[a]))
    return [_row(claim, Dataset.CIFAR10, held, total, "; ".join(misses) or "alpha 1.0 lowest at every eps", found)]


def claims(empirical, certified: Mapping[str, Any], mode: str = "tight"):
    """All five claims as one DataFrame (claim, dataset, verdict, cells held/total, detail).

    Args:
        empirical: ``fkd.experiments.evaluate`` rows of any datasets (concatenated).
        certified: dataset name -> ``fkd.experiments.verify`` rows (CIFAR-10's with the FD alpha students for (v)).
    """
    import pandas as pd

    return pd.DataFrame(claim_rows(empirical, certified, mode)).drop(columns="misses")


def claim_rows(empirical, certified: Mapping[str, Any], mode: str) -> list[dict[str, Any]]:
    rows = claim_i(empirical) + claim_ii(certified, mode) + claim_iii(empirical) + claim_iv(certified, mode)
    if "cifar10" in certified:
        rows += claim_v(certified["cifar10"], mode)
    return rows


def distance(empirical, certified: Mapping[str, Any], mode: str = "tight"):
    """How far our cells sit from the paper's, per table and dataset: cells compared, mean and
    largest absolute difference, and the largest one's cell. Table 1's agreement counts once per
    cell, by the paper's attack where the rows have it."""
    import pandas as pd

    out = []
    for d, rows in empirical.groupby("dataset"):
        t = table1(rows, d)
        diff = t.xs("diff", axis=1, level=1)
        if any(q.startswith("agree_paper ") for q in diff.columns):  # one agreement per cell: the paper's attack
            diff = diff[[q for q in diff.columns if not q.startswith("agree ")]]
        diff = diff.stack()
        worst = diff.abs().idxmax()
        out.append({"table": "1 (%)", "dataset": d, "cells": int(diff.notna().sum()),
                    "mean |diff|": round(float(diff.abs().mean()), 2), "largest |diff|": round(float(diff.abs().max()), 2),
                    "at": f"{worst[1]}, eps {worst[0]}"})
    for d, rows in certified.items():
        t = table2(rows, d, mode).dropna(subset=["paper_mean"])
        for bound, g in t.groupby("bound"):
            k = g.diff_mean.abs().idxmax()
            out.append({"table": f"2 {bound}", "dataset": d, "cells": len(g),
                        "mean |diff|": round(float(g.diff_mean.abs().mean()), 3),
                        "largest |diff|": round(float(g.diff_mean.abs().max()), 3),
                        "at": f"{g.student[k]}, eps {g.eps_label[k]}"})
    return pd.DataFrame(out)
