import pytest
import torch
from torch import nn

from fkd.metrics import clean_accuracy, robust_accuracy
from fkd.models import make_model


def linear_classifier():
    """Two classes split by the mean pixel: f(x) = (m - 0.5, 0.5 - m) * 10, m = mean(x)."""
    lin = nn.Linear(4, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[2.5] * 4, [-2.5] * 4]))
        lin.bias.copy_(torch.tensor([-5.0, 5.0]))
    return nn.Sequential(nn.Flatten(), lin).eval()


def test_robust_accuracy_matches_the_closed_form_margin():
    model = linear_classifier()
    means = torch.tensor([0.45, 0.52, 0.56, 0.7, 0.2])
    x = means.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    y = (means < 0.5).long()  # class 0 iff mean > 0.5
    assert clean_accuracy(model, x, y) == 100.0
    # an l-inf perturbation of eps moves the mean by eps: robust iff |mean - 0.5| > eps
    for eps in (0.01, 0.04, 0.1, 0.25):
        expected = 100.0 * ((means - 0.5).abs() > eps).float().mean().item()
        got = robust_accuracy(model, x, y, eps, steps=10, restarts=2, generator=torch.Generator().manual_seed(0))
        assert got == pytest.approx(expected)


def test_robust_accuracy_is_at_most_clean_and_equal_at_eps_zero(pinned):
    model = make_model("mnist", "student").eval()
    x = torch.rand(64, 1, 28, 28, generator=pinned)
    y = model(x).argmax(1)
    y[:16] = (y[:16] + 1) % 10
    clean = clean_accuracy(model, x, y)
    assert clean == pytest.approx(75.0)
    assert robust_accuracy(model, x, y, 0.0, steps=5, restarts=1) == pytest.approx(clean)
    assert robust_accuracy(model, x, y, 0.1, steps=5, restarts=2, generator=pinned) <= clean


def test_uint8_images_are_scaled():
    model = linear_classifier()
    x8 = torch.full((3, 1, 2, 2), 255, dtype=torch.uint8)
    assert clean_accuracy(model, x8, torch.zeros(3, dtype=torch.long)) == 100.0
