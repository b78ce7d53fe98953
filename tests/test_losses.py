import math

import pytest
import torch
import torch.nn.functional as F

from fkd.config import Method
from fkd.losses import REGISTRY, Logits, get_method, kl


def _logits(g, b=8, k=10):
    return torch.randn(b, k, generator=g) * 2


def test_kl_hand_computed():
    t = torch.log(torch.tensor([[0.5, 0.5]]))
    s = torch.log(torch.tensor([[0.25, 0.75]]))
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl(t, s).item() == pytest.approx(expected, rel=1e-6)
    # batch mean over two rows, and direction KL(teacher || student)
    assert kl(torch.cat([t, s]), torch.cat([s, s])).item() == pytest.approx(expected / 2, rel=1e-6)
    assert kl(s, t).item() != pytest.approx(expected, rel=1e-3)


def test_temperature_scales_logits():
    t, s = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert kl(t, s, 2.0).item() == pytest.approx(kl(t / 2, s / 2).item(), rel=1e-6)


def test_sd_with_alpha_zero_is_plain_ce(pinned):
    s, t, y = _logits(pinned), _logits(pinned), torch.randint(0, 10, (8,), generator=pinned)
    loss = get_method("sd").loss(Logits(student_clean=s, teacher_clean=t), y, 0.0, 4.0)
    assert loss.item() == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-6)


def test_sd_alpha_one_is_t_squared_kl(pinned):
    s, t, y = _logits(pinned), _logits(pinned), torch.randint(0, 10, (8,), generator=pinned)
    loss = get_method("sd").loss(Logits(student_clean=s, teacher_clean=t), y, 1.0, 4.0)
    assert loss.item() == pytest.approx(16 * kl(t, s, 4.0).item(), rel=1e-6)


def test_fd_kl_term_is_zero_when_student_equals_teacher(pinned):
    z, y = _logits(pinned), torch.randint(0, 10, (8,), generator=pinned)
    clean = _logits(pinned)
    loss = get_method("fd").loss(Logits(student_clean=clean, student_adv=z, teacher_adv=z.clone()), y, 1.0, 2.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    half = get_method("fd").loss(Logits(student_clean=clean, student_adv=z, teacher_adv=z.clone()), y, 0.5, 2.0)
    assert half.item() == pytest.approx(0.5 * F.cross_entropy(clean, y).item(), rel=1e-6)


def test_ard_hand_computed(pinned):
    s, sa, t, y = _logits(pinned), _logits(pinned), _logits(pinned), torch.randint(0, 10, (8,), generator=pinned)
    loss = get_method("ard").loss(Logits(student_clean=s, student_adv=sa, teacher_clean=t), y, 0.3, 2.0)
    expected = 0.3 * 4 * kl(t, sa, 2.0) + 0.7 * F.cross_entropy(s, y)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_rslad_is_zero_when_student_matches_teacher_at_both_points(pinned):
    t, y = _logits(pinned), torch.randint(0, 10, (8,), generator=pinned)
    z = Logits(student_clean=t.clone(), student_adv=t.clone(), teacher_clean=t)
    assert get_method("rslad").loss(z, y, 0.5, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    sa = _logits(pinned)
    z = Logits(student_clean=t.clone(), student_adv=sa, teacher_clean=t)
    # RSLAD is at T = 1 whatever the config's temperature
    assert get_method("rslad").loss(z, y, 0.5, 2.0).item() == pytest.approx(0.5 * kl(t, sa).item(), rel=1e-6)


def test_rt_is_ce_at_the_attacked_point(pinned):
    z, y = _logits(pinned), torch.randint(0, 10, (8,), generator=pinned)
    assert get_method("rt").loss(Logits(student_adv=z), y, None, None).item() == pytest.approx(
        F.cross_entropy(z, y).item())


def test_registry_covers_every_method_and_names_its_attack():
    assert set(REGISTRY) == set(Method)
    assert get_method("sd").attack == "none"
    assert get_method("ard").attack == "ce" and get_method("rt").attack == "ce"
    assert get_method("rslad").attack == "kl_clean_teacher"
    assert get_method("fd").attack == "kl_same_point"
    with pytest.raises(ValueError, match="rt, sd, ard, rslad, fd"):
        get_method("kdx")


def test_losses_are_differentiable_wrt_student_only(pinned):
    s = _logits(pinned).requires_grad_(True)
    t = _logits(pinned)
    y = torch.randint(0, 10, (8,), generator=pinned)
    for m in ("sd", "ard", "rslad", "fd"):
        z = Logits(student_clean=s, student_adv=s, teacher_clean=t, teacher_adv=t)
        (g,) = torch.autograd.grad(get_method(m).loss(z, y, 0.5, 2.0), s)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
