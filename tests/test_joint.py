"""Joint FAITHUB (fkd.bounds.joint): the parallel network is exact, cross bounds contain every
reachable d^t - d^s, and the joint bound sits between the exact delta* and eq. 11."""
import pytest
import torch

from fkd.bounds import as_net, faithub
from fkd.bounds.joint import CrossBounds, cross_bounds, joint_faithub, joint_net
from fkd.bounds.network import Net
from fkd.bounds.refine import DiffBounds
from fkd.empirical_bound import emplb
from fkd.metrics import Attack
from test_bounds import _grid_delta, _mlp, _toy_pair

X0 = torch.tensor([[[0.3, 0.55]]])


def test_the_joint_network_is_both_networks_on_one_input(pinned):
    teacher, student = _toy_pair(pinned)  # 2-8-8-3 beside 2-6-3: the student is padded
    nt, ns = as_net(teacher, X0.shape), as_net(student, X0.shape)
    j = joint_net(nt, ns)
    x = torch.rand(64, 2, generator=pinned, dtype=torch.float64)
    assert torch.allclose(j.forward(x), torch.cat([nt.forward(x), ns.forward(x)], 1), atol=1e-12)
    from fkd import load_model
    from fkd.models import INPUT_SHAPE
    t, s = (as_net(load_model("cifar10", m), INPUT_SHAPE["cifar10"]) for m in ("rt", "fd"))  # conv, max-pool
    x = torch.rand(4, 3 * 32 * 32, generator=pinned, dtype=torch.float64)
    assert torch.allclose(joint_net(t, s).forward(x), torch.cat([t.forward(x), s.forward(x)], 1), atol=1e-9)
    with pytest.raises(ValueError, match="cannot align"):
        joint_net(t, Net(t.ops[:3] + t.ops[-1:], t.input_shape))  # a max-pool against a ReLU


@pytest.mark.parametrize("method", ["crown", "lp"])
@pytest.mark.parametrize("eps", [0.05, 0.25])
def test_joint_faithub_sits_between_delta_star_and_eq11(pinned, method, eps):
    teacher, student = _toy_pair(pinned)
    gaps, pts = _grid_delta(teacher, student, X0, eps)
    delta = float(gaps.max())
    nt, ns = as_net(teacher, X0.shape), as_net(student, X0.shape)
    cb = cross_bounds(nt, ns, X0, eps, method, solver="highs")
    with torch.no_grad():  # every reachable e_ij = d^t_ij - d^s_ij lies in the cross bounds
        zt, zs = teacher(pts).double().flatten(1), student(pts).double().flatten(1)
        e = (zt[:, None, :] - zt[:, :, None]) - (zs[:, None, :] - zs[:, :, None])
        assert (e >= cb.lower - 1e-6).all() and (e <= cb.upper + 1e-6).all()
    tight = faithub(teacher, student, X0, eps, mode="tight", method=method, solver="highs").value
    joint = faithub(teacher, student, X0, eps, mode="joint", method=method, solver="highs").value
    assert delta <= joint <= tight + 1e-12


def test_without_cross_information_the_joint_bound_is_eq11(pinned):
    teacher, student = _toy_pair(pinned)
    nt, ns = as_net(teacher, X0.shape), as_net(student, X0.shape)
    t, s = DiffBounds.start(nt, X0, 0.25), DiffBounds.start(ns, X0, 0.25)
    inf = torch.full((3, 3), float("inf"), dtype=torch.float64)
    value, stats = joint_faithub(t.lower, t.upper, s.lower, s.upper, CrossBounds(-inf, inf))
    tight = faithub(teacher, student, X0, 0.25, mode="tight", method="crown").value
    assert abs(value - tight) < 1e-6 and abs(stats["eq11"] - tight) < 1e-6


@pytest.mark.parametrize("student", ["sd", "fd"])
def test_joint_is_sound_and_tighter_on_zoo_pairs(pinned, student):
    from fkd import load_model
    from fkd.data import eval_subset

    x, _, _ = eval_subset("mnist", 2)
    t, s = load_model("mnist", "rt", units="pixel"), load_model("mnist", student, units="pixel")
    gains = []
    for x0 in x:
        low = float(emplb(t, s, x0[None], 0.05, Attack(20, 2), generator=pinned).value[0])
        tight = faithub(t, s, x0, 0.05, mode="tight").value
        joint = faithub(t, s, x0, 0.05, mode="joint").value
        assert low <= joint <= tight + 1e-12
        gains.append(tight - joint)
    assert max(gains) > 1e-3  # sharing x is worth something on these pairs
