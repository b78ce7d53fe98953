"""Live demonstrations of what each distillation loss does, on a batch of test images.

The book's chapters on distillation (section 2) and on faithful distillation (section 5) call these:
every number comes from the shipped zoo and the loss registry (``fkd.losses``), with the training
PGD of each method (``fkd.train_config.train_config``), seeded by an explicit ``torch.Generator``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from fkd.attacks import pgd
from fkd.config import Dataset, Method, parse
from fkd.train_config import train_config
from fkd.units import default_units, radius
from fkd.losses import Logits, get_method
from fkd.experiments.runner import torch_threads

METHODS = (Method.SD, Method.ARD, Method.RSLAD, Method.FD)


def _batch(dataset: Dataset, n: int):
    from fkd.data import eval_subset

    x, y, _ = eval_subset(dataset, n)
    return x, y


def inner_point(dataset: Dataset | str, method: Method | str, student: nn.Module, teacher: nn.Module,
                x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
    """The training point of ``method``'s inner maximisation (its training PGD, full eps).

    Args:
        x: clean images (B, C, H, W); y: labels (B,).
    Returns:
        x' (B, C, H, W): x itself for SD (no inner maximisation), else the PGD point of eq. 4, 5 or 12.
    """
    d, spec = parse(Dataset, dataset), get_method(method)
    cfg = train_config(d, spec.method, eps_units=default_units(d))  # the reading of the zoo's models
    with torch.no_grad():
        t_clean = teacher(x)
    objective = spec.objective(student, teacher, y, t_clean)
    if objective is None:
        return x
    x_adv, _ = pgd(objective, x, radius(cfg.eps, cfg.eps_units, d), steps=cfg.steps,
                   step_size=radius(cfg.step_size, cfg.eps_units, d), generator=generator, keep="last")
    return x_adv


def loss_value(dataset: Dataset | str, method: Method | str, student: nn.Module, teacher: nn.Module,
               x: Tensor, y: Tensor, generator: torch.Generator) -> tuple[float, float]:
    """``method``'s training loss on (x, y) with its inner maximisation, and its KL term alone.

    Returns:
        (loss, distillation term) as floats: the loss of eqs. 1, 4, 5 or 12 at the paper's alpha and
        T, and the same loss at alpha = 1, which keeps only its distillation (KL) term.
    """
    d, spec = parse(Dataset, dataset), get_method(method)
    cfg = train_config(d, spec.method)
    x_adv = inner_point(d, spec.method, student, teacher, x, y, generator)
    with torch.no_grad():
        z = Logits(student_clean=student(x), student_adv=student(x_adv), teacher_clean=teacher(x),
                   teacher_adv=teacher(x_adv))
        loss = spec.loss(z, y, cfg.alpha, cfg.temperature)
        kl_term = spec.loss(z, y, 1.0, cfg.temperature)
    return float(loss), float(kl_term)


@torch_threads(1)
def loss_table(dataset: Dataset | str = Dataset.MNIST, n_images: int = 128, seed: int = 0):
    """Every loss of the registry evaluated on every zoo student, and on the teacher as its own student.

    Returns:
        DataFrame indexed by loss (SD, ARD, RSLAD, FD); columns (student, loss | KL term), students
        ``teacher itself``, SD, ARD, RSLAD, FD. For the teacher as its own student the SD KL term is
        exactly 0 (same network, same point) and so is FD's (same network at the same point x').
    """
    import pandas as pd

    from fkd.zoo import load_model

    d = parse(Dataset, dataset)
    x, y = _batch(d, n_images)
    teacher = load_model(d, "rt").eval()
    students = {"teacher itself": teacher, **{m.value.upper(): load_model(d, m.value).eval() for m in METHODS}}
    rows = [(m.value.upper(), name, *loss_value(d, m, model, teacher, x, y, torch.Generator().manual_seed(seed)))
            for name, model in students.items() for m in METHODS]
    long = pd.DataFrame(rows, columns=["loss", "student", "loss value", "KL term"])
    frame = long.pivot(index="loss", columns="student", values=["loss value", "KL term"])
    frame = frame.swaplevel(axis=1).rename(columns={"loss value": "loss"}, level=1)
    order = [(n, q) for n in students for q in ("loss", "KL term")]
    return frame[order].reindex([m.value.upper() for m in METHODS]).round(4)


@torch_threads(1)
def gap_at_training_points(dataset: Dataset | str = Dataset.MNIST, n_images: int = 128, seed: int = 0):
    """How far apart teacher and student are at each method's training point x'.

    For each zoo student and each method's inner maximisation (run against that student), the mean
    over images of ||f_t(x') - f_s(x')||_inf, and of ||f_t(x') - f_t(x)||_inf: how much the teacher
    itself moves, the quantity by which RSLAD's target f_t(x) and FD's target f_t(x') differ (section 5).

    Returns:
        long DataFrame: student, training point (method), gap, teacher moves.
    """
    import pandas as pd

    from fkd.zoo import load_model

    d = parse(Dataset, dataset)
    x, y = _batch(d, n_images)
    teacher = load_model(d, "rt").eval()
    rows = []
    for s in METHODS:
        student = load_model(d, s.value).eval()
        for m in METHODS:
            g = torch.Generator().manual_seed(seed)
            xp = inner_point(d, m, student, teacher, x, y, g)
            with torch.no_grad():
                pt, ps, p0 = teacher(xp).softmax(-1), student(xp).softmax(-1), teacher(x).softmax(-1)
            rows.append({"student": s.value.upper(), "training point": m.value.upper(),
                         "gap": float((pt - ps).abs().amax(-1).mean()),
                         "teacher moves": float((pt - p0).abs().amax(-1).mean())})
    return pd.DataFrame(rows).round(4)


@torch_threads(1)
def registry_table():
    """The loss registry (``fkd.losses.REGISTRY``) for the page: per method, its equation, the inner
    maximisation it trains against and the logits it reads."""
    import pandas as pd

    from fkd.losses import REGISTRY

    return pd.DataFrame([{"method": m.value.upper(), "equation": spec.equation, "inner maximisation": spec.attack,
                          "reads the logits of": ", ".join(sorted(spec.needs))} for m, spec in REGISTRY.items()])


def plot_training_points(dataset: Dataset | str = Dataset.MNIST, student: str = "sd", image: int = 0,
                         seed: int = 0):
    """One test image and the training point each method would use against ``student``, titled with
    the teacher-student gap ||f_t - f_s||_inf there. Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    from fkd.zoo import load_model

    d = parse(Dataset, dataset)
    x, y = _batch(d, image + 1)
    x, y = x[image:image + 1], y[image:image + 1]
    teacher, model = load_model(d, "rt").eval(), load_model(d, student).eval()
    from fkd.book.present import WIDTH, legible

    fig, axes = plt.subplots(1, len(METHODS), figsize=(WIDTH, 3.0), layout="constrained")
    for ax, m in zip(axes, METHODS):
        xp = inner_point(d, m, model, teacher, x, y, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            gap = float((teacher(xp).softmax(-1) - model(xp).softmax(-1)).abs().amax())
        img = xp[0].permute(1, 2, 0).squeeze(-1).numpy()
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(f"{m.value.upper()} point\ngap {gap:.3f}")
        ax.axis("off")
    fig.suptitle(f"{d.value} test image {image} against the {student.upper()} student")
    return legible(fig)
