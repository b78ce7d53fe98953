"""The command line's shared pieces: option types (enum choices, the bound method), the help
formatter that shows every default, the options several commands share (eps units, the run options,
the obbt settings) and the readers of option values (comma lists, ``--std``)."""
from __future__ import annotations

import argparse

from fkd.bounds.modes import BoundMethod
from fkd.bounds.obbt import OBBT_LIMIT
from fkd.config import EpsUnits, Method, parse


def choice(cls):
    """An argparse type: the enum member ``cls`` names (argparse reports an unknown name)."""
    def conv(value: str):
        try:
            return parse(cls, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return conv


def bound_method(allowed: tuple[str, ...] = tuple(m.value for m in BoundMethod), students: str = "--students"):
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


class Defaults(argparse.ArgumentDefaultsHelpFormatter):
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


FMT = {"formatter_class": Defaults}  # --help shows every default
TIGHTENING_HELP = ("none, lp, milp or obbt (lp, then short MILPs per unstable neuron: --obbt-limit, --obbt-budget) "
                   "per-layer tightening (default: lp for --method lp/milp)")
ZOO_HELP = "zoo root (default: $FKD_ZOO, else zoo/ in a checkout, else the zoo installed with the package)"


def eps_units(p: argparse.ArgumentParser) -> None:
    """``--eps-units``: how --eps is read, and so which zoo is used."""
    p.add_argument("--eps-units", type=choice(EpsUnits), default=None,
                   help="how --eps is read, and which zoo: normalised (the paper's reading) or pixel "
                        "(default: the dataset's reading, fkd.units.DEFAULT_UNITS)")


def run_options(p: argparse.ArgumentParser, threads: bool = True) -> None:
    """The options every run shares: seed, Dask workers or scheduler, torch threads, quiet."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="K > 1: a Dask LocalCluster of K processes")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://host:8786")
    if threads:
        p.add_argument("--threads", type=int, default=0, help="torch CPU threads here (0: torch's default)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def obbt_flags(p: argparse.ArgumentParser) -> None:
    """``--obbt-limit`` and ``--obbt-budget``: the settings of ``--tightening obbt``."""
    p.add_argument("--obbt-limit", type=float, default=None, metavar="SECONDS",
                   help=f"seconds per MILP of --tightening obbt (default: {OBBT_LIMIT})")
    p.add_argument("--obbt-budget", type=float, default=None, metavar="SECONDS",
                   help="CPU seconds of --tightening obbt per network (default: no budget)")


def csv_list(text: str) -> list[str]:
    """A comma list of an option (``--students sd,fd``) as its non-empty items, stripped."""
    return [t for t in (s.strip() for s in text.split(",")) if t]


def read_std(text: str) -> tuple[float, ...]:
    """``--std``: a named CIFAR-10 convention (population, kuangliu) or a comma list of numbers."""
    from fkd.units import CIFAR10_STD

    if text in CIFAR10_STD:
        return CIFAR10_STD[text]
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"--std {text!r}: write a comma list such as 0.2023,0.1994,0.2010 or one of: "
                         f"{', '.join(CIFAR10_STD)}") from None
