"""Oracles for the solver layer: LP bounds come from the dual vector over the variable box
(Neumaier and Shcherbina), never from the solver's objective value, and hold against the exact
optimum of small LPs solved in rational arithmetic."""
from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp

from fkd.bounds.milp import Program
from fkd.bounds.dual import dual_bound, safe_lp_bound
from fkd.bounds.solvers import InfeasibleProgram, Status, open_session


def _program(a, lo, hi, lb, ub) -> Program:
    a = np.asarray(a, dtype=float)
    n = a.shape[1]
    return Program(n, np.asarray(lb, float), np.asarray(ub, float), np.zeros(n, bool), sp.csr_matrix(a),
                   np.asarray(lo, float), np.asarray(hi, float), np.eye(n), np.arange(n), np.zeros(n), relax=True)


def _exact_max(c, a, lo, hi, lb, ub) -> Fraction | None:
    """max c @ v over the 2-variable polytope by vertex enumeration in exact arithmetic."""
    F = [Fraction(float(v)) for v in c]
    lines = []  # (coefficients, right-hand side): rows at either side, variables at either bound
    for row, l, h in zip(a, lo, hi):
        for rhs in (l, h):
            if np.isfinite(rhs):
                lines.append(([Fraction(float(x)) for x in row], Fraction(float(rhs))))
    for i in range(2):
        for rhs in (lb[i], ub[i]):
            e = [Fraction(0), Fraction(0)]
            e[i] = Fraction(1)
            lines.append((e, Fraction(float(rhs))))
    best = None
    for (p, r), (q, s) in itertools.combinations(lines, 2):
        det = p[0] * q[1] - p[1] * q[0]
        if det == 0:
            continue
        v = [(r * q[1] - p[1] * s) / det, (p[0] * s - r * q[0]) / det]
        ok = all(Fraction(float(lb[i])) <= v[i] <= Fraction(float(ub[i])) for i in range(2))
        for row, l, h in zip(a, lo, hi):
            x = sum(Fraction(float(w)) * vi for w, vi in zip(row, v))
            ok &= (not np.isfinite(l) or x >= Fraction(float(l))) and (not np.isfinite(h) or x <= Fraction(float(h)))
        if ok:
            val = F[0] * v[0] + F[1] * v[1]
            best = val if best is None or val > best else best
    return best


@pytest.mark.parametrize("solver", ["highs", "gurobi"])
def test_safe_lp_bound_never_below_the_rational_optimum(pinned, solver):
    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(40):
        a = rng.integers(-8, 9, (3, 2)) / 8
        lo = np.where(rng.random(3) < 0.5, -np.inf, rng.integers(-16, 0, 3) / 8)
        hi = rng.integers(0, 16, 3) / 8
        lb, ub = rng.integers(-16, 0, 2) / 8, rng.integers(1, 16, 2) / 8
        c = rng.integers(-8, 9, 2) / 8
        exact = _exact_max(c, a, lo, hi, lb, ub)
        if exact is None:
            continue  # infeasible: covered by the test below
        prog = _program(a, lo, hi, lb, ub)
        try:
            res = open_session(prog, solver).maximize(c, 0.0, 10.0)
        except Exception as exc:  # gurobipy without a licence on this machine
            pytest.skip(f"{solver} unavailable: {exc}")
        assert res.status is Status.OPTIMAL
        assert res.bound >= float(exact)               # sound: never below the true maximum
        assert res.bound - float(exact) <= 1e-4        # and tight: the optimal dual gives the optimum
        checked += 1
    assert checked >= 20


def test_any_multiplier_gives_a_bound_and_the_zero_one_is_the_box(pinned):
    a, lo, hi = [[1.0, 1.0]], [-np.inf], [1.0]
    prog = _program(a, lo, hi, [0.0, 0.0], [2.0, 2.0])
    c = np.array([1.0, 1.0])
    assert dual_bound(prog, c, np.zeros(1)) == 4.0           # y = 0: the box alone
    assert dual_bound(prog, c, np.array([1.0])) == 1.0       # the optimal multiplier: the optimum
    assert dual_bound(prog, c, np.array([-1.0])) == 4.0      # a sign that needs lo = -inf is dropped
    assert safe_lp_bound(prog, c, np.array([-1.0])) == 1.0   # either sign convention works
    for y in np.linspace(-3, 3, 13):
        assert dual_bound(prog, c, np.array([y])) >= 1.0 - 1e-12


@pytest.mark.parametrize("solver", ["highs", "gurobi"])
def test_an_infeasible_program_raises(pinned, solver):
    prog = _program([[1.0, 0.0]], [3.0], [np.inf], [0.0, 0.0], [1.0, 1.0])  # v0 >= 3 but v0 <= 1
    try:
        session = open_session(prog, solver)
    except Exception as exc:
        pytest.skip(f"{solver} unavailable: {exc}")
    with pytest.raises(InfeasibleProgram, match="bug"):
        session.maximize(np.array([1.0, 0.0]), 0.0, 10.0)


@pytest.mark.parametrize("solver", ["highs", "gurobi"])
@pytest.mark.parametrize("relax", [True, False])
def test_a_solver_incumbent_forwarded_through_torch_never_exceeds_the_bound(pinned, solver, relax):
    """The input part of any solution the solver returns is a point of the ball; the network's real
    logit there can never beat the proven bound (LP or MILP), and the bound holds every sample."""
    import torch
    from torch import nn

    from fkd.bounds import as_net
    from fkd.bounds.crown import crown_bounds
    from fkd.bounds.interval import input_box

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x0 = torch.rand((1, 2, 3), generator=pinned)
    net, box = as_net(model, (1, 2, 3)), input_box(x0, 0.2)
    from fkd.bounds.milp import build_program
    program = build_program(net, box, crown_bounds(net, box))
    program = program.relaxed() if relax else program
    try:
        session = open_session(program, solver)
    except Exception as exc:
        pytest.skip(f"{solver} unavailable: {exc}")
    samples = box.lower + torch.rand((500, 6), generator=pinned, dtype=box.lower.dtype) * (box.upper - box.lower)
    with torch.no_grad():
        z_samples = model(samples.float().reshape(-1, 1, 2, 3)).double()
    for k in range(3):
        for sign in (1.0, -1.0):
            cost, const = program.objective(sign * np.eye(3)[k])
            res = session.maximize(cost, const, 10.0)
            point = session.solution()
            assert point is not None
            x = torch.as_tensor(point[:net.in_dim]).reshape(1, 1, 2, 3)
            assert ((x.reshape(1, -1) >= box.lower - 1e-6) & (x.reshape(1, -1) <= box.upper + 1e-6)).all()
            with torch.no_grad():
                real = sign * float(model(x.float())[0, k])
            assert real <= res.bound + 1e-5
            assert (sign * z_samples[:, k] <= res.bound + 1e-5).all()
