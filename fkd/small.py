"""Small teacher-student pairs on which delta* can be computed exactly.

Branch and bound over input splits (``fkd.bounds.exact``) closes the gap between EMPLB and
FAITHUB only where the input has few coordinates. A small pair is the paper's MNIST protocol at a
lower resolution: the images are averaged over ``pool`` x ``pool`` blocks (28 x 28 -> 7 x 7 with
pool 4, values still in [0, 1], eps in those pixel units), the teacher is a 49-32-32-10 MLP trained
by PGD adversarial training, the students 49-16-16-10 MLPs distilled from it by SD or FD with the
paper's MNIST hyper-parameters (``fkd.config``), 20 epochs. Models live in ``zoo/small/<name>/``,
beside their run record, and never in the paper's zoo listing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import Dataset, EpsUnits, Method, model_name, parse
from .data import eval_subset, load_split, to_float
from .models import _mlp, build
from .paths import is_packaged_zoo, user_zoo_dir
from .train_config import train_config
from .zoo import load_from, save_model, with_ext, zoo_dir


@dataclass(frozen=True)
class SmallPair:
    """One small-pair setting: dataset, pooling factor, MLP widths, training eps and epochs."""
    dataset: Dataset = Dataset.MNIST
    pool: int = 4
    teacher_hidden: tuple[int, ...] = (32, 32)
    student_hidden: tuple[int, ...] = (16, 16)
    eps: float = 0.1
    epochs: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", parse(Dataset, self.dataset))
        if self.dataset is Dataset.CIFAR10:
            raise ValueError("small pairs are MLPs on the 28 x 28 datasets; choose mnist or fashion-mnist")
        if 28 % self.pool:
            raise ValueError(f"pool must divide 28 (1, 2, 4, 7, 14, 28), got {self.pool}")

    @property
    def side(self) -> int:
        return 28 // self.pool

    @property
    def name(self) -> str:
        """Directory of the pair under zoo/small, e.g. ``mnist-7x7``."""
        return f"{self.dataset.value}-{self.side}x{self.side}"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, self.side, self.side)

    def architecture(self, method: Method | str) -> list[tuple]:
        hidden = self.teacher_hidden if parse(Method, method) is Method.RT else self.student_hidden
        return _mlp([self.side * self.side, *hidden, 10])

    def stem(self, method: Method | str, root: Path | None = None) -> Path:
        """Path stem of one model of the pair: zoo/small/<pair>/<model name>."""
        method = parse(Method, method)
        alpha = None if method is Method.RT else train_config(self.dataset, method).alpha
        return (root or zoo_dir()) / "small" / self.name / model_name(method, alpha)


def pool_images(images: Tensor, pool: int) -> Tensor:
    """Block means: (N, 1, 28, 28) uint8 or float -> (N, 1, 28/pool, 28/pool) float32 in [0, 1]."""
    return F.avg_pool2d(to_float(images), pool)


def small_data(pair: SmallPair):
    """The pair's training and test tensors (``fkd.train.TrainData``), images pooled."""
    from .train import TrainData

    (tx, ty), (vx, vy) = load_split(pair.dataset, True), load_split(pair.dataset, False)
    return TrainData(pool_images(tx, pair.pool), ty, pool_images(vx, pair.pool), vy)


def small_subset(pair: SmallPair, n: int) -> tuple[Tensor, Tensor, list[int]]:
    """The first n images of the dataset's fixed evaluation subset, pooled: (n, 1, s, s), (n,), ids."""
    x, y, idx = eval_subset(pair.dataset, n=n)
    return pool_images(x, pair.pool), y, idx


def train_small(pair: SmallPair, method: Method | str, checkpoint_dir: Path | str | None = None,
                progress: bool = False, root: Path | None = None) -> nn.Sequential:
    """Train one model of the pair (rt first: the students distil it) and save it under zoo/small.

    Args:
        root: the zoo to save into (None: ``fkd.paths.user_zoo_dir()``: the zoo in a checkout or with
            ``$FKD_ZOO``, else ``~/.cache/fkd/zoo``; the zoo installed with the package is never written).
    Returns:
        The trained eval-mode model.
    """
    from .train import train

    method = parse(Method, method)
    root = Path(root) if root else user_zoo_dir()
    if is_packaged_zoo(root):
        raise ValueError(f"{root} is the zoo installed with the package, which is never written. "
                         f"Fix: pass root= (or set FKD_ZOO to a zoo of your own)")
    cfg = train_config(pair.dataset, method, seed=pair.seed, epochs=pair.epochs, eps_units=EpsUnits.PIXEL,
                       patience=pair.epochs, eps=pair.eps, step_size=pair.eps / 4)
    own = with_ext(pair.stem(Method.RT, root), ".json").exists()  # the teacher: root's, else the zoo's
    teacher = None if method is Method.RT else load_small(pair, Method.RT, root if own else None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(pair.seed)
        init = build(pair.architecture(method))
    result = train(cfg, teacher=teacher, data=small_data(pair), checkpoint_dir=checkpoint_dir,
                   progress=progress, init=init)
    meta = {**result.meta, "small_pair": {**pair.__dict__, "dataset": pair.dataset.value,
                                          "input_shape": list(pair.input_shape)}}
    save_model(result.model, pair.architecture(method), meta, pair.stem(method, root))
    return result.model


def load_small(pair: SmallPair, method: Method | str, root: Path | None = None) -> nn.Sequential:
    """A trained model of the pair from zoo/small (ZooError naming the fix if it is missing)."""
    return load_from(pair.stem(method, root))[0]


#: The shipped small pairs: 7 x 7 MNIST (49 inputs; its programs fit gurobipy's pip licence for the
#: global nonlinear solver at eps up to 0.05-0.1). A 4 x 4 pair (pool 7, 16-16 teacher) was tried:
#: PGD training at eps 0.1 left its teacher at 36.7 % clean accuracy, so it is not shipped.
PAIRS: dict[str, SmallPair] = {p.name: p for p in (SmallPair(pool=4),)}


def get_pair(name: str) -> SmallPair:
    """A shipped small pair by name; ValueError listing the options if it is unknown."""
    if name not in PAIRS:
        raise ValueError(f"unknown small pair {name!r}; choose one of: {', '.join(PAIRS)}")
    return PAIRS[name]
