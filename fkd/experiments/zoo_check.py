"""The zoo's models measured again: clean accuracy on the whole test set and PGD-20 robust accuracy."""
from __future__ import annotations

from pathlib import Path

import torch

from fkd.config import TRAIN_ATTACK, Dataset, parse
from fkd.data import eval_subset, load_split
from fkd.metrics import clean_accuracy, robust_accuracy
from fkd.units import radius
from fkd.zoo import load_model


def measure_zoo(rows: list[dict], root: Path | None = None) -> list[dict]:
    """Add ``clean_acc_now`` (whole test set), ``train_eps`` and ``robust_acc_pgd20`` (PGD-20 at the
    training eps on the fixed subset) to each ``fkd.zoo.list_zoo`` row, in place.

    Returns:
        The rows.
    """
    for r in rows:
        model = load_model(r["dataset"], r["method"], r["alpha"], root, r["units"])
        x, y = load_split(r["dataset"], train=False)
        r["clean_acc_now"] = round(clean_accuracy(model, x, y), 2)
        eps = TRAIN_ATTACK[parse(Dataset, r["dataset"])][0]
        xs, ys, _ = eval_subset(r["dataset"])
        r["train_eps"] = round(eps, 4)
        r["robust_acc_pgd20"] = round(robust_accuracy(model, xs, ys, radius(eps, r["units"], r["dataset"]), steps=20,
                                                      restarts=1, generator=torch.Generator().manual_seed(0)), 1)
    return rows
