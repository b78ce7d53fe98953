"""Oracles for the softmax inside the program (``fkd.bounds.softmax``, ``fkd.bounds.joint_softmax``):
every real point of the ball is a solution of the programs (containment, every variable included:
activations, indicators, z, d, exp(d), S, 1/(1+S), the pieces' binaries); the exp and 1/(1+S) rows
alone at grids and breakpoints; the modes nest (joint_softmax <= softmax <= tight <= paper); Gurobi and
HiGHS agree; FAITHUB stays above real gaps, delta* on a 2-input grid and solver incumbents."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fkd.bounds import as_net
from fkd.bounds.joint_softmax import joint_block, joint_softmax_faithub
from fkd.bounds.milp import Relax
from fkd.bounds.shared import ImageBounds
from fkd.bounds.softmax import SoftmaxBounds, softmax_faithub
from fkd.bounds.softmax_modes import softmax_pair
from fkd.bounds.solvers import open_session
from fkd.empirical_bound import emplb
from fkd.metrics import Attack, confidence_gap
from test_bounds import _ball_samples, _grid_delta, _gurobi_usable, _mlp, _toy_pair
from test_program import _assignment, _pgd_points

TOL = 1e-7


def _pair(gen, shape=(1, 4, 4)):
    n = int(np.prod(shape))
    return _mlp(gen, [n, 12, 12, 4], scale=2.0), _mlp(gen, [n, 10, 4], scale=2.0)


def _stage(gen, eps=0.08, method="lp", solver="highs", x0=None, pair=None):
    """A teacher-student pair, its ImageBounds and both networks' softmax stages (LP run)."""
    teacher, student = pair or _pair(gen)
    x0 = torch.rand((1, 4, 4), generator=gen) if x0 is None else x0
    nt, ns = as_net(teacher, x0.shape), as_net(student, x0.shape)
    ib = ImageBounds(x0, eps, method, solver)
    tight, _, t, s, value, _ = softmax_pair(ib, nt, ns)
    return teacher, student, x0, eps, ib, (nt, ns), t, s, value, tight


def _block_values(sb: SoftmaxBounds, x: torch.Tensor) -> np.ndarray:
    """Every variable of ``sb.block.program`` at input x (flat, double): the network's program
    (``test_program._assignment``), the float64 logits (delta 0), d, the shifted exp terms, S."""
    b, db = sb.block, sb.db
    v = np.zeros(b.program.n)
    v[:b.net_n] = _assignment(db.net, db.per_op, x)
    z = db.net.forward(x[None])[0].numpy()
    v[b.z] = z
    for i in range(b.k):
        for j in range(b.k):
            if i == j:
                continue
            d = z[j] - z[i]
            v[b.d[i, j]] = d
            v[b.ehi[i, j]] = np.exp(d - b.chi[i])
            if b.elo[i, j] >= 0:
                v[b.elo[i, j]] = np.exp(d - b.clo[i])
            if (i, j) in b.beta:   # the piece of exp's chords that d lies in
                br = b.breaks[i, j]
                seg = min(max(int(np.searchsorted(br, d, side="right")) - 1, 0), len(br) - 2)
                v[b.beta[i, j][seg]] = 1.0
        v[b.slo[i]] = v[b.elo[i][b.elo[i] >= 0]].sum()
        v[b.shi[i]] = v[b.ehi[i][b.ehi[i] >= 0]].sum()
    return v


def _joint_values(jb, t: SoftmaxBounds, s: SoftmaxBounds, x: torch.Tensor) -> np.ndarray:
    vt, vs = _block_values(t, x), _block_values(s, x)
    n_in = t.db.net.in_dim
    v = np.zeros(jb.program.n)
    v[:len(vt) + len(vs) - n_in] = np.r_[vt, vs[n_in:]]
    for n, sb in enumerate((t, s)):
        p = torch.softmax(sb.db.net.forward(x[None])[0], -1).numpy()
        v[jb.qu[n]], v[jb.ql[n]] = p, p
        for i in range(sb.db.k):
            if (n, i) in jb.beta:
                br, sv = jb.breaks[n, i], v[jb.nets[n].slo[i]]
                seg = min(int(np.searchsorted(br, sv, side="right")) - 1, len(br) - 2)
                v[jb.beta[n, i][max(seg, 0)]] = 1.0
    return v


def _assert_solution(program, v: np.ndarray) -> None:
    assert v.shape == (program.n,)
    assert (v >= program.lb - TOL).all(), np.nonzero(v < program.lb - TOL)
    assert (v <= program.ub + TOL).all(), np.nonzero(v > program.ub + TOL)
    av = program.a @ v
    bad = np.nonzero((av < program.row_lo - TOL) | (av > program.row_hi + TOL))[0]
    assert len(bad) == 0, (bad[:5], av[bad[:5]], program.row_lo[bad[:5]], program.row_hi[bad[:5]])
    ints = v[program.integer]
    assert np.all((ints == 0) | (ints == 1))


@pytest.mark.parametrize("eps", [0.03, 0.1])
def test_every_point_of_the_ball_is_a_solution_of_the_softmax_and_joint_programs(pinned, eps):
    teacher, student, x0, eps, ib, nets, t, s, *_ = _stage(pinned, eps)
    jb = joint_block(t, s, pieces=3, exact=True)
    assert jb.beta and t.block.program.integer.any() and jb.program.integer.sum() > sum(map(len, jb.beta.values()))   # binaries of ReLUs and of pieces are in
    emp = emplb(teacher, student, x0[None], eps, Attack(20, 2), generator=pinned).point
    points = torch.cat([_ball_samples(x0, eps, 40, pinned), _pgd_points(teacher, x0, eps, 4, pinned),
                        _pgd_points(student, x0, eps, 4, pinned), emp, x0[None]])
    for x in points:
        x = x.reshape(-1).double()
        for sb in (t, s):
            _assert_solution(sb.block.program, _block_values(sb, x))
        _assert_solution(jb.program, _joint_values(jb, t, s, x))


def test_the_oracle_fails_when_an_s_bound_is_wrong(pinned):
    """Containment can fail: an S lower bound above the real S (a wrong stage) excludes real points."""
    *_, x0, eps, ib, nets, t, s, _, _ = _stage(pinned, 0.05)
    x = x0.reshape(-1).double()
    v = _block_values(t, x)
    t.s_min = v[t.block.slo] + 1e-3
    jb = joint_block(t, s)
    with pytest.raises(AssertionError):
        _assert_solution(jb.program, _joint_values(jb, t, s, x))


def _rows_on(program, cols: set) -> np.ndarray:
    """Rows whose nonzero columns all lie in ``cols``."""
    a = program.a.tocsr()
    return np.array([r for r in range(a.shape[0]) if a.indptr[r + 1] > a.indptr[r]
                     and set(a.indices[a.indptr[r]:a.indptr[r + 1]]) <= cols], dtype=np.int64)


def test_exp_tangents_below_and_chords_above_at_grids_and_breakpoints(pinned):
    *_, t, s, _, _ = _stage(pinned, 0.1)
    for sb in (t, s):
        b, prog = sb.block, sb.block.program
        for i in range(b.k):
            for j in range(b.k):
                if i == j:
                    continue
                l, u = b.d_lower[i, j], b.d_upper[i, j]
                for e_col, c, side in ((b.elo[i, j], b.clo[i], "lo"), (b.ehi[i, j], b.chi[i], "hi")):
                    if e_col < 0:
                        continue
                    rows = _rows_on(prog, {int(e_col), int(b.d[i, j])})
                    assert 1 <= len(rows) <= 4 if side == "lo" else len(rows) == int(u - l > 1e-9)
                    if len(rows) == 0:
                        continue
                    a = prog.a[rows][:, [e_col, b.d[i, j]]].toarray()
                    ts = (a[:, 1] / -a[:, 0]) if side == "lo" else np.array([])
                    grid = np.r_[np.linspace(l, u, 101), l, u, np.log(ts) + c] if ts.size else np.r_[np.linspace(l, u, 101)]
                    for d in grid:
                        av = a @ np.array([np.exp(d - c), d])
                        assert (av >= prog.row_lo[rows] - 1e-12).all() and (av <= prog.row_hi[rows] + 1e-12).all()
                    if side == "hi":      # the chord is tight at both ends: a real over-estimate, not a loose one
                        for d in (l, u):
                            av = a @ np.array([np.exp(d - c), d])
                            assert abs(av[0] - prog.row_hi[rows][0]) <= 1e-9 * (1 + abs(av[0]))


def test_phi_chords_above_and_tangents_below_at_grids_and_breakpoints(pinned):
    *_, t, s, _, _ = _stage(pinned, 0.1)
    jb = joint_block(t, s, pieces=3)
    prog = jb.program
    for n, b in enumerate(jb.nets):
        for i in range(b.k):
            for col, s_col, c, far in ((jb.qu[n, i], b.slo[i], b.clo[i], b.far[i]), (jb.ql[n, i], b.shi[i], b.chi[i], 0.0)):
                lo, hi = prog.lb[s_col], prog.ub[s_col]
                rows = _rows_on(prog, {int(col), int(s_col)})
                assert len(rows) >= (1 if col == jb.ql[n, i] or (n, i) not in jb.beta else 0)
                a = prog.a[rows][:, [col, s_col]].toarray()
                br = jb.breaks[n, i] if col == jb.qu[n, i] else np.array([])
                for sv in np.r_[np.linspace(lo, hi, 101), br]:
                    p = 1.0 / (1.0 + np.exp(c) * (sv + far))
                    av = a @ np.array([p, sv])
                    assert (av >= prog.row_lo[rows] - 1e-12).all() and (av <= prog.row_hi[rows] + 1e-12).all()
            if (n, i) in jb.beta:   # each piece's chord, with its binary at 1, holds at every S of its segment
                br, betas = jb.breaks[n, i], jb.beta[n, i]
                for p_idx, bv in enumerate(betas):
                    rows = _rows_on(prog, {int(jb.qu[n, i]), int(b.slo[i]), int(bv)})
                    rows = np.array([r for r in rows if prog.a[r, jb.qu[n, i]] != 0], dtype=np.int64)
                    assert len(rows) == 1
                    for sv in np.linspace(br[p_idx], br[p_idx + 1], 21):
                        x = np.zeros(prog.n)
                        x[jb.qu[n, i]], x[b.slo[i]], x[bv] = 1.0 / (1.0 + np.exp(b.clo[i]) * (sv + b.far[i])), sv, 1.0
                        av = prog.a[rows] @ x
                        assert (av <= prog.row_hi[rows] + 1e-12).all()


@pytest.mark.parametrize("method", ["crown", "lp"])
def test_modes_nest_on_random_pairs_and_images(pinned, method):
    for trial in range(3):
        teacher, student = _pair(pinned)
        x0 = torch.rand((1, 4, 4), generator=pinned)
        nt, ns = as_net(teacher, x0.shape), as_net(student, x0.shape)
        ib = ImageBounds(x0, 0.06, method, "highs")
        paper, tight, soft, joint = (getattr(ib, m)(nt, ns).value for m in ("paper", "tight", "softmax", "joint_softmax"))
        assert paper >= tight - 1e-12 and tight >= soft - 1e-12 and soft >= joint - 1e-12, (paper, tight, soft, joint)
        with torch.no_grad():
            seen = float(confidence_gap(teacher, student, _ball_samples(x0, 0.06, 2000, pinned)).max())
        assert joint >= seen


@pytest.mark.skipif(not _gurobi_usable(), reason="gurobipy or its licence is not available")
def test_gurobi_and_highs_agree_on_the_softmax_and_joint_programs(pinned):
    *_, t, s, _, _ = _stage(pinned, 0.08)
    jb = joint_block(t, s)
    for prog, objectives in ((t.block.program.relaxed(), [(t.block.slo[i], -1.0) for i in range(4)]
                              + [(t.block.shi[i], 1.0) for i in range(4)]),
                             (jb.program, [((jb.qu[0, i], jb.ql[1, i]), None) for i in range(4)]
                              + [((jb.qu[1, i], jb.ql[0, i]), None) for i in range(4)])):
        ses = {name: open_session(prog, name) for name in ("gurobi", "highs")}
        for col, sign in objectives:
            cost = np.zeros(prog.n)
            if sign is None:
                cost[col[0]], cost[col[1]] = 1.0, -1.0
            else:
                cost[col] = sign
            res = {name: x.maximize(cost, 0.0, 10.0) for name, x in ses.items()}
            assert abs(res["gurobi"].bound - res["highs"].bound) <= 1e-5 * (1 + abs(res["highs"].bound)), res


@pytest.mark.parametrize("eps", [0.05, 0.25])
def test_faithub_above_grid_delta_on_a_two_input_pair(pinned, eps):
    teacher, student = _toy_pair(pinned)
    x0 = torch.tensor([[[0.6, 0.4]]])
    nt, ns = as_net(teacher, x0.shape), as_net(student, x0.shape)
    gaps, pts = _grid_delta(teacher, student, x0, eps)
    delta = float(gaps.max())
    for method, tightening in (("crown", None), ("lp", None), ("milp", None), ("milp", "obbt")):
        ib = ImageBounds(x0, eps, method, "highs", tightening=tightening)
        tight = ib.tight(nt, ns).value
        soft, joint = ib.softmax(nt, ns).value, ib.joint_softmax(nt, ns).value
        assert delta <= joint <= soft <= tight + 1e-12, (method, delta, joint, soft, tight)
        _, _, t, s, _, _ = softmax_pair(ib, nt, ns)
        with torch.no_grad():   # the per-network softmax bounds hold at every grid point
            for sb, net in ((t, teacher), (s, student)):
                p = net(pts).softmax(-1).double()
                assert (p >= sb.sigma.lower - 1e-7).all() and (p <= sb.sigma.upper + 1e-7).all()
        for pieces in (1, 4):
            value, _ = joint_softmax_faithub(t, s, pieces, solver="highs")
            assert value >= delta, (method, pieces, value, delta)


def test_faithub_above_real_gaps_with_the_milp_stage_and_pieces(pinned):
    teacher, student, x0, eps, ib, nets, t, s, value, tight = _stage(pinned, 0.08)
    value, _ = softmax_faithub(t, s, (Relax.MILP,), 10.0)
    joint, _ = joint_softmax_faithub(t, s, pieces=4, solver="highs")
    exact, recs = joint_softmax_faithub(t, s, pieces=2, solver="highs", exact=True)
    assert recs and all(r.result.status.value in ("optimal", "time_limit") for r in recs)
    joint = max(joint, exact)
    with torch.no_grad():
        pts = torch.cat([_ball_samples(x0, eps, 3000, pinned),
                         emplb(teacher, student, x0[None], eps, Attack(30, 3), generator=pinned).point])
        seen = float(confidence_gap(teacher, student, pts).max())
    assert seen <= min(value, joint, tight.value) + 1e-9, (seen, value, joint)
    assert value <= tight.value + 1e-12


@pytest.mark.parametrize("solver", ["highs", "gurobi"])
def test_solver_incumbents_forwarded_through_torch_never_exceed_the_bounds(pinned, solver):
    if solver == "gurobi" and not _gurobi_usable():
        pytest.skip("gurobipy or its licence is not available")
    teacher, student, x0, eps, ib, nets, t, s, *_ = _stage(pinned, 0.08, solver=solver)
    box = t.db.box
    jb = joint_block(t, s)
    ses = open_session(jb.program, solver)
    k = t.db.k
    for side in (0, 1):
        for i in range(k):
            cost = np.zeros(jb.program.n)
            cost[jb.qu[side, i]], cost[jb.ql[1 - side, i]] = 1.0, -1.0
            res = ses.maximize(cost, 0.0, 10.0)
            x = torch.as_tensor(ses.solution()[:t.db.net.in_dim]).clamp(box.lower[0], box.upper[0])
            with torch.no_grad():
                xs = x.float().reshape(1, *x0.shape)
                pt, ps = teacher(xs).softmax(-1)[0].double(), student(xs).softmax(-1)[0].double()
            gap = float(pt[i] - ps[i]) if side == 0 else float(ps[i] - pt[i])
            assert gap <= res.bound + 1e-7, (side, i, gap, res.bound)
            for sb, p in ((t, pt), (s, ps)):
                assert (p >= sb.sigma.lower - 1e-7).all() and (p <= sb.sigma.upper + 1e-7).all()


def test_public_entry_points_take_the_new_modes(pinned):
    from fkd.bounds import faithub, logit_diff_bounds
    from fkd.experiments.verify_config import VerifyConfig

    teacher, student = _pair(pinned)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    tight = faithub(teacher, student, x0, 0.05, mode="tight", method="lp", solver="highs").value
    soft = faithub(teacher, student, x0, 0.05, mode="softmax", method="lp", solver="highs").value
    joint = faithub(teacher, student, x0, 0.05, mode="joint_softmax", method="lp", solver="highs").value
    assert joint <= soft <= tight + 1e-12
    with pytest.raises(ValueError, match="softmax"):
        logit_diff_bounds(teacher, x0, 0.05, mode="softmax")
    cfg = VerifyConfig("mnist", ("fd",), (0.1,), 1, modes=("paper", "tight", "softmax", "joint_softmax"))
    assert [m.value for m in cfg.modes] == ["paper", "tight", "softmax", "joint_softmax"]


def test_terms_left_out_of_the_program_keep_a_sound_floor(pinned):
    """A d bound wider than FAR (still sound, only loose) sends its term out of the lower-bounding
    block: the program still holds every real point and the softmax bounds every sampled point."""
    from fkd.bounds.refine import DiffBounds
    from fkd.bounds.softmax import FAR

    teacher, student, x0, eps, ib, (nt, ns), t, s, *_ = _stage(pinned, 0.08)
    db = t.db
    up = db.upper.clone()
    up[0, 1] += FAR + 5.0
    wide = DiffBounds.from_bounds(nt, db.box, db.per_op, -up.T, up, "highs", margin=db.margin)
    sb = SoftmaxBounds.start(wide)
    assert sb.block.elo[0, 1] < 0 and sb.block.far[0] > 0
    for i in range(4):
        for side in ("upper", "lower"):
            sb.refine(i, side, Relax.LP, 10.0)
            sb.refine(i, side, Relax.MILP, 10.0)
    pts = _ball_samples(x0, eps, 500, pinned)
    for x in pts[:40]:
        _assert_solution(sb.block.program, _block_values(sb, x.reshape(-1).double()))
    with torch.no_grad():
        p = teacher(pts).softmax(-1).double()
    assert (p >= sb.sigma.lower - 1e-7).all() and (p <= sb.sigma.upper + 1e-7).all()


def test_exp_chords_in_pieces_hold_every_real_point_and_tighten_the_milp_stage(pinned):
    teacher, student, x0, eps, ib, (nt, ns), t, s, value, tight = _stage(pinned, 0.1)
    pieced = SoftmaxBounds.start(s.db, pieces=4)
    plain = SoftmaxBounds.start(s.db)
    b = pieced.block_for(1, "lower", Relax.MILP)
    assert len(b.beta) == 3 and all(len(c) == 4 for c in b.beta.values())
    pts = torch.cat([_ball_samples(x0, eps, 40, pinned), _pgd_points(student, x0, eps, 4, pinned)])
    for x in pts:
        _assert_solution(b.program, _values_of(b, pieced, x.reshape(-1).double()))
    for i in range(4):
        for sb in (pieced, plain):
            sb.refine(i, "lower", Relax.MILP, 10.0)
        assert pieced.sigma.lower[i] >= plain.sigma.lower[i] - 1e-5   # pieces never lose (both solves exact)
    with torch.no_grad():
        p = student(_ball_samples(x0, eps, 2000, pinned)).softmax(-1).double()
    assert (p >= pieced.sigma.lower - 1e-7).all()


def _values_of(block, sb, x):
    """``_block_values`` for another block of the same network (e.g. a pieced one)."""
    from dataclasses import replace as _replace

    return _block_values(_replace(sb, block=block), x)


@pytest.mark.parametrize("student", ["sd", "fd"])
def test_emplb_never_exceeds_the_new_modes_on_zoo_pairs(student):
    from fkd.data import eval_subset
    from fkd.zoo import load_model

    x, _, _ = eval_subset("mnist", 2)
    t, s = load_model("mnist", "rt"), load_model("mnist", student)
    eps = 0.025
    lower = emplb(t, s, x, eps, Attack(50, 5), "both", torch.Generator().manual_seed(0)).value
    nt, ns = as_net(t, x.shape[1:]), as_net(s, x.shape[1:])
    for i in range(len(x)):
        ib = ImageBounds(x[i], eps, "lp", "auto")
        tight, soft, joint = (getattr(ib, m)(nt, ns).value for m in ("tight", "softmax", "joint_softmax"))
        assert lower[i] <= joint + 1e-6 and joint <= soft <= tight + 1e-12, (i, float(lower[i]), joint, soft, tight)


def closed_small_rows():
    """The rows of the published exact study of the 7 x 7 pair where delta* was closed (lower and
    upper within 2e-4), its images (x, idx) and its networks lowered by name (rt, fd, sd)."""
    import pandas as pd

    from fkd.small import get_pair, load_small, small_subset

    rows = pd.read_csv("results/beyond/exact-mnist-7x7/exact.csv")
    closed = rows[rows.status == "closed"]
    assert len(closed) >= 10
    pair = get_pair("mnist-7x7")
    x, _, idx = small_subset(pair, 10)
    return closed, x, idx, {m: as_net(load_small(pair, m), pair.input_shape) for m in ("rt", "fd", "sd")}


def test_the_new_modes_stay_above_delta_star_where_the_small_pair_closed_it():
    """The published exact study of the 7 x 7 pair closed delta* on some rows (lower and upper within
    2e-4): softmax and joint_softmax (method lp) stay above it and below tight mode."""
    closed, x, idx, nets = closed_small_rows()
    gained = 0
    for r in closed.itertuples():
        ib = ImageBounds(x[idx.index(r.image)], r.eps, "lp", "highs")
        t, s = nets["rt"], nets[r.student.split("-")[0]]
        tight, soft, joint = (getattr(ib, m)(t, s).value for m in ("tight", "softmax", "joint_softmax"))
        assert tight + 1e-12 >= soft >= joint >= r.delta_upper, (r.student, r.eps, r.image, joint, r.delta_upper)
        gained += joint < tight - 1e-3
    assert gained >= len(closed) // 2   # the stages buy something on most rows


def test_joint_softmax_reuses_the_softmax_stage_and_counts_it(pinned):
    teacher, student = _pair(pinned)
    x0 = torch.rand((1, 4, 4), generator=pinned)
    nt, ns = as_net(teacher, x0.shape), as_net(student, x0.shape)
    fresh = ImageBounds(x0, 0.06, "lp", "highs").joint_softmax(nt, ns)
    ib = ImageBounds(x0, 0.06, "lp", "highs")
    soft = ib.softmax(nt, ns)
    reused = ib.joint_softmax(nt, ns)
    assert abs(reused.value - fresh.value) <= 1e-9 and reused.value <= soft.value
    assert reused.solves == fresh.solves and reused.seconds >= soft.seconds - 1e-9
    assert not ib.__dict__["_softmax_stage"]   # used once
