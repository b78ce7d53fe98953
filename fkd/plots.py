"""Figures from result rows (matplotlib, imported lazily so the package works without it)."""
from __future__ import annotations


def plot_attack_strength(df, title: str | None = None):
    """Mean EMPLB against PGD steps (log scale), one panel per student, one line per restarts count
    and strategy (solid: the inf-norm objective; dashed: per-class objectives).

    Args:
        df: rows of ``fkd.attack_study.attack_strength``.
    Returns:
        a matplotlib Figure.
    """

    import matplotlib.pyplot as plt

    students = list(dict.fromkeys(df.student))
    fig, axes = plt.subplots(1, len(students), figsize=(3.4 * len(students) + 1.8, 3.2), squeeze=False)
    restarts = sorted(df.restarts.unique())
    colors = plt.cm.viridis([i / max(len(restarts) - 1, 1) for i in range(len(restarts))])
    styles = {"max": "-", "classes": "--"}
    for ax, student in zip(axes[0], students):
        sub = df[df.student == student]
        for strategy, style in styles.items():
            for color, r in zip(colors, restarts):
                m = sub[(sub.strategy == strategy) & (sub.restarts == r)].groupby("steps").value.mean()
                if len(m):
                    ax.plot(m.index, m.values, style, color=color, marker=".",
                            label=f"{strategy}, {r} restart{'s' if r > 1 else ''}")
        ax.axvline(50, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_title(student)
        ax.set_xlabel("PGD steps (step 2.5 eps / steps)")
    axes[0][0].set_ylabel("mean EMPLB")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="center right")
    eps = df.eps.iloc[0]
    fig.suptitle(title or f"{df.dataset.iloc[0]}, eps {eps:g}: EMPLB against attack strength "
                          f"({df.image.nunique()} images; dotted line: the paper's 50 steps)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 1.8 / fig.get_figwidth(), 1))
    return fig


def plot_bound_histograms(rows, mode: str = "tight", bins: int = 20, title: str | None = None):
    """Figures 2 and 3: histograms over images of EMPLB and FAITHUB, one panel per (eps, student).

    Args:
        rows: ``fkd.verify`` rows of one dataset (columns student, eps, emplb, faithub_<mode>).
        mode: which FAITHUB (paper or tight).
    Returns:
        a matplotlib Figure (rows: eps; columns: students; x: bound value in [0, 1]; y: images).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from .config import eps_label
    from .tables import verify_long

    long = verify_long(rows, mode)
    students = sorted(dict.fromkeys(long.student), key=_student_order)
    eps = sorted(long.eps.unique())
    fig, axes = plt.subplots(len(eps), len(students), figsize=(2.3 * len(students) + 0.4, 1.6 * len(eps) + 0.8),
                             sharex=True, sharey=True, squeeze=False)
    edges = np.linspace(0.0, 1.0, bins + 1)
    for r, e in enumerate(eps):
        for c, student in enumerate(students):
            ax = axes[r][c]
            sub = long[(long.eps == e) & (long.student == student)]
            for metric, color in (("emplb", "tab:blue"), ("faithub", "tab:orange")):
                ax.hist(sub[sub.metric == metric].value.clip(0, 1), bins=edges, color=color, alpha=0.6,
                        label="EMPLB" if metric == "emplb" else f"FAITHUB ({mode})")
            if r == 0:
                ax.set_title(student.split("-a")[0].upper(), fontsize=9)
            if c == 0:
                ax.set_ylabel(f"eps {eps_label(e)}", fontsize=8)
            ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("confidence gap bound", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="upper right", ncol=2)
    n = long.image.nunique()
    fig.suptitle(title or f"{long.dataset.iloc[0]}: EMPLB and FAITHUB over {n} images", fontsize=10, x=0.3)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def _student_order(name: str) -> tuple[int, str]:
    from .tables import ORDER

    head = name.split("-a")[0].upper()
    return (ORDER.index(head) if head in ORDER else len(ORDER), name)


def draw_gap(ax, s, marks: bool = True):
    """Draw one ``fkd.slice.Slice`` on ``ax``: the gap map (colour scale [0, 1]), the boundary of
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
    ax.set_xlabel("a (towards the EMPLB point)", fontsize=8)
    ax.set_ylabel("b (random sign direction)", fontsize=8)
    return im


def plot_gap_slices(slices: dict, eps: float, title: str | None = None):
    """Figure 1: ||f_t - f_s||_inf over a 2-D slice of the eps-ball, one panel per student.

    Marks: the EMPLB point (star, at (1, 0)), the region where teacher and student disagree
    (hatched contour), the worst disagreeing grid point (x: an adversarial disagreement) and the
    worst grid point where they agree (circle: a poorly calibrated point, same class but different
    confidence).

    Args:
        slices: student name -> ``fkd.slice.Slice`` (same image, eps and directions).
    Returns:
        a matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(slices), figsize=(3.6 * len(slices) + 0.8, 3.8), squeeze=False,
                             layout="constrained")
    for ax, (name, s) in zip(axes[0], slices.items()):
        im = draw_gap(ax, s)
        ax.set_title(f"{name}: max gap {float(s.gap.max()):.2f}, EMPLB {s.emplb:.2f}", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.85, label="||f_t - f_s||_inf")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside lower center", ncol=3)
    fig.suptitle(title or f"confidence gap over a slice of the eps = {eps:g} ball", fontsize=10)
    return fig


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
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for box, dx, color, name in ((t, -0.15, "tab:blue", "teacher"), (s, 0.15, "tab:orange", "student")):
        lo, up = box.lower.numpy(), box.upper.numpy()
        ax.bar(k + dx, up - lo, bottom=lo, width=0.28, color=color, alpha=0.45, label=f"{name} softmax bounds (eq. 10)")
    gaps = torch.stack([t.upper - s.lower, s.upper - t.lower])
    which, cls = divmod(int(gaps.argmax()), gaps.shape[1])
    hi, lo = ((t.upper, s.lower) if which == 0 else (s.upper, t.lower))
    ax.annotate("", xy=(cls + 0.33, float(hi[cls])), xytext=(cls + 0.33, float(lo[cls])),
                arrowprops=dict(arrowstyle="<->", color="black"))
    ax.text(cls + 0.4, float(lo[cls] + hi[cls]) / 2, f"FAITHUB\n{fb.value:.3f}", fontsize=8, va="center")
    if emplb_point is not None:
        pt, ps = emplb_point
        ax.plot(k - 0.15, pt.numpy(), "o", color="tab:blue", ms=4, label="teacher at the EMPLB point")
        ax.plot(k + 0.15, ps.numpy(), "o", color="tab:orange", ms=4, label="student at the EMPLB point")
    ax.set_xticks(k)
    ax.set_xlabel("class")
    ax.set_ylabel("confidence")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or "softmax bounds of teacher and student over the eps-ball", fontsize=9)
    fig.tight_layout()
    return fig


def plot_sandwich(rows, image: int, mode: str = "tight"):
    """EMPLB <= delta* <= FAITHUB for one image as eps grows: per student, the band where delta*
    must lie. Args: ``fkd.verify`` rows holding ``image`` (test-set index). Returns a Figure."""
    import matplotlib.pyplot as plt

    r = rows[rows.image == image]
    if r.empty:
        raise ValueError(f"image {image} is not in these rows; they hold {sorted(rows.image.unique())[:10]} ...")
    students = sorted(r.student.unique(), key=_student_order)
    fig, axes = plt.subplots(1, len(students), figsize=(2.4 * len(students), 2.6), sharey=True, squeeze=False)
    for ax, st in zip(axes[0], students):
        s = r[r.student == st].sort_values("eps")
        ax.fill_between(s.eps, s.emplb, s[f"faithub_{mode}"], color="tab:green", alpha=0.25, label="delta* lies here")
        ax.plot(s.eps, s.emplb, "o-", ms=3, label="EMPLB (attack)")
        ax.plot(s.eps, s[f"faithub_{mode}"], "s-", ms=3, label=f"FAITHUB ({mode})")
        ax.set_title(st.split("-a")[0].upper(), fontsize=9)
        ax.set_xlabel("eps", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("confidence gap")
    axes[0][0].set_ylim(0, 1.02)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{r.dataset.iloc[0]} test image {image}: the interval that holds delta*", fontsize=10)
    fig.tight_layout()
    return fig
