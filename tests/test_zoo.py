import hashlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from fkd import load_model
from fkd.config import PAPER_HPARAMS, Dataset, Method
from fkd.train_config import TrainConfig, train_config
from fkd.data import load_split
from fkd.losses import get_method
from fkd.metrics import clean_accuracy
from fkd.models import architecture, make_model
from fkd.zoo import ZooError, list_zoo, load_from, model_path, save_model, strip_ext, with_ext, zoo_dir

SHIPPED = [(d, m) for (d, m) in PAPER_HPARAMS if d is not Dataset.CIFAR10]


def test_save_and_load_roundtrip_without_pickle(tmp_path):
    model = make_model("cifar10", "student")
    stem = tmp_path / "cifar10" / "fd-a0.75"  # the normalised reading's layout
    save_model(model, architecture("cifar10", "student"), {"note": "x"}, stem)
    again, meta = load_from(stem)
    assert meta["note"] == "x" and not again.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])
    raw = with_ext(stem, ".safetensors").read_bytes()
    header = int.from_bytes(raw[:8], "little")
    assert json.loads(raw[8:8 + header])  # a safetensors header, not a pickle
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(model.eval()(x), again(x))
    assert load_model("cifar10", "fd", 0.75, root=tmp_path, units="normalised") is not None
    with pytest.raises(ZooError, match="pixel"):  # the pixel zoo lives in <root>/pixel
        load_model("cifar10", "fd", 0.75, root=tmp_path, units="pixel")


def test_missing_model_says_how_to_get_it(tmp_path):
    with pytest.raises(ZooError, match="python -m fkd train"):
        load_model("mnist", "fd", root=tmp_path)
    with pytest.raises(ValueError, match="rt, sd, ard, rslad, fd"):
        load_model("mnist", "kd")


def test_file_names_keep_the_alpha(tmp_path):
    stem = tmp_path / "fd-a0.5"
    assert with_ext(stem, ".json").name == "fd-a0.5.json"
    assert strip_ext(tmp_path / "fd-a0.5.safetensors") == stem == strip_ext(stem)


def test_paper_alpha_is_the_default_name():
    assert model_path("cifar10", "fd").name == "fd-a1"
    assert model_path("mnist", "fd").name == "fd-a0.5"
    assert model_path("mnist", "rt").name == "rt"


@pytest.mark.parametrize("units", ["normalised", "pixel"])
@pytest.mark.parametrize("dataset,method", SHIPPED)
def test_shipped_model_loads_and_its_recorded_accuracy_is_true(dataset, method, units):
    model = load_model(dataset, method, units=units)
    assert isinstance(model, nn.Sequential) and not model.training
    meta = json.loads(with_ext(model_path(dataset, method, units=units), ".json").read_text())
    assert meta["config"]["eps_units"] == units
    assert meta["config"]["dataset"] == dataset.value and meta["config"]["method"] == method.value
    assert meta["config"]["profile"] == "full"
    # a "full" model was trained with exactly the paper's settings (plus the recorded choices: whether
    # the network trained behind the loader's normalisation)
    assert TrainConfig.from_dict(meta["config"]) == train_config(dataset, method, seed=meta["seed"],
                                                                 eps_units=meta["config"]["eps_units"],
                                                                 input_norm=meta["config"].get("input_norm", False))
    for key in ("seed", "wall_time_s", "epochs_run", "record", "history", "status"):
        assert key in meta
    assert meta["record"]["packages"]["torch"]
    if method is not Method.RT:  # distilled from the zoo teacher of the same reading, byte for byte
        teacher = with_ext(model_path(dataset, "rt", units=units), ".safetensors")
        assert meta["teacher"]["sha256"] == hashlib.sha256(teacher.read_bytes()).hexdigest()
    x, y = load_split(dataset, train=False)
    assert clean_accuracy(model, x, y) == pytest.approx(meta["clean_acc"], abs=0.05)


def _default_std(cfg: dict):
    """The std a zoo model's config records: none, or spelled out, but then the dataset's own
    (``fkd.units.STD``: CIFAR-10's population std), never another convention passed off as the paper's."""
    from fkd.units import STD

    if cfg.get("std") is not None:
        assert tuple(cfg["std"]) == STD[Dataset(cfg["dataset"])]
    return cfg.get("std")


ZOO_STEMS = sorted(p for d in Dataset for p in (Path(__file__).resolve().parent.parent / "zoo" / d.value).glob("*.json"))
LOADER_FREE = sorted((Path(__file__).resolve().parent.parent / "results" / "units" / "zoo-normalised").glob("*/*.json"))


@pytest.mark.parametrize("stem", ZOO_STEMS + LOADER_FREE, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.stem}")
def test_the_normalised_zoos_hold_the_papers_settings_and_their_recorded_accuracy(stem):
    """The normalised reading's zoo (``zoo/<dataset>``: trained behind the normalisation) and the one
    trained on [0, 1] inputs (``results/units/zoo-normalised``): the paper's settings, students
    distilled from their own teacher byte for byte, the recorded clean accuracy true of the saved model."""
    model, meta = load_from(strip_ext(stem))
    cfg = meta["config"]
    behind = stem in ZOO_STEMS
    assert cfg.get("input_norm", False) is behind and cfg["eps_units"] == "normalised" and cfg["profile"] == "full"
    assert TrainConfig.from_dict(cfg) == train_config(cfg["dataset"], cfg["method"], alpha=cfg.get("alpha"),
                                                      seed=meta["seed"], eps_units="normalised", input_norm=behind,
                                                      std=_default_std(cfg))
    if get_method(cfg["method"]).uses_teacher:  # TFKD distils no teacher
        teacher = stem.parent / "rt.safetensors"
        assert meta["teacher"]["sha256"] == hashlib.sha256(teacher.read_bytes()).hexdigest()
    else:
        assert meta["teacher"] is None
    x, y = load_split(cfg["dataset"], train=False)
    assert clean_accuracy(model, x, y) == pytest.approx(meta["clean_acc"], abs=0.05)


def test_zoo_listing_has_every_shipped_model():
    rows = list_zoo()
    names = {(r["dataset"], r["method"]) for r in rows}
    assert {(d.value, m.value) for d, m in SHIPPED} <= names
    for r in rows:
        assert r["profile"] in ("full", "quick") and r["status"]
    assert zoo_dir().name == "zoo"


def test_every_zoo_model_states_honestly_how_its_run_ended():
    """completed: ran every planned epoch; early-stopped: patience spent; partial: stopped short."""
    stems = sorted(zoo_dir().glob("*/*.json")) + sorted(zoo_dir().glob("pixel/*/*.json"))
    assert stems
    for stem in stems:
        meta = json.loads(stem.read_text())
        cfg, run, planned = meta["config"], meta["epochs_run"], meta["epochs_planned"]
        assert (cfg["eps_units"] == "pixel") == (stem.parent.parent.name == "pixel")  # each in its reading's zoo
        if cfg["profile"] == "full":  # never a shortened run passed off as the paper's settings
            assert TrainConfig.from_dict(cfg) == train_config(cfg["dataset"], cfg["method"], alpha=cfg["alpha"],
                                                              seed=cfg["seed"], eps_units=cfg["eps_units"],
                                                              input_norm=cfg.get("input_norm", False),
                                                              std=_default_std(cfg))
        assert planned == cfg["epochs"]
        assert len(meta["history"]) == run and 1 <= meta["best_epoch"] <= run
        assert meta["clean_acc"] == max(h["test_acc"] for h in meta["history"][cfg["eps_warmup_epochs"]:] or
                                        meta["history"][-1:])
        if meta["status"] == "completed":
            assert run == planned
        elif meta["status"] == "early-stopped":
            assert run - max(meta["best_epoch"], cfg["eps_warmup_epochs"]) >= cfg["patience"]
        else:
            assert meta["status"] == "partial" and run < planned


def test_broken_model_files_get_a_clear_error(tmp_path):
    """Broken or incomplete JSON, an extra weight-free layer, truncated weights: a ZooError naming
    the file and the fix, never a raw traceback or a silently different network."""
    import shutil

    src = model_path("mnist", "fd", units="normalised")
    stem = tmp_path / "mnist" / "fd-a0.5"
    stem.parent.mkdir()
    for ext in (".json", ".safetensors"):
        shutil.copyfile(with_ext(src, ext), with_ext(stem, ext))
    meta = json.loads(with_ext(stem, ".json").read_text())
    with_ext(stem, ".json").write_text("{ not json")
    with pytest.raises(ZooError, match="broken or incomplete JSON.*Fix"):
        load_from(stem)
    with_ext(stem, ".json").write_text(json.dumps({k: v for k, v in meta.items() if k != "architecture"}))
    with pytest.raises(ZooError, match="incomplete"):
        load_from(stem)
    extra = {**meta, "architecture": meta["architecture"] + [["relu"]]}
    with_ext(stem, ".json").write_text(json.dumps(extra))
    with pytest.raises(ZooError, match="not the mnist student architecture"):
        load_from(stem)
    with_ext(stem, ".json").write_text(json.dumps(meta))
    weights = with_ext(stem, ".safetensors")
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ZooError, match="unreadable.*Fix"):
        load_from(stem)


def test_a_broken_checkpoint_is_refused_with_the_fix(tmp_path):
    import pickle

    from fkd.train import CHECKPOINT, TrainData, train

    cfg = train_config("mnist", "sd", profile="quick", epochs=1)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    teacher = make_model("mnist", "teacher")
    for content in (b"\x80\x04truncated", pickle.dumps({"fingerprint": object()})):
        (tmp_path / CHECKPOINT).write_bytes(content)
        with pytest.raises(ValueError, match="not a readable training checkpoint.*delete it"):
            train(cfg, teacher=teacher, data=TrainData(x, y, x, y), checkpoint_dir=tmp_path, progress=False)


def test_the_model_cache_follows_the_weights_file(tmp_path, monkeypatch):
    """Another zoo root (FKD_ZOO) or a retrained file is another cache entry, never a stale model."""
    import shutil

    import torch

    from fkd.units import EpsUnits
    from fkd.zoo import cached_model

    shipped = cached_model(Dataset.MNIST, "rt", EpsUnits.PIXEL)
    src = zoo_dir() / "pixel" / "mnist"
    other = tmp_path / "zoo" / "pixel" / "mnist"
    other.mkdir(parents=True)
    for ext in (".json", ".safetensors"):
        shutil.copy(src / f"rt{ext}", other / f"rt{ext}")
    model, meta = load_from(other / "rt")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-1.0)
    save_model(model, meta["architecture"], {k: v for k, v in meta.items() if k != "architecture"}, other / "rt")
    monkeypatch.setenv("FKD_ZOO", str(tmp_path / "zoo"))
    moved = cached_model(Dataset.MNIST, "rt", EpsUnits.PIXEL)
    first = next(moved.parameters())
    assert torch.equal(first, -next(shipped.parameters()))
    monkeypatch.delenv("FKD_ZOO")
    assert cached_model(Dataset.MNIST, "rt", EpsUnits.PIXEL) is shipped
