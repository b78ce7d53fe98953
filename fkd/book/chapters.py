"""The book's experiments: one frozen dataclass built from a chapter's ``parameters`` cell.

A chapter's parameters cell holds plain values (profile, dataset, n_images, eps grid, device, seed,
out); ``experiment(**values)`` turns them into an ``Experiment`` whose methods run (or resume) the
chapter's computations into ``out`` and return tidy rows. The quick profile is sized for a laptop
CPU (the whole book in a few minutes); the full profile is the paper's protocol.
``published(dataset)`` reads the full-profile runs shipped in ``results/``, with their run records.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from fkd.config import PAPER_EPS, Dataset, EpsUnits, Profile, parse
from fkd.data import EVAL_SUBSET_SIZE
from fkd.losses import PAPER_STUDENTS
from fkd.experiments.runner import torch_threads
from fkd.units import default_units, radius, resolve_units

from fkd.paths import CERTIFIED, EMPIRICAL, ROOT, kind_dirs, under_root

#: the book's quick profile: (images evaluated for Table 1 and EMPLB, images verified for Table 2);
#: smaller than `python -m fkd evaluate --profile quick` (fkd.experiments.evaluate.QUICK_IMAGES) so that the
#: whole book builds in minutes
QUICK_IMAGES = {Dataset.MNIST: (20, 10), Dataset.FASHION_MNIST: (20, 10), Dataset.CIFAR10: (5, 5)}
#: the bound method of each dataset's certified run (CIFAR-10's LPs exceed Gurobi's pip licence and
#: take HiGHS ~10 s per image and student, so its published run is CROWN); quick: CROWN everywhere
FULL_BOUND_METHOD = {Dataset.MNIST: "lp", Dataset.FASHION_MNIST: "lp", Dataset.CIFAR10: "crown"}


@dataclass(frozen=True)
class Experiment:
    """What one chapter computes: the zoo teacher against ``students`` on ``dataset``.

    ``n_images``: images of the fixed evaluation subset for Table 1 and EMPLB; ``n_verify``: images
    for FAITHUB (Table 2); ``eps``: radii read in ``units`` (Table 1 adds eps = 0; None: the
    dataset's reading, ``fkd.units.DEFAULT_UNITS``, whose zoo is used); ``out``: where runs go
    (resumable, ``out/<dataset>/{empirical,certified}``); ``workers``: Dask workers (1: in-process).
    """
    dataset: Dataset
    profile: Profile
    students: tuple[str, ...]
    eps: tuple[float, ...]
    n_images: int
    n_verify: int
    bound_method: str
    device: str
    seed: int
    out: Path
    workers: int = 1
    units: EpsUnits | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", resolve_units(self.units, self.dataset))
        if any(not 0.0 < e <= 1.0 for e in self.eps) or not self.eps:
            raise ValueError(f"eps must lie in (0, 1] ({self.units.value} units), got {self.eps}")
        if self.n_images < 1 or self.n_verify < 0 or self.workers < 1:
            raise ValueError("n_images and workers must be positive and n_verify >= 0, got "
                             f"{self.n_images}, {self.workers}, {self.n_verify}")
        if self.device != "cpu":
            raise ValueError(f"device {self.device!r}: evaluation and verification run on the CPU; set device = "
                             "'cpu' (a GPU is used for training only: python -m fkd train --device cuda)")

    def describe(self) -> str:
        """One sentence for the page: what this experiment runs, on which images, with which bounds."""
        from fkd.config import eps_label

        return (f"This run: the {self.profile.value} profile on {self.dataset.value}, students "
                f"{', '.join(s.upper() for s in self.students)}, eps {', '.join(eps_label(e) for e in self.eps)} "
                f"({self.units.value} units); {self.n_images} images evaluated by the attack, {self.n_verify} verified "
                f"with {self.bound_method.upper()} bounds; seed {self.seed}; rows in `{self.out.name}/{self.dataset.value}`.")

    def run_dir(self, kind: str) -> Path:
        """Where this experiment's ``kind`` run (empirical | certified | beyond) lives: ``out/<dataset>/<kind>``,
        with ``-<units>`` appended when the eps are read otherwise than the dataset's default (so the
        two readings never share a run directory)."""
        suffix = "" if self.units is default_units(self.dataset) else f"-{self.units.value}"
        return self.out / self.dataset.value / f"{kind}{suffix}"

    def eval_config(self):
        """The empirical evaluation (Table 1, EMPLB, fidelity): ``fkd.experiments.evaluate.EvalConfig``."""
        from fkd.experiments.evaluate import eval_config

        return eval_config(self.dataset, self.students, profile=self.profile, eps=(0.0, *self.eps),
                           n_images=self.n_images, seed=self.seed, units=self.units)

    def verify_config(self):
        """The certified run (Table 2, Figures 2 and 3): ``fkd.experiments.verify_config.VerifyConfig``."""
        from fkd.experiments.verify_config import VerifyConfig

        return VerifyConfig(dataset=self.dataset, students=self.students, eps=self.eps, n_images=max(self.n_verify, 1),
                            method=self.bound_method, seed=self.seed, units=self.units)

    @torch_threads(1)  # in-process tasks on small networks: one thread (see fkd.experiments.runner.torch_threads)
    def evaluate(self):
        """Run (or resume) the empirical evaluation; its rows (``fkd.experiments.evaluate`` columns)."""
        from fkd.experiments.evaluate import evaluate

        return evaluate(self.eval_config(), self.run_dir("empirical"), workers=self.workers,
                        progress=False)

    @torch_threads(1)
    def verify(self):
        """Run (or resume) EMPLB and FAITHUB per image, student and eps; its rows (``fkd.experiments.verify``)."""
        from fkd.experiments.verify import verify

        if self.n_verify == 0:
            raise ValueError("n_verify is 0: this experiment verifies no image")
        return verify(self.verify_config(), self.run_dir("certified"), workers=self.workers,
                      progress=False)

    @torch_threads(1)
    def beyond(self, time_limit: float = 10.0):
        """Certified agreement and joint FAITHUB (beyond the paper) on the verified images: ``fkd.experiments.verify`` rows
        with faithub_tight, faithub_joint and the agreement columns, resumable in ``out/<dataset>/beyond``."""
        from dataclasses import replace

        from fkd.experiments.verify import verify

        cfg = replace(self.verify_config(), modes=("tight", "joint"), agreement=True, time_limit=time_limit)
        return verify(cfg, self.run_dir("beyond"), workers=self.workers, progress=False)

    def record(self, kind: str = "empirical"):
        """The run record of this experiment's ``kind`` run (empirical | certified | beyond), as ``provenance``."""
        return provenance(self.run_dir(kind))


def experiment(profile: str = "quick", dataset: str = "mnist", n_images: int | None = None,
               eps: Iterable[float] | None = None, device: str = "cpu", seed: int = 0,
               out: str | Path = "_build/reproduce", students: Iterable[str] = PAPER_STUDENTS,
               n_verify: int | None = None, bound_method: str | None = None, workers: int = 1,
               units: str | None = None) -> Experiment:
    """Build a chapter's ``Experiment`` from its parameters cell; None takes the profile's value.

    Args:
        profile: quick (first 20/20/5 images evaluated, 10/10/5 verified with CROWN) or full (the
            paper's 1000/1000/100 images; LP bounds for the MLPs, CROWN for CIFAR-10).
        eps: radii > 0 (default: the paper's grid of the dataset), read in ``units``.
        units: normalised or pixel (None: the dataset's reading, ``fkd.units.DEFAULT_UNITS``).
        out: output directory; a relative path is taken from the project root (notebooks run in book/).
    """
    d, p = parse(Dataset, dataset), parse(Profile, profile)
    quick = QUICK_IMAGES[d]
    n_eval = n_images or (quick[0] if p is Profile.QUICK else EVAL_SUBSET_SIZE[d])
    n_ver = n_verify if n_verify is not None else (quick[1] if p is Profile.QUICK else n_eval)
    grid = tuple(float(e) for e in (eps if eps is not None else PAPER_EPS[d]) if float(e) > 0)
    method = bound_method or ("crown" if p is Profile.QUICK else FULL_BOUND_METHOD[d])
    out = Path(out)
    return Experiment(dataset=d, profile=p, students=tuple(students), eps=grid, n_images=n_eval,
                      n_verify=min(n_ver, n_eval), bound_method=method, device=device, seed=seed,
                      out=under_root(out), workers=workers, units=units)


def provenance(run_dir: Path | str) -> dict[str, Any]:
    """The essentials of a run directory's record (``run.json``): what ran, where, with what.

    Returns:
        dict with commit, seed, images, invocations, total wall time (s) over them, workers, machine
        and the main package versions;
        raises FileNotFoundError naming the directory if it holds no run record.
    """
    from fkd.book.stages import invocations

    path = Path(run_dir) / "run.json"
    if not path.exists():
        raise FileNotFoundError(f"no run record at {path}. Fix: run the experiment (or `make verify`/`make evaluate`).")
    r = json.loads(path.read_text())
    cfg, pk = r.get("config", {}), r.get("packages", {})
    runs = invocations(run_dir)  # a grown or resumed run: every invocation's wall time counts
    return {"run": str(Path(run_dir).relative_to(ROOT)) if Path(run_dir).is_relative_to(ROOT) else str(run_dir),
            "commit": r.get("git_commit", "unknown")[:12] + ("-dirty" if r.get("git_commit", "").endswith("-dirty") else ""),
            "seed": r.get("seed"), "images": cfg.get("n_images") or len(cfg.get("images") or []) or None,
            "students": ",".join(cfg.get("students", [])),
            "method": cfg.get("method", "PGD attack"), "invocations": len(runs),
            "wall_time_s": round(sum(float(x.get("wall_time_s") or 0) for x in runs), 1),
            "machine": f"{r.get('machine', {}).get('cpu_count', '?')} CPU cores, {r.get('workers', 1)} worker(s)",
            "packages": ", ".join(f"{k} {pk[k]}" for k in ("torch", "gurobipy", "highspy") if k in pk)}


class Published(NamedTuple):
    """A dataset's full-profile runs as shipped in ``results/``: rows and run records (None if absent)."""
    dataset: Dataset
    empirical: Any
    certified: Any
    records: list[dict[str, Any]]


def published(dataset: Dataset | str, certified_run: str | None = None) -> Published:
    """Read ``results/empirical/<dataset>`` and ``results/certified/<certified_run or dataset>``."""
    import pandas as pd

    from fkd.experiments.evaluate import load_results

    d = parse(Dataset, dataset)
    emp_dir, cert_dir = EMPIRICAL / d.value, CERTIFIED / (certified_run or d.value)
    empirical = load_results(emp_dir) if emp_dir.exists() else None
    certified = pd.read_csv(cert_dir / "verify.csv.gz") if (cert_dir / "verify.csv.gz").exists() else None
    records = [provenance(p) for p in (emp_dir, cert_dir) if (p / "run.json").exists()]
    return Published(d, empirical, certified, records)


def records_table(records: Iterable[dict[str, Any]]):
    """Run records as a DataFrame, one row per run (for a chapter's provenance cell)."""
    import pandas as pd

    frame = pd.DataFrame(list(records)).set_index("run")
    frame["students"] = frame.students.str.replace(",", ", ")
    frame["wall time (min)"] = (frame.pop("wall_time_s").astype(float) / 60).round(1)
    return frame


def zoo_accuracy():
    """Clean test accuracy (%) of every zoo model beside the paper's (section 6), from the models'
    own metadata: dataset, model, ours, paper, diff, epochs run, device."""
    import pandas as pd

    from fkd.zoo import list_zoo, paper_clean_accuracy

    paper = paper_clean_accuracy()
    rows = [{"dataset": r["dataset"], "model": r["file"].removesuffix(".safetensors"), "ours": r["clean_acc"],
             "paper": paper.get((r["dataset"], r["method"], r["alpha"])), "epochs run": r["epochs_run"],
             "device": r["device"]} for r in list_zoo()]
    frame = pd.DataFrame(rows)
    frame["diff"] = frame.ours - frame.paper
    return frame[["dataset", "model", "ours", "paper", "diff", "epochs run", "device"]].round(2)


class OneImage(NamedTuple):
    """EMPLB and FAITHUB of one image (section 4): the bound (``fkd.bounds.Faithub``), the attack's
    value and both networks' confidences (K,) at the attack's point."""
    test_index: int
    emplb: float
    faithub: Any
    teacher_probs: Any
    student_probs: Any


@torch_threads(1)
def one_image(dataset: Dataset | str = "mnist", student: str = "sd", position: int = 0, eps: float = 0.1,
              method: str = "lp", mode: str = "tight", seed: int = 0, units: str | None = None) -> OneImage:
    """Sandwich delta* (eq. 8) for image ``position`` of the fixed subset: EMPLB by the paper's PGD
    (section 4.1) below, FAITHUB (eqs. 9 to 11, ``method`` bounds, ``mode``) above."""
    import torch

    from fkd.bounds import faithub
    from fkd.data import eval_subset
    from fkd.empirical_bound import emplb
    from fkd.zoo import load_model

    d = parse(Dataset, dataset)
    x, _, idx = eval_subset(d, position + 1)
    x0 = x[position]
    u = resolve_units(units, d)
    r = radius(eps, u, d)
    teacher, model = load_model(d, "rt", units=u).eval(), load_model(d, student, units=u).eval()
    low = emplb(teacher, model, x0[None], r, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        pt, ps = teacher(low.point).softmax(-1)[0], model(low.point).softmax(-1)[0]
    fb = faithub(teacher, model, x0, r, mode=mode, method=method)
    return OneImage(int(idx[position]), float(low.value[0]), fb, pt, ps)


class ReportRuns(NamedTuple):
    """What the reproduction report reads: empirical rows of all datasets, certified rows by dataset."""
    datasets: list[str]
    empirical: Any
    certified: dict[str, Any]
    records: list[dict[str, Any]]


def report_runs(profile: str = "quick", out: str | Path = "_build/reproduce") -> ReportRuns:
    """The runs the report compares with the paper: the published ``results/`` (quick profile) or
    the full-profile runs under ``out/<dataset>/{empirical,certified}`` (full profile)."""
    import pandas as pd

    from fkd.experiments.evaluate import load_results

    p = parse(Profile, profile)
    emp, cert, records = [], {}, []
    for d in Dataset:
        if p is Profile.QUICK:
            pub = published(d)
            e, c, r = pub.empirical, pub.certified, pub.records
        else:
            base = kind_dirs(under_root(out) / d.value)
            e = load_results(base.empirical) if base.empirical.exists() else None
            c = pd.read_csv(base.certified / "verify.csv") if (base.certified / "verify.csv").exists() else None
            r = [provenance(k) for k in (base.empirical, base.certified) if (k / "run.json").exists()]
        if e is None or c is None:
            raise FileNotFoundError(f"no {'published' if p is Profile.QUICK else 'full-profile'} runs of {d.value}. "
                                    "Fix: run the Experiments chapters first (python -m fkd reproduce --profile "
                                    f"{p.value}) or `make evaluate verify`.")
        emp.append(e)
        cert[d.value] = c
        records += r
    return ReportRuns([d.value for d in Dataset], pd.concat(emp, ignore_index=True), cert, records)
