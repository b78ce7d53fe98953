"""The command line's handlers of the models, the book and its records (train, zoo, reproduce,
stages, figure1): each turns its parsed arguments into a config, makes one call and prints what it
did (the parser is ``fkd.cli``; the runs' handlers are in ``fkd.commands_runs``)."""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from fkd.cli_options import csv_list, read_std
from fkd.config import parse_eps
from fkd.train_config import train_config


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
        overrides["std"] = read_std(args.std)
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


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Execute the book's chapters with papermill (skipping up-to-date ones; resumable)."""
    from fkd.book.reproduce import ChapterFailed, reproduce

    try:
        outcomes = reproduce(args.profile, args.out, only=csv_list(args.chapters) if args.chapters else None,
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
        dest = publish_figure_one(args.out, args.dataset.value, parse_eps(args.eps), tuple(csv_list(args.students)),
                                  digit=args.digit, grid=args.grid, seed=args.seed, units=args.eps_units)
    print(f"Figure 1 in {dest / 'figure1.png'}, its record in {dest / 'figure1.json'}")
    return 0
