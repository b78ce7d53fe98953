"""FAITHUB speed and tightness on the MNIST zoo: seconds per (image, student) and
FAITHUB / EMPLB (ratio of means over images) per bound configuration, single thread.

Configurations (teacher rt against each student):
    naive          the naive encoding: big-M MILP per logit on interval pre-activation bounds, paper
                   mode (eq. 9 from logit intervals); nothing shared, so each (image, student) pays
                   for the teacher too; time limit per solve, the proven (dual) bound kept
    ours           what ``python -m fkd verify --method lp`` ships (``fkd.bounds.shared.ImageBounds``):
                   LP tightening, LP logit bounds (paper mode), then tight mode refining the pairs
                   that decide eq. 11; teacher shared between the students of an image; the row's
                   seconds are paper + tight, as verify records them; ``ours-paper`` is its paper
                   mode (same run, paper seconds only)
    interval       interval bounds, paper mode, no solver
    crown-paper    CROWN logit bounds, paper mode
    crown-tight    CROWN on z_j - z_i directly
    lp-tight       progressive LP tightening + LP per ordered pair (``faithub(method="lp")``)
    milp-paper     MILP per logit (time limit per solve), ``faithub(mode="paper", method="milp")``
    milp-tight     MILP per ordered pair (time limit per solve); opt-in, slow
    ref-lp         CROWN tight, then LP only on the pairs deciding eq. 11 (``faithub_refined``)
    ref-milp       ref-lp, then MILP on the deciding pairs within a per-image budget
    ref-*-t        the same after progressive LP tightening of the intermediate layers
    joint          ``ours`` then joint mode (beyond the paper: teacher and student at one shared x, cross
                   bounds by LP on the joint network, ``ImageBounds.joint``); seconds include ours
    softmax        ``ours`` then each network's softmax inside its LP (``ImageBounds.softmax``)
    joint-softmax  softmax, then both softmaxes at one x (``ImageBounds.joint_softmax``)
    milp-*         the same three with method milp and a per-(image, student) ``--budget``: tight mode
                   refines the deciding pairs by LP then MILP (``milp-ours``, ``milp-softmax``,
                   ``milp-joint-softmax``); seconds include everything each builds on
With ``--tightening obbt`` the milp-* configurations tighten the intermediate bounds of each network
by LP and then MILPs of ``--obbt-limit`` seconds per still-unstable neuron within ``--obbt-budget``
CPU seconds per network (``fkd.bounds.obbt``), apart from ``--budget`` (CPU seconds too,
``fkd.bounds.budget``).
Seconds: wall-clock (``median s``, ``mean s``) and this process's CPU seconds (``median CPU s``,
``time.process_time``, solvers included: they run in-process on one thread), per (image, student).
Every logit bound is widened by the derived float32 margin (``fkd.bounds.fp.logit_margin``), as
``verify`` does.

Goals (``--goals``: printed as ratios, measured in this run, against the paper's method as shipped,
``ours-paper``, on the same images): the hard regime, pixel-reading zoo, FD at eps 0.1 px: FAITHUB / EMPLB <= 2.0 at a
median <= 10 s per (image, student); the paper's reading (``--zoo zoo
--eps-units normalised``), FD at eps 0.1: <= 1.5 at a median <= 2 s.
The ref-* configurations share the teacher's refined bounds between the students of an image (as
an evaluation does); its cost is charged to the first student that needs it.
EMPLB: ``fkd.empirical_bound.emplb(strategy="both")`` with PGD-50 x 5 (the paper's attack), seed 0.

    python benchmarks/verify.py [--n-images 20] [--eps 0.025 0.05 0.1] [--students sd ard rslad fd]
        [--configs ...] [--n-solver-images 3] [--time-limit 1] [--budget 2] [--zoo DIR] [--goals]
        [--tightening obbt --obbt-limit 0.2 --obbt-budget 1.5]
    (with --goals, --configs given explicitly replaces the goals' configurations)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fkd.bounds import DiffBounds, as_net, faithub, faithub_refined, softmax_bounds  # noqa: E402
from fkd.bounds import Box, diff_bounds_from_logits, faithub_from_sigma  # noqa: E402
from fkd.bounds.fp import logit_margin  # noqa: E402
from fkd.bounds.interval import input_box, interval_bounds  # noqa: E402
from fkd.bounds.milp import build_program, solve_linear  # noqa: E402
from fkd.bounds.shared import ImageBounds  # noqa: E402
from fkd.bounds.solvers import Status  # noqa: E402
from fkd.data import eval_subset  # noqa: E402
from fkd.empirical_bound import emplb  # noqa: E402
from fkd.metrics import Attack  # noqa: E402
from fkd.units import radius  # noqa: E402
from fkd.zoo import load_model  # noqa: E402

CHEAP = ["interval", "crown-paper", "crown-tight", "ref-lp", "ref-lp-t", "ours", "joint", "softmax", "joint-softmax"]
SOLVER = ["naive", "lp-tight", "ref-milp", "ref-milp-t", "milp-paper", "milp-tight", "milp-ours", "milp-softmax",
          "milp-joint-softmax"]
SHARED = {"joint": "joint", "softmax": "softmax", "joint-softmax": "joint_softmax", "milp-ours": "tight",
          "milp-softmax": "softmax", "milp-joint-softmax": "joint_softmax"}  # config -> ImageBounds mode
GOALS = {"pixel": (2.0, 10.0), "normalised": (1.5, 2.0)}  # reading -> (FAITHUB / EMPLB, median s), FD at eps 0.1
DEFAULT = ["naive", "interval", "crown-tight", "ours"]
PLAIN = {"interval": ("paper", "interval"), "crown-paper": ("paper", "crown"), "crown-tight": ("tight", "crown"),
         "lp-tight": ("tight", "lp"), "milp-paper": ("paper", "milp"), "milp-tight": ("tight", "milp")}


def run_plain(cfg, nt, ns, x0, eps, solver, time_limit):
    mode, method = PLAIN[cfg]
    t0 = time.perf_counter()
    f = faithub(nt, ns, x0, eps, mode=mode, method=method, solver=solver, time_limit=time_limit)
    recs = f.teacher.records + f.student.records
    return f.value, time.perf_counter() - t0, len(recs), sum(r.result.status is Status.TIME_LIMIT for r in recs)


def naive_sigma(net, x0, eps, solver, time_limit):
    """Softmax bounds (eq. 10) from MILP logit bounds on interval pre-activation bounds: (Box, solves, limited)."""
    box = input_box(x0, eps)
    per_op = interval_bounds(net, box)
    k = net.out_dim
    out, recs = solve_linear(build_program(net, box, per_op), np.eye(k), Box(per_op[-1].lower[0], per_op[-1].upper[0]),
                             solver, time_limit, op=len(net.ops) - 1)
    m = logit_margin(net, box, per_op)[0]
    d = diff_bounds_from_logits(out.lower - m, out.upper + m)
    return Box(*softmax_bounds(*d)), len(recs), sum(r.result.status is Status.TIME_LIMIT for r in recs)


def run_naive(nt, ns, x0, eps, solver, time_limit):
    t0 = time.perf_counter()
    (st, n1, l1), (ss, n2, l2) = (naive_sigma(n, x0, eps, solver, time_limit) for n in (nt, ns))
    return float(faithub_from_sigma(st, ss)), time.perf_counter() - t0, n1 + n2, l1 + l2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-images", type=int, default=20)
    ap.add_argument("--eps", type=float, nargs="+", default=[0.025, 0.05, 0.1])
    ap.add_argument("--eps-units", default="pixel", choices=["normalised", "pixel"],
                    help="how --eps is read, and which zoo (normalised: zoo/mnist, pixel: zoo/pixel/mnist)")
    ap.add_argument("--students", nargs="+", default=["sd", "ard", "rslad", "fd"])
    ap.add_argument("--configs", nargs="+", default=DEFAULT, choices=CHEAP + SOLVER)
    ap.add_argument("--n-solver-images", type=int, default=3, help=f"images for the solver-heavy configs {SOLVER}")
    ap.add_argument("--solver-students", nargs="+", default=None, help="students for lp-tight / milp-* (default all)")
    ap.add_argument("--time-limit", type=float, default=1.0, help="seconds per MILP solve")
    ap.add_argument("--budget", type=float, default=2.0, help="ref-milp: CPU seconds of solving per (image, student)")
    ap.add_argument("--solver", default="auto")
    ap.add_argument("--tightening", default=None, help="milp-*: none, lp, milp or obbt (default lp)")
    ap.add_argument("--obbt-limit", type=float, default=0.2, help="milp-* with obbt: seconds per tightening MILP")
    ap.add_argument("--obbt-budget", type=float, default=None, help="milp-* with obbt: CPU seconds of tightening per network")
    ap.add_argument("--zoo", default=None, help="a zoo root laid out like zoo/ (default: the shipped zoo)")
    ap.add_argument("--goals", action="store_true", help="FD at eps 0.1 only, the configurations of the goals, "
                    "and the verdict against this reading's goal")
    args = ap.parse_args()
    if args.goals:
        args.students, args.eps = ["fd"], [0.1]
        if "--configs" not in sys.argv:
            args.configs = ["ours", "softmax", "joint-softmax", "milp-ours", "milp-softmax", "milp-joint-softmax"]
        args.n_solver_images = args.n_images
    root = Path(args.zoo).resolve() if args.zoo else None
    torch.set_num_threads(1)
    x, _, idx = eval_subset("mnist", args.n_images)
    teacher = load_model("mnist", "rt", units=args.eps_units, root=root).eval()
    nt = as_net(teacher, x.shape[1:])
    students = {s: load_model("mnist", s, units=args.eps_units, root=root).eval() for s in args.students}
    nets = {s: as_net(m, x.shape[1:]) for s, m in students.items()}
    print(f"images: first {args.n_images} of the fixed subset ({args.n_solver_images} for {SOLVER}); "
          f"solver {args.solver}, 1 thread, MILP time limit {args.time_limit}s per solve, ref-milp budget {args.budget}s\n")
    print("| eps | student | config | images | median s / (image, student) | median CPU s | mean s | mean FAITHUB "
          "| mean EMPLB (same images) | FAITHUB / EMPLB | solves / image | time-limited solves |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    summary: dict = {}  # (eps, student, cfg) -> (FAITHUB / EMPLB, median s)
    for eps in args.eps:
        rad = radius(eps, args.eps_units, "mnist")  # the pixel radius of eps in its units
        emp = {s: emplb(teacher, m, x, rad, Attack(50, 5), "both", torch.Generator().manual_seed(0)).value
               for s, m in students.items()}
        rows: dict = {}   # (student, cfg) -> list of (value, seconds, solves, time_limited)
        teacher_db: dict = {}
        shared: dict = {}
        cpu_s: dict = {}  # (student, cfg) -> CPU seconds of this process per (image, student), solvers included
        for i in range(args.n_images):
            for s, ns in nets.items():
                for cfg in args.configs:
                    if cfg in SOLVER and (i >= args.n_solver_images or
                                          (args.solver_students and s not in args.solver_students)):
                        continue
                    c0 = time.process_time()
                    if cfg == "naive":
                        out = run_naive(nt, ns, x[i], rad, args.solver, args.time_limit)
                    elif cfg in SHARED:
                        method = "milp" if cfg.startswith("milp-") else "lp"
                        # each configuration bounds on its own (its seconds include the tight mode it builds on
                        # and the teacher, shared between the students of an image as ours does); milp: a fresh
                        # budget per student
                        key = (i, cfg, s) if method == "milp" else (i, cfg)
                        if shared.get(key) is None:
                            milp = method == "milp"
                            shared[key] = ImageBounds(x[i], rad, method, args.solver, args.time_limit if milp else 60.0,
                                                      args.tightening if milp else None,
                                                      budget=args.budget if milp else None,
                                                      obbt_limit=args.obbt_limit, obbt_budget=args.obbt_budget)
                        j = shared[key].faithub(SHARED[cfg], nt, ns)
                        out = (j.value, j.seconds, j.solves, int(j.status == "time_limit"))
                    elif cfg == "ours":
                        if shared.get(i) is None:
                            shared[i] = ImageBounds(x[i], rad, "lp", args.solver, 60.0)
                        paper = shared[i].paper(nt, ns)
                        c_paper = time.process_time() - c0
                        tight = shared[i].tight(nt, ns)
                        rows.setdefault((s, "ours-paper"), []).append(
                            (paper.value, paper.seconds, paper.solves, int(paper.status == "time_limit")))
                        cpu_s.setdefault((s, "ours-paper"), []).append(c_paper)
                        out = (tight.value, paper.seconds + tight.seconds, paper.solves + tight.solves,
                               int(tight.status == "time_limit"))
                    elif cfg in PLAIN:
                        out = run_plain(cfg, nt, ns, x[i], rad, args.solver, args.time_limit)
                    else:
                        t0 = time.perf_counter()
                        key = (cfg, i)
                        tightening = "lp" if cfg.endswith("-t") else None
                        if key not in teacher_db:
                            teacher_db[key] = DiffBounds.start(nt, x[i], rad, solver=args.solver, tightening=tightening)
                        sdb = DiffBounds.start(ns, x[i], rad, solver=args.solver, tightening=tightening)
                        stages = ("lp",) if cfg.startswith("ref-lp") else ("lp", "milp")
                        budget = None if cfg.startswith("ref-lp") else max(args.budget - (time.perf_counter() - t0), 0.0)
                        v, _, _, st = faithub_refined(teacher_db[key], sdb, stages, args.time_limit, budget)
                        out = (v, time.perf_counter() - t0, st.solves, st.time_limited)
                    cpu_s.setdefault((s, cfg), []).append(time.process_time() - c0)
                    rows.setdefault((s, cfg), []).append(out)
        for s in nets:
            for cfg in [c for c in CHEAP + SOLVER + ["ours-paper"] if c in args.configs or
                        (c == "ours-paper" and "ours" in args.configs)]:
                r = rows.get((s, cfg))
                if not r:
                    continue
                n = len(r)
                fub = sum(v for v, *_ in r) / n
                e = float(emp[s][:n].mean())
                med = statistics.median(t for _, t, *_ in r)
                cpu = statistics.median(cpu_s[s, cfg])
                summary[eps, s, cfg] = (fub / e, med, cpu)
                print(f"| {eps} | {s} | {cfg} | {n} | {med:.3f} | {cpu:.3f} | {statistics.mean(t for _, t, *_ in r):.2f} | "
                      f"{fub:.4f} | {e:.4f} | {fub / e:.2f} | {sum(c for *_, c, _ in r) / n:.1f} | "
                      f"{sum(tl for *_, tl in r)} |", flush=True)
    if args.goals:
        report_goals(summary, args.eps_units)


def report_goals(summary: dict, units: str) -> None:
    """The verdict against this reading's goal, each configuration as ratios to the goal and to the
    paper's method as shipped (``ours-paper``: LP logit bounds, eq. 9) in the same run."""
    ratio_goal, seconds_goal = GOALS[units]
    base = summary.get((0.1, "fd", "ours-paper"))
    print(f"\ngoal ({units} reading, FD, eps 0.1): FAITHUB / EMPLB <= {ratio_goal} at a median <= {seconds_goal} s")
    print("| config | FAITHUB / EMPLB | / goal | / ours-paper | median s | median CPU s | / goal | meets |")
    print("|---|---|---|---|---|---|---|---|")
    for (_, _, cfg), (ratio, med, cpu) in summary.items():
        meets = ratio <= ratio_goal and med <= seconds_goal
        rel = f"{ratio / base[0]:.3f}" if base else "-"
        print(f"| {cfg} | {ratio:.2f} | {ratio / ratio_goal:.2f} | {rel} | {med:.2f} | {cpu:.2f} | "
              f"{med / seconds_goal:.2f} | {'yes' if meets else 'no'} |", flush=True)


if __name__ == "__main__":
    main()
