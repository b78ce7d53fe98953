"""Bad input never gives a number: each case is a ValueError naming the problem and the fix."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fkd.cli import main
from fkd.bounds import as_net, faithub, logit_diff_bounds, output_bounds
from fkd.bounds.shared import ImageBounds
from fkd.empirical_bound import emplb
from fkd.metrics import Attack, agreement, robust_correct
from fkd.experiments.verify_config import VerifyConfig

ATTACK = Attack(2, 1)


def _mlp(inputs: int, classes: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, 8), nn.ReLU(), nn.Linear(8, classes)).eval()


@pytest.fixture
def pair():
    x = torch.rand((3, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    return _mlp(16, 5, 0), _mlp(16, 5, 1), x


@pytest.mark.parametrize("eps", [float("nan"), -0.1, float("inf"), torch.full((1, 1, 1), float("nan"))])
def test_a_bad_radius_is_refused_by_every_empirical_metric(pair, eps):
    t, s, x = pair
    with pytest.raises(ValueError, match="eps"):
        emplb(t, s, x, eps, ATTACK)
    with pytest.raises(ValueError, match="eps"):
        agreement(t, s, x, eps, ATTACK)
    with pytest.raises(ValueError, match="eps"):
        robust_correct(t, x, torch.zeros(3, dtype=torch.long), eps, ATTACK)


def test_bad_images_are_refused_by_emplb(pair):
    t, s, x = pair
    nan = x.clone()
    nan[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        emplb(t, s, nan, 0.1, ATTACK)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        emplb(t, s, x * 255, 0.1, ATTACK)
    with pytest.raises(ValueError, match=r"x0\[None\]"):
        emplb(t, s, x[0], 0.1, ATTACK)


def test_an_input_or_class_count_mismatch_is_named(pair):
    t, s, x = pair
    with pytest.raises(ValueError, match="does not take images shaped"):
        emplb(_mlp(784, 5, 2), s, x, 0.1, ATTACK)
    with pytest.raises(ValueError, match="numbers of classes"):
        emplb(t, _mlp(16, 3, 3), x, 0.1, ATTACK)
    with pytest.raises(ValueError, match="numbers of classes"):
        agreement(t, _mlp(16, 3, 3), x, 0.1, ATTACK)
    with pytest.raises(ValueError, match="labels"):
        robust_correct(t, x, torch.zeros(2, dtype=torch.long), 0.1, ATTACK)
    with pytest.raises(ValueError, match="classes"):
        faithub(t, _mlp(16, 3, 3), x[0], 0.1)
    with pytest.raises(ValueError, match="Linear layer of 784 inputs"):
        faithub(_mlp(784, 5, 2), s, x[0], 0.1)
    with pytest.raises(ValueError, match=r"faithub takes one image \(C, H, W\)"):
        faithub(t, s, x, 0.1)
    with pytest.raises(ValueError, match=r"logit_diff_bounds takes one image"):
        logit_diff_bounds(t, x, 0.1)
    conv = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(8, 5)).eval()
    with pytest.raises(ValueError, match="Conv2d layer of 3 input channels"):
        faithub(conv, s, x[0], 0.1)


@pytest.mark.parametrize("method", ["crown", "lp"])
def test_a_nan_pixel_is_refused_before_any_solver(pair, method):
    t, s, x = pair
    x0 = x[0].clone()
    x0[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        output_bounds(t, x0, 0.1, method, solver="highs")
    with pytest.raises(ValueError, match="NaN"):
        faithub(t, s, x0, 0.1, method=method, solver="highs")
    with pytest.raises(ValueError, match="NaN"):
        ImageBounds(x0, 0.1, method, "highs").report(as_net(t, x0.shape))
    with pytest.raises(ValueError, match="as_net"):
        ImageBounds(x[0], 0.1, method, "highs").paper(t, s)


def test_zero_images_are_refused_by_verify_and_its_cli(tmp_path, capsys):
    with pytest.raises(ValueError, match="n_images must be at least 1"):
        VerifyConfig("mnist", ("fd",), (0.1,), 0)
    assert main(["verify", "--dataset", "mnist", "--students", "fd", "--n-images", "0",
                 "--out", str(tmp_path / "run")]) != 0
    assert "n_images must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "run" / "verify.csv").exists()
