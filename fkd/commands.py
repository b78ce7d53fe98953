"""The command line's handlers: each turns its parsed arguments into a config, makes one call and
prints what it did (the parser is ``fkd.cli``)."""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from fkd.config import parse_eps, train_config
from fkd.paths import checkpoint_dir as _checkpoint_root


def cmd_train(args: argparse.Namespace) -> int:
    """Train the robust teacher or a student into a zoo (resumable; refuses to overwrite another config)."""
    import torch

    from fkd.experiments.zoo_training import plan_training, run_training

    overrides = {"epochs": args.epochs} if args.epochs else {}
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.input_norm != "auto":
        overrides["input_norm"] = args.input_norm == "on"
    if args.augment != "auto":
        overrides["augment"] = args.augment == "on"
    if args.std:
        overrides["std"] = _std(args.std)
    cfg = train_config(args.dataset, args.method, profile=args.profile, alpha=args.alpha, seed=args.seed,
                       eps_units=args.eps_units, **overrides)
    plan = plan_training(cfg, args.out, args.teacher, args.checkpoint_dir, args.force)
    if plan.done:
        print(f"{plan.stem}.safetensors is already this run's model (same config); --force retrains it")
        return 0
    for option, folder in (("--out", plan.stem.parent), ("--checkpoint-dir", plan.checkpoints)):
        try:  # a destination that cannot be written fails now, not after the training
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"cannot write {folder} ({option}): {exc.strerror}. Fix: choose a directory you "
                             f"can write") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"training {cfg.dataset.value}/{cfg.name} ({cfg.profile.value} profile), checkpoints in {plan.checkpoints}")
    result = run_training(cfg, plan, device=args.device, progress=not args.quiet,
                          channels_last=None if args.channels_last == "auto" else args.channels_last == "on",
                          time_budget_s=None if args.max_minutes is None else args.max_minutes * 60)
    if result.meta["status"] == "partial":
        print(f"time budget reached after epoch {result.meta['epochs_run']} of {cfg.epochs}: the model is "
              f"marked partial; run the same command again to resume from {plan.checkpoints}")
    print(f"saved {plan.stem}.safetensors: clean test accuracy {result.meta['clean_acc']:.2f}% "
          f"(epoch {result.meta['best_epoch']} of {result.meta['epochs_run']}, {result.meta['status']})")
    return 0


def _std(text: str) -> tuple[float, ...]:
    """``--std``: a named CIFAR-10 convention (population, kuangliu) or a comma list of numbers."""
    from fkd.units import CIFAR10_STD

    if text in CIFAR10_STD:
        return CIFAR10_STD[text]
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"--std {text!r}: write a comma list such as 0.2023,0.1994,0.2010 or one of: "
                         f"{', '.join(CIFAR10_STD)}") from None


def cmd_zoo(args: argparse.Namespace) -> int:
    """List the shipped models (optionally measured again), as columns, CSV or Markdown."""
    from fkd.zoo import list_zoo

    root = Path(args.zoo) if args.zoo else None
    rows = list_zoo(root, units=args.eps_units, all_readings=args.eps_units is None)
    if not rows:
        print("the zoo is empty", file=sys.stderr)
        return 1
    if args.evaluate:
        from fkd.experiments.zoo_check import measure_zoo
        measure_zoo(rows, root)
    if args.markdown:
        from fkd.zoo import paper_clean_accuracy
        paper = paper_clean_accuracy()
        print("| dataset | eps units | model | clean test acc. % (ours) | paper % | epochs run / planned (best) | status | wall time | device |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            name = r["method"] + ("" if r["alpha"] is None else f" (alpha {r['alpha']:g})")
            ref = paper.get((r["dataset"], r["method"], r["alpha"]))
            print(f"| {r['dataset']} | {r['units']} | {name} | {r['clean_acc']:.2f} | {'-' if ref is None else f'{ref:.2f}'} | "
                  f"{r['epochs_run']} / {r['epochs_planned']} ({r['best_epoch']}) | {r['status']} | "
                  f"{r['wall_time_s'] / 60:.1f} min | {r['device']} |")
        return 0
    if args.csv:
        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        return 0
    cols = ["dataset", "method", "alpha", "profile", "clean_acc", "epochs_run", "epochs_planned", "best_epoch",
            "wall_time_s",
            "device", "status"] + (["clean_acc_now", "train_eps", "robust_acc_pgd20"] if args.evaluate else [])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))
    return 0


def _csv(text: str) -> list[str]:
    return [t for t in (s.strip() for s in text.split(",")) if t]


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Table 1, EMPLB and fidelity rows for the students of one dataset."""
    from fkd.experiments.evaluate import eval_config, evaluate
    from fkd.metrics import Attack
    from fkd.book.tables import emplb_table, table1

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    cfg = eval_config(args.dataset, _csv(args.students), profile=args.profile,
                      eps=[parse_eps(e) for e in _csv(args.eps)] if args.eps else None, n_images=args.n_images,
                      attack=Attack(args.steps, args.restarts), strategy=args.strategy, seed=args.seed,
                      chunk_size=args.chunk_size, units=args.eps_units, std=_std(args.std) if args.std else None,
                      agreement_attacks=("flip", *_csv(args.agreement_attack)))
    df = evaluate(cfg, args.out, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet,
                  zoo_root=args.zoo)
    import pandas as pd
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(table1(df, cfg.dataset).to_string())
        if cfg.students and any(e > 0 for e in cfg.eps):
            print(emplb_table(df, cfg.dataset).to_string(index=False))
    print(f"rows in {Path(args.out) / 'empirical.csv'}, run record in {Path(args.out) / 'run.json'}")
    if args.export:
        from fkd.book.publish import export_empirical
        print(f"published in {export_empirical(args.out, args.export)}")
    return 0


def cmd_attack_study(args: argparse.Namespace) -> int:
    """EMPLB against PGD steps x restarts (the attack-strength figure), or Table 3 with --table3."""
    from fkd.book.plots import plot_attack_strength
    from fkd.book.tables import table3
    from fkd.experiments.attack_study import AttackStudyConfig, ordering_flips, plateau_summary, run_study, table3_study

    if args.table3:
        cfg = table3_study(seed=args.seed, units=args.eps_units)
    else:
        images = tuple(range(args.n_images))
        cfg = AttackStudyConfig(args.dataset, tuple(_csv(args.students)), parse_eps(args.eps), images,
                                steps=tuple(int(s) for s in _csv(args.steps)),
                                restarts=tuple(int(r) for r in _csv(args.restarts)), seed=args.seed,
                                units=args.eps_units)
    out = Path(args.out)
    df = run_study(cfg, out, zoo_root=args.zoo, progress=not args.quiet)
    if len(cfg.students) == 2:
        print(f"share of images where {cfg.students[0]} vs {cfg.students[1]} (lower EMPLB) orders differently "
              f"than at {max(cfg.steps)} steps:")
        flips = ordering_flips(df, *cfg.students)
        flips.to_csv(out / "flips.csv", index=False)
        print(flips.to_string(index=False))
    if args.table3:
        print(table3(df).to_string())
    else:
        print(plateau_summary(df).round(4).to_string(index=False))
        plot_attack_strength(df).savefig(out / "attack_strength.png", dpi=120, bbox_inches="tight")
    print(f"rows in {out / 'attack_study.csv'}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """EMPLB and FAITHUB per image, student and eps (resumable, shardable); --merge joins shards."""
    from fkd.experiments.verify import VerifyConfig, merge, parse_shard, restore, verify

    if args.restore:
        print(f"{restore(args.restore, args.out)} part files restored from {args.restore} into {args.out}")
    if args.merge:
        df = merge(args.out, args.merge)
    else:
        from fkd.config import PAPER_EPS
        from fkd.data import EVAL_SUBSET_SIZE
        if args.threads:
            import torch
            torch.set_num_threads(args.threads)
        eps = [parse_eps(e) for e in _csv(args.eps)] if args.eps else [e for e in PAPER_EPS[args.dataset] if e > 0]
        cfg = VerifyConfig(args.dataset, tuple(_csv(args.students)), tuple(eps),
                           EVAL_SUBSET_SIZE[args.dataset] if args.n_images is None else args.n_images, method=args.method,
                           modes=tuple(_csv(args.mode)), solver=args.solver, time_limit=args.time_limit,
                           tightening=args.tightening, budget=args.budget, seed=args.seed, shard=parse_shard(args.shard),
                           agreement=args.agreement, units=args.eps_units, domain=args.domain,
                           obbt_limit=args.obbt_limit, obbt_budget=args.obbt_budget)
        df = verify(cfg, args.out, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    import pandas as pd

    from fkd.book.tables import table2
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        for mode in (c.removeprefix("faithub_") for c in df.columns if c.startswith("faithub_")):
            print(f"Table 2, FAITHUB mode {mode} ({df.bound_method.iloc[0]} bounds), ours beside the paper's:")
            print(table2(df, df.dataset.iloc[0], mode).to_string(index=False))
    if args.export:
        from fkd.book.publish import export_certified
        print(f"published in {export_certified(args.out, args.export)}")
    print(f"{len(df)} rows in {Path(args.out) / 'verify.csv'} ({(df.status != 'ok').sum()} rows with a time-limited "
          f"or failed solve; their bounds are the proven ones)")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Audit a user's teacher-student pair: audit.csv, run.json and report.html in --out."""
    from fkd.experiments.audit import AuditConfig, audit
    from fkd.book.audit_report import summary, write_report

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    cfg = AuditConfig(args.teacher, args.student, dataset=args.dataset, images=args.images, labels=args.labels,
                      eps=tuple(parse_eps(e) for e in _csv(args.eps)) if args.eps else (), units=args.units,
                      std=_std(args.std) if args.std else None, n_images=args.n_images, method=args.method,
                      modes=tuple(_csv(args.mode)), solver=args.solver, time_limit=args.time_limit,
                      agreement=not args.no_agreement, seed=args.seed, tightening=args.tightening,
                      obbt_limit=args.obbt_limit, obbt_budget=args.obbt_budget)
    rows = audit(cfg, args.out, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    import pandas as pd

    df = pd.read_csv(rows)
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(summary(df).to_string(index=False))
    print(f"{len(df)} rows in {rows}; report: {write_report(args.out)}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """ECE of teacher and students, clean and at the EMPLB points (fkd.experiments.calibration)."""
    import torch

    from fkd.book.reliability import write_figures
    from fkd.experiments.calibration import calibration_config, run

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = calibration_config(args.dataset, _csv(args.students), n_images=args.n_images, seed=args.seed,
                             eps=None if args.eps is None else parse_eps(args.eps), units=args.eps_units)
    out = write_figures(run(cfg, args.out, n_bins=args.bins), cfg, n_bins=args.bins)
    print(f"calibration of {', '.join(cfg.students)} on {cfg.dataset.value} in {out} (ece.csv, reliability_*.png)")
    return 0


def cmd_exact(args: argparse.Namespace) -> int:
    """Exact delta* on a small pair (or the zoo's): EMPLB, FAITHUB and delta* per image (fkd.experiments.exact_study)."""
    from fkd.experiments.exact_study import ExactConfig, exact_study
    from fkd.small import get_pair, train_small

    if args.train:
        pair = get_pair(args.pair)
        for m in ("rt", *_csv(args.students)):
            print(f"training {pair.name} {m}")
            train_small(pair, m, checkpoint_dir=_checkpoint_root() / "small" / f"{pair.name}-{m}", progress=not args.quiet)
        from fkd.paths import user_zoo_dir, zoo_dir
        if user_zoo_dir() != zoo_dir():  # installed from a wheel: the packaged zoo is read-only
            print(f"note: trained into {user_zoo_dir()}; this run reads the zoo at {zoo_dir()} (set "
                  f"FKD_ZOO={user_zoo_dir()} to use the models just trained)")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    cfg = ExactConfig(dataset=args.dataset, pair=args.pair, students=tuple(_csv(args.students)),
                      eps=tuple(parse_eps(e) for e in _csv(args.eps)), n_images=args.n_images, tol=args.tol,
                      time_limit=args.time_limit, bound_method=args.method, global_time_limit=args.global_time_limit,
                      seed=args.seed, units=args.eps_units)
    rows = exact_study(cfg, args.out, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    closed = (rows.status == "closed").sum()
    print(f"{len(rows)} rows in {Path(args.out) / 'exact.csv'}: {closed} closed to {cfg.tol:g}, "
          f"median gap {rows.gap.median():.3g}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Execute the book's chapters with papermill (skipping up-to-date ones; resumable)."""
    from fkd.book.reproduce import ChapterFailed, reproduce

    try:
        outcomes = reproduce(args.profile, args.out, only=_csv(args.chapters) if args.chapters else None,
                             seed=args.seed, device=args.device, kernel=args.kernel)
    except ChapterFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not outcomes:
        print("no chapter notebooks in _toc.yml yet")
    ran = sum(o.status == "ran" for o in outcomes)
    print(f"{len(outcomes)} chapters: {ran} ran, {len(outcomes) - ran} up to date; outputs in {args.out}")
    return 0


def cmd_stages(args: argparse.Namespace) -> int:
    """The reproduction's stages with their records and total wall time per dataset and stage."""
    import pandas as pd

    from fkd.book.stages import stage_records, wall_times

    records = stage_records(args.results)
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        records.to_csv(args.csv, index=False)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(records.drop(columns=["what"]).to_string(index=False))
        print("\nTotal wall time (hours) per dataset and stage:")
        print(wall_times(records).to_string())
    return 0


def cmd_figure1(args: argparse.Namespace) -> int:
    """Figure 1 (the gap over a slice of the eps-ball, SD beside FD) with its run record."""
    import torch

    from fkd.experiments.runner import torch_threads
    from fkd.book.figure_one import publish_figure_one

    with torch_threads(args.threads or torch.get_num_threads()):  # restored after: main() also runs in-process
        dest = publish_figure_one(args.out, args.dataset.value, parse_eps(args.eps), tuple(_csv(args.students)),
                                  digit=args.digit, grid=args.grid, seed=args.seed, units=args.eps_units)
    print(f"Figure 1 in {dest / 'figure1.png'}, its record in {dest / 'figure1.json'}")
    return 0
