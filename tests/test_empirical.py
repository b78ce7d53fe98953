"""Oracles for the per-image metrics: closed-form worst cases of linear models, constructed agreement."""
import math

import pytest
import torch
from torch import nn

from fkd.attacks import ConfidenceGap, CrossEntropy, pgd
from fkd.bounds.interval import project
from fkd.bounds.real import real_gap
from fkd.empirical_bound import EmplbStrategy, emplb
from fkd.metrics import AgreementAttack, Attack, agreement, confidence_gap, fidelity, robust_correct
from fkd.models import make_model


def linear(weight, bias):
    """A Flatten + Linear net with the given weight (K, D) and bias (K,)."""
    lin = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        lin.weight.copy_(weight)
        lin.bias.copy_(bias)
    return nn.Sequential(nn.Flatten(), lin).eval()


def threshold_classifier(t: float, scale: float = 40.0):
    """Two classes on 2x2 images: class 0 iff mean(x) > t (logits scale * (m - t, t - m))."""
    return linear(torch.tensor([[scale / 4] * 4, [-scale / 4] * 4]), torch.tensor([-scale * t, scale * t]))


def test_pgd_reaches_the_closed_form_worst_case_of_a_linear_model(pinned):
    # for a linear 2-class model CE(x) grows with (w_1 - w_0) . x: the l-inf worst case in the box
    # [x0 - eps, x0 + eps] & [0, 1] is x0 + eps * sign(w_1 - w_0), clamped
    w = torch.randn(2, 12, generator=pinned)
    model = linear(w, torch.zeros(2))
    x0 = torch.rand(16, 3, 2, 2, generator=pinned)
    y = torch.zeros(16, dtype=torch.long)
    eps = 0.1
    d = (w[1] - w[0]).view(1, 3, 2, 2)
    worst = (x0 + eps * d.sign()).clamp(x0 - eps, x0 + eps).clamp(0, 1)
    obj = CrossEntropy(model, y)
    x_adv, value = pgd(obj, x0, eps, steps=20, step_size=2.5 * eps / 20, restarts=2, generator=pinned)
    torch.testing.assert_close(value, obj(worst[None])[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_adv, worst, rtol=0, atol=1e-6)


@pytest.mark.parametrize("strategy", list(EmplbStrategy))
def test_emplb_reaches_the_closed_form_gap_of_a_linear_pair(pinned, strategy):
    # teacher: a 2-class linear model; student: constant confidences (0.7, 0.3). The gap
    # |sigmoid(a . x + b) - 0.7| is monotone in a . x on each side, so its maximum over the box sits
    # at one of the two corners x0 +- eps * sign(a) (clamped to [0, 1])
    a = torch.randn(12, generator=pinned)
    teacher = linear(torch.stack([a, torch.zeros(12)]), torch.tensor([0.3, 0.0]))
    student = linear(torch.zeros(2, 12), torch.tensor([0.0, -torch.log(torch.tensor(7 / 3)).item()]))
    x0 = torch.rand(8, 3, 2, 2, generator=pinned)
    eps = 0.05
    s = a.view(1, 3, 2, 2).sign()
    corners = [(x0 + k * eps * s).clamp(x0 - eps, x0 + eps).clamp(0, 1) for k in (1, -1)]
    exact = torch.maximum(*(real_gap(teacher, student, c) for c in corners))
    got = emplb(teacher, student, x0, eps, Attack(30, 2), strategy, pinned)
    torch.testing.assert_close(got.value, exact, rtol=1e-5, atol=1e-6)
    # a lower bound never exceeds the true maximum (corners rounded to float32: one rounding of slack)
    assert torch.all(got.value <= exact + 1e-7)


def test_agreement_matches_constructed_cases():
    teacher, student = threshold_classifier(0.5), threshold_classifier(0.55)
    means = torch.tensor([0.29, 0.47, 0.52, 0.6, 0.62, 0.9])  # no boundary exactly at reach
    x = means.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    for eps in (0.0, 0.02, 0.06, 0.2):
        # agree at x (mean outside (0.5, 0.55)) and no mean in [m - eps, m + eps] inside (0.5, 0.55)
        clean = (means <= 0.5) | (means >= 0.55)
        reach = (means + eps > 0.5) & (means - eps < 0.55)
        expected = clean & ~reach
        got = agreement(teacher, student, x, eps, Attack(20, 2), torch.Generator().manual_seed(0))
        assert got.tolist() == expected.tolist(), eps


def test_the_papers_attack_checks_each_restarts_last_point():
    # the same pair: every pixel saturates at m +- eps (20 steps of 2.5 eps / 20, one gradient sign),
    # so plain PGD's last point has mean m + eps (from below the band) or m - eps (from above) and
    # overshoots the disagreement band (0.5, 0.55) where the flip search keeps the iterate inside it
    teacher, student = threshold_classifier(0.5), threshold_classifier(0.55)
    means = torch.tensor([0.29, 0.47, 0.52, 0.6, 0.62, 0.9])
    x = means.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    clean = (means <= 0.5) | (means >= 0.55)
    for eps in (0.0, 0.02, 0.06, 0.2):
        last = torch.where(means < 0.5, means + eps, means - eps)
        expected = clean & ~((last > 0.5) & (last < 0.55))
        got = agreement(teacher, student, x, eps, Attack(20, 2), torch.Generator().manual_seed(0), "paper")
        assert got.tolist() == expected.tolist(), eps
    flip = agreement(teacher, student, x, 0.2, Attack(20, 2), torch.Generator().manual_seed(0), "flip")
    paper = agreement(teacher, student, x, 0.2, Attack(20, 2), torch.Generator().manual_seed(0), "paper")
    assert flip.tolist() == [True, False, False, False, False, True] and paper.tolist() == [True, True, False, True, True, True]


def _pair(seed: int):
    """An MNIST-shaped teacher and a student close to it (a perturbed copy of a student-sized net
    trained on nothing: they agree on most inputs and an attack can split them)."""
    torch.manual_seed(seed)
    teacher = make_model("mnist", "student").eval()
    student = make_model("mnist", "student").eval()
    with torch.no_grad():
        for p, q in zip(student.parameters(), teacher.parameters()):
            p.copy_(q + 0.05 * q.abs().mean() * torch.randn_like(q))
    return teacher, student


@pytest.mark.parametrize("seed", [0, 1])
def test_flip_finds_every_disagreement_the_papers_attack_finds(seed):
    teacher, student = _pair(seed)
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    for eps in (0.02, 0.1, 0.3):
        flip = agreement(teacher, student, x, eps, Attack(10, 3), torch.Generator().manual_seed(5), AgreementAttack.FLIP)
        paper = agreement(teacher, student, x, eps, Attack(10, 3), torch.Generator().manual_seed(5), AgreementAttack.PAPER)
        assert not (flip & ~paper).any(), eps  # per image: flip agrees => the paper's attack agrees
    assert (~paper).any()  # the attacks do split the pair: the implication is not vacuous


def test_both_attacks_give_clean_agreement_at_eps_zero_and_are_deterministic():
    teacher, student = _pair(2)
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    clean = teacher(x).argmax(1) == student(x).argmax(1)
    for search in AgreementAttack:
        assert agreement(teacher, student, x, 0.0, search=search).tolist() == clean.tolist()
        runs = [agreement(teacher, student, x, 0.2, Attack(5, 2), torch.Generator().manual_seed(7), search)
                for _ in range(2)]
        assert torch.equal(*runs)
    with pytest.raises(ValueError, match="agreementattack"):
        agreement(teacher, student, x, 0.1, search="best")


def test_robust_correct_at_eps_zero_is_clean_correctness(pinned):
    model = make_model("mnist", "student").eval()
    x = torch.rand(32, 1, 28, 28, generator=pinned)
    y = model(x).argmax(1)
    y[:8] = (y[:8] + 1) % 10
    assert robust_correct(model, x, y, 0.0).tolist() == [False] * 8 + [True] * 24
    attacked = robust_correct(model, x, y, 0.2, Attack(5, 1), pinned)
    assert not attacked[:8].any()


def test_emplb_is_at_least_the_clean_gap_and_stays_in_the_ball(pinned):
    teacher, student = make_model("mnist", "teacher").eval(), make_model("mnist", "student").eval()
    x = torch.rand(16, 1, 28, 28, generator=pinned)
    eps = 0.1
    e = emplb(teacher, student, x, eps, Attack(10, 2), "both", pinned)
    assert torch.all(e.value >= confidence_gap(teacher, student, x) - 1e-6)
    assert torch.all(e.value <= 1)
    assert (e.point - x).abs().max() <= eps + 1e-6 and e.point.min() >= 0 and e.point.max() <= 1
    assert torch.equal(real_gap(teacher, student, e.point), e.value) and e.value.dtype == torch.float64
    both = torch.maximum(e.by_strategy[EmplbStrategy.MAX], e.by_strategy[EmplbStrategy.CLASSES])
    torch.testing.assert_close(e.value.float(), both)  # the float64 value of the search's float32 one
    assert torch.equal(emplb(teacher, student, x, 0.0).value, real_gap(teacher, student, x))


def test_emplb_is_the_real_gap_where_float32_rounds_a_saturated_softmax():
    # constant networks (zero weights) over 10 classes with logits (18, 0, ..., 0) and (17.2, 0, ..., 0):
    # the gap, at the top class, is 9 e^-17.2 / (1 + 9 e^-17.2) - 9 e^-18 / (1 + 9 e^-18) = 1.7e-7
    # everywhere; float32 confidences within 1e-7 of 1 round it by a large part of itself
    top_t, top_s = float(torch.tensor(18.0)), float(torch.tensor(17.2))   # the float32 weights' values
    teacher = linear(torch.zeros(10, 4), torch.tensor([top_t] + [0.0] * 9))
    student = linear(torch.zeros(10, 4), torch.tensor([top_s] + [0.0] * 9))
    rest = lambda z: 9 * math.exp(-z) / (1 + 9 * math.exp(-z))             # 1 - the top confidence
    closed = rest(top_s) - rest(top_t)
    x = torch.rand(3, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    float32 = confidence_gap(teacher, student, x)
    assert (float32.double() - closed).abs().max() > 1e-9   # what a float32 EMPLB would report
    for eps in (0.0, 0.05):
        got = emplb(teacher, student, x, eps, Attack(3, 1), "both", torch.Generator().manual_seed(0))
        torch.testing.assert_close(got.value, torch.full((3,), closed, dtype=torch.float64), rtol=0, atol=1e-15)


def test_project_moves_points_rounded_outside_back_inside_the_float64_ball(pinned):
    x = torch.rand(64, 3, 4, 4, generator=pinned)
    r = torch.tensor([0.0123, 0.0317, 0.0071])                       # a per-channel radius
    hi64 = (x.double() + r.double().view(-1, 1, 1)).clamp(max=1)
    lo64 = (x.double() - r.double().view(-1, 1, 1)).clamp(min=0)
    corners = torch.where(torch.rand(x.shape, generator=pinned) < 0.5, hi64, lo64)
    out = (corners * (1 + 4e-7 * (torch.rand(x.shape, generator=pinned) - 0.5))).float()  # a hair off
    assert ((out.double() > hi64) | (out.double() < lo64)).any()      # some start outside
    got = project(out, x, r)
    assert got.dtype == torch.float32 and ((got.double() <= hi64) & (got.double() >= lo64)).all()
    inner = (x + 0.5 * (torch.rand(x.shape, generator=pinned) - 0.5) * r.view(-1, 1, 1)).clamp(0, 1)
    assert torch.equal(project(inner, x, r), inner)                   # points inside stay where they are
    plain = project(x + 2 * r.view(-1, 1, 1), x, r, clamp=False)       # the plain ball: no [0, 1] cap
    top = x.double() + r.double().view(-1, 1, 1)
    assert (plain.double() <= top).all() and (plain.double() > top - 1e-6).all() and plain.max() > 1


def test_emplb_is_deterministic_for_a_seed():
    teacher, student = make_model("mnist", "teacher").eval(), make_model("mnist", "student").eval()
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    runs = [emplb(teacher, student, x, 0.1, Attack(5, 2), "both", torch.Generator().manual_seed(7)).value
            for _ in range(2)]
    assert torch.equal(*runs)


def test_fidelity_of_a_model_with_itself_is_perfect(pinned):
    model = make_model("mnist", "student").eval()
    x = torch.rand(10, 1, 28, 28, generator=pinned)
    top1, kl = fidelity(model, model, x)
    assert top1.all() and torch.allclose(kl, torch.zeros(10), atol=1e-6)
    other = make_model("mnist", "student").eval()  # another draw of the initial weights
    assert (fidelity(model, other, x)[1] > 0).all()


def test_signed_per_class_gap_accepts_a_sign_per_example(pinned):
    teacher, student = make_model("mnist", "teacher").eval(), make_model("mnist", "student").eval()
    x = torch.rand(4, 1, 28, 28, generator=pinned)
    cls = torch.tensor([0, 1, 2, 3])
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0])
    got = ConfidenceGap(teacher, student, cls, sign)(x[None])[0]
    diff = teacher(x).softmax(-1) - student(x).softmax(-1)
    torch.testing.assert_close(got, sign * diff[torch.arange(4), cls])
