"""Fixed vocabularies, the paper's and our hyper-parameters, and zoo names (spec.md, appendices A.1 to A.3).

Every string that names a dataset, method or profile is converted to an enum here, once, at the
entry point; unknown names raise ``ValueError`` listing the options. A training run's frozen
config is ``fkd.train_config``.
"""
from __future__ import annotations

import enum
from typing import Any, TypeVar

E = TypeVar("E", bound=enum.Enum)


class Dataset(str, enum.Enum):
    MNIST = "mnist"
    FASHION_MNIST = "fashion-mnist"
    CIFAR10 = "cifar10"


class Method(str, enum.Enum):
    RT = "rt"        # robust teacher: Madry adversarial training
    SD = "sd"        # standard distillation (eq. 1)
    ARD = "ard"      # adversarially robust distillation (eq. 4)
    RSLAD = "rslad"  # robust soft label adversarial distillation (eq. 5)
    FD = "fd"        # faithful distillation (eq. 12)
    # related methods (not in the paper; our hyper-parameters in RELATED_HPARAMS)
    KDIGA = "kdiga"    # distillation + input-gradient alignment (Shao et al. 2021)
    TFKD = "tfkd"      # adversarial teacher-free distillation, manually designed virtual teacher
    FDBOTH = "fdboth"  # FD with a KL (not CE) term at the clean point: KL at both points


class EpsUnits(str, enum.Enum):
    """How a radius eps is read (fkd.units): on the normalised input (x - mean) / std, the paper's
    reading, or on the pixels in [0, 1]."""
    NORMALISED = "normalised"
    PIXEL = "pixel"


class Domain(str, enum.Enum):
    """The set EMPLB searches and FAITHUB bounds: the l-inf ball intersected with the valid images
    [0, 1] (spec.md), or the plain ball (a verifier on normalised inputs rarely carries the box)."""
    CLAMPED = "clamped"
    PLAIN = "plain"


class Profile(str, enum.Enum):
    QUICK = "quick"  # minutes on a laptop CPU
    FULL = "full"    # the paper's settings


def parse(cls: type[E], value: Any) -> E:
    """Convert ``value`` to the enum ``cls``; ValueError listing the options if it is unknown."""
    if isinstance(value, cls):
        return value
    aliases = {"fmnist": "fashion-mnist", "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
               "cifar-10": "cifar10", "cifar_10": "cifar10"}
    key = str(value).strip().lower()
    key = aliases.get(key, key)
    for member in cls:
        if member.value == key:
            return member
    options = ", ".join(m.value for m in cls)
    raise ValueError(f"unknown {cls.__name__.lower()} {value!r}; choose one of: {options}")


#: The training attack of each dataset (appendices A.1 to A.3): (eps, step size).
TRAIN_ATTACK = {
    Dataset.MNIST: (0.2, 0.05),
    Dataset.FASHION_MNIST: (8 / 255, 2 / 255),
    Dataset.CIFAR10: (8 / 255, 2 / 255),
}

#: spec.md's hyper-parameter table: (T, weight decay, lr0, lr_min, alpha).
PAPER_HPARAMS: dict[tuple[Dataset, Method], tuple[float | None, float, float, float, float | None]] = {
    (Dataset.MNIST, Method.RT): (None, 0.002, 0.04, 0.04 / 32, None),
    (Dataset.MNIST, Method.SD): (4, 0.001, 0.04, 0.04 / 16, 0.5),
    (Dataset.MNIST, Method.ARD): (2, 0.001, 0.04, 0.04 / 32, 0.5),
    (Dataset.MNIST, Method.RSLAD): (2, 0.001, 0.04, 0.04 / 32, 0.5),
    (Dataset.MNIST, Method.FD): (2, 0.001, 0.04, 0.04 / 16, 0.5),
    (Dataset.FASHION_MNIST, Method.RT): (None, 0.002, 0.04, 0.04 / 32, None),
    (Dataset.FASHION_MNIST, Method.SD): (4, 0.0, 0.01, 0.01 / 32, 0.5),
    (Dataset.FASHION_MNIST, Method.ARD): (2, 0.001, 0.01, 0.01 / 8, 0.5),
    (Dataset.FASHION_MNIST, Method.RSLAD): (2, 0.0, 0.02, 0.02 / 32, 0.5),
    (Dataset.FASHION_MNIST, Method.FD): (2, 0.001, 0.02, 0.02 / 32, 0.5),
    (Dataset.CIFAR10, Method.RT): (None, 0.001, 0.1, 0.01 / 32, None),
    (Dataset.CIFAR10, Method.SD): (2, 0.001, 0.1, 0.1 / 32, 0.5),
    (Dataset.CIFAR10, Method.ARD): (2, 0.001, 0.1, 0.1 / 32, 0.5),
    (Dataset.CIFAR10, Method.RSLAD): (2, 0.0, 0.1, 0.1 / 16, 0.5),
    (Dataset.CIFAR10, Method.FD): (2, 0.0, 0.1, 0.1 / 32, 1.0),
}

#: Our choices for the related methods (KDIGA, TFKD, FDBOTH), NOT the paper's: same layout as PAPER_HPARAMS.
#: lr and weight decay are FD's of each dataset; KDIGA's T and alpha are FD's (its KL is SD's, at the
#: clean point); TFKD's T = 20 softens the virtual teacher (the notes give no value) and its alpha
#: weighs the virtual-teacher KL against the adversarial CE; FDBOTH is FD's row (on CIFAR-10, alpha 1,
#: it equals FD, so it is not trained there).
RELATED_HPARAMS: dict[tuple[Dataset, Method], tuple[float | None, float, float, float, float | None]] = {
    **{(d, m): (2, 0.001, 0.04, 0.04 / 16, 0.5) for d, m in
       [(Dataset.MNIST, Method.KDIGA), (Dataset.MNIST, Method.FDBOTH)]},
    (Dataset.MNIST, Method.TFKD): (20, 0.001, 0.04, 0.04 / 16, 0.5),
    **{(d, m): (2, 0.001, 0.02, 0.02 / 32, 0.5) for d, m in
       [(Dataset.FASHION_MNIST, Method.KDIGA), (Dataset.FASHION_MNIST, Method.FDBOTH)]},
    (Dataset.FASHION_MNIST, Method.TFKD): (20, 0.001, 0.02, 0.02 / 32, 0.5),
    (Dataset.CIFAR10, Method.KDIGA): (2, 0.0, 0.1, 0.1 / 32, 0.5),
    (Dataset.CIFAR10, Method.TFKD): (20, 0.0, 0.1, 0.1 / 32, 0.5),
}

#: Method-specific parameters of the related methods (our choices): KDIGA's weight of the
#: input-gradient alignment ||grad_x CE(f_s(x), y) - grad_x CE(f_t(x), y)||_2 and TFKD's virtual
#: teacher probability of the true class (the notes: a in [0.9, 1]).
RELATED_PARAMS: dict[Method, dict[str, float]] = {
    Method.KDIGA: {"iga_weight": 1.0},
    Method.TFKD: {"true_prob": 0.9},
}


def hparams(dataset: Dataset, method: Method) -> tuple[float | None, float, float, float, float | None]:
    """(T, weight decay, lr0, lr_min, alpha) of a (dataset, method): the paper's, else our related row."""
    key = (parse(Dataset, dataset), parse(Method, method))
    row = PAPER_HPARAMS.get(key) or RELATED_HPARAMS.get(key)
    if row is None:
        raise ValueError(f"{key[1].value} has no hyper-parameters on {key[0].value}")
    return row


#: The evaluation eps grid of section 6 (nominal radii, read in fkd.units.EpsUnits), with eps = 0 (clean) first as in Table 1.
PAPER_EPS = {
    Dataset.MNIST: (0.0, 0.025, 0.05, 0.1, 0.15, 0.2),
    Dataset.FASHION_MNIST: (0.0, *(k / 255 for k in (4, 8, 12, 16, 20))),
    Dataset.CIFAR10: (0.0, *(k / 255 for k in (4, 8, 12, 16, 20))),
}


def parse_eps(text: str) -> float:
    """A nominal radius from "0.1" or "8/255" (its units are given beside it); ValueError outside [0, 1]."""
    try:
        num, _, den = str(text).strip().partition("/")
        eps = float(num) / (float(den) if den else 1.0)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"cannot read eps {text!r}; write it as 0.1 or 8/255") from None
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must lie in [0, 1], got {text!r}")
    return eps


def eps_label(eps: float) -> str:
    """The paper's label of a radius: the decimal when it is short (0.025), else k/255 (8/255)."""
    k = eps * 255
    short = f"{eps:g}"
    return f"{round(k)}/255" if len(short) > 6 and abs(k - round(k)) < 1e-3 else short  # eps may be rounded


#: (max epochs, early-stopping patience) of the full profile (appendices A.1 to A.3).
PAPER_EPOCHS = {Dataset.MNIST: (64, 8), Dataset.FASHION_MNIST: (64, 8), Dataset.CIFAR10: (128, 12)}


def model_name(method: Method | str, alpha: float | None) -> str:
    method = parse(Method, method)
    return "rt" if method is Method.RT else f"{method.value}-a{alpha:g}"


def resolve_model(dataset: Dataset | str, name: str) -> tuple[Method, float | None]:
    """(method, alpha) of a zoo model named ``rt``, ``fd`` (the paper's alpha) or ``fd-a0.75``."""
    dataset = parse(Dataset, dataset)
    head, sep, tail = str(name).strip().lower().partition("-a")
    method = parse(Method, head)
    if method is Method.RT:
        if sep:
            raise ValueError(f"the robust teacher takes no alpha: write 'rt', not {name!r}")
        return method, None
    if not sep:
        return method, hparams(dataset, method)[4]
    try:
        alpha = float(tail)
    except ValueError:
        raise ValueError(f"cannot read alpha in {name!r}; write e.g. fd-a0.5") from None
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {name!r}")
    return method, alpha
