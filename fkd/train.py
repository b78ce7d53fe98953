"""The resumable trainer: robust teacher (Madry) and distilled students (SD, ARD, RSLAD, FD; KDIGA, TFKD, FDBOTH).

SGD with momentum, one cosine cycle lr0 -> lr_min over ``cfg.epochs``, early stopping on clean
test accuracy with ``cfg.patience`` (the paper selects on the test set; so do we, and say so), a
checkpoint after every epoch, and exact resumption: the randomness of epoch e (shuffling, PGD
random starts, augmentation) comes from a generator seeded by (seed, e), so a run killed after
epoch e and resumed ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .attacks import pgd
from .config import Dataset, Method
from .data import load_split, to_float
from .losses import Logits, get_method, input_gradient
from .metrics import clean_accuracy
from .models import INPUT_SHAPE, architecture, build, fold_input_affine
from .provenance import record
from .train_config import TrainConfig
from .units import MEAN, STD, Radius, positive, radius, scaled

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainData:
    """Training and test tensors: uint8 or float images (N, C, H, W), int64 labels (N,)."""
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor

    @classmethod
    def load(cls, dataset: Dataset, n_train: int | None = None) -> "TrainData":
        tx, ty = load_split(dataset, train=True)
        if n_train is not None:
            tx, ty = tx[:n_train], ty[:n_train]
        vx, vy = load_split(dataset, train=False)
        return cls(tx, ty, vx, vy)


@dataclass
class TrainResult:
    model: nn.Sequential
    meta: dict[str, Any] = field(default_factory=dict)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _augment(x: Tensor, g: torch.Generator) -> Tensor:
    """Random horizontal flip and random 32x32 crop of the 4-pixel zero-padded image."""
    n = x.shape[0]
    flip = torch.rand(n, generator=g) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1).to(x.device), x.flip(-1), x)
    padded = F.pad(x, (4, 4, 4, 4))
    off = torch.randint(0, 9, (n, 2), generator=g).tolist()
    h, w = x.shape[-2:]
    return torch.stack([padded[i, :, a:a + h, b:b + w] for i, (a, b) in enumerate(off)])


class Normalised(nn.Module):
    """``model`` behind the data loader's normalisation: forward(x) = model((x - mean) / std), x in [0, 1]."""

    def __init__(self, model: nn.Module, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.model((x - self.mean) / self.std)


def _normalisation(cfg: TrainConfig) -> tuple[Tensor, Tensor]:
    """(mean, std) of ``cfg.input_norm``, each (C, 1, 1)."""
    std = cfg.std or STD[cfg.dataset]
    return torch.tensor(MEAN[cfg.dataset]).view(-1, 1, 1), torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)


def _init_model(cfg: TrainConfig) -> nn.Sequential:
    role = "teacher" if cfg.method is Method.RT else "student"
    with torch.random.fork_rng(devices=[]):  # no global side effect: init from the run's seed
        torch.manual_seed(cfg.seed)
        return build(architecture(cfg.dataset, role))


def train_step(cfg: TrainConfig, student: nn.Module, teacher: nn.Module | None, x: Tensor, y: Tensor,
               eps: Radius, step_size: Radius, g: torch.Generator) -> Tensor:
    """One batch: the method's inner maximisation (PGD), then its loss. Returns the loss (scalar).

    Args:
        eps, step_size: the attack's pixel radius and step (floats, or (C, 1, 1) per channel).
    """
    spec = get_method(cfg.method)
    t_clean = s_clean = s_grad = t_grad = None
    if "teacher_grad" in spec.needs:  # KDIGA: input gradients of CE, the student's for a double backward
        t_clean, t_grad = input_gradient(teacher, x, y, create_graph=False)
        s_clean, s_grad = input_gradient(student, x, y, create_graph=True)
    elif "teacher_clean" in spec.needs:
        with torch.no_grad():
            t_clean = teacher(x)
    x_adv = None
    objective = spec.objective(student, teacher, y, t_clean)
    if objective is not None:
        if positive(eps):
            x_adv, _ = pgd(objective, x, eps, steps=cfg.steps, step_size=step_size, generator=g, keep="last")
        else:
            x_adv = x
    t_adv = None
    if "teacher_adv" in spec.needs:
        with torch.no_grad():
            t_adv = teacher(x_adv)
    if s_clean is None and "student_clean" in spec.needs:
        s_clean = student(x)
    z = Logits(student_clean=s_clean, student_adv=student(x_adv) if "student_adv" in spec.needs else None,
               teacher_clean=t_clean, teacher_adv=t_adv, student_grad=s_grad, teacher_grad=t_grad)
    return spec.loss_of(z, y, cfg)


def _patience_spent(cfg: TrainConfig, state: dict[str, Any]) -> bool:
    """No improvement of the best test accuracy for ``cfg.patience`` epochs after the warm-up."""
    since = max(state["best_epoch"], cfg.eps_warmup_epochs)
    return state["best_epoch"] > 0 and state["epoch"] - since >= cfg.patience


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a kill mid-write leaves the previous checkpoint intact


def train(cfg: TrainConfig, *, teacher: nn.Module | None = None, data: TrainData | None = None,
          checkpoint_dir: Path | str | None = None, device: str | torch.device = "cpu",
          progress: bool = True, on_epoch_end: Callable[[int, dict], None] | None = None,
          channels_last: bool | None = None, time_budget_s: float | None = None,
          init: nn.Sequential | None = None) -> TrainResult:
    """Train one model by ``cfg``; resume from ``checkpoint_dir`` if it holds a checkpoint of this run.

    Args:
        teacher: the frozen robust teacher (needed by every method except ``rt``).
        data: training and test tensors; loaded from the data directory if None.
        on_epoch_end: called with (epoch, history row) after each epoch's checkpoint is written.
        channels_last: NHWC memory format, a speed setting (+10 to 15 % on the CIFAR-10 CNN in
            benchmarks/train_throughput.py); None turns it on for models with a Conv2d.
        time_budget_s: stop after the first epoch that ends past this many seconds of this call; the
            result is marked ``status="partial"`` and calling again with the same checkpoint resumes.
        init: the freshly initialised model to train (not modified); None builds the dataset's
            architecture from ``cfg.seed`` (the small pairs of ``fkd.small`` pass their own).

    Returns:
        The best-test-accuracy model (eval mode, on CPU) and its metadata.
    """
    device = torch.device(device)
    spec = get_method(cfg.method)
    if spec.uses_teacher and teacher is None:
        raise ValueError(f"{cfg.method.value} distils a teacher: pass teacher= (the zoo's is fkd.load_model"
                         f"({cfg.dataset.value!r}, 'rt'))")
    data = data or TrainData.load(cfg.dataset, cfg.n_train)
    if cfg.n_train is not None and data.train_x.shape[0] > cfg.n_train:
        data = TrainData(data.train_x[:cfg.n_train], data.train_y[:cfg.n_train], data.test_x, data.test_y)
    model = _init_model(cfg) if init is None else copy.deepcopy(init)
    if channels_last is None:
        channels_last = any(isinstance(m, nn.Conv2d) for m in model.modules())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    if teacher is not None:
        teacher = copy.deepcopy(teacher).to(device, memory_format=fmt).eval().requires_grad_(False)
    net = Normalised(model, *(t.to(device) for t in _normalisation(cfg))) if cfg.input_norm else model
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr0, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.lr_min)
    state: dict[str, Any] = {"epoch": 0, "best_acc": -1.0, "best_epoch": 0, "best_state": None,
                             "history": [], "wall_time_s": 0.0}
    ckpt = None
    if checkpoint_dir is not None:
        ckpt = Path(checkpoint_dir) / CHECKPOINT
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        if ckpt.exists():
            try:
                with warnings.catch_warnings():  # torch's note on a foreign pickle protocol: the error says it
                    warnings.filterwarnings("ignore", message="Detected pickle protocol")
                    saved = torch.load(ckpt, map_location=device, weights_only=True)
                if not isinstance(saved, dict) or "fingerprint" not in saved:
                    raise TypeError(f"it holds a {type(saved).__name__}, not a checkpoint of fkd.train")
            except Exception as exc:  # truncated, not a checkpoint, or a pickle weights_only refuses
                raise ValueError(f"{ckpt} is not a readable training checkpoint ({type(exc).__name__}: "
                                 f"{(str(exc).splitlines() or [''])[0][:200]}). Fix: delete it to start this run from "
                                 f"scratch, or pass another --checkpoint-dir") from exc
            if saved["fingerprint"] != cfg.fingerprint():
                raise ValueError(f"{ckpt} belongs to a different run (config changed). Fix: use another "
                                 f"--checkpoint-dir, or delete it to start this run from scratch.")
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            sched.load_state_dict(saved["scheduler"])
            state = saved["state"]
    n = data.train_x.shape[0]
    n_batches = math.ceil(n / cfg.batch_size)
    r_eps = radius(cfg.eps, cfg.eps_units, cfg.dataset, cfg.std)  # the pixel radius (fkd.units)
    r_step = radius(cfg.step_size, cfg.eps_units, cfg.dataset, cfg.std)
    stopped = "completed"
    started = time.perf_counter()
    while state["epoch"] < cfg.epochs:
        epoch = state["epoch"]
        if _patience_spent(cfg, state):
            stopped = "early-stopped"
            break
        t0 = time.perf_counter()
        g = _epoch_generator(cfg.seed, epoch)
        perm = torch.randperm(n, generator=g)
        net.train()
        total, seen = 0.0, 0
        bar = tqdm(range(n_batches), desc=f"{cfg.dataset.value}/{cfg.name} epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress, leave=False)
        for b in bar:
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x = to_float(data.train_x[idx])
            if cfg.augment:
                x = _augment(x, g)
            x = x.to(device, non_blocking=True, memory_format=fmt)
            y = data.train_y[idx].to(device, non_blocking=True)
            ramp = min(1.0, (epoch + b / n_batches) / cfg.eps_warmup_epochs) if cfg.eps_warmup_epochs else 1.0
            loss = train_step(cfg, net, teacher, x, y, scaled(r_eps, ramp), scaled(r_step, ramp), g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * y.shape[0]
            seen += y.shape[0]
            if b % 20 == 0:
                bar.set_postfix(loss=f"{total / seen:.4f}")
        lr = opt.param_groups[0]["lr"]
        sched.step()
        net.eval()
        acc = clean_accuracy(net, data.test_x, data.test_y)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": total / seen, "test_acc": acc, "lr": lr, "seconds": seconds}
        state["history"].append(row)
        state["wall_time_s"] += seconds
        # epochs of the eps warm-up are not eligible: their model is not robust at the training eps
        eligible = epoch + 1 > cfg.eps_warmup_epochs or epoch + 1 == cfg.epochs
        if eligible and acc > state["best_acc"]:
            state.update(best_acc=acc, best_epoch=epoch + 1,
                         best_state={k: v.detach().clone() for k, v in model.state_dict().items()})
        state["epoch"] = epoch + 1
        if progress:
            tqdm.write(f"{cfg.dataset.value}/{cfg.name} epoch {epoch + 1}: loss {row['train_loss']:.4f} "
                       f"test acc {acc:.2f}% (best {state['best_acc']:.2f}% @ {state['best_epoch']}) {seconds:.1f}s")
        if ckpt is not None:
            _save_checkpoint(ckpt, {"fingerprint": cfg.fingerprint(), "model": model.state_dict(),
                                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "state": state})
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, row)
        over = time_budget_s is not None and time.perf_counter() - started > time_budget_s
        if over and state["epoch"] < cfg.epochs and not _patience_spent(cfg, state):
            stopped = "partial"
            break
    else:
        if _patience_spent(cfg, state):
            stopped = "early-stopped"
    if state["best_state"] is None:  # stopped inside the eps warm-up: the last epoch is all there is
        state.update(best_acc=state["history"][-1]["test_acc"], best_epoch=state["epoch"])
    else:
        model.load_state_dict(state["best_state"])
    model = model.to(memory_format=torch.contiguous_format)
    if cfg.input_norm:  # the saved model takes images in [0, 1]: the normalisation folded into its first layer
        mean, std = _normalisation(cfg)
        fold_input_affine(model.cpu(), 1.0 / std, -mean / std, INPUT_SHAPE[cfg.dataset])
    meta = {"config": cfg.to_dict(), "seed": cfg.seed, "method_equation": spec.equation,
            "clean_acc": state["best_acc"], "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
            "wall_time_s": state["wall_time_s"], "status": stopped, "history": state["history"],
            "epochs_planned": cfg.epochs,
            "record": record(device)}
    return TrainResult(model.cpu().eval(), meta)
