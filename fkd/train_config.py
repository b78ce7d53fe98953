"""A training run's frozen config (``TrainConfig``) and spec.md's recipe for one row (``train_config``).

The hyper-parameter tables they read (appendices A.1 to A.3) live in ``fkd.config``.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .config import (PAPER_EPOCHS, RELATED_PARAMS, TRAIN_ATTACK, Dataset, EpsUnits, Method, Profile, hparams,
                     model_name, parse)


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
