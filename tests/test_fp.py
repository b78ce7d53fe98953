"""Oracles for the float32 forward error bound (fkd.bounds.fp): closed forms and the observed error."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from fkd.bounds import FP_MARGIN, as_net, output_bounds
from fkd.bounds.crown import crown_bounds
from fkd.bounds.fp import ETA, U, forward_error, gamma, logit_margin, pair_margin
from fkd.bounds.interval import input_box
from fkd.bounds.joint import joint_net


def _observed(model: nn.Module, points: torch.Tensor) -> torch.Tensor:
    """max over points of |float32 forward - float64 forward| per logit: (N, ...) -> (K,)."""
    wide = copy.deepcopy(model).double()
    with torch.no_grad():
        return (model(points.float()).double() - wide(points.float().double())).abs().amax(0)


def _points(x0: torch.Tensor, eps: float, n: int, gen: torch.Generator) -> torch.Tensor:
    """n float32 points of the ball around x0 cap [0, 1]: half uniform, half corners."""
    lo, hi = (x0 - eps).clamp(0, 1), (x0 + eps).clamp(0, 1)
    u = torch.rand((n, *x0.shape), generator=gen)
    pts = lo + (hi - lo) * u
    pts[n // 2:] = torch.where(u[n // 2:] < 0.5, lo, hi)
    return pts.float()


def _wide_mlp(gen: torch.Generator) -> nn.Sequential:
    """Wide layers of large weights with cancelling signs: large float32 rounding."""
    layers: list[nn.Module] = [nn.Flatten()]
    for a, b in ((400, 300), (300, 300), (300, 10)):
        lin = nn.Linear(a, b)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=gen) * 30 / math.sqrt(a))
            lin.bias.copy_(torch.randn(b, generator=gen) * 50)
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers[:-1]).eval()


def _conv_net(seed: int) -> nn.Sequential:
    """Conv, ReLU, max-pool, then a conv and a Linear without a ReLU between (merged when lowered)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
                         nn.Conv2d(6, 8, 3), nn.Flatten(), nn.Linear(8 * 2 * 2, 12), nn.ReLU(),
                         nn.Linear(12, 5)).eval()


def test_gamma_closed_form_and_no_bound_past_one_over_u():
    assert float(gamma(1)) == U / (1 - U) and float(gamma(0)) == 0.0
    assert float(gamma(1000)) == pytest.approx(1000 * 2.0 ** -24 / (1 - 1000 * 2.0 ** -24), rel=1e-15)
    with pytest.raises(ValueError, match="2\\^24"):
        gamma(2 ** 24)


def test_one_linear_layer_matches_its_closed_form():
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.0, 3.0]]))
        lin.bias.copy_(torch.tensor([0.25, 0.0]))
    net = as_net(nn.Sequential(nn.Flatten(), lin), (1, 1, 3))
    x0 = torch.tensor([[[0.5, 1.0, 0.0]]])
    box = input_box(x0, 0.0)
    err = forward_error(net, box)[0]
    e_in = (U * x0.reshape(-1).double() + ETA) * (x0.reshape(-1) > 0)  # the input's rounding; 0 is exact
    # row 0: two products and a bias: gamma_3 (|w| (|x| + e) + |b|) + 2 ETA, plus |w| e
    row0 = 1 * e_in[0] + 2 * e_in[1] + gamma(3) * (1 * (0.5 + e_in[0]) + 2 * (1 + e_in[1]) + 0.25) + 2 * ETA
    # row 1: one product (3 * 0 is exact), no bias: gamma_1 |w| (|x| + e) + ETA, plus |w| e
    row1 = 0.5 * e_in[0] + gamma(1) * 0.5 * (0.5 + e_in[0]) + ETA
    assert torch.allclose(err, torch.stack([row0, row1]).double(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("eps", [0.0, 0.05, 0.3])
def test_the_bound_covers_the_observed_float32_error_of_a_wide_mlp(eps):
    gen = torch.Generator().manual_seed(0)
    model = _wide_mlp(gen)
    for _ in range(3):
        x0 = torch.rand((1, 20, 20), generator=gen)
        box = input_box(x0, eps)
        net = as_net(model, x0.shape)
        bound = forward_error(net, box, crown_bounds(net, box))[0]
        seen = _observed(model, _points(x0, eps, 256, gen))
        assert (seen > 0).any() and (bound >= seen).all(), (bound, seen)


def test_the_bound_covers_a_merged_conv_and_linear_with_max_pool():
    gen = torch.Generator().manual_seed(1)
    model = _conv_net(1)
    net = as_net(model, (2, 8, 8))
    assert any(len(getattr(op, "parts", ())) == 2 for op in net.ops)  # conv then Linear, merged
    for eps in (0.0, 0.1):
        x0 = torch.rand((2, 8, 8), generator=gen)
        box = input_box(x0, eps)
        bound = forward_error(net, box, crown_bounds(net, box))[0]
        assert (bound >= _observed(model, _points(x0, eps, 256, gen))).all()
        # interval bounds are sound too, only looser
        assert (forward_error(net, box) >= bound - 1e-18).all()


def test_margins_floor_pairs_and_the_joint_network_adds_nothing():
    t, s = as_net(_conv_net(2), (2, 8, 8)), as_net(_conv_net(3), (2, 8, 8))
    x0 = torch.rand((2, 8, 8), generator=torch.Generator().manual_seed(2))
    box = input_box(x0, 0.05)
    mt, ms = (logit_margin(n, box, crown_bounds(n, box))[0] for n in (t, s))
    assert (mt >= FP_MARGIN).all() and (ms >= FP_MARGIN).all()
    pair = pair_margin(mt)
    assert float(pair[1, 3]) == float(mt[1] + mt[3]) and float(pair.diagonal().abs().max()) == 0.0
    j = joint_net(t, s)  # both networks side by side: their own margins, exactly
    mj = logit_margin(j, box, crown_bounds(j, box))[0]
    assert torch.allclose(mj, torch.cat([mt, ms]), rtol=1e-12, atol=0)


def test_public_bounds_carry_the_margin_and_hold_for_the_float32_forward():
    gen = torch.Generator().manual_seed(3)
    model = _wide_mlp(gen)
    x0 = torch.rand((1, 20, 20), generator=gen)
    rep = output_bounds(model, x0, 0.05, "crown")
    box = input_box(x0, 0.05)
    margin = logit_margin(as_net(model, x0.shape), box, rep.per_op)[0]
    assert torch.equal(rep.margin, margin) and (margin > FP_MARGIN).any()
    assert torch.allclose(rep.upper - rep.lower, rep.per_op[-1].upper[0] - rep.per_op[-1].lower[0] + 2 * margin)
    with torch.no_grad():
        z = model(_points(x0, 0.05, 512, gen)).double()
    assert (z >= rep.lower).all() and (z <= rep.upper).all()


@pytest.mark.parametrize("units", ["pixel", "normalised"])
def test_the_bound_covers_the_observed_error_on_the_shipped_mnist_pair(units):
    from fkd.data import eval_subset
    from fkd.units import radius
    from fkd.zoo import load_model

    x, _, _ = eval_subset("mnist", 2)
    gen = torch.Generator().manual_seed(4)
    for name in ("rt", "fd"):
        model = load_model("mnist", name, units=units)
        net = as_net(model, x.shape[1:])
        r = radius(0.1, units, "mnist")
        for x0 in x:
            box = input_box(x0, r)
            bound = forward_error(net, box, crown_bounds(net, box))[0]
            assert (bound >= _observed(model, _points(x0, r, 128, gen))).all()
