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
