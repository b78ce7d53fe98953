"""What an eps means: the two readings of the paper's radii and the one place that turns
(eps, units, dataset) into the pixel radius every attack, bound and figure works with.

The networks take images in [0, 1] (no normalisation layer). A radius eps is read either

- ``normalised`` (the project's default, the paper's reading): eps bounds the perturbation of the
  normalised input (x - mean) / std, as a training script that normalises in its data loader
  applies it; on pixels that is eps * std per channel;
- ``pixel``: eps bounds the perturbation of the pixel values in [0, 1] directly.

A pixel radius is a Python float where every channel has the same one (MNIST, Fashion-MNIST, and
any dataset in pixel units), else a float32 tensor shaped (C, 1, 1) that broadcasts against images
(C, H, W) and batches (..., C, H, W). ``positive``, ``scaled`` and ``as_tensor`` work on both.
"""
from __future__ import annotations

import enum
import math
from typing import Union

import torch
from torch import Tensor

from .config import Dataset, EpsUnits, parse

#: A pixel radius: one float for all channels, or a (C, 1, 1) float32 tensor, one per channel.
Radius = Union[float, Tensor]


#: Per-channel standard deviation of each training set, the ``std`` of the normalisation
#: (x - mean) / std that the normalised reading assumes. MNIST 0.3081 and Fashion-MNIST 0.3530 are
#: the usual constants (recomputed from the training sets in tests/test_units.py). CIFAR-10 has two
#: conventions in common use; ``CIFAR10_STD`` names both and ``STD`` holds the one measured to
#: reproduce the paper's CIFAR-10 teacher (results/units/README.md).
CIFAR10_STD = {
    "population": (0.2470, 0.2435, 0.2616),  # the training set's per-channel std
    "kuangliu": (0.2023, 0.1994, 0.2010),    # pytorch-cifar's constants (a per-image mean of stds)
}
STD: dict[Dataset, tuple[float, ...]] = {
    Dataset.MNIST: (0.3081,),
    Dataset.FASHION_MNIST: (0.3530,),
    Dataset.CIFAR10: CIFAR10_STD["population"],
}

#: Per-channel mean of each training set: with ``std``, the normalisation (x - mean) / std that a
#: training script applies in its data loader (``TrainConfig.input_norm``).
MEAN: dict[Dataset, tuple[float, ...]] = {
    Dataset.MNIST: (0.1307,),
    Dataset.FASHION_MNIST: (0.2860,),
    Dataset.CIFAR10: (0.4914, 0.4822, 0.4465),
}

class Reading(str, enum.Enum):
    """How a zoo was trained and its runs made, as read from the paper's radii: eps in pixel units;
    eps in normalised units on a network that takes [0, 1] images (``normalised``); eps in normalised
    units on a network trained behind the data loader's normalisation (``input-norm``, the paper's
    setting as its hyper-parameters reproduce best; the saved model has the normalisation folded in)."""
    PIXEL = "pixel"
    NORMALISED = "normalised"
    INPUT_NORM = "input-norm"

    @property
    def units(self) -> EpsUnits:
        """The units of eps under this reading."""
        return EpsUnits.PIXEL if self is Reading.PIXEL else EpsUnits.NORMALISED


#: The reading of each dataset's published runs (``results/<kind>/<dataset>``) and of the zoo the
#: book, the CLI and ``load_model`` use unless told otherwise. A dataset switches once its zoo of
#: that reading is complete and every one of its published runs is remade under it; the runs of its
#: other readings stay beside them (``fkd.paths.reading_runs``).
PUBLISHED: dict[Dataset, Reading] = {
    Dataset.MNIST: Reading.INPUT_NORM,
    Dataset.FASHION_MNIST: Reading.INPUT_NORM,
    Dataset.CIFAR10: Reading.INPUT_NORM,
}
#: The units of eps of each dataset's published reading.
DEFAULT_UNITS: dict[Dataset, EpsUnits] = {d: r.units for d, r in PUBLISHED.items()}


def published_reading(dataset: Dataset | str) -> Reading:
    """The reading of ``dataset``'s published runs and default zoo (``PUBLISHED``)."""
    return PUBLISHED[parse(Dataset, dataset)]


def default_units(dataset: Dataset | str) -> EpsUnits:
    """The reading of ``dataset``'s shipped zoo and published runs (``DEFAULT_UNITS``)."""
    return DEFAULT_UNITS[parse(Dataset, dataset)]


def resolve_units(units: EpsUnits | str | None, dataset: Dataset | str) -> EpsUnits:
    """``units`` as an enum; None is the dataset's default reading."""
    return default_units(dataset) if units is None else parse(EpsUnits, units)


def radius(eps: float, units: EpsUnits | str, dataset: Dataset | str | None,
           std: tuple[float, ...] | None = None) -> Radius:
    """The pixel radius of ``eps`` read in ``units`` on ``dataset``.

    Args:
        eps: the nominal radius, >= 0, in ``units``.
        dataset: None for images of no known dataset (a user's own; normalised units then need ``std``).
        std: per-channel std of the normalisation (default ``STD[dataset]``); only with normalised.

    Returns:
        A float (one radius for all channels) or a float32 tensor (C, 1, 1) of per-channel radii.
    """
    units = parse(EpsUnits, units)
    dataset = None if dataset is None else parse(Dataset, dataset)
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if units is EpsUnits.PIXEL:
        if std is not None:
            raise ValueError("std is the normalisation of the normalised reading; pixel radii take none")
        return float(eps)
    if std is None and dataset is None:
        raise ValueError("eps in normalised units on images of no known dataset needs their std (--std)")
    std = tuple(STD[dataset] if std is None else std)
    if not std or any(not (s > 0) for s in std):
        raise ValueError(f"std must be positive per channel, got {std}")
    if len(set(std)) == 1:
        return float(eps) * std[0]
    return torch.tensor([float(eps) * s for s in std], dtype=torch.float32).view(-1, 1, 1)


def channels(r: Radius) -> tuple[float, ...]:
    """The per-channel pixel radii of ``r`` as floats (one value where all channels share it)."""
    if isinstance(r, Tensor):
        return tuple(float(v) for v in r.reshape(-1))
    return (float(r),)


def pixel_label(r: Radius) -> str:
    """``r`` for a CSV cell or a record: ``0.0616`` or ``0.00969;0.00955;0.01026`` per channel."""
    return ";".join(f"{v:.6g}" for v in channels(r))


def positive(r: Radius) -> bool:
    """Whether the ball has any extent (some channel's radius > 0)."""
    return max(channels(r)) > 0


def scaled(r: Radius, factor: float) -> Radius:
    """``factor * r`` (a step size from a radius, a warm-up ramp), keeping the radius' type."""
    return r * factor if isinstance(r, Tensor) else float(r) * factor


def check_radius(r: Radius) -> None:
    """ValueError unless every channel's radius is finite and >= 0."""
    vals = channels(r)
    if not all(math.isfinite(v) and v >= 0 for v in vals):
        raise ValueError(f"eps (the pixel radius) must be finite and >= 0 per channel, got {pixel_label(r)}")


def as_tensor(r: Radius, like: Tensor) -> Tensor:
    """``r`` as a tensor of ``like``'s dtype and device that broadcasts against ``like`` (..., C, H, W)."""
    if isinstance(r, Tensor):
        if like.dim() < 3 or r.numel() != like.shape[-3]:
            raise ValueError(f"a radius of {r.numel()} channels does not fit inputs shaped {tuple(like.shape)}")
        return r.to(like.device, like.dtype).view(-1, 1, 1)
    return torch.tensor(float(r), dtype=like.dtype, device=like.device)
