"""Oracles for the LP/MILP programs and the FAITHUB modes: every real point is a solution of the
program (containment), the methods and modes nest, and Gurobi and HiGHS agree."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fkd.attacks import pgd
from fkd.bounds import as_net
from fkd.bounds.crown import crown_bounds
from fkd.bounds.interval import input_box
from fkd.bounds.milp import Relax, build_program, tighten
from fkd.bounds.network import Affine, Net, ReLU, apply
from fkd.bounds.shared import ImageBounds
from fkd.bounds.solvers import open_session
from fkd.metrics import confidence_gap
from test_bounds import Logit, _ball_samples, _conv_net, _gurobi_usable, _mlp

TOL = 1e-7


def _assignment(net: Net, bounds, x: torch.Tensor) -> np.ndarray:
    """The value of every program variable at input x (flat, in_dim), in ``build_program``'s order:
    inputs; per ReLU the post-activation of each live neuron (and its indicator when unstable); per
    max-pool window with several candidates its output and one indicator per candidate."""
    flat = [(b.lower.reshape(-1).numpy(), b.upper.reshape(-1).numpy()) for b in bounds]
    v = list(x.numpy())
    a = x.to(torch.float64)[None]
    for i, op in enumerate(net.ops):
        out = apply(op, a)
        if isinstance(op, ReLU):
            z, (l, u) = a[0].numpy(), flat[i - 1]
            for r in range(len(z)):
                if u[r] > 0:
                    v.append(max(z[r], 0.0))
                    if l[r] < 0:
                        v.append(1.0 if z[r] > 0 else 0.0)
        elif not isinstance(op, Affine):
            vals, (l, u) = a[0].numpy(), flat[i - 1]
            for w in op.windows.numpy():
                cand = [j for j in w if u[j] >= l[w].max()]
                if len(cand) > 1:
                    best = cand[int(np.argmax(vals[cand]))]
                    v += [vals[w].max()] + [1.0 if j == best else 0.0 for j in cand]
        a = out
    return np.array(v)


def _pgd_points(model, x0, eps, k, gen) -> torch.Tensor:
    """PGD points maximising and minimising each logit (2k, C, H, W)."""
    pts = [pgd(Logit(model, c, s), x0[None], eps, steps=20, step_size=eps / 6, restarts=2, generator=gen)[0][0]
           for c in range(k) for s in (1.0, -1.0)]
    return torch.stack(pts)


def _check_contains(program, net, bounds, points) -> None:
    for prog in (program, program.relaxed()):
        assert prog.a.shape == program.a.shape
        for x in points:
            v = _assignment(net, bounds, x.reshape(-1).double())
            assert v.shape == (prog.n,)
            assert (v >= prog.lb - TOL).all() and (v <= prog.ub + TOL).all()
            av = prog.a @ v
            assert (av >= prog.row_lo - TOL).all() and (av <= prog.row_hi + TOL).all()
            ints = v[prog.integer_vars()]
            assert np.all((ints == 0) | (ints == 1))
            z = prog.out_coef @ v[prog.out_cols] + prog.out_const   # the output expression is the logits
            assert np.allclose(z, net.forward(x[None].double())[0].numpy(), atol=1e-9)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("tightening", [None, "lp"])
def test_every_point_of_the_ball_is_a_solution_of_the_milp_and_its_lp(pinned, arch, tightening):
    if arch == "mlp":
        model, shape = _mlp(pinned, [16, 12, 12, 5], scale=2.0), (1, 4, 4)
    else:
        model, shape = _conv_net(pinned), (2, 8, 8)
    x0 = torch.rand(shape, generator=pinned)
    eps = 0.1
    net, box = as_net(model, shape), input_box(x0, eps)
    bounds = crown_bounds(net, box)
    if tightening:
        bounds, _ = tighten(net, box, bounds, relax=Relax.LP, solver="highs", time_limit=10)
    program = build_program(net, box, bounds)
    assert program.integer.any()  # unstable ReLUs (and max-pools) are in the program
    k = net.out_dim
    points = torch.cat([_ball_samples(x0, eps, 60, pinned), _pgd_points(model, x0, eps, k, pinned), x0[None]])
    _check_contains(program, net, bounds, points)


def test_the_assignment_breaks_a_row_when_a_bound_is_wrong(pinned):
    """The containment oracle can fail: bounds that exclude a real point give a violated row."""
    model = _mlp(pinned, [16, 12, 5], scale=2.0)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    net, box = as_net(model, (1, 4, 4)), input_box(x0, 0.2)
    bounds = crown_bounds(net, box)
    z = net.forward(x0[None].double())[0]
    pre = net.ops[0].weight @ x0.reshape(-1).double() + net.ops[0].bias
    r = int(torch.argmax(pre))                       # a neuron with a positive pre-activation at x0
    wrong = list(bounds)
    wrong[0] = type(bounds[0])(bounds[0].lower, bounds[0].upper.clone())
    wrong[0].upper[0, r] = float(pre[r]) / 2         # an upper bound below the real value
    program = build_program(net, box, wrong)
    with pytest.raises(AssertionError):
        _check_contains(program, net, wrong, x0[None])
    assert torch.isfinite(z).all()


@pytest.mark.parametrize("eps", [0.03, 0.15])
def test_faithub_nests_across_methods_and_modes_and_stays_above_real_gaps(pinned, eps):
    """tight <= paper and joint <= tight for each method; milp <= lp <= crown <= interval for each
    mode; every value above the gap at real points of the ball."""
    teacher, student = _mlp(pinned, [16, 12, 12, 4], scale=2.0), _mlp(pinned, [16, 10, 4], scale=2.0)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    nt, ns = as_net(teacher, x0.shape), as_net(student, x0.shape)
    with torch.no_grad():
        seen = float(confidence_gap(teacher, student, _ball_samples(x0, eps, 3000, pinned)).max())
    values = {}
    for method in ("interval", "crown", "lp", "milp"):
        ib = ImageBounds(x0, eps, method, "highs")
        values[method] = [ib.paper(nt, ns).value, ib.tight(nt, ns).value, ib.joint(nt, ns).value]
    for method, (paper, tight, joint) in values.items():
        assert paper >= tight - 1e-12 and tight >= joint - 1e-12, (method, paper, tight, joint)
        assert joint >= seen, (method, joint, seen)
    for mode in range(3):
        chain = [values[m][mode] for m in ("interval", "crown", "lp", "milp")]
        assert all(b <= a + 1e-12 for a, b in zip(chain, chain[1:])), (mode, chain)
    assert values["milp"][1] < values["interval"][0]  # the stronger stages buy something here


@pytest.mark.skipif(not _gurobi_usable(), reason="gurobipy or its licence is not available")
@pytest.mark.parametrize("relax", [True, False])
def test_gurobi_and_highs_agree_on_every_logit_difference(pinned, relax):
    model = _mlp(pinned, [16, 10, 10, 4], scale=2.0)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    net, box = as_net(model, (1, 4, 4)), input_box(x0, 0.1)
    program = build_program(net, box, crown_bounds(net, box))
    program = program.relaxed() if relax else program
    sessions = {s: open_session(program, s) for s in ("gurobi", "highs")}
    for i in range(4):
        for j in range(4):
            if i == j:
                continue
            c = np.zeros(4)
            c[j], c[i] = 1.0, -1.0
            res = {s: ses.maximize(*program.objective(c), 10.0) for s, ses in sessions.items()}
            assert abs(res["gurobi"].bound - res["highs"].bound) <= 1e-4 * (1 + abs(res["highs"].bound))
            for ses in sessions.values():  # each solver's point is a point of the ball: under both bounds
                point = torch.as_tensor(ses.solution()[:net.in_dim])
                assert ((point >= box.lower[0] - 1e-7) & (point <= box.upper[0] + 1e-7)).all()
                z = net.forward(point[None])[0]
                assert float(z[j] - z[i]) <= min(r.bound for r in res.values()) + 1e-6
