"""The paper's tables from our result rows, beside the paper's published numbers.

The published values are read by ``fkd.book.paper_numbers``. Every function returns a pandas
DataFrame; ``ours`` comes from result rows, ``paper`` from the reference files, ``diff`` = ours - paper.
"""
from __future__ import annotations

from fkd.book.paper_numbers import ORDER, PAPER_DATASET, _paper_column, paper_table
from fkd.config import Dataset, eps_label, parse, resolve_model


def _with_paper(ours, paper, digits: int):
    import pandas as pd

    frame = pd.concat({"ours": ours, "paper": paper}, axis=1)
    for col in ours.columns:
        frame[("diff", col)] = frame[("ours", col)] - frame[("paper", col)]
    frame = frame.swaplevel(0, 1, axis=1)
    cols = [(c, s) for c in ours.columns for s in ("ours", "paper", "diff")]
    return frame[cols].round(digits)


#: Table 1's quantities by metric: robust accuracy, and agreement by our flip search (``agree``) and
#: by the paper's attack (``agree_paper``; ``fkd.metrics.AgreementAttack``)
TABLE1_METRICS = {"correct": "robust", "agree_paper": "agree_paper", "agree": "agree"}


def table1(results, dataset: Dataset | str):
    """Table 1: robust accuracy (%) of teacher and students and empirical distillation agreement (%)
    of each student, per eps, ours beside the paper's.

    Args:
        results: rows of ``fkd.experiments.evaluate`` (columns dataset, student, eps, metric, value, ...).
    Returns:
        DataFrame indexed by eps label; columns (quantity, ours|paper|diff), quantity e.g.
        ``robust RT`` or ``agree FD`` (agreement by our flip search); where the rows have it,
        ``agree_paper FD`` (by the paper's attack) comes first, beside each ``agree``; both are
        compared with the paper's one agreement column. Plus ``n_images``.
    """
    import pandas as pd

    dataset = parse(Dataset, dataset)
    rows = results[(results.dataset == dataset.value) & results.metric.isin(list(TABLE1_METRICS))].copy()
    if rows.empty:
        raise ValueError(f"no Table 1 rows (metrics correct/agree) for {dataset.value} in these results")
    rows["column"] = [_paper_column(dataset, s) for s in rows.student]
    rows = rows[rows.column.notna()]
    rows["quantity"] = rows.metric.map(TABLE1_METRICS) + " " + rows.column
    rows["eps"] = rows.eps.astype(float).round(6)
    ours = rows.pivot_table(index="eps", columns="quantity", values="value", aggfunc="mean") * 100
    n = rows.groupby("eps").image.nunique()
    ref = paper_table("table1_robustness")
    ref = ref[ref.dataset == PAPER_DATASET[dataset]].copy()
    ref["eps"] = ref.eps.astype(float).round(6)
    ref = ref.set_index("eps")
    paper = pd.DataFrame({q: ref[("rob_acc_" if q.startswith("robust") else "agree_") + q.split()[1]]
                          for q in ours.columns}, index=ours.index)
    kinds = ("robust", "agree")
    key = {f"{k} {c}": (i, j, 1) for i, k in enumerate(kinds) for j, c in enumerate(ORDER)}
    key.update({f"agree_paper {c}": (1, j, 0) for j, c in enumerate(ORDER)})  # the paper's attack first
    ours = ours[sorted(ours.columns, key=key.__getitem__)]
    table = _with_paper(ours, paper.reindex(columns=ours.columns), 1)
    table[("n_images", "")] = n
    table.index = [eps_label(e) for e in table.index]
    table.index.name = "eps"
    return table


def summary(results, metrics=("emplb",)):
    """Mean and standard deviation over images per (dataset, eps, student, metric), as Table 2
    reports them (population std, numpy's default, since the paper does not say)."""
    rows = results[results.metric.isin(metrics)].copy()
    rows["eps"] = rows.eps.astype(float)
    g = rows.groupby(["dataset", "eps", "student", "metric"]).value
    out = g.agg(mean="mean", std=lambda v: float(v.std(ddof=0)), n="count").reset_index()
    out["eps_label"] = [eps_label(e) for e in out.eps]
    return out


def _beside_paper(results, dataset: Dataset, bounds: dict[str, str]):
    """Mean and std per (eps, bound, student) of ``results`` (evaluate-style rows; ``bounds`` maps
    our metric to the paper's bound name), beside Table 2's published mean and std."""
    s = summary(results[(results.dataset == dataset.value) & (results.eps.astype(float) > 0)], tuple(bounds))
    s["column"] = [_paper_column(dataset, x) for x in s.student]
    s = s[s.column.notna()].copy()
    s["bound"] = s.metric.map(bounds)
    ref = paper_table("table2_faithfulness")
    ref = ref[ref.dataset == PAPER_DATASET[dataset]]
    ref = ref.assign(eps=ref.eps.astype(float).round(6)).set_index(["eps", "bound", "student"])
    s["eps6"] = s.eps.round(6)
    for stat in ("mean", "std"):
        s[f"paper_{stat}"] = [ref[stat].get(k, float("nan")) for k in zip(s.eps6, s.bound, s.column)]
    s["diff_mean"] = s["mean"] - s["paper_mean"]
    s["order"] = s.column.map(ORDER.index)
    s = s.sort_values(["eps", "bound", "order"])
    cols = ["eps_label", "bound", "column", "n", "mean", "std", "paper_mean", "paper_std", "diff_mean"]
    return s[cols].rename(columns={"column": "student"}).round(4).reset_index(drop=True)


def emplb_table(results, dataset: Dataset | str):
    """The EMPLB half of Table 2 from ``fkd.experiments.evaluate`` rows: mean and std of EMPLB per eps and
    student, beside the paper's."""
    return _beside_paper(results, parse(Dataset, dataset), {"emplb": "EMPLB"}).drop(columns="bound")


def verify_long(rows, mode: str = "tight"):
    """``fkd.experiments.verify`` rows (one per image, student, eps) as evaluate-style long rows with metrics
    ``emplb`` and ``faithub`` (the FAITHUB of ``mode``: paper or tight)."""
    import pandas as pd

    col = f"faithub_{mode}"
    if col not in rows.columns:
        have = [c.removeprefix("faithub_") for c in rows.columns if c.startswith("faithub_")]
        raise ValueError(f"no FAITHUB of mode {mode!r} in these rows; they hold: {', '.join(have)}")
    keep = ["dataset", "teacher", "student", "eps", "image"]
    return pd.concat([rows[keep].assign(metric=m, value=rows[c].astype(float))
                      for m, c in (("emplb", "emplb"), ("faithub", col))], ignore_index=True)


def table2(rows, dataset: Dataset | str, mode: str = "tight"):
    """Table 2: mean and std over images of EMPLB and FAITHUB (eq. 11, ``mode``) per eps and
    student, beside the paper's, from ``fkd.experiments.verify`` rows.

    Returns:
        long DataFrame: eps_label, bound (EMPLB | FAITHUB), student, n, mean, std, paper_mean,
        paper_std, diff_mean (population std, as ``summary``).
    """
    return _beside_paper(verify_long(rows, mode), parse(Dataset, dataset), {"emplb": "EMPLB", "faithub": "FAITHUB"})


def table3(study):
    """Table 3: EMPLB per image, student and PGD steps (5 restarts), ours beside the paper's.

    Args:
        study: rows of ``fkd.experiments.attack_study.attack_strength`` run with ``table3_study()``.
    Returns:
        DataFrame indexed by (example, student, strategy); columns PGD-n for ours, then the paper's
        PGD-n for the same example label (the paper's images are not identified: different images).
    """
    import pandas as pd

    s = study[study.restarts == 5].copy()
    examples = {img: f"x{i + 1}" for i, img in enumerate(dict.fromkeys(s.image))}
    s["example"] = s.image.map(examples)
    s["student"] = [_paper_column(parse(Dataset, d), st) or st for d, st in zip(s.dataset, s.student)]
    ours = s.pivot_table(index=["example", "image", "student", "strategy"], columns="steps", values="value")
    ours.columns = [f"PGD-{c}" for c in ours.columns]
    ref = paper_table("table3_emplb_vs_pgd_steps").set_index(["example", "student"])
    paper = pd.DataFrame([ref.loc[(e, st)].rename(lambda c: "paper " + c.replace("pgd_", "PGD-"))
                          if (e, st) in ref.index else pd.Series(dtype=float)
                          for e, _, st, _ in ours.index], index=ours.index)
    return pd.concat([ours, paper.drop(columns=["paper dataset", "paper eps_label"], errors="ignore")],
                     axis=1).round(5)


def strategy_table(results):
    """EMPLB by attack objective: mean of the inf-norm objective (``max``, the paper's), of the
    per-class objectives (``classes``), of their per-image maximum (``both``), and the share of
    images where one beats the other by more than 1e-4, per student and eps."""
    import pandas as pd

    s = results[results.metric.isin(["emplb", "emplb_max", "emplb_classes"]) & (results.eps.astype(float) > 0)]
    w = s.pivot_table(index=["student", "eps", "image"], columns="metric", values="value")
    g = w.groupby(level=[0, 1])
    out = pd.DataFrame({"max": g.emplb_max.mean(), "classes": g.emplb_classes.mean(), "both": g.emplb.mean(),
                        "classes_better": g.apply(lambda d: (d.emplb_classes > d.emplb_max + 1e-4).mean()),
                        "max_better": g.apply(lambda d: (d.emplb_max > d.emplb_classes + 1e-4).mean())})
    out = out.reset_index()
    out["eps"] = [eps_label(e) for e in out.eps]
    return out.round(4)


def fidelity_table(results):
    """Mean top-1 agreement (%) and predictive KL(teacher || student) per student and eps: at the
    clean point (eps 0) and at the EMPLB point (eps > 0)."""
    s = results[results.metric.isin(["top1_agree", "kl"])].copy()
    s["eps"] = s.eps.astype(float)
    out = s.pivot_table(index=["student", "eps"], columns="metric", values="value").reset_index()
    out["top1_agree"] *= 100
    out["eps"] = [eps_label(e) for e in out.eps]
    return out.round(3)


def table5(rows, mode: str = "tight"):
    """Table 5 (appendix A.4): EMPLB and FAITHUB of the CIFAR-10 FD students by loss weight alpha,
    mean and std over images per eps, beside the paper's.

    Args:
        rows: ``fkd.experiments.verify`` rows of CIFAR-10 holding FD students (``fd-a0.5``, ``fd-a0.75``, ``fd-a1``).
    Returns:
        long DataFrame: eps_label, bound, alpha, n, mean, std, paper_mean, paper_std, diff_mean.
    """
    long = verify_long(rows[rows.student.str.startswith("fd-a")], mode)
    if long.empty:
        raise ValueError("no FD students (fd-a0.5, fd-a0.75, fd-a1) in these rows")
    s = summary(long, ("emplb", "faithub"))
    s["alpha"] = [resolve_model(Dataset.CIFAR10, x)[1] for x in s.student]
    s["bound"] = s.metric.map({"emplb": "EMPLB", "faithub": "FAITHUB"})
    ref = paper_table("table5_fd_alpha_ablation_cifar10")
    ref = ref.assign(eps=ref.eps.astype(float).round(6)).set_index(["eps", "bound", "alpha"])
    keys = list(zip(s.eps.round(6), s.bound, s.alpha))
    for stat in ("mean", "std"):
        s[f"paper_{stat}"] = [ref[stat].get(k, float("nan")) for k in keys]
    s["diff_mean"] = s["mean"] - s["paper_mean"]
    s = s.sort_values(["eps", "bound", "alpha"])
    cols = ["eps_label", "bound", "alpha", "n", "mean", "std", "paper_mean", "paper_std", "diff_mean"]
    return s[cols].round(4).reset_index(drop=True)


def alpha_accuracy(results):
    """Robust accuracy (%) and empirical distillation agreement (%) of the CIFAR-10 FD students by
    alpha, per eps (Table 1's quantities for Table 5's students; the paper gives none)."""
    rows = results[results.student.str.startswith("fd-a") & results.metric.isin(["correct", "agree"])].copy()
    if rows.empty:
        raise ValueError("no FD students (fd-a0.5, fd-a0.75, fd-a1) with Table 1 metrics in these results")
    rows["alpha"] = [resolve_model(Dataset.CIFAR10, s)[1] for s in rows.student]
    rows["quantity"] = rows.metric.map({"correct": "robust", "agree": "agree"})
    t = rows.pivot_table(index="eps", columns=["quantity", "alpha"], values="value", aggfunc="mean") * 100
    t.index = [eps_label(float(e)) for e in t.index]
    t.index.name = "eps"
    return t[["robust", "agree"]].round(1)


def agreement_table(rows, empirical=None):
    """Certified distillation agreement beside the empirical one (Table 1), per eps and student.

    Args:
        rows: ``fkd.experiments.verify`` rows run with ``agreement`` (column ``agreement``: certified,
            counterexample, unknown, disagree_clean).
        empirical: optional ``fkd.experiments.evaluate`` rows; their per-image ``agree`` on the same images gives
            the empirical agreement beside it. An image certified here but found disagreeing by the
            attack there would contradict the proof: AssertionError naming it.
    Returns:
        DataFrame: eps_label, student, n, certified %, counterexample %, unknown %, disagree_clean %,
        and empirical % (same images) when ``empirical`` is given; certified <= empirical <=
        certified + unknown (a sandwich on the true agreement).
    """
    import pandas as pd

    if "agreement" not in rows.columns:
        raise ValueError("these rows have no certified agreement; run `python -m fkd verify ... --agreement`")
    r = rows.assign(eps=rows.eps.astype(float).round(6))
    out = (pd.crosstab([r.eps, r.student], r.agreement, normalize="index") * 100)
    out = out.reindex(columns=["certified", "counterexample", "unknown", "disagree_clean"], fill_value=0.0)
    out.columns = [f"{c} %" for c in out.columns]
    out.insert(0, "n", r.groupby(["eps", "student"]).size())
    if empirical is not None:
        e = empirical[empirical.metric == "agree"].assign(eps=empirical.eps.astype(float).round(6))
        e = e.set_index(["eps", "student", "image"]).value
        keys = list(zip(r.eps, r.student, r.image))
        have = [k in e.index for k in keys]
        emp = pd.Series([float(e[k]) if h else float("nan") for k, h in zip(keys, have)], index=r.index)
        bad = r[(r.agreement == "certified") & (emp == 0)]
        if len(bad):
            b = bad.iloc[0]
            raise AssertionError(f"image {b.image} ({b.student}, eps {b.eps}) is certified to agree but the attack "
                                 "found a disagreement: a soundness bug, please report it")
        out["empirical %"] = (r.assign(emp=emp).groupby(["eps", "student"]).emp.mean() * 100)
    out = out.reset_index()
    out.insert(0, "eps_label", [eps_label(e) for e in out.eps])
    return out.drop(columns="eps").round(1)


def grid(long, group: str = "student"):
    """A long Table 2 or 5 (``table2``, ``table5``) as a grid for readers: rows (eps, bound), one
    column group per ``group`` value (student, or alpha) holding the mean over images, ours beside
    the paper's and the difference; the number of images last.

    Returns:
        DataFrame indexed by (eps, bound); columns (student, ours|paper|diff) and (images, "").
    """
    import pandas as pd

    long = long.copy()
    if group == "alpha":
        long["alpha"] = [f"FD α {a:g}" for a in long.alpha]
    rows = list(dict.fromkeys(zip(long.eps_label, long.bound)))
    groups = list(dict.fromkeys(long[group]))
    frame = long.set_index(["eps_label", "bound", group])[["mean", "paper_mean", "diff_mean"]]
    frame.columns = ["ours", "paper", "diff"]
    wide = frame.unstack(group).swaplevel(0, 1, axis=1)
    wide = wide[[(g, c) for g in groups for c in ("ours", "paper", "diff")]].reindex(pd.MultiIndex.from_tuples(rows))
    wide[("images", "")] = long.groupby(["eps_label", "bound"]).n.max().reindex(wide.index)
    wide.index.names = ["eps", "bound"]
    wide.columns.names = [group, ""]
    return wide
