"""Evaluation speed: the full-profile MNIST Table 1 (1000 images, 6 eps, teacher + 4 students).

Table 1 needs, per eps > 0, PGD-50 x 5 robust accuracy of 5 models and the PGD-50 x 5
agreement attack of 4 students. Ours runs the 5 restarts of a whole chunk of images as one batch
(``fkd.metrics``); the reference is the loop of the public robustness scripts (one restart at a
time, a Python loop per batch of 200 images, min/max projection), timed on a slice and reported as
images per second with the same attack budget.

    python benchmarks/evaluate.py [--n-images 1000] [--reference-images 200] [--threads 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fkd.config import PAPER_EPS, Dataset  # noqa: E402
from fkd.data import eval_subset  # noqa: E402
from fkd.metrics import PAPER_ATTACK, agreement, robust_correct  # noqa: E402
from fkd.zoo import load_model  # noqa: E402

STUDENTS = (("sd", 0.5), ("ard", 0.5), ("rslad", 0.5), ("fd", 0.5))


def ours(x, y, models, chunk: int = 250) -> tuple[float, int]:
    """Seconds for Table 1 with fkd.metrics, and the number of (image, model, eps) evaluations."""
    teacher, students = models
    g = torch.Generator().manual_seed(0)
    t0, n = time.perf_counter(), 0
    for eps in PAPER_EPS[Dataset.MNIST]:
        for a in range(0, x.shape[0], chunk):
            xb, yb = x[a:a + chunk], y[a:a + chunk]
            robust_correct(teacher, xb, yb, eps, PAPER_ATTACK, g)
            for s in students:
                robust_correct(s, xb, yb, eps, PAPER_ATTACK, g)
                agreement(teacher, s, xb, eps, PAPER_ATTACK, g)
            n += xb.shape[0] * (1 + len(students))
    return time.perf_counter() - t0, n


def reference(x, y, models, batch: int = 200) -> tuple[float, int]:
    """The public scripts' evaluation loop: restarts one after the other, per batch."""
    teacher, students = models
    steps, restarts = PAPER_ATTACK.steps, PAPER_ATTACK.restarts

    def attack(model, xb, label, eps):
        worst = xb.clone()
        for _ in range(restarts):
            xa = (xb + torch.empty_like(xb).uniform_(-eps, eps)).clamp(0, 1)
            for _ in range(steps):
                xa.requires_grad_()
                loss = F.cross_entropy(model(xa), label)
                grad = torch.autograd.grad(loss, [xa])[0]
                xa = xa.detach() + 2.5 * eps / steps * grad.sign()
                xa = torch.min(torch.max(xa, xb - eps), xb + eps).clamp(0, 1)
            with torch.no_grad():
                fooled = model(xa).argmax(1) != label
            worst[fooled] = xa[fooled]
        return worst

    t0, n = time.perf_counter(), 0
    for eps in PAPER_EPS[Dataset.MNIST]:
        if eps == 0:
            continue
        for a in range(0, x.shape[0], batch):
            xb, yb = x[a:a + batch], y[a:a + batch]
            attack(teacher, xb, yb, eps)
            with torch.no_grad():
                c_t = teacher(xb).argmax(1)
            for s in students:
                attack(s, xb, yb, eps)
                attack(s, xb, c_t, eps)
            n += xb.shape[0] * (1 + len(students))
    n += x.shape[0] * (1 + len(students))  # the eps = 0 column costs forward passes only
    return time.perf_counter() - t0, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-images", type=int, default=1000)
    p.add_argument("--reference-images", type=int, default=200, help="the reference loop runs on this slice")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x, y, _ = eval_subset("mnist", args.n_images)
    teacher = load_model("mnist", "rt")
    students = [load_model("mnist", m, a) for m, a in STUDENTS]
    for m in (teacher, *students):
        m.requires_grad_(False)
    print(f"MNIST Table 1: {args.n_images} images x {len(PAPER_EPS[Dataset.MNIST])} eps x 5 models, "
          f"PGD-{PAPER_ATTACK.steps} x {PAPER_ATTACK.restarts}, {args.threads} torch threads")
    sec, n = ours(x, y, (teacher, students))
    print(f"  fkd.metrics (batched restarts):  {sec:7.1f} s  {n / sec:8.0f} image-evaluations/s  "
          f"({args.n_images / sec * len(PAPER_EPS[Dataset.MNIST]):.0f} images/s for all 6 eps x 5 models)")
    xr, yr = x[:args.reference_images], y[:args.reference_images]
    rsec, rn = reference(xr, yr, (teacher, students))
    print(f"  reference loop ({args.reference_images} images): {rsec:7.1f} s  {rn / rsec:8.0f} image-evaluations/s")
    print(f"  speed-up: {(n / sec) / (rn / rsec):.2f}x; full table by the reference loop would take "
          f"{rsec * args.n_images / args.reference_images:.0f} s")


if __name__ == "__main__":
    main()
