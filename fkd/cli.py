"""Command line: ``python -m fkd train | zoo | evaluate | attack-study | verify | audit | calibrate | exact | reproduce | stages | figure1``.

One builder per command adds its options (``--help`` shows every default); the handlers in
``fkd.commands`` turn the parsed arguments into a config, make one call and print.
"""
from __future__ import annotations

import argparse
import sys

from fkd import commands
from fkd.bounds.modes import BoundMethod
from fkd.bounds.obbt import OBBT_LIMIT
from fkd.config import Dataset, Domain, EpsUnits, Method, Profile, parse
from fkd.losses import PAPER_STUDENTS, RELATED_STUDENTS
from fkd.paths import FIGURES, RESULTS


def _choice(cls):
    """An argparse type: the enum member ``cls`` names (argparse reports an unknown name)."""
    def conv(value: str):
        try:
            return parse(cls, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return conv


def _bound_method(allowed: tuple[str, ...] = tuple(m.value for m in BoundMethod), students: str = "--students"):
    """An argparse type for ``--method`` of verify, audit and exact: always the bound method (how each
    network is bounded); ``train --method`` is the training method, and a training method's name
    given here is refused with where it goes."""
    def conv(value: str) -> str:
        if value in {m.value for m in Method}:
            example = f"zoo:mnist/{value}" if students == "--student" else value
            raise argparse.ArgumentTypeError(
                f"{value!r} is a training method, but here --method is the bound method ({', '.join(allowed)}). "
                f"Fix: name the student in {students} (e.g. {students} {example}) and pick the bounds with --method")
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"unknown bound method {value!r}; choose one of: {', '.join(allowed)}")
        return value
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


FMT = {"formatter_class": _Defaults}  # --help shows every default
TIGHTENING_HELP = ("none, lp, milp or obbt (lp, then short MILPs per unstable neuron: --obbt-limit, --obbt-budget) "
                   "per-layer tightening (default: lp for --method lp/milp)")
ZOO_HELP = "zoo root (default: $FKD_ZOO, else zoo/ in a checkout, else the zoo installed with the package)"


def _eps_units(p: argparse.ArgumentParser) -> None:
    """``--eps-units``: how --eps is read, and so which zoo is used."""
    p.add_argument("--eps-units", type=_choice(EpsUnits), default=None,
                   help="how --eps is read, and which zoo: normalised (the paper's reading) or pixel "
                        "(default: the dataset's reading, fkd.units.DEFAULT_UNITS)")


def _run_options(p: argparse.ArgumentParser, threads: bool = True) -> None:
    """The options every run shares: seed, Dask workers or scheduler, torch threads, quiet."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="K > 1: a Dask LocalCluster of K processes")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://host:8786")
    if threads:
        p.add_argument("--threads", type=int, default=0, help="torch CPU threads here (0: torch's default)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _obbt(p: argparse.ArgumentParser) -> None:
    """``--obbt-limit`` and ``--obbt-budget``: the settings of ``--tightening obbt``."""
    p.add_argument("--obbt-limit", type=float, default=None, metavar="SECONDS",
                   help=f"seconds per MILP of --tightening obbt (default: {OBBT_LIMIT})")
    p.add_argument("--obbt-budget", type=float, default=None, metavar="SECONDS",
                   help="CPU seconds of --tightening obbt per network (default: no budget)")


def _train(sub) -> None:
    """``train``."""
    t = sub.add_parser("train", **FMT, help="train the robust teacher (rt) or a student")
    t.add_argument("--dataset", type=_choice(Dataset), required=True, help="mnist, fashion-mnist or cifar10")
    t.add_argument("--method", type=_choice(Method), required=True,
                   help="the training method: rt, sd, ard, rslad, fd; related: kdiga, tfkd, fdboth (verify, audit "
                        "and exact name the students in --students and take --method for the bound method)")
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
    z.add_argument("--eps-units", type=_choice(EpsUnits), default=None,
                   help="only the zoo of one reading: normalised or pixel (default: both)")
    z.set_defaults(func=commands.cmd_zoo)


def _evaluate(sub) -> None:
    """``evaluate``."""
    e = sub.add_parser("evaluate", **FMT, help="robust accuracy, distillation agreement, EMPLB, fidelity (Table 1)")
    e.add_argument("--dataset", type=_choice(Dataset), required=True)
    e.add_argument("--students", default=",".join(PAPER_STUDENTS), help="comma list: sd,ard,rslad,fd or e.g. fd-a0.75 "
                   "(empty: the teacher alone)")
    e.add_argument("--eps", default=None, help="comma list, e.g. 0,0.1 or 4/255,8/255 (default: the paper's grid)")
    _eps_units(e)
    e.add_argument("--n-images", type=int, default=None, help="first N images of the fixed subset")
    e.add_argument("--profile", type=_choice(Profile), default=Profile.FULL,
                   help="full: the paper's subset size; quick: 100 images (CIFAR-10: 20)")
    e.add_argument("--steps", type=int, default=50)
    e.add_argument("--restarts", type=int, default=5)
    e.add_argument("--strategy", default="both", help="EMPLB objective: max, classes, both (the paper's attack on both objectives) or "
                   "strong (both, then APGD with the same budget: ours, about 1.7x the time)")
    e.add_argument("--chunk-size", type=int, default=250, help="images per task (part of the config)")
    e.add_argument("--agreement-attack", default="flip", help="agreement searches, comma list: flip (ours, the `agree` "
                   "rows, always) and paper (plain PGD's last iterates, `agree_paper`; addable to a finished run)")
    e.add_argument("--zoo", default=None, help=ZOO_HELP)
    e.add_argument("--out", required=True, help="run directory (resumes if it exists)")
    e.add_argument("--export", default=None, metavar="DIR", help="also publish rows, Table 1 and the EMPLB tables here")
    e.add_argument("--std", default=None, help="per-channel std of the normalised reading (default: the dataset's); "
                   "CIFAR-10: population or kuangliu, or a comma list")
    _run_options(e, threads=True)
    e.set_defaults(func=commands.cmd_evaluate)


def _attack_study(sub) -> None:
    """``attack-study``."""
    a = sub.add_parser("attack-study", **FMT, help="EMPLB against PGD steps and restarts; --table3 for Table 3")
    a.add_argument("--dataset", type=_choice(Dataset), default=Dataset.MNIST)
    a.add_argument("--students", default=",".join(PAPER_STUDENTS))
    a.add_argument("--eps", default="0.1")
    _eps_units(a)
    a.add_argument("--n-images", type=int, default=100)
    a.add_argument("--steps", default="1,5,10,25,50,100,200")
    a.add_argument("--restarts", default="1,2,5,10,20")
    a.add_argument("--table3", action="store_true", help="Table 3: F-MNIST, 8/255, RSLAD vs FD, PGD-1/5/25/50")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--zoo", default=None, help=ZOO_HELP)
    a.add_argument("--out", required=True)
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(func=commands.cmd_attack_study)


def _verify(sub) -> None:
    """``verify``."""
    v = sub.add_parser("verify", **FMT, help="certified FAITHUB beside EMPLB per image (Table 2); shardable")
    v.add_argument("--dataset", type=_choice(Dataset), default=Dataset.MNIST)
    v.add_argument("--students", default=",".join(PAPER_STUDENTS))
    v.add_argument("--eps", default=None, help="comma list (default: the paper's grid without 0)")
    _eps_units(v)
    v.add_argument("--n-images", type=int, default=None, help="first N images of the fixed subset (default: all "
                   "of it: 1000 MNIST and Fashion-MNIST, 100 CIFAR-10 images)")
    v.add_argument("--method", type=_bound_method(), default="crown", help="the bound method, for both networks: "
                   "interval, crown, lp or milp (the students' training methods are named in --students)")
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
    v.add_argument("--tightening", default=None, help=TIGHTENING_HELP)
    _obbt(v)
    v.add_argument("--budget", type=float, default=None,
                   help="CPU seconds of tight-mode refinement per (image, student)")
    v.add_argument("--shard", default="1/1", help="k/n: this machine's share of the images")
    v.add_argument("--merge", nargs="+", default=None, metavar="DIR", help="join these shard directories into --out")
    v.add_argument("--out", required=True)
    v.add_argument("--export", default=None, metavar="DIR", help="also publish rows, Table 2 and histograms here")
    v.add_argument("--restore", default=None, metavar="DIR", help="first fill --out from a published run (an "
                   "--export directory) so it grows without recomputing the published rows")
    _run_options(v, threads=True)
    v.set_defaults(func=commands.cmd_verify)


def _calibrate(sub) -> None:
    """``calibrate``."""
    c = sub.add_parser("calibrate", **FMT, help="ECE of teacher and students, clean and at the EMPLB points")
    c.add_argument("--dataset", type=_choice(Dataset), default=Dataset.MNIST)
    c.add_argument("--students", default=",".join(PAPER_STUDENTS + RELATED_STUDENTS))
    c.add_argument("--eps", default=None, help="EMPLB radius (default: 0.1 MNIST, 8/255 otherwise)")
    _eps_units(c)
    c.add_argument("--n-images", type=int, default=1000, help="first N images of the fixed subset")
    c.add_argument("--bins", type=int, default=15, help="equal-width confidence bins")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=int, default=0)
    c.add_argument("--out", required=True)
    c.set_defaults(func=commands.cmd_calibrate)


def _exact(sub) -> None:
    """``exact``."""
    x = sub.add_parser("exact", **FMT, help="exact delta* (branch and bound, global MINLP) beside EMPLB and FAITHUB")
    x.add_argument("--pair", default="mnist-7x7", help="a small pair (mnist-7x7) or zoo (the paper's networks)")
    x.add_argument("--dataset", type=_choice(Dataset), default=Dataset.MNIST)
    x.add_argument("--train", action="store_true", help="train the small pair first (teacher, then students)")
    x.add_argument("--students", default="sd,fd")
    x.add_argument("--eps", default="0.02,0.05,0.1")
    _eps_units(x)
    x.add_argument("--n-images", type=int, default=5, help="first N images of the fixed subset")
    x.add_argument("--tol", type=float, default=1e-3, help="stop when upper - lower <= tol")
    x.add_argument("--time-limit", type=float, default=60.0, help="branch-and-bound seconds per (image, student)")
    x.add_argument("--global-time-limit", type=float, default=30.0,
                   help="Gurobi global MINLP seconds per (class, sign); 0 skips it")
    x.add_argument("--method", type=_bound_method(("lp", "crown")), default="lp",
                   help="the bound method of FAITHUB beside it: lp or crown")
    x.add_argument("--out", required=True)
    _run_options(x, threads=True)
    x.set_defaults(func=commands.cmd_exact)


def _reproduce(sub) -> None:
    """``reproduce``."""
    r = sub.add_parser("reproduce", **FMT, help="execute the book's chapters with papermill (skips up-to-date ones)")
    r.add_argument("--profile", type=_choice(Profile), default=Profile.QUICK, help="quick or full")
    r.add_argument("--chapters", default=None, help="comma list of chapter names (default: all in _toc.yml)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="cpu")
    r.add_argument("--kernel", default=None, help="Jupyter kernel (default: the notebook's)")
    r.add_argument("--out", default="_build/reproduce")
    r.set_defaults(func=commands.cmd_reproduce)


def _figure1(sub) -> None:
    """``figure1``."""
    f = sub.add_parser("figure1", **FMT, help="Figure 1: the teacher-student gap over a slice of the eps-ball, with its record")
    f.add_argument("--dataset", type=_choice(Dataset), default=Dataset.MNIST)
    f.add_argument("--eps", default="0.1")
    _eps_units(f)
    f.add_argument("--students", default="sd,fd")
    f.add_argument("--digit", type=int, default=3, help="the first subset image with this label")
    f.add_argument("--grid", type=int, default=101)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--threads", type=int, default=0)
    f.add_argument("--out", default=str(FIGURES))
    f.set_defaults(func=commands.cmd_figure1)


def _audit(sub) -> None:
    """``audit``."""
    a = sub.add_parser("audit", **FMT, help="audit your own teacher-student pair (ONNX, safetensors or zoo:<dataset>/<name>)")
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
    a.add_argument("--method", type=_bound_method(students="--student"), default="crown",
                   help="the bound method: interval, crown, lp or milp")
    a.add_argument("--mode", default="paper,tight", help="FAITHUB modes (paper, tight, joint); the tightest is reported")
    a.add_argument("--no-agreement", action="store_true", help="skip certified distillation agreement (a MILP per image)")
    a.add_argument("--solver", default="auto", help="auto (Gurobi, HiGHS beyond its licence), gurobi or highs")
    a.add_argument("--time-limit", type=float, default=30.0, help="seconds per solve (its proven bound is kept)")
    a.add_argument("--tightening", default=None, help=TIGHTENING_HELP)
    _obbt(a)
    a.add_argument("--threads", type=int, default=1, help="torch CPU threads here (small networks gain nothing "
                   "from a second; 0: torch's default)")
    a.add_argument("--out", required=True, help="run directory (resumable): audit.csv, run.json, report.html")
    _run_options(a, threads=False)
    a.set_defaults(func=commands.cmd_audit)


def _stages(sub) -> None:
    """``stages``."""
    g = sub.add_parser("stages", **FMT, help="run record and total wall time per dataset and stage of the reproduction")
    g.add_argument("--results", default=str(RESULTS))
    g.add_argument("--csv", default=None, help="also write the records here")
    g.set_defaults(func=commands.cmd_stages)


BUILDERS = (_train, _zoo, _evaluate, _attack_study, _verify, _calibrate, _exact, _reproduce, _figure1, _audit, _stages)


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
