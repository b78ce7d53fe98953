import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fkd.train_config import train_config
from fkd.train import TrainData, _augment, train

REPO = Path(__file__).resolve().parent.parent


def synthetic(n=1024, seed=0) -> TrainData:
    """A learnable 10-class problem in MNIST's shape: a random binary prototype per class, plus noise."""
    g = torch.Generator().manual_seed(seed)
    prototypes = (torch.rand(10, 1, 28, 28, generator=g) < 0.5).float()
    y = torch.randint(0, 10, (n + 200,), generator=g)
    x = (0.8 * prototypes[y] + 0.2 * torch.rand(n + 200, 1, 28, 28, generator=g))
    return TrainData(x[:n], y[:n], x[n:], y[n:])


def cfg_for(method, **kw):
    base = dict(epochs=6, patience=6, batch_size=32, lr0=0.1, lr_min=0.01, eps=0.02, step_size=0.01, steps=3,
                eps_warmup_epochs=0, input_norm=False)  # the synthetic images are not MNIST's distribution
    base.update(kw)
    return train_config("mnist", method, **base)


@pytest.fixture(scope="module")
def teacher():
    return train(cfg_for("rt"), data=synthetic(), progress=False).model


def test_teacher_learns_the_synthetic_task():
    res = train(cfg_for("rt"), data=synthetic(), progress=False)
    assert res.meta["clean_acc"] > 60
    assert not res.model.training
    assert res.meta["epochs_run"] == 6 and len(res.meta["history"]) == 6
    assert res.meta["record"]["packages"]["torch"] == torch.__version__.split("+")[0]


@pytest.mark.parametrize("method", ["sd", "ard", "rslad", "fd"])
def test_students_learn_and_leave_the_teacher_alone(method, teacher):
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    res = train(cfg_for(method, epochs=4, lr0=0.04, lr_min=0.004), teacher=teacher, data=synthetic(), progress=False)
    losses = [h["train_loss"] for h in res.meta["history"]]
    assert losses[-1] < 0.6 * losses[0]
    assert res.meta["clean_acc"] > 30  # chance is 10
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not teacher.training


def test_students_need_a_teacher():
    with pytest.raises(ValueError, match="teacher"):
        train(cfg_for("fd"), data=synthetic(), progress=False)


def test_same_seed_same_weights_and_other_seed_differs():
    a = train(cfg_for("rt", epochs=2), data=synthetic(), progress=False).model
    b = train(cfg_for("rt", epochs=2), data=synthetic(), progress=False).model
    c = train(cfg_for("rt", epochs=2, seed=1), data=synthetic(), progress=False).model
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


def test_resume_after_an_interruption_gives_the_same_weights(tmp_path, teacher):
    cfg = cfg_for("fd", epochs=5, patience=5)
    full = train(cfg, teacher=teacher, data=synthetic(), progress=False)

    def crash(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, teacher=teacher, data=synthetic(), checkpoint_dir=tmp_path, progress=False, on_epoch_end=crash)
    epochs_seen = []
    resumed = train(cfg, teacher=teacher, data=synthetic(), checkpoint_dir=tmp_path, progress=False,
                    on_epoch_end=lambda e, r: epochs_seen.append(e))
    assert epochs_seen == [3, 4, 5]
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.meta["history"]]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in full.meta["history"]]
    with pytest.raises(ValueError, match="different run"):
        train(cfg_for("fd", epochs=6), teacher=teacher, data=synthetic(), checkpoint_dir=tmp_path, progress=False)


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path):
    """A real kill: the child trains, is SIGKILLed after epoch 2's checkpoint, and is resumed here.
    The child trains on this process's torch thread count (an earlier test's CLI call may have set
    it): the same reduction order, so exact resume means equal weights."""
    script = textwrap.dedent(f"""
        import sys, time
        import torch; torch.set_num_threads({torch.get_num_threads()})
        sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_train import synthetic, cfg_for
        from fkd.train import train
        def stall(epoch, row):
            if epoch == 2:
                print("checkpointed", flush=True); time.sleep(120)
        train(cfg_for("rt", epochs=4), data=synthetic(), checkpoint_dir={str(tmp_path)!r}, progress=False,
              on_epoch_end=stall)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "checkpointed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    resumed = train(cfg_for("rt", epochs=4), data=synthetic(), checkpoint_dir=tmp_path, progress=False)
    full = train(cfg_for("rt", epochs=4), data=synthetic(), progress=False)
    assert [h["epoch"] for h in resumed.meta["history"]] == [1, 2, 3, 4]
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_early_stopping_keeps_the_best_epoch():
    data = synthetic()
    # a huge learning rate makes accuracy fall after the first epoch: patience 2 stops it early
    res = train(cfg_for("rt", epochs=12, patience=2, lr0=5.0, lr_min=5.0), data=data, progress=False)
    accs = [h["test_acc"] for h in res.meta["history"]]
    assert res.meta["clean_acc"] == max(accs)
    if res.meta["status"] == "early-stopped":
        assert res.meta["epochs_run"] - res.meta["best_epoch"] == 2
    assert res.meta["epochs_run"] < 12 or res.meta["status"] == "completed"


def test_warmup_epochs_are_not_eligible_as_best():
    res = train(cfg_for("rt", epochs=4, eps_warmup_epochs=2, eps=0.3, step_size=0.1), data=synthetic(),
                progress=False)
    assert res.meta["best_epoch"] > 2


def test_augment_keeps_shape_range_and_is_seeded():
    x = torch.rand(5, 3, 32, 32)
    a = _augment(x, torch.Generator().manual_seed(1))
    b = _augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and a.min() >= 0 and a.max() <= 1


def test_time_budget_marks_the_model_partial_and_resumes(tmp_path):
    cfg = cfg_for("rt", epochs=4)
    part = train(cfg, data=synthetic(), checkpoint_dir=tmp_path, progress=False, time_budget_s=0.0)
    assert part.meta["status"] == "partial" and part.meta["epochs_run"] == 1
    assert part.meta["epochs_planned"] == 4
    done = train(cfg, data=synthetic(), checkpoint_dir=tmp_path, progress=False)
    full = train(cfg, data=synthetic(), progress=False)
    assert done.meta["status"] == "completed" and done.meta["epochs_run"] == 4
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, done.model.state_dict()[k])


def test_input_norm_trains_behind_the_normalisation_and_saves_a_pixel_model():
    """The saved model takes [0, 1] images (the normalisation folded in) and scores the accuracy the
    run selected it by, measured behind the normalisation; the option changes the run, and says so."""
    data = synthetic()
    res = train(cfg_for("rt", epochs=2, input_norm=True), data=data, progress=False)
    plain = train(cfg_for("rt", epochs=2), data=data, progress=False)
    assert type(res.model) is torch.nn.Sequential
    with torch.no_grad():
        acc = (res.model(data.test_x).argmax(-1) == data.test_y).float().mean().item() * 100
    assert acc == pytest.approx(res.meta["clean_acc"], abs=0.5)  # one image is 0.5 points
    assert res.meta["config"]["input_norm"] is True and "input_norm" not in plain.meta["config"]
    assert not torch.allclose(res.model[1].weight, plain.model[1].weight)


@pytest.mark.parametrize("shape,layer", [((1, 4, 4), "linear"), ((3, 6, 6), "conv")])
def test_fold_input_affine_is_exact(shape, layer):
    from fkd.models import fold_input_affine

    c = shape[0]
    first = torch.nn.Linear(c * 16, 5) if layer == "linear" else torch.nn.Conv2d(c, 4, 3)
    model = torch.nn.Sequential(*([torch.nn.Flatten()] if layer == "linear" else []), first, torch.nn.ReLU())
    mean, std = torch.rand(c, 1, 1), 0.2 + torch.rand(c, 1, 1)
    x = torch.rand(7, *shape)
    with torch.no_grad():
        ref = model((x - mean) / std)
        fold_input_affine(model, 1 / std, -mean / std, shape)
        assert torch.allclose(model(x), ref, atol=1e-5)


def test_fold_input_affine_refuses_a_padded_conv():
    from fkd.models import fold_input_affine

    with pytest.raises(ValueError, match="padding"):
        fold_input_affine(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1)), torch.ones(3, 1, 1),
                          torch.zeros(3, 1, 1), (3, 8, 8))
