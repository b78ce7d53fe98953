"""Command line: ``python -m fkd train | zoo | evaluate | attack-study | verify | audit | calibrate | exact | reproduce | stages | figure1``."""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
from pathlib import Path

from .config import Dataset, Domain, EpsUnits, Method, Profile, parse, parse_eps, train_config


def _checkpoint_root() -> Path:
    return Path(os.environ.get("FKD_CHECKPOINTS", Path.home() / ".cache" / "fkd" / "checkpoints"))


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .losses import get_method
    from .train import train
    from .zoo import load_from, model_path, save_model, strip_ext, units_root, with_ext, zoo_dir
    from .models import architecture

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
    out = Path(args.out) if args.out else zoo_dir()
    stem = units_root(cfg.eps_units, out) / cfg.dataset.value / cfg.name  # zoo/<d>/ or zoo/pixel/<d>/
    if with_ext(stem, ".json").exists() and not args.force:
        from .config import TrainConfig

        old = json.loads(with_ext(stem, ".json").read_text()).get("config") or {}
        try:
            same = TrainConfig.from_dict(old).fingerprint() == cfg.fingerprint()
        except (TypeError, ValueError):
            same = False
        if same:
            print(f"{stem}.safetensors is already this run's model (same config); --force retrains it")
            return 0
        differs = sorted(k for k in set(old) | set(cfg.to_dict()) if old.get(k) != cfg.to_dict().get(k))
        raise ValueError(f"{stem}.safetensors holds a model of another config (it differs in {', '.join(differs)}); "
                         "refusing to overwrite it. Fix: pass --out DIR to train into another zoo, or --force")
    teacher, teacher_info = None, None
    if get_method(cfg.method).uses_teacher:
        t_stem = strip_ext(args.teacher) if args.teacher else model_path(cfg.dataset, Method.RT, units=cfg.eps_units)
        teacher, tmeta = load_from(t_stem)
        if tmeta["config"].get("eps_units") != cfg.eps_units.value:
            raise SystemExit(f"the teacher {t_stem} was trained with eps in {tmeta['config'].get('eps_units')} units, "
                             f"this student in {cfg.eps_units.value} units. Fix: pass --eps-units "
                             f"{tmeta['config'].get('eps_units')} or a teacher of the same reading (--teacher)")
        weights = with_ext(t_stem, ".safetensors").read_bytes()
        root = Path(__file__).resolve().parent.parent  # a teacher inside the checkout: its repository path
        shown = t_stem.resolve().relative_to(root) if t_stem.resolve().is_relative_to(root) else t_stem
        teacher_info = {"path": str(shown), "sha256": hashlib.sha256(weights).hexdigest(),
                        "clean_acc": tmeta["clean_acc"], "profile": tmeta["config"]["profile"]}
    run = f"{cfg.dataset.value}-{cfg.name}-{cfg.profile.value}-{cfg.fingerprint()}"
    if teacher_info:  # a student's checkpoints belong to its teacher too: another teacher, another run
        run += f"-t{teacher_info['sha256'][:12]}"
    ckpt = Path(args.checkpoint_dir) if args.checkpoint_dir else _checkpoint_root() / run
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"training {cfg.dataset.value}/{cfg.name} ({cfg.profile.value} profile), checkpoints in {ckpt}")
    result = train(cfg, teacher=teacher, checkpoint_dir=ckpt, device=args.device, progress=not args.quiet,
                   channels_last=None if args.channels_last == "auto" else args.channels_last == "on",
                   time_budget_s=None if args.max_minutes is None else args.max_minutes * 60)
    result.meta["teacher"] = teacher_info
    save_model(result.model, architecture(cfg.dataset, "teacher" if cfg.method is Method.RT else "student"),
               result.meta, stem)
    if result.meta["status"] == "partial":
        print(f"time budget reached after epoch {result.meta['epochs_run']} of {cfg.epochs}: the model is "
              f"marked partial; run the same command again to resume from {ckpt}")
    print(f"saved {stem}.safetensors: clean test accuracy {result.meta['clean_acc']:.2f}% "
          f"(epoch {result.meta['best_epoch']} of {result.meta['epochs_run']}, {result.meta['status']})")
    return 0


def _std(text: str) -> tuple[float, ...]:
    """``--std``: a named CIFAR-10 convention (population, kuangliu) or a comma list of numbers."""
    from .units import CIFAR10_STD

    if text in CIFAR10_STD:
        return CIFAR10_STD[text]
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"--std {text!r}: write a comma list such as 0.2023,0.1994,0.2010 or one of: "
                         f"{', '.join(CIFAR10_STD)}") from None


def _evaluate_zoo(rows: list[dict], root: Path | None) -> None:
    """Add recomputed clean accuracy (whole test set) and PGD-20 robust accuracy at the training eps."""
    import torch

    from .config import TRAIN_ATTACK
    from .data import eval_subset, load_split
    from .metrics import clean_accuracy, robust_accuracy
    from .units import radius
    from .zoo import load_model

    for r in rows:
        model = load_model(r["dataset"], r["method"], r["alpha"], root, r["units"])
        x, y = load_split(r["dataset"], train=False)
        r["clean_acc_now"] = round(clean_accuracy(model, x, y), 2)
        eps = TRAIN_ATTACK[parse(Dataset, r["dataset"])][0]
        xs, ys, _ = eval_subset(r["dataset"])
        r["train_eps"] = round(eps, 4)
        r["robust_acc_pgd20"] = round(robust_accuracy(model, xs, ys, radius(eps, r["units"], r["dataset"]), steps=20, restarts=1,
                                                      generator=torch.Generator().manual_seed(0)), 1)


def cmd_zoo(args: argparse.Namespace) -> int:
    from .zoo import list_zoo

    root = Path(args.zoo) if args.zoo else None
    rows = list_zoo(root, units=args.eps_units, all_readings=args.eps_units is None)
    if not rows:
        print("the zoo is empty", file=sys.stderr)
        return 1
    if args.evaluate:
        _evaluate_zoo(rows, root)
    if args.markdown:
        from .zoo import paper_clean_accuracy
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
    from .evaluate import eval_config, evaluate
    from .metrics import Attack
    from .tables import emplb_table, table1

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    cfg = eval_config(args.dataset, _csv(args.students), profile=args.profile,
                      eps=[parse_eps(e) for e in _csv(args.eps)] if args.eps else None, n_images=args.n_images,
                      attack=Attack(args.steps, args.restarts), strategy=args.strategy, seed=args.seed,
                      chunk_size=args.chunk_size, units=args.eps_units, std=_std(args.std) if args.std else None)
    df = evaluate(cfg, args.out, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet,
                  zoo_root=args.zoo)
    import pandas as pd
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(table1(df, cfg.dataset).to_string())
        if cfg.students and any(e > 0 for e in cfg.eps):
            print(emplb_table(df, cfg.dataset).to_string(index=False))
    print(f"rows in {Path(args.out) / 'empirical.csv'}, run record in {Path(args.out) / 'run.json'}")
    if args.export:
        from .evaluate import export
        print(f"published in {export(args.out, args.export)}")
    return 0


def cmd_attack_study(args: argparse.Namespace) -> int:
    """EMPLB against PGD steps x restarts (the attack-strength figure), or Table 3 with --table3."""
    import json

    from .attack_study import AttackStudyConfig, attack_strength, ordering_flips, plateau_summary, table3_study
    from .plots import plot_attack_strength
    from .provenance import record
    from .tables import table3

    if args.table3:
        cfg = table3_study(seed=args.seed, units=args.eps_units)
    else:
        images = tuple(range(args.n_images))
        cfg = AttackStudyConfig(args.dataset, tuple(_csv(args.students)), parse_eps(args.eps), images,
                                steps=tuple(int(s) for s in _csv(args.steps)),
                                restarts=tuple(int(r) for r in _csv(args.restarts)), seed=args.seed,
                                units=args.eps_units)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import time
    t0 = time.perf_counter()
    df = attack_strength(cfg, zoo_root=args.zoo, progress=not args.quiet)
    df.to_csv(out / "attack_study.csv", index=False)
    (out / "run.json").write_text(json.dumps({"config": cfg.to_dict(), "seed": cfg.seed,
                                              "wall_time_s": round(time.perf_counter() - t0, 1), **record()},
                                             indent=1) + "\n")
    if len(cfg.students) == 2:
        print(f"share of images where {cfg.students[0]} vs {cfg.students[1]} (lower EMPLB) orders differently "
              f"than at {max(cfg.steps)} steps:")
        print(ordering_flips(df, *cfg.students).to_string(index=False))
    if args.table3:
        print(table3(df).to_string())
    else:
        print(plateau_summary(df).round(4).to_string(index=False))
        plot_attack_strength(df).savefig(out / "attack_strength.png", dpi=120, bbox_inches="tight")
    print(f"rows in {out / 'attack_study.csv'}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """EMPLB and FAITHUB per image, student and eps (resumable, shardable); --merge joins shards."""
    from .verify import VerifyConfig, merge, parse_shard, restore, verify

    if args.restore:
        print(f"{restore(args.restore, args.out)} part files restored from {args.restore} into {args.out}")
    if args.merge:
        df = merge(args.out, args.merge)
    else:
        from .config import PAPER_EPS
        from .data import EVAL_SUBSET_SIZE
        if args.threads:
            import torch
            torch.set_num_threads(args.threads)
        eps = [parse_eps(e) for e in _csv(args.eps)] if args.eps else [e for e in PAPER_EPS[args.dataset] if e > 0]
        cfg = VerifyConfig(args.dataset, tuple(_csv(args.students)), tuple(eps),
                           EVAL_SUBSET_SIZE[args.dataset] if args.n_images is None else args.n_images, method=args.method,
                           modes=tuple(_csv(args.mode)), solver=args.solver, time_limit=args.time_limit,
                           tightening=args.tightening, budget=args.budget, seed=args.seed, shard=parse_shard(args.shard),
                           agreement=args.agreement, units=args.eps_units, domain=args.domain)
        df = verify(cfg, args.out, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    import pandas as pd

    from .tables import table2
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        for mode in (c.removeprefix("faithub_") for c in df.columns if c.startswith("faithub_")):
            print(f"Table 2, FAITHUB mode {mode} ({df.bound_method.iloc[0]} bounds), ours beside the paper's:")
            print(table2(df, df.dataset.iloc[0], mode).to_string(index=False))
    if args.export:
        from .verify import export
        print(f"published in {export(args.out, args.export)}")
    print(f"{len(df)} rows in {Path(args.out) / 'verify.csv'} ({(df.status != 'ok').sum()} rows with a time-limited "
          f"or failed solve; their bounds are the proven ones)")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Audit a user's teacher-student pair: audit.csv, run.json and report.html in --out."""
    from .audit import AuditConfig, audit
    from .audit_report import summary, write_report

    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    cfg = AuditConfig(args.teacher, args.student, dataset=args.dataset, images=args.images, labels=args.labels,
                      eps=tuple(parse_eps(e) for e in _csv(args.eps)) if args.eps else (), units=args.units,
                      std=_std(args.std) if args.std else None, n_images=args.n_images, method=args.method,
                      modes=tuple(_csv(args.mode)), solver=args.solver, time_limit=args.time_limit,
                      agreement=not args.no_agreement, seed=args.seed)
    rows = audit(cfg, args.out, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    import pandas as pd

    df = pd.read_csv(rows)
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(summary(df).to_string(index=False))
    print(f"{len(df)} rows in {rows}; report: {write_report(args.out)}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """ECE of teacher and students, clean and at the EMPLB points (fkd.calibration)."""
    import torch

    from .calibration import calibration_config, run

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = calibration_config(args.dataset, _csv(args.students), n_images=args.n_images, seed=args.seed,
                             eps=None if args.eps is None else parse_eps(args.eps), units=args.eps_units)
    out = run(cfg, args.out, n_bins=args.bins)
    print(f"calibration of {', '.join(cfg.students)} on {cfg.dataset.value} in {out} (ece.csv, reliability_*.png)")
    return 0


def cmd_exact(args: argparse.Namespace) -> int:
    """Exact delta* on a small pair (or the zoo's): EMPLB, FAITHUB and delta* per image (fkd.exact_study)."""
    from .exact_study import ExactConfig, exact_study
    from .small import get_pair, train_small

    if args.train:
        pair = get_pair(args.pair)
        for m in ("rt", *_csv(args.students)):
            print(f"training {pair.name} {m}")
            train_small(pair, m, checkpoint_dir=_checkpoint_root() / "small" / f"{pair.name}-{m}", progress=not args.quiet)
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
    from .reproduce import ChapterFailed, reproduce

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

    from .stages import stage_records, wall_times

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

    from .runner import torch_threads
    from .slice import publish_figure_one

    with torch_threads(args.threads or torch.get_num_threads()):  # restored after: main() also runs in-process
        dest = publish_figure_one(args.out, args.dataset.value, parse_eps(args.eps), tuple(_csv(args.students)),
                                  digit=args.digit, grid=args.grid, seed=args.seed, units=args.eps_units)
    print(f"Figure 1 in {dest / 'figure1.png'}, its record in {dest / 'figure1.json'}")
    return 0


def _choice(cls):
    def conv(value: str):
        try:
            return parse(cls, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return conv


def _no_default(action: argparse.Action) -> bool:
    return action.default is None or action.default is False or action.default == argparse.SUPPRESS


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in --help, once: an option whose help already names its default (or
    explains what None means) is left as written; an action flag has none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or _no_default(action) and text:
            return text
        return super()._get_help_string(action)

    def _format_action(self, action: argparse.Action) -> str:
        if action.help is None and action.option_strings and not _no_default(action):
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _expand_help(self, action: argparse.Action) -> str:
        default = action.default
        if hasattr(default, "value"):  # an enum default shows as its name on the command line
            action.default = default.value
        try:
            return super()._expand_help(action)
        finally:
            action.default = default


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fkd", description=__doc__)
    fmt = {"formatter_class": _Defaults}  # --help shows every default
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", **fmt, help="train the robust teacher (rt) or a student")
    t.add_argument("--dataset", type=_choice(Dataset), required=True, help="mnist, fashion-mnist or cifar10")
    t.add_argument("--method", type=_choice(Method), required=True, help="rt, sd, ard, rslad, fd; related: kdiga, tfkd, fdboth")
    t.add_argument("--alpha", type=float, default=None, help="distillation weight (default: the paper's)")
    t.add_argument("--profile", type=_choice(Profile), default=Profile.FULL, help="quick or full (default)")
    t.add_argument("--epochs", type=int, default=None, help="override the profile's maximum epochs")
    t.add_argument("--eps-units", type=_choice(EpsUnits), default=EpsUnits.NORMALISED,
                   help="how the paper's training eps is read: normalised (default, the paper's) or pixel")
    t.add_argument("--std", default=None, help="per-channel std of the normalised reading (default: the "
                   "dataset's, fkd.units.STD); CIFAR-10: population or kuangliu, or a comma list")
    t.add_argument("--augment", choices=["auto", "on", "off"], default="auto",
                   help="random crop and flip of the training images; auto: on for CIFAR-10 only")
    t.add_argument("--input-norm", choices=["auto", "on", "off"], default="auto", nargs="?", const="on", help="train the network on "
                   "(x - mean) / std, as behind a normalising data loader (the saved model has it folded into its "
                   "first layer); auto: on for the normalised reading")
    t.add_argument("--batch-size", type=int, default=None, help="training batch size (the paper gives none; 128)")
    t.add_argument("--out", default=None, help="zoo root to write <dataset>/<name>.safetensors, pixel-unit models "
                   "under pixel/<dataset>/ (default: zoo/)")
    t.add_argument("--teacher", default=None, help="teacher .safetensors (default: the zoo's rt)")
    t.add_argument("--checkpoint-dir", default=None,
                   help="resumable checkpoints (default: $FKD_CHECKPOINTS or ~/.cache/fkd/checkpoints/<run>)")
    t.add_argument("--device", default="cpu")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    t.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                   help="NHWC memory format; auto: on for conv nets (a speed setting)")
    t.add_argument("--max-minutes", type=float, default=None,
                   help="stop after the epoch that passes this budget; saves the model marked 'partial' "
                        "(run the same command again to resume)")
    t.add_argument("--force", action="store_true", help="overwrite a model of another config at the destination")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train)
    z = sub.add_parser("zoo", **fmt, help="list the shipped models")
    z.add_argument("--csv", action="store_true")
    z.add_argument("--markdown", action="store_true", help="a Markdown table with the paper's clean accuracies")
    z.add_argument("--evaluate", action="store_true",
                   help="recompute clean accuracy and PGD-20 robust accuracy (training eps, fixed subset)")
    z.add_argument("--zoo", default=None, help="zoo root (default: zoo/)")
    z.add_argument("--eps-units", type=_choice(EpsUnits), default=None,
                   help="only the zoo of one reading: normalised or pixel (default: both)")
    z.set_defaults(func=cmd_zoo)
    e = sub.add_parser("evaluate", **fmt, help="robust accuracy, distillation agreement, EMPLB, fidelity (Table 1)")
    e.add_argument("--dataset", type=_choice(Dataset), required=True)
    e.add_argument("--students", default="sd,ard,rslad,fd", help="comma list: sd,ard,rslad,fd or e.g. fd-a0.75 "
                   "(empty: the teacher alone)")
    e.add_argument("--eps", default=None, help="comma list, e.g. 0,0.1 or 4/255,8/255 (default: the paper's grid)")
    e.add_argument("--eps-units", type=_choice(EpsUnits), default=None,
                   help="how --eps is read, and which zoo: normalised (the paper's reading) or pixel "
                        "(default: the dataset's reading, fkd.units.DEFAULT_UNITS)")
    e.add_argument("--n-images", type=int, default=None, help="first N images of the fixed subset")
    e.add_argument("--profile", type=_choice(Profile), default=Profile.FULL,
                   help="full: the paper's subset size; quick: 100 images (CIFAR-10: 20)")
    e.add_argument("--steps", type=int, default=50)
    e.add_argument("--restarts", type=int, default=5)
    e.add_argument("--strategy", default="both", help="EMPLB objective: max, classes or both (default)")
    e.add_argument("--chunk-size", type=int, default=250, help="images per task (part of the config)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--workers", type=int, default=1, help="K > 1: a Dask LocalCluster of K processes")
    e.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    e.add_argument("--threads", type=int, default=0, help="torch threads when --workers 1")
    e.add_argument("--zoo", default=None, help="zoo root (default: zoo/)")
    e.add_argument("--out", required=True, help="run directory (resumes if it exists)")
    e.add_argument("--export", default=None, metavar="DIR", help="also publish rows, Table 1 and the EMPLB tables here")
    e.add_argument("--std", default=None, help="per-channel std of the normalised reading (default: the dataset's); "
                   "CIFAR-10: population or kuangliu, or a comma list")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_evaluate)
    a = sub.add_parser("attack-study", **fmt, help="EMPLB against PGD steps and restarts; --table3 for Table 3")
    a.add_argument("--dataset", type=_choice(Dataset), default=Dataset.MNIST)
    a.add_argument("--students", default="sd,ard,rslad,fd")
    a.add_argument("--eps", default="0.1")
    a.add_argument("--eps-units", type=_choice(EpsUnits), default=None,
                   help="how --eps is read, and which zoo: normalised or pixel (default: the dataset's reading)")
    a.add_argument("--n-images", type=int, default=100)
    a.add_argument("--steps", default="1,5,10,25,50,100,200")
    a.add_argument("--restarts", default="1,2,5,10,20")
    a.add_argument("--table3", action="store_true", help="Table 3: F-MNIST, 8/255, RSLAD vs FD, PGD-1/5/25/50")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--zoo", default=None)
    a.add_argument("--out", required=True)
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(func=cmd_attack_study)
    v = sub.add_parser("verify", **fmt, help="certified FAITHUB beside EMPLB per image (Table 2); shardable")
    v.add_argument("--dataset", type=_choice(Dataset), default=Dataset.MNIST)
    v.add_argument("--students", default="sd,ard,rslad,fd")
    v.add_argument("--eps", default=None, help="comma list (default: the paper's grid without 0)")
    v.add_argument("--eps-units", type=_choice(EpsUnits), default=None,
                   help="how --eps is read, and which zoo: normalised (the paper's reading) or pixel "
                        "(default: the dataset's reading, fkd.units.DEFAULT_UNITS)")
    v.add_argument("--n-images", type=int, default=None, help="first N images of the fixed subset (default: all "
                   "of it: 1000 MNIST and Fashion-MNIST, 100 CIFAR-10 images)")
    v.add_argument("--method", default="crown", help="interval, crown, lp or milp (both networks)")
    v.add_argument("--mode", default="paper,tight", help="FAITHUB modes: paper (eq. 9 from logit bounds), tight (z_j - z_i "
                   "bounded directly), joint (tight plus teacher and student at one shared x), softmax (tight plus each network's "
                   "softmax inside its LP/MILP), joint_softmax (softmax plus both softmaxes at one x)")
    v.add_argument("--agreement", action="store_true", help="also certify distillation agreement per image "
                   "(MILP over teacher and student sharing the input): certified, counterexample or unknown")
    v.add_argument("--domain", type=_choice(Domain), default=Domain.CLAMPED,
                   help="clamped: the ball intersected with [0, 1] (default, the valid images); plain: the ball "
                        "alone (for EMPLB and FAITHUB both)")
    v.add_argument("--solver", default="auto", help="auto (Gurobi, HiGHS beyond its licence), gurobi or highs")
    v.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve (its proven bound is kept)")
    v.add_argument("--tightening", default=None, help="none, lp or milp per-layer tightening (default: lp "
                   "for --method lp/milp)")
    v.add_argument("--budget", type=float, default=None, help="seconds of tight-mode refinement per (image, student)")
    v.add_argument("--shard", default="1/1", help="k/n: this machine's share of the images")
    v.add_argument("--merge", nargs="+", default=None, metavar="DIR", help="join these shard directories into --out")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--workers", type=int, default=1)
    v.add_argument("--scheduler", default=None)
    v.add_argument("--threads", type=int, default=0)
    v.add_argument("--out", required=True)
    v.add_argument("--export", default=None, metavar="DIR", help="also publish rows, Table 2 and histograms here")
    v.add_argument("--restore", default=None, metavar="DIR", help="first fill --out from a published run (an "
                   "--export directory) so it grows without recomputing the published rows")
    v.add_argument("--quiet", action="store_true")
    v.set_defaults(func=cmd_verify)
    c = sub.add_parser("calibrate", **fmt, help="ECE of teacher and students, clean and at the EMPLB points")
    c.add_argument("--dataset", type=_choice(Dataset), default=Dataset.MNIST)
    c.add_argument("--students", default="sd,ard,rslad,fd,kdiga,tfkd,fdboth")
    c.add_argument("--eps", default=None, help="EMPLB radius (default: 0.1 MNIST, 8/255 otherwise)")
    c.add_argument("--eps-units", type=_choice(EpsUnits), default=None,
                   help="how --eps is read, and which zoo: normalised or pixel (default: the dataset's reading)")
    c.add_argument("--n-images", type=int, default=1000, help="first N images of the fixed subset")
    c.add_argument("--bins", type=int, default=15, help="equal-width confidence bins")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=int, default=0)
    c.add_argument("--out", required=True)
    c.set_defaults(func=cmd_calibrate)
    x = sub.add_parser("exact", **fmt, help="exact delta* (branch and bound, global MINLP) beside EMPLB and FAITHUB")
    x.add_argument("--pair", default="mnist-7x7", help="a small pair (mnist-7x7) or zoo (the paper's networks)")
    x.add_argument("--dataset", type=_choice(Dataset), default=Dataset.MNIST)
    x.add_argument("--train", action="store_true", help="train the small pair first (teacher, then students)")
    x.add_argument("--students", default="sd,fd")
    x.add_argument("--eps", default="0.02,0.05,0.1")
    x.add_argument("--eps-units", type=_choice(EpsUnits), default=None,
                   help="how --eps is read, and which zoo: normalised or pixel (default: the dataset's reading)")
    x.add_argument("--n-images", type=int, default=5, help="first N images of the fixed subset")
    x.add_argument("--tol", type=float, default=1e-3, help="stop when upper - lower <= tol")
    x.add_argument("--time-limit", type=float, default=60.0, help="branch-and-bound seconds per (image, student)")
    x.add_argument("--global-time-limit", type=float, default=30.0,
                   help="Gurobi global MINLP seconds per (class, sign); 0 skips it")
    x.add_argument("--method", default="lp", help="FAITHUB beside it: lp or crown")
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--workers", type=int, default=1)
    x.add_argument("--scheduler", default=None)
    x.add_argument("--threads", type=int, default=0)
    x.add_argument("--out", required=True)
    x.add_argument("--quiet", action="store_true")
    x.set_defaults(func=cmd_exact)
    r = sub.add_parser("reproduce", **fmt, help="execute the book's chapters with papermill (skips up-to-date ones)")
    r.add_argument("--profile", type=_choice(Profile), default=Profile.QUICK, help="quick or full")
    r.add_argument("--chapters", default=None, help="comma list of chapter names (default: all in _toc.yml)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cpu")
    r.add_argument("--kernel", default=None, help="Jupyter kernel (default: the notebook's)")
    r.add_argument("--out", default="_build/reproduce")
    r.set_defaults(func=cmd_reproduce)
    f = sub.add_parser("figure1", **fmt, help="Figure 1: the teacher-student gap over a slice of the eps-ball, with its record")
    f.add_argument("--dataset", type=_choice(Dataset), default=Dataset.MNIST)
    f.add_argument("--eps", default="0.1")
    f.add_argument("--eps-units", type=_choice(EpsUnits), default=None,
                   help="how --eps is read, and which zoo: normalised or pixel (default: the dataset's reading)")
    f.add_argument("--students", default="sd,fd")
    f.add_argument("--digit", type=int, default=3, help="the first subset image with this label")
    f.add_argument("--grid", type=int, default=101)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--threads", type=int, default=0)
    f.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "results" / "figures"))
    f.set_defaults(func=cmd_figure1)
    a = sub.add_parser("audit", **fmt, help="audit your own teacher-student pair (ONNX, safetensors or zoo:<dataset>/<name>)")
    a.add_argument("--teacher", required=True, help="an .onnx file, a .safetensors file with the zoo's JSON "
                   "architecture beside it, or a zoo name such as zoo:mnist/rt")
    a.add_argument("--student", required=True, help="the same forms as --teacher, e.g. zoo:mnist/fd")
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", type=_choice(Dataset), default=None,
                     help="the dataset's fixed evaluation subset: mnist, fashion-mnist or cifar10")
    src.add_argument("--images", default=None, metavar="FILE.npy", help="your own images, (N, C, H, W) in [0, 1]")
    a.add_argument("--labels", default=None, metavar="FILE.npy", help="class indices (N,) of --images, for accuracy")
    a.add_argument("--eps", default=None, help="comma list, e.g. 0.05,0.1 or 4/255,8/255 (none: the paper's "
                   "grid of --dataset; required with --images)")
    a.add_argument("--units", type=_choice(EpsUnits), default=None, help="how eps is read: normalised or pixel "
                   "(none: the dataset's reading; with --images pixel, or normalised when --std is given)")
    a.add_argument("--std", default=None, help="per-channel std of the normalised reading, a comma list "
                   "(CIFAR-10 also: population or kuangliu)")
    a.add_argument("--n-images", type=int, default=100, help="the first N images")
    a.add_argument("--method", default="crown", help="bounds: interval, crown, lp or milp")
    a.add_argument("--mode", default="paper,tight", help="FAITHUB modes (paper, tight, joint); the tightest is reported")
    a.add_argument("--no-agreement", action="store_true", help="skip certified distillation agreement (a MILP per image)")
    a.add_argument("--solver", default="auto", help="auto (Gurobi, HiGHS beyond its licence), gurobi or highs")
    a.add_argument("--time-limit", type=float, default=30.0, help="seconds per solve (its proven bound is kept)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--workers", type=int, default=1, help="K > 1: a Dask LocalCluster of K processes")
    a.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://host:8786")

    a.add_argument("--threads", type=int, default=1, help="torch CPU threads here (small networks gain nothing "
                   "from a second; 0: torch's default)")
    a.add_argument("--out", required=True, help="run directory (resumable): audit.csv, run.json, report.html")
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(func=cmd_audit)
    g = sub.add_parser("stages", **fmt, help="run record and total wall time per dataset and stage of the reproduction")
    g.add_argument("--results", default=str(Path(__file__).resolve().parent.parent / "results"))
    g.add_argument("--csv", default=None, help="also write the records here")
    g.set_defaults(func=cmd_stages)
    args = p.parse_args(argv)
    if getattr(args, "epochs", None) and args.profile is Profile.FULL:
        p.error("--epochs changes the paper's settings; use it with --profile quick")
    from .data import DataError
    from .zoo import ZooError
    try:
        return args.func(args)
    except (ValueError, DataError, ZooError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a --out that cannot be written: no permission, a file in the way, a full disk
        print(f"error: cannot write {exc.filename}: {exc.strerror}. Fix: choose a directory you can write "
              f"(--out), or make room or change its permissions", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
