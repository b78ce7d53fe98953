"""Which bound stage pays off on the MNIST zoo pair: interval vs CROWN vs CROWN + per-layer LP
tightening, and the final LP / MILP per logit with and without that tightening (single thread).

Prints a markdown table (means over the images): seconds per network and image, mean logit width
(upper - lower), unstable ReLUs left; then FAITHUB per method and mode with EMPLB beside it.

    python benchmarks/bounds_groundwork.py [--n-images 3] [--eps 0.025 0.05] [--time-limit 20]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fkd.bounds import as_net, faithub, output_bounds  # noqa: E402
from fkd.bounds.network import ReLU  # noqa: E402
from fkd.data import eval_subset  # noqa: E402
from fkd.empirical_bound import emplb  # noqa: E402
from fkd.metrics import Attack  # noqa: E402
from fkd.zoo import load_model  # noqa: E402

STAGES = [  # (label, method, tightening)
    ("interval", "interval", "none"),
    ("crown", "crown", "none"),
    ("crown + LP tightening", "crown", "lp"),
    ("LP per logit (crown big-M)", "lp", "none"),
    ("LP per logit (+ LP tightening)", "lp", "lp"),
    ("MILP per logit (crown big-M)", "milp", "none"),
    ("MILP per logit (+ LP tightening)", "milp", "lp"),
]


def unstable(rep) -> int:
    net_ops = rep.net_ops
    return sum(int(((b.lower < 0) & (b.upper > 0)).sum()) for b, op in zip(rep.per_op, net_ops[1:]) if isinstance(op, ReLU))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-images", type=int, default=3)
    ap.add_argument("--eps", type=float, nargs="+", default=[0.025, 0.05])
    ap.add_argument("--time-limit", type=float, default=20.0)
    ap.add_argument("--solver", default="gurobi")
    ap.add_argument("--skip", nargs="*", default=[], help="stage labels to skip")
    args = ap.parse_args()
    torch.set_num_threads(1)
    x, _, idx = eval_subset("mnist", args.n_images)
    nets = {"teacher rt": load_model("mnist", "rt").eval(), "student fd": load_model("mnist", "fd").eval()}
    lowered = {k: as_net(m, x.shape[1:]) for k, m in nets.items()}
    print(f"images {list(idx)}, solver {args.solver}, time limit {args.time_limit}s per solve, 1 thread\n")
    print("| eps | network | stage | s / image | mean logit width | unstable ReLUs | solves not optimal |")
    print("|---|---|---|---|---|---|---|")
    for eps in args.eps:
        for name, net in lowered.items():
            for label, method, tight in STAGES:
                if label in args.skip:
                    continue
                secs, widths, unst, bad = [], [], [], 0
                for xi in x:
                    t0 = time.perf_counter()
                    rep = output_bounds(net, xi, eps, method=method, solver=args.solver, time_limit=args.time_limit,
                                        tightening=tight)
                    secs.append(time.perf_counter() - t0)
                    widths.append(float((rep.upper - rep.lower).mean()))
                    rep.net_ops = net.ops
                    unst.append(unstable(rep))
                    bad += sum(r.result.status.value != "optimal" for r in rep.records)
                print(f"| {eps} | {name} | {label} | {np.mean(secs):.3f} | {np.mean(widths):.4f} | {np.mean(unst):.1f} | {bad} |",
                      flush=True)
    print("\n| eps | method | mode | s / image (both nets) | mean FAITHUB | mean EMPLB |")
    print("|---|---|---|---|---|---|")
    t, s = nets["teacher rt"], nets["student fd"]
    for eps in args.eps:
        emp = emplb(t, s, x, eps, Attack(), generator=torch.Generator().manual_seed(0)).value.mean().item()
        for method, mode in (("interval", "paper"), ("crown", "paper"), ("crown", "tight"), ("lp", "paper"),
                             ("lp", "tight"), ("milp", "paper")):
            t0 = time.perf_counter()
            vals = [faithub(lowered["teacher rt"], lowered["student fd"], xi, eps, mode=mode, method=method,
                            solver=args.solver, time_limit=args.time_limit).value for xi in x]
            print(f"| {eps} | {method} | {mode} | {(time.perf_counter() - t0) / len(x):.2f} | {np.mean(vals):.4f} | {emp:.4f} |",
                  flush=True)


if __name__ == "__main__":
    main()
