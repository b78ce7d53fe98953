from dataclasses import dataclass

import pytest
import torch
from torch import nn

from fkd.attacks import ConfidenceGap, CrossEntropy, KLDivergence, eval_mode, forward, pgd
from fkd.models import make_model


@dataclass
class LinearScore:
    """A hand-built objective w . x, whose l-inf worst case over the box is known in closed form."""
    w: torch.Tensor
    model: nn.Module

    @property
    def models(self):
        return (self.model,)

    def __call__(self, x):
        return (x * self.w).flatten(-3).sum(-1)


def test_pgd_reaches_the_analytic_worst_case_of_a_linear_objective(pinned):
    x0 = torch.rand(4, 1, 5, 5, generator=pinned)
    w = torch.randn(1, 5, 5, generator=pinned)
    eps = 0.1
    x, v = pgd(LinearScore(w, nn.Identity()), x0, eps, steps=20, step_size=0.05, restarts=2, generator=pinned)
    best = torch.where(w > 0, (x0 + eps).clamp(max=1), (x0 - eps).clamp(min=0))
    assert torch.allclose(x, best, atol=1e-6)
    assert torch.allclose(v, (best * w).flatten(1).sum(1), atol=1e-5)


@pytest.mark.parametrize("eps", [0.0, 0.03, 0.3])
def test_pgd_stays_in_the_ball_and_the_pixel_box(pinned, eps):
    model = make_model("mnist", "student")
    x0 = torch.rand(16, 1, 28, 28, generator=pinned)
    x0[:4] = 0.0
    x0[4:8] = 1.0
    y = torch.randint(0, 10, (16,), generator=pinned)
    x, _ = pgd(CrossEntropy(model, y), x0, eps, steps=7, step_size=eps / 2 + 0.01, restarts=3, generator=pinned)
    assert x.shape == x0.shape
    assert (x - x0).abs().max() <= eps + 1e-6
    assert x.min() >= 0 and x.max() <= 1


def test_pgd_is_deterministic_given_a_generator():
    model = make_model("mnist", "student")
    x0 = torch.rand(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))
    runs = [pgd(CrossEntropy(model, y), x0, 0.1, steps=5, step_size=0.02, restarts=3,
                generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    other = pgd(CrossEntropy(model, y), x0, 0.1, steps=5, step_size=0.02, restarts=3,
                generator=torch.Generator().manual_seed(8))
    assert not torch.equal(runs[0][0], other[0])


def test_best_value_is_the_objective_at_the_returned_point_and_beats_the_start(pinned):
    t, s = make_model("mnist", "teacher"), make_model("mnist", "student")
    x0 = torch.rand(6, 1, 28, 28, generator=pinned)
    obj = ConfidenceGap(t, s)
    x, v = pgd(obj, x0, 0.1, steps=10, step_size=0.025, restarts=4, generator=pinned)
    with torch.no_grad():
        assert torch.allclose(obj(x), v, atol=1e-6)
        assert (v >= obj(x0) - 1e-6).all()  # without a random start, the clean point is scored too
    x1, v1 = pgd(obj, x0, 0.1, steps=10, step_size=0.025, restarts=1, random_start=False)
    assert (v1 >= obj(x0).detach() - 1e-7).all()


def test_more_restarts_never_do_worse(pinned):
    """Restart 0 of a 5-restart run draws the same start as a 1-restart run from the same seed
    (the noise fills restart by restart), so the best of five can only match or beat it."""
    model = make_model("mnist", "student")
    x0, y = torch.rand(32, 1, 28, 28, generator=pinned), torch.randint(0, 10, (32,), generator=pinned)
    _, v1 = pgd(CrossEntropy(model, y), x0, 0.1, steps=5, step_size=0.02, restarts=1,
                generator=torch.Generator().manual_seed(3))
    _, v5 = pgd(CrossEntropy(model, y), x0, 0.1, steps=5, step_size=0.02, restarts=5,
                generator=torch.Generator().manual_seed(3))
    assert (v5 >= v1 - 1e-6).all() and (v5 > v1 + 1e-6).any()
    x_last, none = pgd(CrossEntropy(model, y), x0, 0.1, steps=5, step_size=0.02, keep="last", generator=pinned)
    assert none is None and x_last.shape == x0.shape


def test_models_keep_their_train_or_eval_mode():
    t, s = make_model("mnist", "teacher"), make_model("mnist", "student")
    t.eval(), s.train()
    seen = []

    @dataclass
    class Spy:
        @property
        def models(self):
            return (t, s)

        def __call__(self, x):
            seen.append((t.training, s.training))
            return KLDivergence(s, t)(x)

    pgd(Spy(), torch.rand(2, 1, 28, 28), 0.1, steps=2, step_size=0.05)
    assert all(m == (False, False) for m in seen)  # attacked in eval mode
    assert not t.training and s.training  # and restored afterwards
    with pytest.raises(RuntimeError):
        with eval_mode(s):
            raise RuntimeError
    assert s.training


def test_objectives_on_restart_batches():
    t, s = make_model("mnist", "teacher"), make_model("mnist", "student")
    x = torch.rand(3, 4, 1, 28, 28)
    y = torch.randint(0, 10, (4,))
    assert CrossEntropy(s, y)(x).shape == (3, 4)
    assert forward(s, x).shape == (3, 4, 10)
    tl = forward(t, x[0])
    assert KLDivergence(s, t, teacher_logits=tl)(x).shape == (3, 4)
    gap = ConfidenceGap(t, s)(x)
    per_class = torch.stack([torch.maximum(ConfidenceGap(t, s, torch.full((4,), k), 1.0)(x),
                                           ConfidenceGap(t, s, torch.full((4,), k), -1.0)(x)) for k in range(10)])
    assert torch.allclose(gap, per_class.amax(0), atol=1e-7)  # the inf-norm is the max of the signed gaps
    assert torch.allclose(KLDivergence(s, s)(x), torch.zeros(3, 4), atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="eps"):
        pgd(LinearScore(torch.ones(1, 2, 2), nn.Identity()), torch.rand(1, 1, 2, 2), -0.1, steps=1, step_size=0.1)
    with pytest.raises(ValueError, match="keep"):
        pgd(LinearScore(torch.ones(1, 2, 2), nn.Identity()), torch.rand(1, 1, 2, 2), 0.1, steps=1, step_size=0.1,
            keep="first")


def test_the_returned_point_is_the_best_iterate_even_when_it_is_the_start():
    """An ascent step that overshoots: the clean start point is the best, and must come back."""
    x0 = torch.full((3, 1, 4, 4), 0.5)

    @dataclass
    class Overshoot:
        @property
        def models(self):
            return ()

        def __call__(self, x):
            return -(x.flatten(-3).mean(-1) - 0.501) ** 2

    x, v = pgd(Overshoot(), x0, 0.1, steps=1, step_size=0.05, random_start=False)
    assert torch.equal(x, x0)
    assert torch.allclose(v, Overshoot()(x0))


def test_apgd_reaches_the_analytic_worst_case_of_a_linear_objective(pinned):
    from fkd.attacks import apgd

    x0 = torch.rand(4, 1, 5, 5, generator=pinned)
    w = torch.randn(1, 5, 5, generator=pinned)
    x, v = apgd(LinearScore(w, nn.Identity()), x0, 0.1, steps=20, restarts=2, generator=pinned)
    best = torch.where(w > 0, (x0 + 0.1).clamp(max=1), (x0 - 0.1).clamp(min=0))
    assert torch.allclose(x, best, atol=1e-6)
    assert torch.allclose(v, (best * w).flatten(1).sum(1), atol=1e-5)


@pytest.mark.parametrize("clamp", [True, False])
def test_apgd_stays_in_the_ball_per_channel_and_scores_its_point(pinned, clamp):
    from fkd.attacks import apgd

    model = make_model("cifar10", "student")
    x0 = torch.rand(6, 3, 32, 32, generator=pinned)
    x0[:2] = 1.0
    r = torch.tensor([0.01, 0.03, 0.02]).view(3, 1, 1)
    y = torch.randint(0, 10, (6,), generator=pinned)
    obj = CrossEntropy(model, y)
    x, v = apgd(obj, x0, r, steps=9, restarts=2, generator=pinned, clamp=clamp)
    assert ((x - x0).abs() <= r + 1e-6).all()
    if clamp:
        assert x.min() >= 0 and x.max() <= 1
    with torch.no_grad():
        assert torch.allclose(obj(x[None])[0], v, atol=1e-5)


def test_strong_emplb_is_never_below_both_and_never_above_faithub():
    from fkd.bounds import faithub
    from fkd.data import eval_subset
    from fkd.empirical_bound import emplb
    from fkd.zoo import load_model

    x, _, _ = eval_subset("mnist", 4)
    t, s = load_model("mnist", "rt", units="pixel"), load_model("mnist", "fd", units="pixel")
    both = emplb(t, s, x, 0.05, generator=torch.Generator().manual_seed(0))
    strong = emplb(t, s, x, 0.05, strategy="strong", generator=torch.Generator().manual_seed(0))
    assert (strong.value >= both.value).all()
    assert set(strong.by_strategy) == {"max", "classes", "strong"}
    for i in range(4):
        assert strong.value[i] <= faithub(t, s, x[i], 0.05, method="crown").value + 1e-6
