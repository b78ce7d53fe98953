"""Why a claim of the reproduction report misses where it does: every missed cell as a paired
comparison over the same images (is it within image-to-image noise?), and the most likely reason
as sentences computed from those rows. Nothing here holds a number of its own.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from fkd.config import eps_label
from fkd.book.report import Miss, claim_rows


def _per_image(empirical, certified: Mapping[str, Any], miss: Miss, student: str, eps: float):
    """One student's per-image values (Series indexed by test image) of a miss's quantity at ``eps``
    (robust accuracy and agreement in %, as in Table 1)."""
    if miss.quantity.startswith("faithub_"):
        rows = certified[miss.dataset]
        rows = rows[(rows.student == student) & (rows.eps == eps)]
        return rows.set_index("image")[miss.quantity]
    metric = {"robust": "correct", "agree": "agree", "emplb": "emplb"}[miss.quantity]
    rows = empirical[(empirical.dataset == miss.dataset) & (empirical.student == student)
                     & (empirical.eps == eps) & (empirical.metric == metric)]
    return rows.set_index("image")["value"] * (1.0 if metric == "emplb" else 100.0)


def noise(empirical, certified: Mapping[str, Any], mode: str = "tight", z: float = 1.96):
    """Every cell where a claim does not hold, as a paired comparison over the same images: the
    mean per-image difference (claimed minus rival, in the table's unit), its ``z``-sigma interval
    (normal approximation over images) and whether that interval contains 0. A miss inside the
    interval is within image-to-image noise: our subset cannot tell the two apart.

    Returns:
        DataFrame (claim, dataset, eps, quantity, claimed, rival, rival eps, images, diff, low, high,
        reading, EMPLB agrees).
    """
    import pandas as pd

    out = []
    for row in claim_rows(empirical, certified, mode):
        for m in row["misses"]:
            a = _per_image(empirical, certified, m, m.claimed, m.eps)
            b = _per_image(empirical, certified, m, m.rival, m.rival_at)
            diff = (a - b).dropna()
            n = len(diff)
            half = z * float(diff.std(ddof=1)) / math.sqrt(n) if n > 1 else float("inf")
            mean = float(diff.mean())
            emplb_too = None
            if m.quantity.startswith("faithub_") and m.rival_eps is None:
                e = certified[m.dataset]
                e = e[e.eps == m.eps].pivot_table(index="image", columns="student", values="emplb")
                emplb_too = bool(e[m.claimed].mean() > e[m.rival].mean())  # the attack orders them the same way
            out.append({"claim": m.claim, "dataset": m.dataset, "eps": eps_label(m.eps), "quantity": m.quantity,
                        "claimed": m.claimed, "rival": m.rival,
                        "rival eps": eps_label(m.rival_at), "images": n,
                        "diff": round(mean, 4),
                        "low": round(mean - half, 4), "high": round(mean + half, 4),
                        "reading": "within noise" if mean - half <= 0 <= mean + half else "real on our runs",
                        "EMPLB agrees": emplb_too})
    return pd.DataFrame(out, columns=["claim", "dataset", "eps", "quantity", "claimed", "rival", "rival eps", "images",
                                      "diff", "low", "high", "reading", "EMPLB agrees"])


def clean_accuracy() -> dict[tuple[str, str], float]:
    """Clean test accuracy (%) of every zoo model, keyed by (dataset, model name), from its metadata."""
    from fkd.zoo import list_zoo

    return {(r["dataset"], r["file"].removesuffix(".safetensors")): r["clean_acc"] for r in list_zoo()}


def explain(misses, clean_acc: Mapping[tuple[str, str], float] | None = None) -> list[str]:
    """The most likely reason for each (claim, dataset) that does not hold everywhere, as sentences
    computed from ``noise``'s rows: image-to-image noise where every paired interval contains 0;
    otherwise a real difference between our students, with the attack's (EMPLB's) ordering for a
    FAITHUB miss and the students' clean accuracy (``clean_acc[(dataset, student)]``, %; default
    the zoo's, ``{}`` for none)."""
    clean_acc = clean_accuracy() if clean_acc is None else clean_acc
    out = []
    for (claim, d), g in misses.groupby(["claim", "dataset"], sort=False):
        cells = ", ".join(f"{q} of {c} at {e} against {r}" + ("" if re == e else f" at {re}")
                          for q, c, r, e, re in zip(g.quantity, g.claimed, g.rival, g.eps, g["rival eps"]))
        noisy = g.reading == "within noise"
        text = f"{claim}, {d}: {len(g)} cell(s) miss ({cells}). "
        if noisy.all():
            text += (f"Every paired 95 % interval over the {g.images.min()} images contains 0: within "
                     "image-to-image noise, our subset cannot tell these students apart there.")
        else:
            real = g[~noisy]
            lo, hi = real["diff"].abs().min(), real["diff"].abs().max()
            gap = f"{lo:.3g}" if lo == hi else f"{lo:.3g} to {hi:.3g}"
            text += f"{len(real)} real on our runs (paired intervals exclude 0; gap {gap} in the table's unit)"
            if noisy.any():
                text += f", {int(noisy.sum())} within noise"
            agree = real["EMPLB agrees"].dropna().astype(bool)
            if len(agree) and agree.all():
                text += ("; the attack (EMPLB) orders the students the same way in every one, so the bound "
                         "reflects a real difference between our models, not the relaxation")
            elif len(agree) and not agree.any():
                text += ("; the attack (EMPLB) orders them the other way in every one: the claimed student is "
                         "empirically the more faithful, and its bound is the looser (the relaxation's doing)")
            elif len(agree):
                text += (f"; the attack (EMPLB) orders the students the same way in {int(agree.sum())} of "
                         f"{len(agree)}")
            if clean_acc:
                pairs = sorted({(c, r) for c, r in zip(real.claimed, real.rival) if c != r})
                accs = "; ".join(f"{c} {clean_acc.get((d, c), float('nan')):.1f} % against {r} "
                                 f"{clean_acc.get((d, r), float('nan')):.1f} %" for c, r in pairs)
                if accs:
                    text += f". Clean accuracy: {accs}"
            text += ". Our students are not the paper's (trained on a CPU, one seed, early stopping)."
        out.append(text)
    return out
