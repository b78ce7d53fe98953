"""Command line: ``python -m fkd train | zoo | evaluate | attack-study | verify | audit | calibrate | exact | reproduce | stages | figure1``.

One builder per command adds its options (``--help`` shows every default): here those of the models
and the book (train, zoo, reproduce, figure1, stages), in ``fkd.cli_runs`` those of the runs, in
``fkd.cli_options`` the options several commands share. The handlers in ``fkd.commands`` and
``fkd.commands_runs`` turn the parsed arguments into a config, make one call and print.
"""
from __future__ import annotations

import argparse
import sys

from fkd import commands
from fkd.cli_options import FMT, ZOO_HELP, choice, eps_units
from fkd.cli_runs import add_attack_study, add_audit, add_calibrate, add_evaluate, add_exact, add_verify
from fkd.config import Dataset, EpsUnits, Method, Profile
from fkd.paths import FIGURES, RESULTS


def _train(sub) -> None:
    """``train``."""
    t = sub.add_parser("train", **FMT, help="train the robust teacher (rt) or a student")
    t.add_argument("--dataset", type=choice(Dataset), required=True, help="mnist, fashion-mnist or cifar10")
    t.add_argument("--method", type=choice(Method), required=True,
                   help="the training method: rt, sd, ard, rslad, fd; related: kdiga, tfkd, fdboth (verify, audit "
                        "and exact name the students in --students and take --method for the bound method)")
    t.add_argument("--alpha", type=float, default=None, help="distillation weight (default: the paper's)")
    t.add_argument("--profile", type=choice(Profile), default=Profile.FULL, help="quick or full (default)")
    t.add_argument("--epochs", type=int, default=None, help="override the profile's maximum epochs")
    t.add_argument("--eps-units", type=choice(EpsUnits), default=EpsUnits.NORMALISED,
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
                   "under pixel/<dataset>/ (default: $FKD_ZOO, else zoo/ in a checkout, else ~/.cache/fkd/zoo; "
                   "the zoo installed with the package is never written)")
    t.add_argument("--teacher", default=None,
                   help="teacher .safetensors (default: the rt of the --out zoo when it has one, else the zoo's)")
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
    t.add_argument("--force", action="store_true", help="overwrite a model of another config at the destination, "
                   "a shipped one included (without it, training refuses and names what differs)")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=commands.cmd_train)


def _zoo(sub) -> None:
    """``zoo``."""
    z = sub.add_parser("zoo", **FMT, help="list the shipped models")
    z.add_argument("--csv", action="store_true")
    z.add_argument("--markdown", action="store_true", help="a Markdown table with the paper's clean accuracies")
    z.add_argument("--evaluate", action="store_true",
                   help="recompute clean accuracy and PGD-20 robust accuracy (training eps, fixed subset)")
    z.add_argument("--zoo", default=None, help=ZOO_HELP)
    z.add_argument("--eps-units", type=choice(EpsUnits), default=None,
                   help="only the zoo of one reading: normalised or pixel (default: both)")
    z.set_defaults(func=commands.cmd_zoo)


def _reproduce(sub) -> None:
    """``reproduce``."""
    r = sub.add_parser("reproduce", **FMT, help="execute the book's chapters with papermill (skips up-to-date ones)")
    r.add_argument("--profile", type=choice(Profile), default=Profile.QUICK, help="quick or full")
    r.add_argument("--chapters", default=None, help="comma list of chapter names (default: all in _toc.yml)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cpu")
    r.add_argument("--kernel", default=None, help="Jupyter kernel (default: the notebook's)")
    r.add_argument("--out", default="_build/reproduce")
    r.set_defaults(func=commands.cmd_reproduce)


def _figure1(sub) -> None:
    """``figure1``."""
    f = sub.add_parser("figure1", **FMT, help="Figure 1: the teacher-student gap over a slice of the eps-ball, with its record")
    f.add_argument("--dataset", type=choice(Dataset), default=Dataset.MNIST)
    f.add_argument("--eps", default="0.1")
    eps_units(f)
    f.add_argument("--students", default="sd,fd")
    f.add_argument("--digit", type=int, default=3, help="the first subset image with this label")
    f.add_argument("--grid", type=int, default=101)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--threads", type=int, default=0)
    f.add_argument("--out", default=str(FIGURES))
    f.set_defaults(func=commands.cmd_figure1)


def _stages(sub) -> None:
    """``stages``."""
    g = sub.add_parser("stages", **FMT, help="run record and total wall time per dataset and stage of the reproduction")
    g.add_argument("--results", default=str(RESULTS))
    g.add_argument("--csv", default=None, help="also write the records here")
    g.set_defaults(func=commands.cmd_stages)


BUILDERS = (_train, _zoo, add_evaluate, add_attack_study, add_verify, add_calibrate, add_exact, _reproduce, _figure1,
            add_audit, _stages)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command.

    Returns:
        ArgumentParser whose subcommands set ``func`` to their handler.
    """
    p = argparse.ArgumentParser(prog="python -m fkd", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for build in BUILDERS:
        build(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command.

    Args:
        argv: the arguments (None: ``sys.argv[1:]``).
    Returns:
        The exit status: 0, 1 (nothing to do or a chapter failed), 2 (a user error, with its fix).
    """
    p = build_parser()
    args = p.parse_args(argv)
    if getattr(args, "epochs", None) and args.profile is Profile.FULL:
        p.error("--epochs changes the paper's settings; use it with --profile quick")
    from fkd.data import DataError
    from fkd.zoo import ZooError
    try:
        return args.func(args)
    except FileNotFoundError as exc:
        if exc.filename is None:  # raised with its own message, naming the file and the fix
            print(f"error: {exc}", file=sys.stderr)
        else:  # a raw one: name the file and say where it came from
            print(f"error: {exc.filename} does not exist. Fix: check the file and directory options of "
                  f"`python -m fkd {args.command}` (--help lists them)", file=sys.stderr)
        return 2
    except (ValueError, DataError, ZooError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a --out that cannot be written: no permission, a file in the way, a full disk
        where = exc.filename if exc.filename is not None else "a file"
        print(f"error: cannot write {where}: {exc.strerror or exc}. Fix: choose a directory you can write "
              f"(--out), or make room or change its permissions", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
