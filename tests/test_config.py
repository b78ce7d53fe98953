import pytest

from fkd.config import PAPER_HPARAMS, Dataset, Method, Profile, parse
from fkd.train_config import TrainConfig, train_config


def test_parse_aliases_and_enums():
    assert parse(Dataset, "MNIST") is Dataset.MNIST
    assert parse(Dataset, "fmnist") is Dataset.FASHION_MNIST
    assert parse(Dataset, "CIFAR-10") is Dataset.CIFAR10
    assert parse(Method, Method.FD) is Method.FD


@pytest.mark.parametrize("cls,bad", [(Dataset, "svhn"), (Method, "kd"), (Profile, "medium")])
def test_unknown_names_list_the_options(cls, bad):
    with pytest.raises(ValueError) as err:
        parse(cls, bad)
    for member in cls:
        assert member.value in str(err.value)
    assert bad in str(err.value)


@pytest.mark.parametrize("dataset,method", list(PAPER_HPARAMS))
def test_every_paper_row_has_a_config(dataset, method):
    for profile in Profile:
        cfg = train_config(dataset, method, profile=profile)
        T, wd, lr0, lr_min, alpha = PAPER_HPARAMS[(dataset, method)]
        assert (cfg.temperature, cfg.weight_decay, cfg.lr0, cfg.lr_min, cfg.alpha) == (T, wd, lr0, lr_min, alpha)
        assert cfg.steps == 10
    full = train_config(dataset, method)
    assert full.epochs == (128 if dataset is Dataset.CIFAR10 else 64)
    assert full.patience == (12 if dataset is Dataset.CIFAR10 else 8)
    assert full.n_train is None


def test_paper_training_attacks():
    assert train_config("mnist", "fd").eps == 0.2 and train_config("mnist", "fd").step_size == 0.05
    c = train_config("cifar10", "ard")
    assert c.eps == pytest.approx(8 / 255) and c.step_size == pytest.approx(2 / 255)


def test_config_is_frozen_and_validated():
    cfg = train_config("mnist", "sd")
    with pytest.raises(Exception):
        cfg.alpha = 0.1  # type: ignore[misc]
    with pytest.raises(ValueError, match="alpha"):
        train_config("mnist", "sd", alpha=1.5)
    with pytest.raises(ValueError, match="teacher"):
        train_config("mnist", "rt", alpha=0.5)
    with pytest.raises(ValueError, match="eps"):
        train_config("mnist", "rt", eps=2.0)


def test_config_roundtrip_and_fingerprint():
    cfg = train_config("cifar10", "fd", alpha=0.75)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.name == "fd-a0.75"
    assert cfg.fingerprint() != train_config("cifar10", "fd").fingerprint()


def test_eps_labels_read_like_the_paper():
    from fkd.config import PAPER_EPS, eps_label
    assert [eps_label(e) for e in PAPER_EPS[Dataset.MNIST]] == ["0", "0.025", "0.05", "0.1", "0.15", "0.2"]
    assert [eps_label(round(e, 6)) for e in PAPER_EPS[Dataset.CIFAR10]][1:] == [f"{k}/255" for k in (4, 8, 12, 16, 20)]
    assert eps_label(0.0123) == "0.0123"


def test_eps_and_model_names_are_parsed_with_clear_errors():
    from fkd.config import parse_eps, resolve_model
    assert parse_eps("8/255") == pytest.approx(8 / 255) and parse_eps(" 0.1 ") == 0.1
    with pytest.raises(ValueError, match=r"eps must lie in \[0, 1\]"):
        parse_eps("1.5")
    with pytest.raises(ValueError, match="write it as 0.1 or 8/255"):
        parse_eps("eight")
    assert resolve_model("cifar10", "fd") == (Method.FD, 1.0)
    assert resolve_model("mnist", "fd-a0.75") == (Method.FD, 0.75)
    with pytest.raises(ValueError, match="takes no alpha"):
        resolve_model("mnist", "rt-a0.5")
    with pytest.raises(ValueError, match="choose one of: rt, sd, ard, rslad, fd"):
        resolve_model("mnist", "kd")
