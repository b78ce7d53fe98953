"""The command line's builders of the runs into a run directory: evaluate, attack-study, verify,
calibrate, exact and audit, each adding its subcommand and options to the parser of ``fkd.cli``
(handlers in ``fkd.commands_runs``)."""
from __future__ import annotations

from fkd import commands_runs
from fkd.cli_options import FMT, TIGHTENING_HELP, ZOO_HELP, bound_method, choice, eps_units, obbt_flags, run_options
from fkd.config import Dataset, Domain, EpsUnits, Profile
from fkd.losses import PAPER_STUDENTS, RELATED_STUDENTS


def add_evaluate(sub) -> None:
    """``evaluate``."""
    e = sub.add_parser("evaluate", **FMT, help="robust accuracy, distillation agreement, EMPLB, fidelity (Table 1)")
    e.add_argument("--dataset", type=choice(Dataset), required=True)
    e.add_argument("--students", default=",".join(PAPER_STUDENTS), help="comma list: sd,ard,rslad,fd or e.g. fd-a0.75 "
                   "(empty: the teacher alone)")
    e.add_argument("--eps", default=None, help="comma list, e.g. 0,0.1 or 4/255,8/255 (default: the paper's grid)")
    eps_units(e)
    e.add_argument("--n-images", type=int, default=None, help="first N images of the fixed subset")
    e.add_argument("--profile", type=choice(Profile), default=Profile.FULL,
                   help="full: the paper's subset size; quick: 100 images (CIFAR-10: 20)")
    e.add_argument("--steps", type=int, default=50)
    e.add_argument("--restarts", type=int, default=5)
    e.add_argument("--strategy", default="both", help="EMPLB objective: max, classes, both (the paper's attack on both objectives) or "
                   "strong (both, then APGD with the same budget: ours, about 1.7x the time)")
    e.add_argument("--chunk-size", type=int, default=250, help="images per task (part of the config)")
    e.add_argument("--agreement-attack", default="flip", help="agreement searches, comma list: flip (ours, the `agree` "
                   "rows, always) and paper (plain PGD's last iterates, `agree_paper`; addable to a finished run)")
    e.add_argument("--zoo", default=None, help=ZOO_HELP)
    e.add_argument("--out", required=True, help="run directory (resumes if it exists)")
    e.add_argument("--export", default=None, metavar="DIR", help="also publish rows, Table 1 and the EMPLB tables here")
    e.add_argument("--std", default=None, help="per-channel std of the normalised reading (default: the dataset's); "
                   "CIFAR-10: population or kuangliu, or a comma list")
    run_options(e, threads=True)
    e.set_defaults(func=commands_runs.cmd_evaluate)


def add_attack_study(sub) -> None:
    """``attack-study``."""
    a = sub.add_parser("attack-study", **FMT, help="EMPLB against PGD steps and restarts; --table3 for Table 3")
    a.add_argument("--dataset", type=choice(Dataset), default=Dataset.MNIST)
    a.add_argument("--students", default=",".join(PAPER_STUDENTS))
    a.add_argument("--eps", default="0.1")
    eps_units(a)
    a.add_argument("--n-images", type=int, default=100)
    a.add_argument("--steps", default="1,5,10,25,50,100,200")
    a.add_argument("--restarts", default="1,2,5,10,20")
    a.add_argument("--table3", action="store_true", help="Table 3: F-MNIST, 8/255, RSLAD vs FD, PGD-1/5/25/50")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--zoo", default=None, help=ZOO_HELP)
    a.add_argument("--out", required=True)
    a.add_argument("--quiet", action="store_true")
    a.set_defaults(func=commands_runs.cmd_attack_study)


def add_verify(sub) -> None:
    """``verify``."""
    v = sub.add_parser("verify", **FMT, help="certified FAITHUB beside EMPLB per image (Table 2); shardable")
    v.add_argument("--dataset", type=choice(Dataset), default=Dataset.MNIST)
    v.add_argument("--students", default=",".join(PAPER_STUDENTS))
    v.add_argument("--eps", default=None, help="comma list (default: the paper's grid without 0)")
    eps_units(v)
    v.add_argument("--n-images", type=int, default=None, help="first N images of the fixed subset (default: all "
                   "of it: 1000 MNIST and Fashion-MNIST, 100 CIFAR-10 images)")
    v.add_argument("--method", type=bound_method(), default="crown", help="the bound method, for both networks: "
                   "interval, crown, lp or milp (the students' training methods are named in --students)")
    v.add_argument("--mode", default="paper,tight", help="FAITHUB modes: paper (eq. 9 from logit bounds), tight (z_j - z_i "
                   "bounded directly), joint (tight plus teacher and student at one shared x), softmax (tight plus each network's "
                   "softmax inside its LP/MILP), joint_softmax (softmax plus both softmaxes at one x)")
    v.add_argument("--agreement", action="store_true", help="also certify distillation agreement per image "
                   "(MILP over teacher and student sharing the input): certified, counterexample or unknown")
    v.add_argument("--domain", type=choice(Domain), default=Domain.CLAMPED,
                   help="clamped: the ball intersected with [0, 1] (default, the valid images); plain: the ball "
                        "alone (for EMPLB and FAITHUB both)")
    v.add_argument("--solver", default="auto", help="auto (Gurobi, HiGHS beyond its licence), gurobi or highs")
    v.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve (its proven bound is kept)")
    v.add_argument("--tightening", default=None, help=TIGHTENING_HELP)
    obbt_flags(v)
    v.add_argument("--budget", type=float, default=None,
                   help="CPU seconds of tight-mode refinement per (image, student)")
    v.add_argument("--shard", default="1/1", help="k/n: this machine's share of the images")
    v.add_argument("--merge", nargs="+", default=None, metavar="DIR", help="join these shard directories into --out")
    v.add_argument("--out", required=True)
    v.add_argument("--export", default=None, metavar="DIR", help="also publish rows, Table 2 and histograms here")
    v.add_argument("--restore", default=None, metavar="DIR", help="first fill --out from a published run (an "
                   "--export directory) so it grows without recomputing the published rows")
    run_options(v, threads=True)
    v.set_defaults(func=commands_runs.cmd_verify)


def add_calibrate(sub) -> None:
    """``calibrate``."""
    c = sub.add_parser("calibrate", **FMT, help="ECE of teacher and students, clean and at the EMPLB points")
    c.add_argument("--dataset", type=choice(Dataset), default=Dataset.MNIST)
    c.add_argument("--students", default=",".join(PAPER_STUDENTS + RELATED_STUDENTS))
    c.add_argument("--eps", default=None, help="EMPLB radius (default: 0.1 MNIST, 8/255 otherwise)")
    eps_units(c)
    c.add_argument("--n-images", type=int, default=1000, help="first N images of the fixed subset")
    c.add_argument("--bins", type=int, default=15, help="equal-width confidence bins")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=int, default=0)
    c.add_argument("--out", required=True)
    c.set_defaults(func=commands_runs.cmd_calibrate)


def add_exact(sub) -> None:
    """``exact``."""
    x = sub.add_parser("exact", **FMT, help="exact delta* (branch and bound, global MINLP) beside EMPLB and FAITHUB")
    x.add_argument("--pair", default="mnist-7x7", help="a small pair (mnist-7x7) or zoo (the paper's networks)")
    x.add_argument("--dataset", type=choice(Dataset), default=Dataset.MNIST)
    x.add_argument("--train", action="store_true", help="train the small pair first (teacher, then students)")
    x.add_argument("--students", default="sd,fd")
    x.add_argument("--eps", default="0.02,0.05,0.1")
    eps_units(x)
    x.add_argument("--n-images", type=int, default=5, help="first N images of the fixed subset")
    x.add_argument("--tol", type=float, default=1e-3, help="stop when upper - lower <= tol")
    x.add_argument("--time-limit", type=float, default=60.0, help="branch-and-bound seconds per (image, student)")
    x.add_argument("--global-time-limit", type=float, default=30.0,
                   help="Gurobi global MINLP seconds per (class, sign); 0 skips it")
    x.add_argument("--method", type=bound_method(("lp", "crown")), default="lp",
                   help="the bound method of FAITHUB beside it: lp or crown")
    x.add_argument("--out", required=True)
    run_options(x, threads=True)
    x.set_defaults(func=commands_runs.cmd_exact)


def add_audit(sub) -> None:
    """``audit``."""
    a = sub.add_parser("audit", **FMT, help="audit your own teacher-student pair (ONNX, safetensors or zoo:<dataset>/<name>)")
    a.add_argument("--teacher", required=True, help="an .onnx file, a .safetensors file with the zoo's JSON "
                   "architecture beside it, or a zoo name such as zoo:mnist/rt")
    a.add_argument("--student", required=True, help="the same forms as --teacher, e.g. zoo:mnist/fd")
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", type=choice(Dataset), default=None,
                     help="the dataset's fixed evaluation subset: mnist, fashion-mnist or cifar10")
    src.add_argument("--images", default=None, metavar="FILE.npy", help="your own images, (N, C, H, W) in [0, 1]")
    a.add_argument("--labels", default=None, metavar="FILE.npy", help="class indices (N,) of --images, for accuracy")
    a.add_argument("--eps", default=None, help="comma list, e.g. 0.05,0.1 or 4/255,8/255 (none: the paper's "
                   "grid of --dataset; required with --images)")
    a.add_argument("--units", type=choice(EpsUnits), default=None, help="how eps is read: normalised or pixel "
                   "(none: the dataset's reading; with --images pixel, or normalised when --std is given)")
    a.add_argument("--std", default=None, help="per-channel std of the normalised reading, a comma list "
                   "(CIFAR-10 also: population or kuangliu)")
    a.add_argument("--n-images", type=int, default=100, help="the first N images")
    a.add_argument("--method", type=bound_method(students="--student"), default="crown",
                   help="the bound method: interval, crown, lp or milp")
    a.add_argument("--mode", default="paper,tight", help="FAITHUB modes (paper, tight, joint); the tightest is reported")
    a.add_argument("--no-agreement", action="store_true", help="skip certified distillation agreement (a MILP per image)")
    a.add_argument("--solver", default="auto", help="auto (Gurobi, HiGHS beyond its licence), gurobi or highs")
    a.add_argument("--time-limit", type=float, default=30.0, help="seconds per solve (its proven bound is kept)")
    a.add_argument("--tightening", default=None, help=TIGHTENING_HELP)
    obbt_flags(a)
    a.add_argument("--threads", type=int, default=1, help="torch CPU threads here (small networks gain nothing "
                   "from a second; 0: torch's default)")
    a.add_argument("--out", required=True, help="run directory (resumable): audit.csv, run.json, report.html")
    run_options(a, threads=False)
    a.set_defaults(func=commands_runs.cmd_audit)
