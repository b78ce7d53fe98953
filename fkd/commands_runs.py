"""The command line's handlers of the runs into a run directory (evaluate, attack-study, verify,
audit, calibrate, exact): each turns its parsed arguments into a config, makes one call and prints
what it did (the parser is ``fkd.cli``)."""
from __future__ import annotations

import argparse
from pathlib import Path

from fkd.cli_options import csv_list, read_std
from fkd.config import parse_eps
from fkd.paths import checkpoint_dir as _checkpoint_root


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Table 1, EMPLB and fidelity rows for the students of one dataset."""
    from fkd.experiments.evaluate import eval_config, evaluate
    from fkd.metrics import Attack
    from fkd.book.tables import emplb_table, table1

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    cfg = eval_config(args.dataset, csv_list(args.students), profile=args.profile,
                      eps=[parse_eps(e) for e in csv_list(args.eps)] if args.eps else None, n_images=args.n_images,
                      attack=Attack(args.steps, args.restarts), strategy=args.strategy, seed=args.seed,
                      chunk_size=args.chunk_size, units=args.eps_units, std=read_std(args.std) if args.std else None,
                      agreement_attacks=("flip", *csv_list(args.agreement_attack)))
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
        cfg = AttackStudyConfig(args.dataset, tuple(csv_list(args.students)), parse_eps(args.eps), images,
                                steps=tuple(int(s) for s in csv_list(args.steps)),
                                restarts=tuple(int(r) for r in csv_list(args.restarts)), seed=args.seed,
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
    from fkd.experiments.verify import merge, restore, verify
    from fkd.experiments.verify_config import VerifyConfig, parse_shard

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
        eps = [parse_eps(e) for e in csv_list(args.eps)] if args.eps else [e for e in PAPER_EPS[args.dataset] if e > 0]
        cfg = VerifyConfig(args.dataset, tuple(csv_list(args.students)), tuple(eps),
                           EVAL_SUBSET_SIZE[args.dataset] if args.n_images is None else args.n_images, method=args.method,
                           modes=tuple(csv_list(args.mode)), solver=args.solver, time_limit=args.time_limit,
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
                      eps=tuple(parse_eps(e) for e in csv_list(args.eps)) if args.eps else (), units=args.units,
                      std=read_std(args.std) if args.std else None, n_images=args.n_images, method=args.method,
                      modes=tuple(csv_list(args.mode)), solver=args.solver, time_limit=args.time_limit,
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
    cfg = calibration_config(args.dataset, csv_list(args.students), n_images=args.n_images, seed=args.seed,
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
        for m in ("rt", *csv_list(args.students)):
            print(f"training {pair.name} {m}")
            train_small(pair, m, checkpoint_dir=_checkpoint_root() / "small" / f"{pair.name}-{m}", progress=not args.quiet)
        from fkd.paths import user_zoo_dir, zoo_dir
        if user_zoo_dir() != zoo_dir():  # installed from a wheel: the packaged zoo is read-only
            print(f"note: trained into {user_zoo_dir()}; this run reads the zoo at {zoo_dir()} (set "
                  f"FKD_ZOO={user_zoo_dir()} to use the models just trained)")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    cfg = ExactConfig(dataset=args.dataset, pair=args.pair, students=tuple(csv_list(args.students)),
                      eps=tuple(parse_eps(e) for e in csv_list(args.eps)), n_images=args.n_images, tol=args.tol,
                      time_limit=args.time_limit, bound_method=args.method, global_time_limit=args.global_time_limit,
                      seed=args.seed, units=args.eps_units)
    rows = exact_study(cfg, args.out, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    closed = (rows.status == "closed").sum()
    print(f"{len(rows)} rows in {Path(args.out) / 'exact.csv'}: {closed} closed to {cfg.tol:g}, "
          f"median gap {rows.gap.median():.3g}")
    return 0
