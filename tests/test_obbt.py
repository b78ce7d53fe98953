"""Oracles for the obbt tightening (``fkd.bounds.obbt``): every real point of the ball (random,
vertices, PGD) lies inside the tightened pre-activation bounds and is a solution of the programs
built on them (containment); the bounds nest inside LP tightening's (and are it with budget 0);
Gurobi and HiGHS agree; FAITHUB with obbt nests across modes and stays above EMPLB on zoo pairs and
above delta* where the small pair's exact study closed it (and on a 2-input grid:
``test_softmax.test_faithub_above_grid_delta_on_a_two_input_pair``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fkd.bounds import as_net
from fkd.bounds.crown import crown_bounds
from fkd.bounds.interval import input_box
from fkd.bounds.milp import Relax, build_program, tighten
from fkd.bounds.network import apply
from fkd.bounds.obbt import obbt, tightened_layers
from fkd.bounds.shared import ImageBounds
from fkd.empirical_bound import emplb
from fkd.metrics import Attack, confidence_gap
from test_bounds import _ball_samples, _gurobi_usable, _mlp
from test_program import _check_contains, _pgd_points

TOL = 1e-7


def _deep(gen):
    """A network deep enough for the MILPs to matter, one image and its box."""
    model = _mlp(gen, [16, 12, 12, 12, 5], scale=2.0)
    x0 = torch.rand((1, 4, 4), generator=gen)
    net = as_net(model, x0.shape)
    return model, net, x0


def _per_op(net, x: torch.Tensor) -> list[torch.Tensor]:
    """The output of every op of ``net`` at the flat input x (float64)."""
    out, a = [], x.double()[None]
    for op in net.ops:
        a = apply(op, a)
        out.append(a[0])
    return out


@pytest.mark.parametrize("eps", [0.05, 0.15])
def test_every_point_of_the_ball_lies_inside_the_obbt_bounds_and_its_programs(pinned, eps):
    model, net, x0 = _deep(pinned)
    box = input_box(x0, eps)
    bounds, records = obbt(net, box, None, "highs", 10.0, 5.0)
    assert any(r.op in tightened_layers(net) and not r.kept_previous for r in records)   # solves bought something
    points = torch.cat([_ball_samples(x0, eps, 200, pinned), _pgd_points(model, x0, eps, net.out_dim, pinned),
                        x0[None]])
    for x in points:
        for b, v in zip(bounds, _per_op(net, x.reshape(-1))):
            assert (v >= b.lower[0] - TOL).all() and (v <= b.upper[0] + TOL).all()
    _check_contains(build_program(net, box, bounds), net, bounds, points[:60])


def test_obbt_nests_inside_lp_tightening_and_is_it_with_no_budget(pinned):
    model, net, x0 = _deep(pinned)
    box = input_box(x0, 0.15)
    cb = crown_bounds(net, box)
    lp, _ = tighten(net, box, cb, relax=Relax.LP, solver="highs", time_limit=10.0)
    none, _ = obbt(net, box, cb, "highs", 10.0, 5.0, budget=0.0)
    full, _ = obbt(net, box, cb, "highs", 10.0, 5.0)
    gained = 0.0
    for a, b, c in zip(lp, none, full):
        assert torch.equal(a.lower, b.lower) and torch.equal(a.upper, b.upper)
        assert (c.lower >= a.lower).all() and (c.upper <= a.upper).all()
        gained += float(((a.upper - a.lower) - (c.upper - c.lower)).sum())
    assert gained > 1e-3   # the MILPs tighten something on this network


@pytest.mark.skipif(not _gurobi_usable(), reason="gurobipy or its licence is not available")
def test_gurobi_and_highs_agree_on_the_obbt_bounds(pinned):
    model, net, x0 = _deep(pinned)
    box = input_box(x0, 0.1)
    got = {s: obbt(net, box, None, s, 10.0, 10.0)[0] for s in ("gurobi", "highs")}
    for a, b in zip(got["gurobi"], got["highs"]):   # within both solvers' MIP gap (1e-4 relative) of one value
        for x, y in ((a.lower, b.lower), (a.upper, b.upper)):
            assert ((x - y).abs() <= 2e-4 * (1 + y.abs())).all(), (x, y)


@pytest.mark.parametrize("method", ["lp", "milp"])
def test_faithub_with_obbt_nests_across_modes_and_stays_above_real_gaps(pinned, method):
    teacher, student = _mlp(pinned, [16, 12, 12, 4], scale=2.0), _mlp(pinned, [16, 10, 10, 4], scale=2.0)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    nt, ns = as_net(teacher, x0.shape), as_net(student, x0.shape)
    ib = ImageBounds(x0, 0.08, method, "highs", 10.0, "obbt", obbt_limit=5.0)
    paper, tight, soft, joint = (getattr(ib, m)(nt, ns).value for m in ("paper", "tight", "softmax", "joint_softmax"))
    assert paper >= tight - 1e-12 and tight >= soft - 1e-12 and soft >= joint - 1e-12, (paper, tight, soft, joint)
    with torch.no_grad():
        seen = float(confidence_gap(teacher, student, _ball_samples(x0, 0.08, 3000, pinned)).max())
    assert joint >= seen, (joint, seen)
    plain = ImageBounds(x0, 0.08, method, "highs", 10.0, "lp")
    assert ib.paper(nt, ns).value <= plain.paper(nt, ns).value + 1e-3   # tighter intermediate bounds, tighter logits


def test_emplb_never_exceeds_faithub_with_obbt_on_a_zoo_pair():
    from fkd.data import eval_subset
    from fkd.zoo import load_model

    x, _, _ = eval_subset("mnist", 2)
    t, s = load_model("mnist", "rt"), load_model("mnist", "fd")
    eps = 0.025
    lower = emplb(t, s, x, eps, Attack(50, 5), "both", torch.Generator().manual_seed(0)).value
    nt, ns = as_net(t, x.shape[1:]), as_net(s, x.shape[1:])
    for i in range(len(x)):
        ib = ImageBounds(x[i], eps, "milp", "auto", 1.0, "obbt", budget=1.0, obbt_budget=1.0)
        tight, joint = ib.tight(nt, ns).value, ib.joint_softmax(nt, ns).value
        assert lower[i] <= joint + 1e-6 and joint <= tight + 1e-12, (i, float(lower[i]), joint, tight)


@pytest.mark.slow
def test_faithub_with_obbt_stays_above_delta_star_where_the_small_pair_closed_it():
    """The published exact study of the 7 x 7 pair closed delta* on some rows: tight and
    joint_softmax with obbt (method milp) stay above it."""
    from test_softmax import closed_small_rows

    closed, x, idx, nets = closed_small_rows()
    for r in closed.itertuples():
        ib = ImageBounds(x[idx.index(r.image)], r.eps, "milp", "highs", 2.0, "obbt", budget=5.0)
        t, s = nets["rt"], nets[r.student.split("-")[0]]
        tight, joint = ib.tight(t, s).value, ib.joint_softmax(t, s).value
        assert tight + 1e-12 >= joint >= r.delta_upper, (r.student, r.eps, r.image, joint, r.delta_upper)
