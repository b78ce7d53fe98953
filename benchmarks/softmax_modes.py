"""What the softmax inside the program buys: FAITHUB per mode on a few MNIST images.

Per (image, student), in one run, on one ``ImageBounds`` per method:

    method lp (tight mode refines the deciding d_ij pairs by LP):
    paper, tight, joint          the existing modes;
    softmax                      tight, then each network's softmax inside its LP (fkd.bounds.softmax);
    joint_softmax                softmax, then the joint program (chord of 1/(1+S); fkd.bounds.joint_softmax);
    softmax+milp                 softmax, plus both sides of sigma by MILP (exact networks) within --budget s;
    joint_softmax+milp           the joint program on the softmax+milp bounds;
    joint_softmax+milp/pw4       the same with 4 pieces of 1/(1+S) chosen by binaries (--pieces);
    method milp (tight mode refines the deciding pairs by LP, then MILP, within --budget s):
    tight, softmax, joint_softmax  the modes as ``ImageBounds(method="milp")`` runs them;
    joint_softmax/exact          plus the joint program with both networks exact (MILP), --budget s;

each row capped by the sound rows it builds on (a time-limited stage is not repeatable run to run),
printed as mean FAITHUB, mean FAITHUB / mean EMPLB, the ratio to tight's mean, and the median
seconds per (image, student) (each mode's seconds include the tight mode it builds on; the first
student of an image pays for the teacher). EMPLB: PGD-50 x 5, both objectives (``fkd.metrics``).

    OMP_NUM_THREADS=1 python benchmarks/softmax_modes.py --zoo zoo \\
        --units normalised --eps 0.1 --n-images 5 --students fd sd
    OMP_NUM_THREADS=1 python benchmarks/softmax_modes.py --units pixel --eps 0.1 --n-images 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zoo", default=None, help="a zoo root (sets FKD_ZOO), e.g. zoo (the normalised reading behind the normalisation) or results/units/zoo-normalised")
    ap.add_argument("--units", default="normalised", choices=["normalised", "pixel"])
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--n-images", type=int, default=5)
    ap.add_argument("--students", nargs="+", default=["fd"])
    ap.add_argument("--solver", default="auto")
    ap.add_argument("--budget", type=float, default=5.0, help="CPU seconds of MILP per (image, student) in softmax+milp")
    ap.add_argument("--pieces", type=int, default=4)
    args = ap.parse_args()
    if args.zoo:
        os.environ["FKD_ZOO"] = str(Path(args.zoo).resolve())
    warnings.simplefilter("ignore", RuntimeWarning)  # the auto solver's fallback notice
    torch.set_num_threads(1)

    from fkd.bounds import as_net
    from fkd.bounds.joint_softmax import joint_softmax_faithub
    from fkd.bounds.milp import Relax
    from fkd.bounds.shared import ImageBounds
    from fkd.bounds.softmax import softmax_faithub
    from fkd.bounds.softmax_modes import softmax_pair
    from fkd.data import eval_subset
    from fkd.empirical_bound import emplb
    from fkd.metrics import Attack
    from fkd.units import radius
    from fkd.zoo import load_model

    eps = radius(args.eps, args.units, "mnist")
    x, _, idx = eval_subset("mnist", args.n_images)
    teacher = load_model("mnist", "rt", units=args.units)
    nt = as_net(teacher, x.shape[1:])
    rows = [("lp", m) for m in ("paper", "tight", "joint", "softmax", "joint_softmax", "softmax+milp",
                                 "joint_softmax+milp", f"joint_softmax+milp/pw{args.pieces}")]
    rows += [("milp", m) for m in ("tight", "softmax", "joint_softmax", "joint_softmax/exact")]
    vals = {r: [] for r in rows}
    secs = {r: [] for r in rows}
    low = []
    for name in args.students:
        student = load_model("mnist", name, units=args.units)
        ns = as_net(student, x.shape[1:])
        lower = emplb(teacher, student, x, eps, Attack(50, 5), "both", torch.Generator().manual_seed(0)).value
        for n in range(len(x)):
            row = {}
            ib = ImageBounds(x[n], eps, "lp", args.solver, time_limit=10.0)
            for m in ("paper", "tight", "joint", "softmax", "joint_softmax"):
                r = getattr(ib, m)(nt, ns)
                row["lp", m] = (r.value, r.seconds)
            t0 = time.perf_counter()   # the MILP stage on S and the pieces of 1/(1+S), on the same d bounds
            tight, _, t, s, value, _ = softmax_pair(ib, nt, ns)
            value, _ = softmax_faithub(t, s, (Relax.MILP,), 10.0, args.budget)
            mid = time.perf_counter() - t0
            row["lp", "softmax+milp"] = (min(value, tight.value), mid + tight.seconds)
            for pieces, m in ((1, "joint_softmax+milp"), (args.pieces, f"joint_softmax+milp/pw{args.pieces}")):
                t1 = time.perf_counter()
                joint, _ = joint_softmax_faithub(t, s, pieces, time_limit=10.0)
                row["lp", m] = (min(value, joint, tight.value, row["lp", "joint_softmax"][0]),
                                mid + time.perf_counter() - t1 + tight.seconds)
            ib = ImageBounds(x[n], eps, "milp", args.solver, time_limit=10.0, budget=args.budget)
            for m in ("tight", "softmax", "joint_softmax"):
                r = getattr(ib, m)(nt, ns)
                row["milp", m] = (r.value, r.seconds)
            t0 = time.perf_counter()   # the joint program with both networks exact (MILP), largest term first
            tight, _, t, s, value, _ = softmax_pair(ib, nt, ns)
            joint, _ = joint_softmax_faithub(t, s, 1, time_limit=10.0)
            exact, _ = joint_softmax_faithub(t, s, 1, time_limit=args.budget, budget=args.budget, exact=True)
            row["milp", "joint_softmax/exact"] = (min(value, joint, exact, tight.value, row["milp", "joint_softmax"][0]),
                                                  time.perf_counter() - t0 + tight.seconds)
            for r, (v, sec) in row.items():
                vals[r].append(v), secs[r].append(sec)
            low.append(float(lower[n]))
            assert all(v >= low[-1] - 1e-6 for v, _ in row.values()), (name, idx[n], row, low[-1])
            print(f"{name} image {idx[n]}: emplb {low[-1]:.4f} " +
                  " ".join(f"{a}/{m} {v:.4f} ({sec:.1f}s)" for (a, m), (v, sec) in row.items()), flush=True)
    mean_low = statistics.fmean(low)
    ref = {a: statistics.fmean(vals[a, "tight"]) for a in ("lp", "milp")}
    print(f"\nMNIST, {args.units} zoo, eps {args.eps} ({args.units}), {args.n_images} images x {args.students}, "
          f"solver {args.solver}, MILP budget {args.budget} s; mean EMPLB {mean_low:.4f}")
    print(f"{'method':<7}{'mode':<26}{'mean FAITHUB':>13}{'/ EMPLB':>9}{'/ tight lp':>11}{'/ tight':>9}{'median s':>10}")
    for a, m in rows:
        v = statistics.fmean(vals[a, m])
        print(f"{a:<7}{m:<26}{v:>13.4f}{v / mean_low:>9.3f}{v / ref['lp']:>11.3f}{v / ref[a]:>9.3f}"
              f"{statistics.median(secs[a, m]):>10.2f}")


if __name__ == "__main__":
    main()
