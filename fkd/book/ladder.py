"""FAITHUB mode by mode on one image: what each stage of the bound removes (eqs. 9 to 11 and beyond).

Each mode is capped by the mode it builds on: ``paper`` (eq. 9 from logit intervals); ``tight``
(z_j - z_i bounded directly) on paper; ``joint`` (teacher and student at one shared x) and
``softmax`` (each network's softmax inside its program) each on tight; ``joint_softmax`` (both
softmaxes at one x) on softmax. EMPLB, the attack, is the floor no sound bound can go below.
"""
from __future__ import annotations

import time
from typing import NamedTuple

from fkd.bounds import as_net
from fkd.bounds.shared import ImageBounds
from fkd.config import Dataset, parse
from fkd.experiments.runner import torch_threads
from fkd.units import resolve_units, radius

#: the ladder's rungs: (mode, the mode it builds on, what it adds over that one)
RUNGS = (("paper", None, "eq. 9: d_ij from each network's logit intervals (the paper)"),
         ("tight", "paper", "d_ij = z_j - z_i bounded directly in each network's program"),
         ("joint", "tight", "teacher and student at one shared x: cross bounds on d^t - d^s"),
         ("softmax", "tight", "each network's softmax inside its program: the classes coupled"),
         ("joint_softmax", "softmax", "both softmaxes in one program at a shared x"))


class Ladder(NamedTuple):
    """FAITHUB of one image per mode: ``rows`` a DataFrame (mode, builds on, adds, FAITHUB, removed,
    over EMPLB, seconds, status), ``emplb`` the attack's value, ``test_index`` the image."""
    rows: object
    emplb: float
    test_index: int
    student: str
    eps: float


@torch_threads(1)
def ladder(dataset: Dataset | str = "mnist", student: str = "fd", position: int = 0, eps: float = 0.05,
           method: str = "lp", units: str | None = None, seed: int = 0) -> Ladder:
    """FAITHUB of image ``position`` of the fixed subset in every mode, loosest first.

    Args:
        eps: the radius, read in ``units`` (None: the dataset's reading and its zoo).
        method: the bound method of every mode (crown, lp, milp).
    Returns:
        Ladder; ``removed`` is the share of the gap FAITHUB - EMPLB of the mode it builds on that
        this mode removes (0 to 1); ``seconds`` its own time (what it builds on is computed first).
    """
    import pandas as pd
    import torch

    from fkd.data import eval_subset
    from fkd.empirical_bound import emplb
    from fkd.zoo import load_model

    d = parse(Dataset, dataset)
    x, _, idx = eval_subset(d, position + 1)
    x0 = x[position]
    u = resolve_units(units, d)
    r = radius(eps, u, d)
    teacher, model = load_model(d, "rt", units=u), load_model(d, student, units=u)
    floor = float(emplb(teacher, model, x0[None], r, generator=torch.Generator().manual_seed(seed)).value[0])
    nt, ns = as_net(teacher, x0.shape), as_net(model, x0.shape)
    ib = ImageBounds(x0, r, method)
    rows, value = [], {}
    for mode, base, adds in RUNGS:
        t0 = time.perf_counter()
        res = ib.faithub(mode, nt, ns)
        value[mode] = res.value
        below = value.get(base)
        removed = float("nan") if below is None or below - floor <= 0 else (below - res.value) / (below - floor)
        rows.append({"mode": mode, "builds on": base or "-", "adds": adds, "FAITHUB": res.value, "removed": removed,
                     "over EMPLB": res.value / floor if floor > 0 else float("inf"),
                     "seconds": time.perf_counter() - t0, "status": res.status})
    return Ladder(pd.DataFrame(rows), floor, int(idx[position]), student, eps)


def plot_ladder(lad: Ladder):
    """FAITHUB per mode as horizontal bars above the EMPLB line: the ladder of one image."""
    import matplotlib.pyplot as plt

    from fkd.book.present import colour, legible

    rows = lad.rows
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ypos = range(len(rows))[::-1]
    ax.barh(list(ypos), rows["FAITHUB"], color=colour(lad.student), alpha=0.8)
    ax.axvline(lad.emplb, color="k", ls="--", lw=1.2, label=f"EMPLB {lad.emplb:.4f}")
    for y, v in zip(ypos, rows["FAITHUB"]):
        ax.text(v, y, f" {v:.4f}", va="center")
    ax.set_yticks(list(ypos), rows["mode"])
    ax.set_xlabel("FAITHUB (upper bound on delta*)")
    ax.set_xlim(0, max(rows["FAITHUB"].max() * 1.25, lad.emplb * 1.5))
    ax.legend(loc="lower right")
    ax.set_title(f"test image {lad.test_index}, {lad.student.upper()}, eps {lad.eps:g}")
    legible(fig)
    fig.tight_layout()
    return fig
