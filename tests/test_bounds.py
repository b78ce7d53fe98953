"""Oracles for the certified bounds (fkd.bounds): closed forms, samples, PGD, nesting, grid search."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from fkd.attacks import forward, pgd
from fkd.bounds import (FP_MARGIN, Box, BoundMethod, SolverUnavailable, Status, as_net, bounds, faithub,
                        logit_diff_bounds, output_bounds, softmax_bounds)
from fkd.bounds.crown import crown_bounds, crown_linear
from fkd.bounds.interval import input_box
from fkd.bounds.milp import build_program, solve_linear
from fkd.bounds.network import lower
from fkd.bounds.solvers import open_session
from fkd.empirical_bound import emplb
from fkd.metrics import Attack, confidence_gap

METHODS = ["interval", "crown", "lp", "milp"]


def _gurobi_usable() -> bool:
    try:
        import gurobipy as gp
        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
        return True
    except Exception:
        return False


def _mlp(gen: torch.Generator, widths: list[int], scale: float = 1.0) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=gen) * scale / math.sqrt(a))
            lin.bias.copy_(torch.randn(b, generator=gen) * 0.1)
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


def _conv_net(gen: torch.Generator) -> nn.Sequential:
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    return nn.Sequential(nn.Conv2d(2, 3, 3, stride=1, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
                         nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 2),
                         nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()


def _ball_samples(x0: torch.Tensor, eps: float, n: int, gen: torch.Generator) -> torch.Tensor:
    """n points of B_eps(x0) cap [0, 1], x0 (C, H, W): uniform, plus corners (vertices matter)."""
    lo, hi = (x0 - eps).clamp(0, 1), (x0 + eps).clamp(0, 1)
    u = torch.rand((n, *x0.shape), generator=gen)
    u[: n // 2] = u[: n // 2].round()  # half of them on vertices of the box
    return lo + u * (hi - lo)


@dataclass
class Logit:
    """PGD objective: sign * logit k of ``model``."""
    model: nn.Module
    k: int
    sign: float

    @property
    def models(self):
        return (self.model,)

    def __call__(self, x):
        return self.sign * forward(self.model, x)[..., self.k]


def _pgd_extremes(model, x0, eps, k, gen):
    """PGD points maximising and minimising each of the k logits: (2k, C, H, W)."""
    pts = []
    for c in range(k):
        for sign in (1.0, -1.0):
            p, _ = pgd(Logit(model, c, sign), x0[None], eps, steps=30, step_size=eps / 8, restarts=3, generator=gen)
            pts.append(p[0])
    return torch.stack(pts)


def test_linear_net_bounds_equal_closed_form(pinned):
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.Linear(4, 3)).eval()
    x0 = torch.rand((1, 2, 3), generator=pinned)
    x0[0, 0, 0] = 0.02  # the ball is clipped by [0, 1] here
    eps = 0.1
    w = (model[2].weight @ model[1].weight).double()
    b = (model[2].weight @ model[1].bias + model[2].bias).double()
    lo, hi = (x0 - eps).clamp(0, 1).flatten().double(), (x0 + eps).clamp(0, 1).flatten().double()
    exact_hi = b + w.clamp(min=0) @ hi + w.clamp(max=0) @ lo
    exact_lo = b + w.clamp(min=0) @ lo + w.clamp(max=0) @ hi
    for method in METHODS:
        l, u = bounds(model, x0, eps, method=method, solver="highs")
        assert torch.allclose(u, exact_hi, atol=1e-4) and torch.allclose(l, exact_lo, atol=1e-4), method
        assert (u >= exact_hi).all() and (l <= exact_lo).all(), method  # margins point outward


def _assert_contains(model, x0, eps, l, u, n_samples, pgd_steps, g):
    """Outputs at ball samples and PGD extremes lie in [l, u]; returns those outputs (float64)."""
    pts = torch.cat([_ball_samples(x0, eps, n_samples, g), _pgd_extremes(model, x0, eps, pgd_steps, g)])
    with torch.no_grad():
        out = model(pts).double()
    assert (out >= l).all() and (out <= u).all()
    return out


@pytest.mark.parametrize("method", METHODS)
def test_bounds_contain_samples_and_pgd_points(pinned, method):
    model = _mlp(pinned, [16, 12, 12, 5], scale=2.0)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    eps = 0.08
    l, u = bounds(model, x0, eps, method=method, solver="highs")
    out = _assert_contains(model, x0, eps, l, u, 2000, 5, pinned)
    # the bounds are not vacuous: PGD comes within a fraction of the width for exact MILP
    if method == "milp":
        assert ((u - out.amax(0)) <= 1e-3 + 0.05 * (u - l)).all()


def test_methods_nest(pinned):
    model = _mlp(pinned, [16, 12, 12, 5], scale=2.0)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    res = [bounds(model, x0, 0.1, method=m, solver="highs") for m in METHODS]
    for (l_loose, u_loose), (l_tight, u_tight) in zip(res, res[1:]):
        assert (l_tight >= l_loose - 1e-9).all() and (u_tight <= u_loose + 1e-9).all()
    widths = [float((u - l).sum()) for l, u in res]
    assert widths[0] > widths[1] > widths[3]  # CROWN and MILP gain something on this net


def test_crown_batch_matches_single_images(pinned):
    model = _mlp(pinned, [16, 10, 4])
    x = torch.rand((3, 1, 4, 4), generator=pinned)
    l, u = bounds(model, x, 0.05, method="crown")
    for i in range(3):
        li, ui = bounds(model, x[i], 0.05, method="crown")
        assert torch.allclose(l[i], li) and torch.allclose(u[i], ui)


def test_conv_maxpool_lowering_matches_torch(pinned):
    model = _conv_net(pinned)
    net = lower(model, (2, 6, 6))
    x = torch.rand((5, 2, 6, 6), generator=pinned)
    with torch.no_grad():
        assert torch.allclose(net.forward(x), model.double()(x.double()), atol=1e-10)
    model.float()
    with pytest.raises(ValueError, match="Flatten, Linear"):
        lower(nn.Sequential(nn.Flatten(), nn.Tanh()), (1, 2, 2))


@pytest.mark.parametrize("method", ["crown", "milp"])
def test_conv_maxpool_bounds_contain_samples(pinned, method):
    model = _conv_net(pinned)
    x0 = torch.rand((2, 6, 6), generator=pinned)
    eps = 0.05
    l, u = bounds(model, x0, eps, method=method, solver="highs")
    _assert_contains(model, x0, eps, l, u, 1000, 3, pinned)
    li, ui = bounds(model, x0, eps, method="interval")
    assert (l >= li - 1e-9).all() and (u <= ui + 1e-9).all()


def test_crown_linear_bounds_logit_differences(pinned):
    model = _mlp(pinned, [16, 12, 4], scale=2.0)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    net = as_net(model, x0.shape)
    box = input_box(x0, 0.1)
    coef = torch.tensor([[1.0, -1.0, 0.0, 0.0], [0.0, 0.5, 0.0, -2.0]], dtype=torch.float64)
    bx = crown_linear(net, box, coef)
    pts = _ball_samples(x0, 0.1, 3000, pinned)
    with torch.no_grad():
        vals = model(pts).double() @ coef.T
    assert (vals >= bx.lower - 1e-9).all() and (vals <= bx.upper + 1e-9).all()


# ---- FAITHUB on a 2-input toy pair: the exact delta* is reachable by grid search ----

def _toy_pair(gen):
    return _mlp(gen, [2, 8, 8, 3], scale=3.0), _mlp(gen, [2, 6, 3], scale=3.0)


def _grid_delta(teacher, student, x0, eps, n=301):
    lo, hi = (x0 - eps).clamp(0, 1).flatten(), (x0 + eps).clamp(0, 1).flatten()
    g0, g1 = torch.linspace(lo[0], hi[0], n), torch.linspace(lo[1], hi[1], n)
    pts = torch.stack(torch.meshgrid(g0, g1, indexing="ij"), -1).reshape(-1, 1, 1, 2)
    return confidence_gap(teacher, student, pts), pts


@pytest.mark.parametrize("eps", [0.05, 0.25])
def test_faithub_above_grid_delta_and_emplb(pinned, eps):
    teacher, student = _toy_pair(pinned)
    x0 = torch.tensor([[[0.3, 0.55]]])
    gaps, pts = _grid_delta(teacher, student, x0, eps)
    delta = float(gaps.max())
    emp = float(emplb(teacher, student, x0[None], eps, Attack(30, 3), generator=pinned).value[0])
    assert emp <= delta + 1e-3  # PGD cannot beat the (dense) grid by more than its resolution
    values = {}
    for method in METHODS:
        for mode in ("paper", "tight"):
            f = faithub(teacher, student, x0, eps, mode=mode, method=method, solver="highs")
            values[method, mode] = f.value
            assert f.value >= delta and f.value >= emp, (method, mode)
            with torch.no_grad():  # eq. 10 bounds hold at every grid point
                for sig, net in ((f.teacher_sigma, teacher), (f.student_sigma, student)):
                    p = net(pts).softmax(-1).double()
                    assert (p >= sig.lower - 1e-6).all() and (p <= sig.upper + 1e-6).all()
        assert values[method, "tight"] <= values[method, "paper"] + 1e-9
    for tight, loose in zip(METHODS[1:], METHODS):
        assert values[tight, "tight"] <= values[loose, "tight"] + 1e-9
    assert values["milp", "tight"] < values["interval", "paper"]  # the tightening is real


def test_tight_diff_bounds_never_looser_than_paper(pinned):
    model = _mlp(pinned, [16, 12, 4], scale=2.0)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    for method in ("interval", "crown", "lp"):
        p_lo, p_up, _ = logit_diff_bounds(model, x0, 0.1, mode="paper", method=method, solver="highs")
        t_lo, t_up, _ = logit_diff_bounds(model, x0, 0.1, mode="tight", method=method, solver="highs")
        assert (t_lo >= p_lo).all() and (t_up <= p_up).all()
        assert torch.equal(t_lo.diagonal(), torch.zeros(4, dtype=t_lo.dtype))
        with torch.no_grad():
            z = model(_ball_samples(x0, 0.1, 2000, pinned)).double()
        d = z[:, None, :] - z[:, :, None]  # [n, i, j] = z_j - z_i
        assert (d >= t_lo).all() and (d <= t_up).all()


def test_softmax_bounds_eq10_with_exact_logit_differences():
    z = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    d = z[None, :] - z[:, None]
    lo, hi = softmax_bounds(d, d)
    assert torch.allclose(lo, z.softmax(0)) and torch.allclose(hi, z.softmax(0))


# ---- solvers ----

def _medium_problem(gen, width=16):
    model = _mlp(gen, [10, width, width, width, 2], scale=2.0)
    x0 = torch.full((1, 1, 10), 0.5)
    net = as_net(model, x0.shape)
    box = input_box(x0, 0.5)
    return model, build_program(net, box, crown_bounds(net, box)), x0


@pytest.mark.skipif(not _gurobi_usable(), reason="gurobipy or its licence is not available")
def test_gurobi_and_highs_agree_on_small_milp(pinned):
    model = _mlp(pinned, [16, 10, 10, 4], scale=2.0)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    g = output_bounds(model, x0, 0.1, method="milp", solver="gurobi")
    h = output_bounds(model, x0, 0.1, method="milp", solver="highs")
    assert {r.result.solver for r in g.records} == {"gurobi"} and {r.result.solver for r in h.records} == {"highs"}
    assert not g.degraded and not h.degraded
    assert torch.allclose(g.lower, h.lower, atol=1e-3) and torch.allclose(g.upper, h.upper, atol=1e-3)


def test_auto_falls_back_to_highs_beyond_gurobi_pip_licence(pinned):
    pytest.importorskip("gurobipy")
    model = _mlp(pinned, [2500, 3, 2])  # 2500 input variables: beyond the pip licence's 2000
    x0 = torch.rand((1, 50, 50), generator=pinned)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = output_bounds(model, x0, 0.01, method="lp", solver="auto", tightening="none")
    solvers = {r.result.solver for r in rep.records}
    if solvers == {"gurobi"}:
        pytest.skip("this Gurobi licence is unrestricted: no fallback needed")
    assert solvers == {"highs"}
    assert any("falling back to HiGHS" in str(w.message) for w in caught)
    with pytest.raises(SolverUnavailable):
        output_bounds(model, x0, 0.01, method="lp", solver="gurobi", tightening="none")


@pytest.mark.parametrize("solver", ["highs", "gurobi"])
def test_time_limited_solve_returns_the_proven_bound(pinned, solver):
    if solver == "gurobi" and not _gurobi_usable():
        pytest.skip("gurobipy or its licence is not available")
    model, program, x0 = _medium_problem(pinned)
    assert program.integer.sum() > 30  # many unstable ReLUs: no solver finishes in 50 ms
    cost, const = program.objective(np.array([1.0, -1.0]))
    short = open_session(program, solver).maximize(cost, const, time_limit=0.05)
    full = open_session(program, "gurobi" if _gurobi_usable() else "highs").maximize(cost, const, time_limit=60)
    assert short.status is Status.TIME_LIMIT and full.status is Status.OPTIMAL
    assert math.isfinite(short.bound)  # a proven dual bound exists after the root relaxation
    assert short.bound >= full.bound - 1e-9  # sound: above the true maximum (full.bound is near it)
    assert full.incumbent is not None and full.bound >= full.incumbent
    if short.incumbent is not None:
        assert short.bound > short.incumbent  # the dual bound, not the incumbent
    pts = _ball_samples(x0, 0.5, 4000, pinned)
    with torch.no_grad():
        vals = model(pts).double() @ torch.tensor([1.0, -1.0], dtype=torch.float64)
    assert float(vals.max()) <= full.bound


def test_time_limited_stage_keeps_previous_bound_and_is_flagged(pinned):
    _, program, _ = _medium_problem(pinned)
    prev = Box(torch.tensor([-50.0], dtype=torch.float64), torch.tensor([50.0], dtype=torch.float64))
    new, recs = solve_linear(program, np.array([[1.0, -1.0]]), prev, "highs", time_limit=1e-3)
    assert all(r.result.status is not Status.OPTIMAL for r in recs)
    assert new.lower >= prev.lower and new.upper <= prev.upper  # never looser than the previous stage


def test_method_names_are_validated(pinned):
    model = _mlp(pinned, [4, 3, 2])
    x0 = torch.rand((1, 2, 2), generator=pinned)
    with pytest.raises(ValueError, match="interval, crown, lp, milp"):
        bounds(model, x0, 0.1, method="deeppoly")
    with pytest.raises(ValueError, match="auto, gurobi, highs"):
        bounds(model, x0, 0.1, method="lp", solver="cplex")
    with pytest.raises(ValueError, match="paper, tight"):
        faithub(model, model, x0, 0.1, mode="loose")
    assert FP_MARGIN > 0 and BoundMethod("crown") is BoundMethod.CROWN


# ---- refinement of d_ij (fkd.bounds.refine) ----

def test_reused_session_matches_fresh_models_and_antisymmetry(pinned):
    from fkd.bounds import DiffBounds
    model = _mlp(pinned, [16, 12, 12, 4], scale=2.0)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    net = as_net(model, x0.shape)
    db = DiffBounds.start(net, x0, 0.1, solver="highs")
    crown_up = db.upper.clone()
    assert db.refine_all("lp") == 12 and db.refine_all("lp") == 0  # one solve per ordered pair, once
    program = build_program(net, db.box, db.per_op).relaxed()
    for i in range(4):
        for j in range(4):
            if i != j:
                c = np.zeros(4)
                c[j], c[i] = 1.0, -1.0
                fresh = open_session(program, "highs").maximize(*program.objective(c), time_limit=10)
                assert abs(min(fresh.bound + float(db.margin[i, j]), float(crown_up[i, j])) - float(db.upper[i, j])) < 1e-6
                assert db.margin[i, j] >= 2 * FP_MARGIN
    assert torch.equal(db.lower, -db.upper.T) and (db.upper <= crown_up).all()
    with torch.no_grad():
        z = model(_ball_samples(x0, 0.1, 2000, pinned)).double()
    d = z[:, None, :] - z[:, :, None]
    assert (d >= db.lower).all() and (d <= db.upper).all()


@pytest.mark.parametrize("eps", [0.05, 0.25])
def test_faithub_refined_sound_and_never_looser_than_crown(pinned, eps):
    from fkd.bounds import DiffBounds, faithub_refined
    teacher, student = _toy_pair(pinned)
    x0 = torch.tensor([[[0.3, 0.55]]])
    delta = float(_grid_delta(teacher, student, x0, eps)[0].max())
    crown = faithub(teacher, student, x0, eps, mode="tight", method="crown").value
    nt, ns = as_net(teacher, x0.shape), as_net(student, x0.shape)
    t = DiffBounds.start(nt, x0, eps, solver="highs")
    value, st, ss, stats = faithub_refined(t, DiffBounds.start(ns, x0, eps, solver="highs"), stages=("lp", "milp"))
    assert delta <= value <= crown + 1e-9
    full = faithub(teacher, student, x0, eps, mode="tight", method="milp", solver="highs").value
    assert value <= full + 1e-3  # refining only the deciding pairs loses (almost) nothing
    # a teacher shared with a second student keeps its refinements and stays sound
    again, *_ = faithub_refined(t, DiffBounds.start(ns, x0, eps, solver="highs"), stages=("lp", "milp"))
    assert abs(again - value) < 1e-9
    _, pts = _grid_delta(teacher, student, x0, eps)
    with torch.no_grad():
        for sig, net in ((st, teacher), (ss, student)):
            p = net(pts).softmax(-1).double()
            assert (p >= sig.lower - 1e-6).all() and (p <= sig.upper + 1e-6).all()


@pytest.mark.parametrize("method", ["crown", "lp"])
def test_image_bounds_share_the_teacher_and_match_faithub(pinned, method):
    from fkd.bounds.shared import ImageBounds
    teacher, student = _toy_pair(pinned)
    other = _mlp(pinned, [2, 6, 3], scale=2.0)
    x0 = torch.tensor([[[0.3, 0.55]]])
    nt, ns, no = (as_net(m, x0.shape) for m in (teacher, student, other))
    shared = ImageBounds(x0, 0.25, method, "highs")
    results = {(s, mode): getattr(shared, mode)(nt, n) for s, n in (("s", ns), ("o", no)) for mode in ("paper", "tight")}
    assert len(shared._reports) == 3 and len(shared._diffs) == 3  # the teacher is bounded once
    for s, m in (("s", student), ("o", other)):
        delta = float(_grid_delta(teacher, m, x0, 0.25)[0].max())
        paper, tight = results[s, "paper"].value, results[s, "tight"].value
        assert delta <= tight <= paper + 1e-9
        fresh = faithub(teacher, m, x0, 0.25, mode="paper", method=method, solver="highs").value
        assert abs(paper - fresh) < 1e-9
        crown = faithub(teacher, m, x0, 0.25, mode="tight", method="crown").value
        assert tight <= crown + 1e-9
    if method == "lp":  # the first student pays for the teacher's solves, the second does not
        assert results["s", "paper"].solves > results["o", "paper"].solves > 0
        assert {r.solvers for r in results.values() if r.solves} == {("highs",)}
    with pytest.raises(ValueError, match="needs method lp or milp"):
        ImageBounds(x0, 0.25, "crown", tightening="lp")
