"""How tight can eq. 11 be at all? Floors of FAITHUB from PGD on the MNIST zoo.

FAITHUB (eqs. 9-11) bounds teacher and student *separately*: eq. 11 takes the largest
ub_t,i - lb_s,i (or ub_s,i - lb_t,i), each bound possibly reached at a different point of the
ball, while delta* needs one shared point. This script measures, per student and eps, lower
estimates of what eqs. 9-11 can give with perfect per-network bounds:

    floor 1  eq. 11 with each network's extremes of each softmax sigma_i (PGD max and min of
             sigma_i per network): what exact per-network softmax bounds would give, at least;
    floor 2  eqs. 10-11 with each network's extremes of each d_ij = z_j - z_i (PGD per pair): what
             exact logit-difference bounds in eq. 9 (tight mode) would give, at least.

PGD finds points inside the ball, so its extremes are inner estimates of the true ones and each
floor is a lower bound on the corresponding exact-bound FAITHUB (eq. 10 is monotone in the d_ij
bounds). If floor / EMPLB exceeds 2, no sound d_ij bounds can reach FAITHUB / EMPLB <= 2: only a
coupled bound (teacher and student over the same x) can.

    python benchmarks/faithub_floor.py [--n-images 20] [--eps 0.1] [--students sd ard rslad fd]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fkd.attacks import forward, pgd  # noqa: E402
from fkd.bounds import softmax_bounds  # noqa: E402
from fkd.data import eval_subset  # noqa: E402
from fkd.empirical_bound import emplb  # noqa: E402
from fkd.metrics import Attack  # noqa: E402
from fkd.zoo import load_model  # noqa: E402


@dataclass
class Linear:
    """PGD objective on one network: sign * (a^T softmax) or sign * (a^T logits) per row, a (B, K)."""
    model: nn.Module
    coef: Tensor
    softmax: bool

    @property
    def models(self):
        return (self.model,)

    def __call__(self, x: Tensor) -> Tensor:
        out = forward(self.model, x)
        return ((out.softmax(-1) if self.softmax else out) * self.coef).sum(-1)


def extremes(model: nn.Module, x: Tensor, eps: float, coef: Tensor, softmax: bool, attack: Attack,
             gen: torch.Generator) -> Tensor:
    """PGD maxima of coef[r] . f(x') over the ball of each image: x (B, C, H, W), coef (M, K) -> (B, M)."""
    b, m = len(x), len(coef)
    xs = x.repeat_interleave(m, 0)
    c = coef.repeat(b, 1)
    _, v = pgd(Linear(model, c, softmax), xs, eps, steps=attack.steps, step_size=attack.step_factor * eps / attack.steps,
               restarts=attack.restarts, generator=gen)
    return v.reshape(b, m).double()


def floors(teacher, student, x, eps, attack, gen) -> tuple[Tensor, Tensor]:
    """(floor 1, floor 2) per image (B,)."""
    k = 10
    eye = torch.eye(k)
    sig = {}
    for name, model in (("t", teacher), ("s", student)):
        hi = extremes(model, x, eps, eye, True, attack, gen)
        lo = -extremes(model, x, eps, -eye, True, attack, gen)
        sig[name] = (lo, hi)
    f1 = torch.maximum(sig["t"][1] - sig["s"][0], sig["s"][1] - sig["t"][0]).amax(-1)
    ii, jj = torch.nonzero(~torch.eye(k, dtype=torch.bool), as_tuple=True)
    coef = torch.zeros(len(ii), k)
    coef[torch.arange(len(ii)), jj] = 1.0
    coef[torch.arange(len(ii)), ii] -= 1.0
    sb = {}
    for name, model in (("t", teacher), ("s", student)):
        up = torch.zeros(len(x), k, k, dtype=torch.float64)
        up[:, ii, jj] = extremes(model, x, eps, coef, False, attack, gen)
        lo = -up.transpose(1, 2)  # min d_ij = -max d_ji
        sb[name] = softmax_bounds(lo, up)
    f2 = torch.maximum(sb["t"][1] - sb["s"][0], sb["s"][1] - sb["t"][0]).amax(-1)
    return f1, f2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-images", type=int, default=20)
    ap.add_argument("--eps", type=float, nargs="+", default=[0.1])
    ap.add_argument("--students", nargs="+", default=["sd", "ard", "rslad", "fd"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    x, _, _ = eval_subset("mnist", args.n_images)
    teacher = load_model("mnist", "rt").eval()
    attack = Attack(50, 5)
    print(f"MNIST zoo, first {args.n_images} images of the fixed subset, PGD-50 x 5, seed 0\n")
    print("| eps | student | mean EMPLB | floor 1 (exact softmax bounds) | / EMPLB | floor 2 (exact d_ij bounds) | / EMPLB |")
    print("|---|---|---|---|---|---|---|")
    for eps in args.eps:
        for s in args.students:
            student = load_model("mnist", s).eval()
            gen = torch.Generator().manual_seed(0)
            e = emplb(teacher, student, x, eps, attack, "both", gen).value.double().mean()
            f1, f2 = floors(teacher, student, x, eps, attack, gen)
            print(f"| {eps} | {s} | {e:.4f} | {f1.mean():.4f} | {f1.mean() / e:.2f} | {f2.mean():.4f} | "
                  f"{f2.mean() / e:.2f} |", flush=True)


if __name__ == "__main__":
    main()
