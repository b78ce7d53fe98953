"""Datasets: data-directory resolution, torchvision loading, the fixed evaluation subsets.

The data directory (``fkd.paths.data_dir``) is ``$FKD_DATA``, else the checkout's git-ignored
``data/``, else (installed from a wheel) ``~/.cache/fkd/data``. It is filled from the read-only
offline copies in ``../shared/data`` when they exist (MNIST and Fashion-MNIST are copied, CIFAR-10
is linked; nothing is ever written into ``../shared``), and otherwise torchvision downloads. Images
are returned as float tensors in [0, 1], shape (N, C, H, W).
"""
from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path

import torch
from torch import Tensor

from .config import Dataset, parse
from .paths import ROOT as REPO, SUBSETS as SUBSET_DIR, data_dir, shared_data_candidates
#: Size of the fixed evaluation subsets (spec.md, "Evaluation protocol").
EVAL_SUBSET_SIZE = {Dataset.MNIST: 1000, Dataset.FASHION_MNIST: 1000, Dataset.CIFAR10: 100}
EVAL_SUBSET_SEED = 0
_TV_FOLDER = {Dataset.MNIST: "MNIST", Dataset.FASHION_MNIST: "FashionMNIST",
              Dataset.CIFAR10: "cifar-10-batches-py"}


class DataError(RuntimeError):
    """A dataset is missing or corrupt; the message names the dataset, the place and the fix."""


def shared_data_dir() -> Path | None:
    """The read-only offline copy, if there is one: ``$FKD_SHARED_DATA`` when set (set it empty to
    use none), else ``../shared/data`` beside the repository or the working directory."""
    for c in shared_data_candidates():
        if c and Path(c).is_dir():
            return Path(c).resolve()
    return None


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tv_class(dataset: Dataset):
    from torchvision import datasets as tvd
    return {Dataset.MNIST: tvd.MNIST, Dataset.FASHION_MNIST: tvd.FashionMNIST,
            Dataset.CIFAR10: tvd.CIFAR10}[dataset]


def _fill(dataset: Dataset, root: Path) -> None:
    """Copy (MNIST, Fashion-MNIST) or link (CIFAR-10) the offline files into ``root``."""
    shared = shared_data_dir()
    if shared is None or shared == root:
        return
    src = shared / _TV_FOLDER[dataset]
    if dataset is Dataset.CIFAR10:
        dst = root / _TV_FOLDER[dataset]
        dst.mkdir(parents=True, exist_ok=True)
        for f in src.glob("*"):
            if not (dst / f.name).exists():
                (dst / f.name).symlink_to(f)
        return
    src, dst = src / "raw", root / _TV_FOLDER[dataset] / "raw"
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.gz"):
        if not (dst / f.name).exists():
            shutil.copyfile(f, dst / f.name)


def _check_gz(dataset: Dataset, root: Path) -> None:
    """Verify the MNIST-style .gz files that are present against torchvision's MD5 list."""
    raw = root / _TV_FOLDER[dataset] / "raw"
    for filename, md5 in _tv_class(dataset).resources:
        path = raw / filename
        if path.exists() and _md5(path) != md5:
            raise DataError(
                f"{dataset.value}: {path} is corrupt (MD5 {_md5(path)}, expected {md5}). "
                f"Fix: delete it and run again, so that it is copied from ../shared/data "
                f"or downloaded afresh.")


@functools.lru_cache(maxsize=6)
def load_split(dataset: Dataset | str, train: bool) -> tuple[Tensor, Tensor]:
    """Load one split as uint8 images (N, C, H, W) and int64 labels (N,), cached per process."""
    dataset = parse(Dataset, dataset)
    root = data_dir()
    root.mkdir(parents=True, exist_ok=True)
    _fill(dataset, root)
    cls = _tv_class(dataset)
    try:
        if dataset is Dataset.CIFAR10:
            try:
                ds = cls(str(root), train=train, download=False)
            except RuntimeError:
                ds = cls(str(root), train=train, download=True)
            images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        else:
            _check_gz(dataset, root)
            ds = cls(str(root), train=train, download=True)
            images = ds.data.unsqueeze(1).contiguous()
        labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    except DataError:
        raise
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, ValueError...
        raise DataError(
            f"{dataset.value} ({'train' if train else 'test'} split) could not be loaded from "
            f"{root / _TV_FOLDER[dataset]}: {type(exc).__name__}: {exc}. Fix: put the official files "
            f"there (or set FKD_DATA to a folder that has them, or place ../shared/data beside the "
            f"repository), or allow torchvision to download them; delete a corrupt copy first."
        ) from exc
    expected = 60000 if dataset is not Dataset.CIFAR10 else 50000
    n = expected if train else 10000
    if images.shape[0] != n or labels.shape[0] != n:
        raise DataError(f"{dataset.value}: expected {n} images in {root}, found {images.shape[0]}; "
                        f"the copy is incomplete. Fix: delete {root / _TV_FOLDER[dataset]} and run again.")
    return images, labels


def to_float(images: Tensor) -> Tensor:
    """uint8 images (0..255) -> float32 in [0, 1]; float images -> float32 unchanged in value."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    return images.to(torch.float32)


def make_eval_subset(dataset: Dataset | str, n: int | None = None, seed: int = EVAL_SUBSET_SEED) -> list[int]:
    """Draw the fixed evaluation subset: ``n`` distinct test indices from a seeded generator."""
    dataset = parse(Dataset, dataset)
    n = EVAL_SUBSET_SIZE[dataset] if n is None else n
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(10000, generator=g)[:n].tolist()


def subset_path(dataset: Dataset | str) -> Path:
    return SUBSET_DIR / f"{parse(Dataset, dataset).value}.json"


def eval_indices(dataset: Dataset | str) -> list[int]:
    """The saved test-set indices of the fixed evaluation subset (same images in every run)."""
    path = subset_path(dataset)
    if not path.exists():
        raise DataError(f"{path} is missing; it is part of the package. Fix: restore it from git "
                        f"(git checkout -- {path.relative_to(REPO)}), or reinstall the package.")
    return json.loads(path.read_text())["indices"]


def eval_subset(dataset: Dataset | str, n: int | None = None) -> tuple[Tensor, Tensor, list[int]]:
    """The first ``n`` images of the fixed evaluation subset.

    Returns:
        x: float images (n, C, H, W) in [0, 1]; y: labels (n,); the test-set indices.
    """
    idx = eval_indices(dataset)
    if n is not None:
        if not 0 < n <= len(idx):
            raise ValueError(f"n must lie in 1..{len(idx)} for {parse(Dataset, dataset).value}, got {n}")
        idx = idx[:n]
    images, labels = load_split(dataset, train=False)
    t = torch.as_tensor(idx)
    return to_float(images[t]), labels[t], idx


def write_eval_subsets() -> None:
    """Regenerate the committed subset files (run once; the files are then the source of truth)."""
    SUBSET_DIR.mkdir(exist_ok=True)
    for d in Dataset:
        body = {"dataset": d.value, "split": "test", "seed": EVAL_SUBSET_SEED,
                "generator": "torch.randperm(10000, generator=torch.Generator().manual_seed(seed))[:n]",
                "indices": make_eval_subset(d)}
        subset_path(d).write_text(json.dumps(body) + "\n")
