"""Fixed vocabularies and the frozen training configurations (spec.md, appendices A.1 to A.3).

Every string that names a dataset, method or profile is converted to an enum here, once, at the
entry point; unknown names raise ``ValueError`` listing the options.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TrainConfig:
    """One training run: everything that determines its weights, given the data and the teacher.

    ``eps_warmup_epochs``: the training eps (and step size) ramp linearly from 0 over this many
    epochs. Not in the paper: PGD training at the full eps from the first epoch collapsed the MNIST
    5x30 MLP (eps 0.2) and the CIFAR-10 CNN (8/255) to chance accuracy here; a warm-up fixed both.
    ``batch_size``: not given by the paper; 128 here. ``n_train``: None is the whole training set.
    ``eps_units``: how ``eps`` and ``step_size`` are read (fkd.units); ``std``: the per-channel std
    of the normalised reading, None for the dataset's (``fkd.units.STD``). ``input_norm``: the
    network sees (x - mean) / std while it trains, as behind a data loader that normalises
    (``fkd.units.MEAN``, ``std``); the saved model has it folded into its first layer and takes
    images in [0, 1] like every zoo model.
    """

    dataset: Dataset
    method: Method
    alpha: float | None
    temperature: float | None
    weight_decay: float
    lr0: float
    lr_min: float
    epochs: int
    patience: int
    eps: float
    step_size: float
    steps: int = 10
    eps_warmup_epochs: int = 0
    batch_size: int = 128
    augment: bool = False
    n_train: int | None = None
    momentum: float = 0.9
    seed: int = 0
    profile: Profile = Profile.FULL
    iga_weight: float | None = None
    true_prob: float | None = None
    eps_units: EpsUnits = EpsUnits.NORMALISED
    std: tuple[float, ...] | None = None
    input_norm: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", parse(Dataset, self.dataset))
        object.__setattr__(self, "eps_units", parse(EpsUnits, self.eps_units))
        if self.std is not None:
            if self.eps_units is EpsUnits.PIXEL:
                raise ValueError("std belongs to the normalised reading; a pixel-unit run takes none")
            object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        object.__setattr__(self, "method", parse(Method, self.method))
        object.__setattr__(self, "profile", parse(Profile, self.profile))
        if self.method is Method.RT:
            if self.alpha is not None:
                raise ValueError("alpha is a distillation weight; the robust teacher (rt) takes none")
        elif self.alpha is None or not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1] for {self.method.value}, got {self.alpha}")
        if not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"training eps must lie in [0, 1] ({self.eps_units.value} units), got {self.eps}")
        for key, value in (("iga_weight", self.iga_weight), ("true_prob", self.true_prob)):
            needed = key in RELATED_PARAMS.get(self.method, {})
            if needed != (value is not None):
                raise ValueError(f"{key} is {'required' if needed else 'not used'} by {self.method.value}")
        if self.true_prob is not None and not 0.0 < self.true_prob < 1.0:
            raise ValueError(f"true_prob must lie in (0, 1), got {self.true_prob}")
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1 or self.steps < 0:
            raise ValueError("epochs, patience and batch_size must be positive and steps >= 0")

    @property
    def name(self) -> str:
        """File stem of the run in the zoo: ``rt`` or ``<method>-a<alpha>``."""
        return model_name(self.method, self.alpha)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields; the related methods' parameters, ``std`` and ``input_norm`` only where set
        (so the configs of runs made before them keep their fingerprints)."""
        d = dataclasses.asdict(self)
        return {k: (v.value if isinstance(v, enum.Enum) else list(v) if isinstance(v, tuple) else v)
                for k, v in d.items() if not (k in ("iga_weight", "true_prob", "std") and v is None)
                and not (k == "input_norm" and not v)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        if "eps_units" not in d:
            raise ValueError("a training config without eps_units: say how its eps is read (normalised or pixel)")
        return cls(**{k: tuple(v) if k == "std" and v is not None else v for k, v in d.items()})

    def fingerprint(self) -> str:
        """A short hash of the config, to refuse resuming a checkpoint of a different run."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


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


def train_config(dataset: Dataset | str, method: Method | str, *, profile: Profile | str = Profile.FULL,
                 alpha: float | None = None, seed: int = 0, eps_units: EpsUnits | str = EpsUnits.NORMALISED,
                 **overrides: Any) -> TrainConfig:
    """The config of one (dataset, method) row of spec.md, in the ``quick`` or ``full`` profile.

    Args:
        alpha: overrides the paper's alpha (the CIFAR-10 FD ablation uses 0.5 and 0.75).
        eps_units: how the paper's training eps is read: normalised (the paper's reading, no eps
            warm-up; the network trains behind the loader's normalisation, ``input_norm``, since a
            loader that normalises is what makes eps a normalised radius) or pixel (the earlier
            zoo's reading, with the warm-up it needed, on [0, 1] inputs).
        overrides: any other TrainConfig field (``input_norm=False`` trains the normalised
            reading's network on [0, 1] inputs, as the zoo of ``zoo/<dataset>`` was first trained).
    """
    dataset, method, profile = parse(Dataset, dataset), parse(Method, method), parse(Profile, profile)
    eps_units = parse(EpsUnits, eps_units)
    temperature, wd, lr0, lr_min, paper_alpha = hparams(dataset, method)
    eps, step = TRAIN_ATTACK[dataset]
    epochs, patience = PAPER_EPOCHS[dataset]
    adversarial = method not in (Method.SD, Method.KDIGA)  # the methods without an inner maximisation
    # eps warm-up (not in the paper) in the pixel reading only: there PGD training at the full eps
    # from the first epoch collapsed the MNIST MLP and the CIFAR-10 CNN to chance accuracy; under
    # the normalised reading (radii 0.31x to 0.35x as large) they train without one
    pixel_warmup = {Dataset.MNIST: 5, Dataset.FASHION_MNIST: 0, Dataset.CIFAR10: 10}[dataset]
    warmup = pixel_warmup if adversarial and eps_units is EpsUnits.PIXEL else 0
    n_train = None
    if profile is Profile.QUICK:
        epochs, patience = (2, 2) if dataset is Dataset.CIFAR10 else (4, 4)
        n_train = 5000 if dataset is Dataset.CIFAR10 else None
        warmup = min(warmup, 2)
    fields: dict[str, Any] = dict(
        dataset=dataset, method=method, alpha=(alpha if alpha is not None else paper_alpha),
        temperature=temperature, weight_decay=wd, lr0=lr0, lr_min=lr_min, epochs=epochs,
        patience=patience, eps=eps, step_size=step, eps_warmup_epochs=warmup,
        augment=dataset is Dataset.CIFAR10, n_train=n_train, seed=seed, profile=profile,
        eps_units=eps_units, input_norm=eps_units is EpsUnits.NORMALISED, **RELATED_PARAMS.get(method, {}))
    fields.update(overrides)
    return TrainConfig(**fields)
