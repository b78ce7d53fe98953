"""Oracles for the two readings of eps (fkd.units): the per-channel box, PGD inside it, bounds
containing its samples, and the readings agreeing where std = 1."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fkd.attacks import ConfidenceGap, CrossEntropy, pgd
from fkd.bounds import bounds, faithub, output_bounds
from fkd.bounds.interval import input_box
from fkd.config import Dataset, EpsUnits, parse
from fkd.train_config import train_config
from fkd.empirical_bound import emplb
from fkd.units import STD, as_tensor, channels, pixel_label, positive, radius


def _conv3(gen: torch.Generator, k: int = 4) -> nn.Sequential:
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2),
                         nn.Flatten(), nn.Linear(4 * 2 * 2, 8), nn.ReLU(), nn.Linear(8, k)).eval()


class _Logit:
    """PGD objective: sign * logit k of ``model``."""

    def __init__(self, model: nn.Module, k: int, sign: float):
        self.model, self.k, self.sign, self.models = model, k, sign, (model,)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.sign * self.model(x.reshape(-1, *x.shape[-3:])).reshape(*x.shape[:-3], -1)[..., self.k]


def _box_samples(x0: torch.Tensor, r: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """n points of [x0 - r, x0 + r] cap [0, 1] (r per channel), half of them on vertices."""
    lo, hi = (x0 - r).clamp(0, 1), (x0 + r).clamp(0, 1)
    u = torch.rand((n, *x0.shape), generator=gen)
    u[: n // 2] = u[: n // 2].round()
    return lo + u * (hi - lo)


def test_radius_of_each_reading():
    assert radius(0.2, "pixel", "mnist") == 0.2
    assert radius(0.2, "normalised", "mnist") == pytest.approx(0.2 * 0.3081)
    assert radius(8 / 255, EpsUnits.NORMALISED, Dataset.FASHION_MNIST) == pytest.approx(8 / 255 * 0.3530)
    r = radius(8 / 255, "normalised", "cifar10")
    assert isinstance(r, torch.Tensor) and r.shape == (3, 1, 1)
    assert channels(r) == pytest.approx([8 / 255 * s for s in STD[Dataset.CIFAR10]])
    assert pixel_label(r).count(";") == 2
    assert radius(0.0, "normalised", "cifar10").sum() == 0 and not positive(radius(0.0, "normalised", "cifar10"))
    assert pixel_label(radius(0.1, "normalised", "mnist")) == "0.03081"


def test_bad_readings_name_the_options():
    with pytest.raises(ValueError, match="normalised, pixel"):
        parse(EpsUnits, "percent")
    with pytest.raises(ValueError, match="eps must be a finite number"):
        radius(float("nan"), "pixel", "mnist")
    with pytest.raises(ValueError, match="eps must be a finite number"):
        radius(-0.1, "normalised", "mnist")
    with pytest.raises(ValueError, match="pixel radii take none"):
        radius(0.1, "pixel", "cifar10", std=(0.2, 0.2, 0.2))
    with pytest.raises(ValueError, match="does not fit"):
        as_tensor(radius(0.1, "normalised", "cifar10"), torch.rand(1, 1, 28, 28))


def test_readings_agree_where_std_is_one(pinned):
    """With std = 1 the normalised reading is the pixel one: same radius, same attack, same bounds."""
    for d in Dataset:
        ones = (1.0,) * len(STD[d])
        assert channels(radius(0.05, "normalised", d, std=ones)) == channels(radius(0.05, "pixel", d))
    model = _conv3(pinned)
    x = torch.rand((2, 3, 8, 8), generator=pinned)
    y = torch.tensor([0, 1])
    flat = radius(0.05, "pixel", "cifar10")
    per_channel = torch.full((3, 1, 1), 0.05)  # the tensor path of the same radius
    a, _ = pgd(CrossEntropy(model, y), x, flat, steps=5, step_size=0.01, generator=torch.Generator().manual_seed(1))
    b, _ = pgd(CrossEntropy(model, y), x, per_channel, steps=5, step_size=torch.full((3, 1, 1), 0.01),
               generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a, b, atol=1e-6)
    la, ua = bounds(model, x[0], flat, method="crown")
    lb, ub = bounds(model, x[0], per_channel, method="crown")
    assert torch.allclose(la, lb) and torch.allclose(ua, ub)


def test_input_box_is_per_channel_and_capped(pinned):
    x0 = torch.rand((3, 4, 4), generator=pinned)
    r = radius(8 / 255, "normalised", "cifar10")
    box = input_box(x0, r)
    width = (box.upper - box.lower).reshape(3, 4, 4)
    inner = ((x0 - r) >= 0) & ((x0 + r) <= 1)  # where the cap [0, 1] does not bite
    for c, rc in enumerate(channels(r)):
        assert torch.allclose(width[c][inner[c]], torch.full_like(width[c][inner[c]], 2 * rc, dtype=width.dtype),
                              atol=1e-7)
    assert (box.lower >= 0).all() and (box.upper <= 1).all()


def test_pgd_stays_in_the_per_channel_box(pinned):
    model = _conv3(pinned)
    x = torch.rand((5, 3, 8, 8), generator=pinned)
    y = torch.randint(0, 4, (5,), generator=pinned)
    r = torch.tensor([0.01, 0.05, 0.1]).view(3, 1, 1)
    for keep in ("best", "last"):
        adv, _ = pgd(CrossEntropy(model, y), x, r, steps=10, step_size=r / 4, restarts=3, generator=pinned, keep=keep)
        assert ((adv - x).abs() <= r + 1e-7).all() and adv.min() >= 0 and adv.max() <= 1
        # the attack uses each channel's whole radius, not the smallest one
        assert (adv - x)[:, 2].abs().max() > 0.05


@pytest.mark.parametrize("method", ["crown", "lp"])
def test_bounds_contain_samples_and_pgd_points_of_the_per_channel_box(pinned, method):
    model = _conv3(pinned)
    x0 = torch.rand((3, 8, 8), generator=pinned)
    r = radius(16 / 255, "normalised", "cifar10")
    lo, up = bounds(model, x0, r, method=method, solver="highs")
    pts = [_box_samples(x0, r, 500, pinned)]
    for k in range(4):  # PGD points pushing each logit up and down: the extremes the bounds must hold
        for sign in (1.0, -1.0):
            p, _ = pgd(_Logit(model, k, sign), x0[None], r, steps=20, step_size=r / 8, restarts=2, generator=pinned)
            pts.append(p)
    with torch.no_grad():
        z = model(torch.cat(pts))
    assert (z >= lo - 1e-5).all() and (z <= up + 1e-5).all()


def test_emplb_below_faithub_in_the_per_channel_box(pinned):
    teacher, student = _conv3(pinned, 3), _conv3(pinned, 3)
    x0 = torch.rand((3, 8, 8), generator=pinned)
    r = radius(8 / 255, "normalised", "cifar10")
    low = emplb(teacher, student, x0[None], r, generator=pinned)
    assert ((low.point[0] - x0).abs() <= as_tensor(r, x0) + 1e-7).all()
    up = faithub(teacher, student, x0, r, mode="tight", method="crown").value
    assert float(low.value[0]) <= up + 1e-6
    with torch.no_grad():
        gap = ConfidenceGap(teacher, student)(_box_samples(x0, r, 200, pinned)[None])
    assert float(gap.max()) <= up + 1e-6


def test_training_reads_eps_in_its_units():
    norm, pix = train_config("mnist", "rt"), train_config("mnist", "rt", eps_units="pixel")
    assert norm.eps_units is EpsUnits.NORMALISED and norm.eps_warmup_epochs == 0  # the paper mentions none
    assert pix.eps_units is EpsUnits.PIXEL and pix.eps_warmup_epochs == 5
    assert norm.fingerprint() != pix.fingerprint()
    assert radius(norm.eps, norm.eps_units, norm.dataset) == pytest.approx(0.0616, abs=1e-4)
    with pytest.raises(ValueError, match="std belongs to the normalised reading"):
        train_config("cifar10", "rt", eps_units="pixel", std=(0.2, 0.2, 0.2))


def test_the_plain_ball_is_bounded_and_attacked_as_one_set(pinned):
    """Domain plain: the box without [0, 1]; samples outside [0, 1] stay inside its bounds, PGD may
    leave [0, 1] but not the ball, and EMPLB stays below FAITHUB on it."""
    model = _conv3(pinned)
    x0 = torch.rand((3, 8, 8), generator=pinned)
    x0[:, :2] = 0.0  # pixels at the edge of [0, 1]: there the two sets differ
    r = 0.1
    box = input_box(x0, r, clamp=False)
    assert torch.allclose(box.upper - box.lower, torch.full_like(box.lower, 2 * r))
    rep = output_bounds(model, x0, r, "crown", clamp=False)
    pts = x0 + r * (2 * torch.rand((300, *x0.shape), generator=pinned) - 1)
    assert (pts < 0).any()
    with torch.no_grad():
        z = model(pts).double()
    assert (z >= rep.lower - 1e-5).all() and (z <= rep.upper + 1e-5).all()
    y = torch.tensor([0])
    adv, _ = pgd(CrossEntropy(model, y), x0[None], r, steps=10, step_size=r / 4, generator=pinned, clamp=False)
    assert ((adv - x0).abs() <= r + 1e-7).all()
    teacher, student = _conv3(pinned, 3), _conv3(pinned, 3)
    low = emplb(teacher, student, x0[None], r, generator=pinned, clamp=False)
    assert float(low.value[0]) <= faithub(teacher, student, x0, r, mode="tight", method="crown", clamp=False).value + 1e-6


def test_bad_input_never_gives_a_number(pinned):
    """A NaN pixel, an image outside [0, 1], a NaN eps, a class-count or input-shape mismatch: each
    a ValueError naming the problem, never a bound or a silently clamped ball."""
    from fkd.bounds import as_net
    from fkd.bounds.shared import ImageBounds

    model = _conv3(pinned)
    x0 = torch.rand((3, 8, 8), generator=pinned)
    bad = x0.clone()
    bad[0, 0, 0] = float("nan")
    for method in ("crown", "lp"):
        with pytest.raises(ValueError, match="NaN"):
            bounds(model, bad, 0.01, method=method, solver="highs")
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        bounds(model, x0 * 3 - 1, 0.01)
    with pytest.raises(ValueError, match="eps"):
        emplb(model, model, x0[None], float("nan"))
    other = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5)).eval()
    with pytest.raises(ValueError, match="4 classes, the student 5"):
        faithub(model, other, x0, 0.01)
    with pytest.raises(ValueError, match="inputs shaped"):
        bounds(nn.Sequential(nn.Flatten(), nn.Linear(10, 2)).eval(), x0, 0.01)
    ib = ImageBounds(x0, 0.01)
    with pytest.raises(ValueError, match="a pair must share its inputs"):
        ib.paper(as_net(model, (3, 8, 8)), as_net(nn.Sequential(nn.Flatten(), nn.Linear(768, 4)).eval(), (3, 16, 16)))
    big = as_net(nn.Sequential(nn.Flatten(), nn.Linear(768, 4)).eval(), (3, 16, 16))
    with pytest.raises(ValueError, match="meets an image shaped"):
        ib.paper(big, big)


def test_image_bounds_never_serve_one_network_for_another(pinned):
    """The cache holds every network it has bounded, so a later network cannot take a freed
    network's address and receive its bounds."""
    from fkd.bounds import as_net
    from fkd.bounds.shared import ImageBounds

    x0 = torch.rand((3, 8, 8), generator=pinned)
    ib = ImageBounds(x0, 0.02)
    t = as_net(_conv3(pinned), (3, 8, 8))
    for _ in range(20):  # students made and dropped one after the other
        s = as_net(_conv3(pinned), (3, 8, 8))
        fresh = faithub(t, s, x0, 0.02, mode="tight", method="crown").value
        assert ib.tight(t, s).value == pytest.approx(fresh, abs=1e-9)
        del s


def test_an_attack_study_attacks_every_student_at_the_radius_of_its_eps():
    """Every row of a sweep, whichever student, strategy or restart count, is an EMPLB at the
    pixel radius of the study's eps (a gap of at most 1 and never above FAITHUB's trivial cap)."""
    from fkd.experiments.attack_study import AttackStudyConfig, attack_strength

    cfg = AttackStudyConfig("mnist", ("sd", "fd"), 0.02, (0, 1), steps=(1, 3), restarts=(1, 2), units="normalised")
    df = attack_strength(cfg, progress=False)
    assert set(df.eps_pixel) == {pixel_label(radius(0.02, "normalised", "mnist"))}
    # at a pixel radius of 0.006 these students stay close to their teacher: a wrong radius shows here
    assert df.value.max() < 0.5


def test_radius_of_images_of_no_known_dataset_needs_their_std():
    from fkd.units import radius

    assert radius(0.1, "normalised", None, (0.5,)) == pytest.approx(0.05)
    assert radius(0.1, "pixel", None) == 0.1
    assert radius(0.1, "normalised", None, (0.5, 0.25)).reshape(-1).tolist() == pytest.approx([0.05, 0.025])
    with pytest.raises(ValueError, match="std"):
        radius(0.1, "normalised", None)
