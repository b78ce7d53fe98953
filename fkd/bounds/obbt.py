"""Optimisation-based bound tightening on a budget: tightening ``obbt``.

``milp.tighten`` solves one LP (or one MILP, each with the full per-solve limit) per unstable neuron.
``obbt`` does both, for the pre-activations of every ReLU after the first affine layer (whose
interval bounds are exact already):

1. ``tighten(relax="lp")``: one LP per side of each unstable neuron, layer by layer;
2. then, layer by layer again, the LPs once more where a MILP has tightened an earlier layer, and a
   short MILP per side of each neuron still unstable (binaries for the earlier layers' unstable
   ReLUs, big-M from their tightened bounds), at most ``milp_limit`` seconds each, the
   neurons with the largest triangle (``-l u / (u - l)``, the area the LP relaxation adds) first,
   until ``budget`` CPU seconds are spent (``fkd.bounds.budget``) (the first layers first: on the MNIST zoo the MILPs of the
   first tightened layer buy the most, results/benchmarks/verify_goals.md);
3. CROWN for the later layers from the tightened ones, intersected with what they had.

Every new bound is a solver's proven bound (an LP's from its dual vector, a time-limited MILP's dual
bound, never an incumbent; ``solvers``), intersected with the bound it replaces, so a failed, cut or
skipped solve keeps the earlier bound and the result lies inside ``tighten(relax="lp")``'s on the
same starting bounds (with ``budget`` 0 it is that). A MILP program over Gurobi's size-limited
licence falls back to HiGHS (``solvers.open_session``, auto).
"""
from __future__ import annotations

import numpy as np
import torch

from .budget import MIN_SOLVE, Budget, as_budget
from .crown import crown_bounds
from .interval import Box, intersect
from .milp import NeuronSolve, Relax, build_program, solve_linear, tighten
from .network import Affine, Net
from .solvers import Solver, Status, open_session

__all__ = ["OBBT_LIMIT", "obbt", "obbt_options", "run_tightening", "tightened_layers"]

#: Seconds per MILP solve of the ``obbt`` tightening unless asked otherwise.
OBBT_LIMIT = 0.2


def tightened_layers(net: Net) -> list[int]:
    """Indices of the affine ops whose outputs feed a ReLU or a max-pool, the first one excepted."""
    return [i for i, op in enumerate(net.ops[:-1])
            if i > 0 and isinstance(op, Affine) and not isinstance(net.ops[i + 1], Affine)]


def _triangle(l: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The area measure -l u / (u - l) of each unstable neuron's triangle (0 for stable ones)."""
    unstable = (l < 0) & (u > 0)
    return torch.where(unstable, -l * u / torch.where(unstable, u - l, torch.ones_like(u)), torch.zeros_like(u))


def _milp_pass(program, neurons: list[int], l: torch.Tensor, u: torch.Tensor, solver, op: int,
               milp_limit: float, budget: Budget, sides=("upper", "lower")) -> list[NeuronSolve]:
    """Short MILPs for both sides of each neuron in ``neurons`` (in that order) of one layer's
    program, lowering ``u`` and raising ``l`` in place where the proven bound is tighter."""
    records: list[NeuronSolve] = []
    session = None
    k = program.out_coef.shape[0]
    for r in neurons:
        for side, sign in (("upper", 1.0), ("lower", -1.0)):
            if side not in sides:
                continue
            if not (l[r] < 0 < u[r]):
                break   # stable already: nothing to gain from the other side
            limit = budget.limit(milp_limit)
            if limit <= MIN_SOLVE:
                return records
            session = session or open_session(program, solver)
            c = np.zeros(k)
            c[r] = sign
            cost, const = program.objective(c)
            res = session.maximize(cost, const, limit)
            value = sign * res.bound
            if side == "upper":
                kept = not value < float(u[r])
                u[r] = min(float(u[r]), value)
            else:
                kept = not value > float(l[r])
                l[r] = max(float(l[r]), value)
            records.append(NeuronSolve(op, r, side, res, kept or res.status is Status.FAILED))
    return records


def obbt(net: Net, box: Box, bounds: list[Box] | None = None, solver: Solver | str = Solver.AUTO,
         lp_limit: float = 10.0, milp_limit: float = OBBT_LIMIT, budget: Budget | float | None = None,
         sides=("upper", "lower"), layers=None) -> tuple[list[Box], list[NeuronSolve]]:
    """LP tightening (``milp.tighten``), then short MILPs per unstable neuron, layer by layer.

    Args:
        net: the lowered network; box: the input box of one image, (1, in_dim).
        bounds: starting sound per-op bounds (1, n) each (``crown_bounds`` if None).
        lp_limit: seconds per LP; milp_limit: seconds per MILP.
        budget: CPU seconds for this call (a ``Budget`` or seconds; None: no limit): no MILP starts
            or runs past it; the LP tightening always runs (and counts against it).
        sides: the sides solved by MILP; layers: the op indices whose neurons get MILPs (None: all
            of ``tightened_layers``); both for measurements.
    Returns:
        (per-op bounds (1, n) each, inside ``tighten(relax="lp")``'s; the solve records, LP and MILP).
    """
    budget = as_budget(budget)
    bounds, records = tighten(net, box, bounds, relax=Relax.LP, solver=solver, time_limit=lp_limit)
    changed = False   # has a MILP tightened an earlier layer (so this layer's LPs can gain)?
    for i in tightened_layers(net):
        l, u = bounds[i].lower[0].clone(), bounds[i].upper[0].clone()
        unstable = ((l < 0) & (u > 0)).nonzero().flatten()
        if len(unstable) == 0 or budget.expired():
            continue
        program = build_program(net, box, bounds, upto=i)
        if changed:   # the LPs again, on the MILP-tightened earlier layers
            eye = np.eye(net.ops[i].out_dim)[unstable.numpy()]
            new, recs = solve_linear(program.relaxed(), eye, Box(l[unstable], u[unstable]), solver, lp_limit, op=i)
            records += [NeuronSolve(r.op, int(unstable[r.neuron]), r.side, r.result, r.kept_previous) for r in recs]
            l[unstable], u[unstable] = new.lower, new.upper
        area = _triangle(l, u)
        order = [int(r) for r in torch.argsort(area, descending=True) if area[r] > 0]
        if program.integer.any() and (layers is None or i in layers):   # no binaries: the MILP is the LP
            recs = _milp_pass(program, order, l, u, solver, i, milp_limit, budget, sides)
            records += recs
            changed = changed or any(not r.kept_previous for r in recs)
        bounds[i] = intersect(Box(l[None], u[None]), bounds[i])
        later = crown_bounds(net, box, prefix=bounds[:i + 1])
        bounds = bounds[:i + 1] + [intersect(a, b) for a, b in zip(later[i + 1:], bounds[i + 1:])]
    return bounds, records


def run_tightening(tightening, net: Net, box: Box, per_op: list[Box], solver: Solver | str, time_limit: float,
                   obbt_limit: float = OBBT_LIMIT, obbt_budget: float | None = None) -> tuple[list[Box], list[NeuronSolve]]:
    """The tightening asked (none | lp | milp | obbt, a ``Tightening``, ``Relax`` or str) of ``per_op``:
    lp / milp by ``milp.tighten`` (``time_limit`` per solve), obbt by ``obbt`` (``time_limit`` per LP,
    ``obbt_limit`` per MILP, ``obbt_budget`` CPU seconds in all). Returns (per-op bounds, records)."""
    name = str(getattr(tightening, "value", tightening))
    if tightening is None or name == "none":
        return list(per_op), []
    if name == "obbt":
        return obbt(net, box, per_op, solver, time_limit, obbt_limit, obbt_budget)
    return tighten(net, box, per_op, relax=name, solver=solver, time_limit=time_limit)


def obbt_options(tightening, limit: float | None = None, budget: float | None = None) -> dict[str, float]:
    """The obbt settings a run asked for, checked, as keywords of ``ImageBounds``.

    Args:
        tightening: the run's tightening (a ``Tightening``, its name, or None).
        limit: seconds per MILP (None: ``OBBT_LIMIT``); budget: CPU seconds per network (None: none).
    Returns:
        {"obbt_limit": limit, "obbt_budget": budget}, each only where given.
    Raises:
        ValueError: a setting that is not a positive number, or one given without the obbt tightening.
    """
    given = {k: v for k, v in (("obbt_limit", limit), ("obbt_budget", budget)) if v is not None}
    for name, value in given.items():
        if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    if given and str(getattr(tightening, "value", tightening)) != "obbt":
        flags = " and ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"{flags} set the obbt tightening, but the tightening is "
                         f"{getattr(tightening, 'value', tightening) or 'the default'}. Fix: add --tightening obbt "
                         f"(tightening='obbt'), or leave out {flags}")
    return {k: float(v) for k, v in given.items()}
