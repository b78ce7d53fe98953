"""What an LP bound of the CIFAR-10 CNN costs at the normalised reading's radius, against the pixel one.

CIFAR-10's published FAITHUB is CROWN: at the pixel radius its LPs exceed Gurobi's pip licence and
HiGHS takes seconds per image and network. Read in normalised units, 8/255 is a pixel radius of
8/255 * std (about 0.25x), so fewer ReLUs are unstable and the LPs should be cheaper. Per image of
the fixed subset, the teacher's logit bounds by CROWN and by LP (progressive LP tightening of the
hidden layers, then one LP per logit; ``fkd.bounds.bounds(..., method="lp")``), for

- ``pixel``: the pixel zoo's teacher at 8/255 pixels (the baseline: the published setting);
- ``pixel-model, normalised radius``: the same network at 8/255 normalised (the radius alone);
- ``input-norm``: the teacher trained behind the normalisation (``zoo/cifar10/rt``) at 8/255 normalised.

Prints the median seconds per image and the mean width of the logit intervals, with ratios to the
baseline measured in the same run. One thread, HiGHS (the licence-free solver; Gurobi's pip licence
is too small for these LPs).

    OMP_NUM_THREADS=1 python benchmarks/cifar10_lp.py --n-images 3
"""
from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-images", type=int, default=3)
    ap.add_argument("--eps", type=float, default=8 / 255)
    ap.add_argument("--solver", default="highs")
    args = ap.parse_args()

    import torch

    from fkd.bounds import bounds
    from fkd.data import eval_subset
    from fkd.units import pixel_label, radius
    from fkd.zoo import load_model

    torch.set_num_threads(1)
    x, _, idx = eval_subset("cifar10", args.n_images)
    configs = [("pixel", "pixel", "pixel"), ("pixel-model, normalised radius", "pixel", "normalised"),
               ("input-norm", "normalised", "normalised")]
    rows = []
    for name, zoo_units, eps_units in configs:
        net = load_model("cifar10", "rt", units=zoo_units)
        r = radius(args.eps, eps_units, "cifar10")
        for method in ("crown", "lp"):
            secs, widths = [], []
            for x0 in x:
                t0 = time.perf_counter()
                lo, up = bounds(net, x0, r, method=method, solver=args.solver)
                secs.append(time.perf_counter() - t0)
                widths.append(float((up - lo).mean()))
            rows.append((name, method, pixel_label(r), statistics.median(secs), statistics.mean(widths)))
    base = {m: (s, w) for n, m, _, s, w in rows if n == "pixel"}
    print(f"CIFAR-10 teacher, eps {args.eps:.4f} nominal, {args.n_images} images (test indices {list(map(int, idx))}), "
          f"solver {args.solver}, 1 thread\n")
    print("| config | method | pixel radius | median s / image | / pixel | mean logit width | / pixel |")
    print("|---|---|---|---|---|---|---|")
    for name, method, rad, s, w in rows:
        bs, bw = base[method]
        print(f"| {name} | {method} | {rad} | {s:.2f} | {s / bs:.2f} | {w:.3f} | {w / bw:.3f} |")


if __name__ == "__main__":
    main()
