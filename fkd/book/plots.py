"""Figures from result rows (matplotlib, imported lazily so the package works without it).

Every figure fits the book's text column unscaled with no font below 9 pt (``fkd.book.present.legible``)
and gives each student its colour (``fkd.book.present.colour``).
"""
from __future__ import annotations

from fkd.book.present import WIDTH, colour, legible


def _curves(panels, title: str):
    """Panels of curves against eps: each (title, y label, {name: (eps labels, ours, paper)}); ours
    solid, the paper's dashed, one colour per name. Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, 3.6), squeeze=False, layout="constrained")
    names = []
    for ax, (panel, ylabel, series) in zip(axes[0], panels):
        order = list(dict.fromkeys(e for labels, _, _ in series.values() for e in labels))
        for name, (labels, ours, paper) in series.items():
            x = [order.index(e) for e in labels]
            ax.plot(x, ours, "o-", color=colour(name), ms=4)
            ax.plot(x, paper, "s--", color=colour(name), ms=3, alpha=0.8)
            names += [name] if name not in names else []
        ax.set_xticks(range(len(order)), order)
        ax.set(title=panel, xlabel="eps", ylabel=ylabel)
    handles = [Line2D([], [], color=colour(n), lw=2, label=n) for n in names]
    handles += [Line2D([], [], color="k", ls="-", label="ours"), Line2D([], [], color="k", ls="--", label="paper")]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title)
    return legible(fig)


def plot_table1(table, title: str):
    """Table 1 as curves against eps: robust accuracy of teacher and students, and distillation
    agreement (by the paper's attack where the table has it, else by our flip search), ours solid
    beside the paper's dashed.

    Args:
        table: ``fkd.book.tables.table1`` (columns (quantity, ours|paper|diff)).
    Returns:
        a matplotlib Figure.
    """
    panels = []
    quantities = list(dict.fromkeys(c[0] for c in table.columns))
    paper_attack = any(q.startswith("agree_paper ") for q in quantities)  # the paper's method, where measured
    agree = ("agree_paper", "distillation agreement (%, the paper's attack)") if paper_attack else \
        ("agree", "distillation agreement (%)")
    for kind, panel in (("robust", "robust accuracy (%)"), agree):
        qs = [q for q in quantities if q.startswith(kind + " ")]
        series = {q.split()[1]: (list(table.index), table[(q, "ours")].tolist(), table[(q, "paper")].tolist())
                  for q in qs}
        panels.append((panel, "%", series))
    return _curves(panels, title)


def plot_table2(table, title: str):
    """Table 2 as curves against eps: mean EMPLB and mean FAITHUB per student, ours solid beside the
    paper's dashed.

    Args:
        table: ``fkd.book.tables.table2`` (long: eps_label, bound, student, mean, paper_mean, ...).
    Returns:
        a matplotlib Figure.
    """
    panels = []
    for bound in ("EMPLB", "FAITHUB"):
        b = table[table.bound == bound]
        series = {st: (g.eps_label.tolist(), g["mean"].tolist(), g.paper_mean.tolist())
                  for st, g in b.groupby("student", sort=False)}
        panels.append((f"mean {bound}", "confidence gap", series))
    return _curves(panels, title)


def plot_attack_strength(df, title: str | None = None):
    """Mean EMPLB against PGD steps (log scale), one panel per student, one line per restarts count
    and strategy (solid: the inf-norm objective; dashed: per-class objectives).

    Args:
        df: rows of ``fkd.experiments.attack_study.attack_strength``.
    Returns:
        a matplotlib Figure.
    """

    import matplotlib.pyplot as plt

    students = list(dict.fromkeys(df.student))
    cols = min(2, len(students))
    rows = -(-len(students) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, 2.6 * rows + 1.6), squeeze=False, sharey=True,
                             layout="constrained")
    restarts = sorted(df.restarts.unique())
    colors = plt.cm.viridis([i / max(len(restarts) - 1, 1) for i in range(len(restarts))])
    styles = {"max": "-", "classes": "--"}
    for ax in axes.flat[len(students):]:
        ax.set_visible(False)
    for ax, student in zip(axes.flat, students):
        sub = df[df.student == student]
        for strategy, style in styles.items():
            for color, r in zip(colors, restarts):
                m = sub[(sub.strategy == strategy) & (sub.restarts == r)].groupby("steps").value.mean()
                if len(m):
                    ax.plot(m.index, m.values, style, color=color, marker=".",
                            label=f"{strategy}, {r} restart{'s' if r > 1 else ''}")
        ax.axvline(50, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_title(student_label(student))
        ax.set_xlabel("PGD steps (step 2.5 eps / steps)")
    for ax in axes[:, 0]:
        ax.set_ylabel("mean EMPLB")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
    eps = df.eps.iloc[0]
    fig.suptitle(title or f"{df.dataset.iloc[0]}, eps {eps:g}: EMPLB against attack strength "
                          f"({df.image.nunique()} images; dotted line: the paper's 50 steps)")
    return legible(fig)


def plot_bound_histograms(rows, mode: str = "tight", bins: int = 20, title: str | None = None):
    """Figures 2 and 3: histograms over images of EMPLB and FAITHUB, one panel per (eps, student).

    Args:
        rows: ``fkd.experiments.verify`` rows of one dataset (columns student, eps, emplb, faithub_<mode>).
        mode: which FAITHUB (paper or tight).
    Returns:
        a matplotlib Figure (rows: eps; columns: students; x: bound value in [0, 1]; y: images).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from fkd.config import eps_label
    from fkd.book.tables import verify_long

    long = verify_long(rows, mode)
    students = sorted(dict.fromkeys(long.student), key=_student_order)
    eps = sorted(long.eps.unique())
    fig, axes = plt.subplots(len(eps), len(students), figsize=(WIDTH, 1.5 * len(eps) + 1.4),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    edges = np.linspace(0.0, 1.0, bins + 1)
    for r, e in enumerate(eps):
        for c, student in enumerate(students):
            ax = axes[r][c]
            sub = long[(long.eps == e) & (long.student == student)]
            for metric, color in (("emplb", "tab:blue"), ("faithub", "tab:orange")):
                ax.hist(sub[sub.metric == metric].value.clip(0, 1), bins=edges, color=color, alpha=0.6,
                        label="EMPLB" if metric == "emplb" else f"FAITHUB ({mode})")
            if r == 0:
                ax.set_title(student_label(student, students))
            if c == 0:
                ax.set_ylabel(f"eps {eps_label(e)}\nimages")
    for ax in axes[-1]:
        ax.set_xlabel("bound")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    n = long.image.nunique()
    fig.suptitle(title or f"{long.dataset.iloc[0]}: EMPLB and FAITHUB over {n} images")
    return legible(fig)


def student_label(name: str, among=()) -> str:
    """A zoo student as a reader's label: ``fd`` -> FD; ``fd-a0.5`` -> FD, or FD α 0.5 where another
    student of ``among`` has the same method."""
    head, _, alpha = name.partition("-a")
    same = [n for n in among if n.partition("-a")[0] == head]
    return f"{head.upper()} α {alpha}" if alpha and len(same) > 1 else head.upper()


def _student_order(name: str) -> tuple[int, str]:
    from fkd.book.paper_numbers import ORDER

    head = name.split("-a")[0].upper()
    return (ORDER.index(head) if head in ORDER else len(ORDER), name)


def draw_gap(ax, s, marks: bool = True):
    """Draw one ``fkd.experiments.slice.Slice`` on ``ax``: the gap map (colour scale [0, 1]), the boundary of
    the disagreement region (hatched inside), the EMPLB point (star at (1, 0)) and, with ``marks``,
    the worst disagreeing point (X) and the worst agreeing, poorly calibrated point (circle).
    Returns the image (for a colour bar)."""
    ext = (float(s.coords[0]), float(s.coords[-1])) * 2
    im = ax.imshow(s.gap.T.numpy(), origin="lower", extent=ext, vmin=0.0, vmax=1.0, cmap="magma")
    c, d = s.coords.numpy(), s.disagree.T.float().numpy()
    if s.disagree.any() and not s.disagree.all():
        ax.contourf(c, c, d, levels=[0.5, 1.5], colors="none", hatches=["///"])
        ax.contour(c, c, d, levels=[0.5], colors="cyan", linewidths=0.8)
    ax.plot([1.0], [0.0], marker="*", color="white", markersize=14, markeredgecolor="black", label="EMPLB point",
            clip_on=False, zorder=4)
    if marks:
        for where, marker, label in ((s.disagree, "X", "worst disagreement"),
                                     (~s.disagree, "o", "worst agreeing point (miscalibrated)")):
            p = s.worst(where)
            if p is not None:
                ax.plot(*p, marker=marker, color="cyan" if marker == "X" else "lime", markersize=8,
                        markeredgecolor="black", linestyle="none", label=label, clip_on=False, zorder=5)
    ax.set_xlabel("a (towards the EMPLB point)")
    ax.set_ylabel("b (random sign direction)")
    return im


def plot_gap_slices(slices: dict, eps: float, title: str | None = None):
    """Figure 1: ||f_t - f_s||_inf over a 2-D slice of the eps-ball, one panel per student.

    Marks: the EMPLB point (star, at (1, 0)), the region where teacher and student disagree
    (hatched contour), the worst disagreeing grid point (x: an adversarial disagreement) and the
    worst grid point where they agree (circle: a poorly calibrated point, same class but different
    confidence).

    Args:
        slices: student name -> ``fkd.experiments.slice.Slice`` (same image, eps and directions).
    Returns:
        a matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(slices), figsize=(min(WIDTH, 3.6 * len(slices) + 0.8), 4.4), squeeze=False,
                             layout="constrained")
    for ax, (name, s) in zip(axes[0], slices.items()):
        im = draw_gap(ax, s)
        ax.set_title(f"{name}: max gap {float(s.gap.max()):.2f}, EMPLB {s.emplb:.2f}")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.85, label="||f_t - f_s||_inf")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    fig.suptitle(title or f"confidence gap over a slice of the eps = {eps:g} ball")
    return legible(fig)


def plot_softmax_bounds(fb, emplb_point=None, title: str | None = None):
    """Eqs. 10 and 11 on one image: each class's softmax interval for teacher and student, and the
    pair of interval ends that gives FAITHUB.

    Args:
        fb: ``fkd.bounds.faithub`` result (softmax boxes (K,) of both networks and the value).
        emplb_point: optional (teacher probs (K,), student probs (K,)) at the EMPLB point, drawn as dots.
    Returns:
        a matplotlib Figure (x: class; y: confidence).
    """
    import matplotlib.pyplot as plt
    import torch

    t, s = fb.teacher_sigma, fb.student_sigma
    k = torch.arange(t.lower.shape[-1]).numpy()
    fig, ax = plt.subplots(figsize=(WIDTH, 4.0), layout="constrained")
    for box, dx, color, name in ((t, -0.15, "tab:blue", "teacher"), (s, 0.15, "tab:orange", "student")):
        lo, up = box.lower.numpy(), box.upper.numpy()
        ax.bar(k + dx, up - lo, bottom=lo, width=0.28, color=color, alpha=0.45, label=f"{name} softmax bounds (eq. 10)")
    gaps = torch.stack([t.upper - s.lower, s.upper - t.lower])
    which, cls = divmod(int(gaps.argmax()), gaps.shape[1])
    hi, lo = ((t.upper, s.lower) if which == 0 else (s.upper, t.lower))
    ax.annotate("", xy=(cls + 0.33, float(hi[cls])), xytext=(cls + 0.33, float(lo[cls])),
                arrowprops=dict(arrowstyle="<->", color="black"))
    ax.text(cls + 0.4, float(lo[cls] + hi[cls]) / 2, f"FAITHUB\n{fb.value:.3f}", va="center")
    if emplb_point is not None:
        pt, ps = emplb_point
        ax.plot(k - 0.15, pt.numpy(), "o", color="tab:blue", ms=4, label="teacher at the EMPLB point")
        ax.plot(k + 0.15, ps.numpy(), "o", color="tab:orange", ms=4, label="student at the EMPLB point")
    ax.set_xticks(k)
    ax.set_xlabel("class")
    ax.set_ylabel("confidence")
    ax.set_ylim(0, 1.02)
    fig.legend(loc="outside lower center", ncol=2, frameon=False)
    ax.set_title(title or "softmax bounds of teacher and student over the eps-ball")
    return legible(fig)


def plot_sandwich(rows, image: int, mode: str = "tight"):
    """EMPLB <= delta* <= FAITHUB for one image as eps grows: per student, the band where delta*
    must lie. Args: ``fkd.experiments.verify`` rows holding ``image`` (test-set index). Returns a Figure."""
    import matplotlib.pyplot as plt

    r = rows[rows.image == image]
    if r.empty:
        raise ValueError(f"image {image} is not in these rows; they hold {sorted(rows.image.unique())[:10]} ...")
    students = sorted(r.student.unique(), key=_student_order)
    fig, axes = plt.subplots(1, len(students), figsize=(WIDTH, 3.4), sharey=True, squeeze=False, layout="constrained")
    for ax, st in zip(axes[0], students):
        s = r[r.student == st].sort_values("eps")
        ax.fill_between(s.eps, s.emplb, s[f"faithub_{mode}"], color="tab:green", alpha=0.25, label="delta* lies here")
        ax.plot(s.eps, s.emplb, "o-", ms=3, label="EMPLB (attack)")
        ax.plot(s.eps, s[f"faithub_{mode}"], "s-", ms=3, label=f"FAITHUB ({mode})")
        ax.set_title(student_label(st, students))
        ax.set_xlabel("eps")
    axes[0][0].set_ylabel("confidence gap")
    axes[0][0].set_ylim(0, 1.02)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)  # below: it covers no curve
    fig.suptitle(f"{r.dataset.iloc[0]} test image {image}: the interval that holds delta*")
    return legible(fig)
