"""The related methods (KDIGA, adversarial TFKD, FDBOTH): losses, config, trainer, zoo."""
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fkd.config import PAPER_HPARAMS, RELATED_HPARAMS, RELATED_PARAMS, Dataset, Method, model_name, resolve_model
from fkd.train_config import TrainConfig, train_config
from fkd.losses import Logits, get_method, gradient_alignment, input_gradient, kl, virtual_teacher

RELATED = (Method.KDIGA, Method.TFKD, Method.FDBOTH)


def _mlp(seed: int) -> nn.Sequential:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 10))


def _batch(g, b=6):
    return torch.rand(b, 1, 3, 4, generator=g), torch.randint(0, 10, (b,), generator=g)


def test_gradient_alignment_is_zero_for_the_teacher_itself_and_positive_otherwise(pinned):
    t, s = _mlp(0), _mlp(1)
    x, y = _batch(pinned)
    _, gt = input_gradient(t, x, y, create_graph=False)
    _, gs_same = input_gradient(t, x, y, create_graph=True)
    assert gradient_alignment(gs_same, gt).item() == pytest.approx(0.0, abs=1e-6)
    _, gs = input_gradient(s, x, y, create_graph=True)
    # hand-computed: batch mean of the per-image l2 norm of the difference
    expected = (gs - gt).flatten(1).norm(dim=1).mean()
    assert gradient_alignment(gs, gt).item() == pytest.approx(expected.item(), rel=1e-4)
    # the input gradient is that of the per-image CE (summed, not averaged, over the batch)
    xi = x[:1].clone().requires_grad_(True)
    (g1,) = torch.autograd.grad(F.cross_entropy(s(xi), y[:1]), xi)
    assert torch.allclose(gs[:1], g1, atol=1e-6)


def test_kdiga_double_backward_reaches_the_students_parameters(pinned):
    """The alignment term alone (alpha = 0, CE removed) gives every layer's weights a gradient, via
    the second-order graph of the input gradient; with student == teacher it is 0 with zero gradient."""
    t, s = _mlp(0), _mlp(1)
    x, y = _batch(pinned)
    zt, gt = input_gradient(t, x, y, create_graph=False)
    zs, gs = input_gradient(s, x, y, create_graph=True)
    term = gradient_alignment(gs, gt)
    grads = torch.autograd.grad(term, [m.weight for m in s if isinstance(m, nn.Linear)])
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    spec = get_method("kdiga")
    z = Logits(student_clean=zs, teacher_clean=zt, student_grad=gs, teacher_grad=gt)
    full = spec.loss(z, y, 0.5, 2.0, iga_weight=3.0)
    sd = get_method("sd").loss(z, y, 0.5, 2.0)
    assert full.item() == pytest.approx(sd.item() + 3.0 * term.item(), rel=1e-5)
    # student == teacher: loss is SD's loss (KL 0), the alignment gradient on the weights is 0
    same = _mlp(0)
    zs2, gs2 = input_gradient(same, x, y, create_graph=True)
    term2 = gradient_alignment(gs2, gt)
    assert term2.item() == pytest.approx(0.0, abs=1e-6)
    g2 = torch.autograd.grad(term2, [m.weight for m in same if isinstance(m, nn.Linear)])
    assert all(torch.isfinite(g).all() and g.abs().max() < 1e-4 for g in g2)


def test_virtual_teacher_and_tfkd_loss(pinned):
    y = torch.tensor([2, 0])
    p = virtual_teacher(y, 4, 0.9)
    assert torch.allclose(p, torch.tensor([[0.1 / 3, 0.1 / 3, 0.9, 0.1 / 3], [0.9, 0.1 / 3, 0.1 / 3, 0.1 / 3]]))
    assert torch.allclose(p.sum(1), torch.ones(2))
    spec = get_method("tfkd")
    assert not spec.uses_teacher and spec.attack == "ce" and spec.needs == {"student_adv"}
    # alpha 0: plain adversarial CE; alpha 1: 0 exactly when the student outputs p^d (up to a shift)
    s = torch.randn(2, 4, generator=pinned)
    assert spec.loss(Logits(student_adv=s), y, 0.0, 20.0, true_prob=0.9).item() == pytest.approx(
        F.cross_entropy(s, y).item(), rel=1e-6)
    assert spec.loss(Logits(student_adv=p + 3.0), y, 1.0, 20.0, true_prob=0.9).item() == pytest.approx(0.0, abs=1e-6)
    mixed = spec.loss(Logits(student_adv=s), y, 0.5, 20.0, true_prob=0.9)
    assert mixed.item() == pytest.approx((0.5 * F.cross_entropy(s, y) + 0.5 * 400 * kl(p, s, 20.0)).item(), rel=1e-5)


def test_fdboth_differs_from_fd_by_its_clean_term(pinned):
    s, sa, t, ta = (torch.randn(8, 10, generator=pinned) for _ in range(4))
    y = torch.randint(0, 10, (8,), generator=pinned)
    z = Logits(student_clean=s, student_adv=sa, teacher_clean=t, teacher_adv=ta)
    both, fd = get_method("fdboth").loss(z, y, 0.5, 2.0), get_method("fd").loss(z, y, 0.5, 2.0)
    assert both.item() == pytest.approx((0.5 * 4 * kl(ta, sa, 2.0) + 0.5 * 4 * kl(t, s, 2.0)).item(), rel=1e-6)
    assert both.item() != pytest.approx(fd.item(), rel=1e-3)
    # 0 where the student copies the teacher at both points (FD's CE term is not)
    z0 = Logits(student_clean=t.clone(), student_adv=ta.clone(), teacher_clean=t, teacher_adv=ta)
    assert get_method("fdboth").loss(z0, y, 0.5, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert get_method("fd").loss(z0, y, 0.5, 2.0).item() > 0.1
    # alpha 1: identical to FD
    assert get_method("fdboth").loss(z, y, 1.0, 2.0).item() == pytest.approx(get_method("fd").loss(z, y, 1.0, 2.0).item())


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("dataset", list(Dataset))
def test_resolve_model_round_trips_every_method(dataset, method):
    if (dataset, method) not in PAPER_HPARAMS and (dataset, method) not in RELATED_HPARAMS:
        with pytest.raises(ValueError, match="no hyper-parameters"):
            resolve_model(dataset, method.value)
        return
    m, alpha = resolve_model(dataset, method.value)
    assert m is method
    assert resolve_model(dataset, model_name(method, alpha)) == (method, alpha)
    if method is not Method.RT:
        assert resolve_model(dataset, model_name(method, 0.75)) == (method, 0.75)


@pytest.mark.parametrize("method", RELATED)
def test_related_configs_record_their_parameters_and_keep_old_fingerprints(method):
    cfg = train_config("mnist", method, eps_units="pixel")
    d = cfg.to_dict()
    for key, value in RELATED_PARAMS.get(method, {}).items():
        assert d[key] == value
    assert TrainConfig.from_dict(d) == cfg
    assert cfg.eps_warmup_epochs == (0 if method is Method.KDIGA else 5)  # KDIGA has no inner maximisation
    assert train_config("mnist", method).eps_warmup_epochs == 0  # the normalised reading needs no warm-up
    old = train_config("mnist", "fd").to_dict()
    assert "iga_weight" not in old and "true_prob" not in old
    with pytest.raises(ValueError, match="iga_weight is required"):
        train_config("mnist", "kdiga", iga_weight=None)
    with pytest.raises(ValueError, match="true_prob is not used"):
        train_config("mnist", "fd", true_prob=0.9)


@pytest.mark.parametrize("method", RELATED)
def test_train_step_of_each_related_method_gives_finite_student_gradients(method, pinned):
    from fkd.train import train_step
    cfg = train_config("mnist", method, profile="quick")
    t, s = _mlp(0), _mlp(1)
    x, y = _batch(pinned)
    loss = train_step(cfg, s, None if method is Method.TFKD else t, x, y, 0.1, 0.025, pinned)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None and torch.isfinite(p.grad).all() for p in s.parameters())
    assert all(p.grad is None for p in t.parameters())


def test_training_tfkd_needs_no_teacher(pinned):
    from fkd.data import load_split  # noqa: F401  (the trainer takes data= directly here)
    from fkd.train import TrainData, train
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
    cfg = train_config("mnist", "tfkd", profile="quick", epochs=1, patience=1)
    result = train(cfg, data=TrainData(x, y, x, y), progress=False)
    assert result.meta["config"]["true_prob"] == 0.9 and result.meta["epochs_run"] == 1
    with pytest.raises(ValueError, match="distils a teacher"):
        train(train_config("mnist", "kdiga", profile="quick", epochs=1), data=TrainData(x, y, x, y), progress=False)


@pytest.mark.parametrize("dataset", [Dataset.MNIST, Dataset.FASHION_MNIST])
@pytest.mark.parametrize("method", RELATED)
def test_shipped_related_students_load_and_record_their_config(dataset, method):
    from fkd import load_model
    from fkd.zoo import model_path, with_ext
    path = with_ext(model_path(dataset, method), ".json")
    if not path.exists():
        pytest.skip(f"{path} not trained yet")
    model = load_model(dataset, method)
    assert isinstance(model, nn.Sequential) and not model.training
    meta = json.loads(path.read_text())
    assert TrainConfig.from_dict(meta["config"]) == train_config(dataset, method, seed=meta["seed"],
                                                                 eps_units=meta["config"]["eps_units"])
    assert (meta["teacher"] is None) == (method is Method.TFKD)
