"""Empirical evaluation runs: Table 1, EMPLB and fidelity as tidy CSV rows, resumable, on Dask.

A run is planned as tasks (model, eps, chunk of images). Each task writes its rows to its own part
file (atomically), so a killed run resumes without recomputing finished tasks; ``evaluate`` then
joins the parts into ``empirical.csv``. Tasks run in this process, or on a Dask cluster (a
LocalCluster of ``workers`` processes, or a running scheduler's address).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import torch

from fkd.config import PAPER_EPS, Dataset, EpsUnits, Profile, parse, resolve_model
from fkd.losses import PAPER_STUDENTS
from fkd.empirical_bound import EmplbStrategy, emplb
from fkd.metrics import PAPER_ATTACK, AgreementAttack, Attack, agreement, fidelity, robust_correct
from fkd.experiments.study import StudyConfig, as_attack, zoo_students
from fkd.experiments.runner import RunDir, invocation, run_tasks, task_generator, write_csv_atomic, write_record
from fkd.units import pixel_label, radius

COLUMNS = ("dataset", "teacher", "student", "method", "alpha", "eps", "units", "eps_pixel", "image", "metric",
           "value", "steps", "restarts", "seed")
#: evaluation subset size of the quick profile (the full profile uses the paper's 1000/1000/100)
QUICK_IMAGES = {Dataset.MNIST: 100, Dataset.FASHION_MNIST: 100, Dataset.CIFAR10: 20}
#: the metric each agreement attack's rows carry: ``agree`` (ours, the flip search: every published
#: run's) and ``agree_paper`` (the paper's attack, plain PGD's last iterate of each restart)
AGREEMENT_METRIC = {AgreementAttack.FLIP: "agree", AgreementAttack.PAPER: "agree_paper"}


@dataclass(frozen=True)
class EvalConfig(StudyConfig):
    """One empirical evaluation: models, radii, images, attack and seed.

    ``students`` are zoo names (``fd-a0.5``); ``eps`` in ``units`` (normalised or pixel, None: the
    dataset's default reading, whose zoo is evaluated; ``std``: the normalisation's per-channel std,
    None for the dataset's, ``fkd.units.STD``); the first ``n_images`` of the fixed evaluation subset; ``chunk_size`` images per task (results depend on it through the
    per-task seeds, so it is part of the config). ``agreement_attacks``: the agreement searches
    computed (``AgreementAttack``; metric names ``AGREEMENT_METRIC``): ``flip`` always, in every
    task of a student; any other is an added task set with its own part files, which a later
    invocation may add to a finished run (the field is ``VARYING``: fingerprints do not change).
    """
    dataset: Dataset
    students: tuple[str, ...]
    eps: tuple[float, ...]
    n_images: int
    attack: Attack = PAPER_ATTACK
    strategy: EmplbStrategy = EmplbStrategy.BOTH
    teacher: str = "rt"
    seed: int = 0
    chunk_size: int = 250
    profile: Profile = Profile.FULL
    units: EpsUnits | None = None
    std: tuple[float, ...] | None = None
    agreement_attacks: tuple[AgreementAttack, ...] = (AgreementAttack.FLIP,)

    def __post_init__(self) -> None:
        d = self._dataset_units()
        attacks = tuple(dict.fromkeys(parse(AgreementAttack, a) for a in self.agreement_attacks))
        if AgreementAttack.FLIP not in attacks:
            raise ValueError("agreement_attacks must hold flip (the `agree` rows every task of a student writes); "
                             "add paper beside it, e.g. (flip, paper)")
        self._set(agreement_attacks=attacks)
        if self.std is not None:
            self._set(std=tuple(float(v) for v in self.std))
            radius(0.0, self.units, d, self.std)  # validates: normalised units, positive per channel
        self._set(profile=parse(Profile, self.profile))
        self._set(strategy=parse(EmplbStrategy, self.strategy))
        self._set(attack=as_attack(self.attack))
        students = zoo_students(d, self.students)
        if "rt" in students:
            raise ValueError("the teacher is always evaluated; students names students only (sd, ard, rslad, fd, "
                             "or e.g. fd-a0.75; none: the teacher alone)")
        self._set(students=students)
        if any(not 0.0 <= e <= 1.0 for e in self.eps) or not self.eps:
            raise ValueError(f"eps must lie in [0, 1] ({self.units.value} units), got {self.eps}")
        self._set(eps=tuple(float(e) for e in self.eps))
        if self.n_images < 1 or self.chunk_size < 1:
            raise ValueError(f"n_images and chunk_size must be positive, got {self.n_images}, {self.chunk_size}")

    VARYING = ("students", "eps", "profile", "agreement_attacks")  # these may grow between runs

    def fingerprint_fields(self) -> dict[str, Any]:
        keep = super().fingerprint_fields()
        if self.units is EpsUnits.PIXEL:  # pixel-unit runs made before units were recorded keep theirs
            keep.pop("units")
        if self.std is None:  # and runs with the dataset's std
            keep.pop("std")
        return keep


def eval_config(dataset: Dataset | str, students: Iterable[str] = PAPER_STUDENTS, *,
                profile: Profile | str = Profile.FULL, eps: Iterable[float] | None = None,
                n_images: int | None = None, **overrides: Any) -> EvalConfig:
    """The paper's evaluation (section 6) of ``students`` on ``dataset``: all eps of Table 1, PGD-50 x 5.

    The quick profile keeps the attack and the eps grid and takes the first 100 (CIFAR-10: 20) images.
    """
    from fkd.data import EVAL_SUBSET_SIZE

    dataset, profile = parse(Dataset, dataset), parse(Profile, profile)
    if n_images is None:
        n_images = QUICK_IMAGES[dataset] if profile is Profile.QUICK else EVAL_SUBSET_SIZE[dataset]
    return EvalConfig(dataset=dataset, students=tuple(students), eps=tuple(PAPER_EPS[dataset] if eps is None else eps),
                      n_images=n_images, profile=profile, **overrides)


@dataclass(frozen=True)
class Task:
    """All metrics of one model (the teacher: accuracy only) at one eps on images [start, stop); with
    ``metric`` (``agree_paper``), that metric alone, in its own part file."""
    model: str
    eps: float
    start: int
    stop: int
    metric: str = ""

    @property
    def part(self) -> str:
        suffix = f".{self.metric}" if self.metric else ""
        return f"{self.model}/eps{self.eps:.6f}/{self.start:05d}-{self.stop:05d}{suffix}.csv"

    def generator(self, cfg: EvalConfig, kind: str) -> torch.Generator:
        """The seeded generator of one attack of this task: fixed by (seed, dataset, task, kind)."""
        return task_generator(cfg.seed, cfg.dataset.value, self.model, self.eps, self.start, kind)


def plan(cfg: EvalConfig) -> list[Task]:
    """Every task of ``cfg``: teacher and students, every eps, chunks of ``chunk_size`` images; then
    one task set per agreement attack beyond flip (students only)."""
    chunks = [(a, min(a + cfg.chunk_size, cfg.n_images)) for a in range(0, cfg.n_images, cfg.chunk_size)]
    tasks = [Task(m, e, a, b) for e in cfg.eps for m in (cfg.teacher, *cfg.students) for a, b in chunks]
    extra = [AGREEMENT_METRIC[k] for k in cfg.agreement_attacks if k is not AgreementAttack.FLIP]
    return tasks + [Task(m, e, a, b, k) for k in extra for e in cfg.eps for m in cfg.students for a, b in chunks]


def _model(dataset: Dataset, name: str, root: str | None, units: EpsUnits):
    from fkd.zoo import cached_model

    return cached_model(dataset, name, units, root)


@lru_cache(maxsize=4)
def _images(dataset: Dataset, n: int):
    from fkd.data import eval_subset

    return eval_subset(dataset, n)


def run_task(cfg: EvalConfig, task: Task, zoo_root: str | None = None) -> list[dict[str, Any]]:
    """Compute one task's rows: ``correct`` for every model; for a student also ``agree`` (eq. 14),
    ``emplb`` (and ``emplb_<strategy>`` per strategy run), and the fidelity pair ``top1_agree`` and
    ``kl`` at the EMPLB point (at eps = 0: the clean point). A task with a ``metric`` computes that
    agreement alone, from the generator of ``agree``: the same random starts, so per image an
    ``agree`` of 1 implies an ``agree_paper`` of 1."""
    x, y, idx = _images(cfg.dataset, cfg.n_images)
    x, y, idx = x[task.start:task.stop], y[task.start:task.stop], idx[task.start:task.stop]
    model = _model(cfg.dataset, task.model, zoo_root, cfg.units)
    r = radius(task.eps, cfg.units, cfg.dataset, cfg.std)  # the pixel radius of the task's eps
    values: dict[str, torch.Tensor] = {}
    if task.metric:
        search = {m: k for k, m in AGREEMENT_METRIC.items()}[task.metric]
        teacher = _model(cfg.dataset, cfg.teacher, zoo_root, cfg.units)
        values[task.metric] = agreement(teacher, model, x, r, cfg.attack, task.generator(cfg, "agree"), search)
    else:
        values["correct"] = robust_correct(model, x, y, r, cfg.attack, task.generator(cfg, "correct"))
    if task.model != cfg.teacher and not task.metric:
        teacher = _model(cfg.dataset, cfg.teacher, zoo_root, cfg.units)
        values["agree"] = agreement(teacher, model, x, r, cfg.attack, task.generator(cfg, "agree"))
        e = emplb(teacher, model, x, r, cfg.attack, cfg.strategy, task.generator(cfg, "emplb"))
        values["emplb"] = e.value
        if len(e.by_strategy) > 1:
            values.update({f"emplb_{s.value}": v for s, v in e.by_strategy.items()})
        values["top1_agree"], values["kl"] = fidelity(teacher, model, e.point)
    method, alpha = resolve_model(cfg.dataset, task.model)
    base = {"dataset": cfg.dataset.value, "teacher": cfg.teacher, "student": task.model, "method": method.value,
            "alpha": "" if alpha is None else alpha, "eps": task.eps, "units": cfg.units.value,
            "eps_pixel": pixel_label(r), "steps": cfg.attack.steps,
            "restarts": cfg.attack.restarts, "seed": cfg.seed}
    return [{**base, "image": int(idx[i]), "metric": name, "value": float(v[i])}
            for name, v in values.items() for i in range(len(idx))]


def _task_job(cfg_dict: dict, out: str, zoo_root: str | None, task: Task, threads: int | None) -> tuple[Task, float]:
    """Run one task and write its part file (the unit of work sent to a Dask worker)."""
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    cfg = EvalConfig(**cfg_dict)
    rows = ({**r, "value": f"{r['value']:.7g}"} for r in run_task(cfg, task, zoo_root))
    write_csv_atomic(Path(out) / "parts" / task.part, rows, COLUMNS)
    return task, time.perf_counter() - t0


def evaluate(cfg: EvalConfig, out: Path | str, *, workers: int = 1, scheduler: str | None = None,
             progress: bool = True, zoo_root: Path | str | None = None):
    """Run (or resume) the evaluation ``cfg`` into ``out`` and return all its rows as a DataFrame.

    Args:
        workers: 1 runs tasks here; K > 1 starts a Dask LocalCluster of K single-thread processes.
        scheduler: address of a running Dask scheduler (e.g. from dask-jobqueue on Slurm/PBS).
    Returns:
        pandas DataFrame with COLUMNS, also written to ``out/empirical.csv``; the run record
        (config, seed, package versions, machine, wall time) goes to ``out/run.json``.
    """
    from fkd.provenance import record

    from fkd.zoo import weights_sha256

    out = Path(out)
    root = Path(zoo_root) if zoo_root else None
    models = {m: weights_sha256(cfg.dataset, m, cfg.units, root) for m in (cfg.teacher, *cfg.students)}
    with RunDir(out).hold(cfg.fingerprint(), cfg.to_dict(),
                          "choose another --out (the attack, seed, images, chunk size or units differ)", models):
        provenance = record()  # taken before any task runs: the code version that computes the rows
        todo = [t for t in plan(cfg) if not (out / "parts" / t.part).exists()]
        t0 = time.perf_counter()
        base = {"config": cfg.to_dict(), "seed": cfg.seed, "tasks": len(plan(cfg)), "workers": workers,
                "scheduler": scheduler, **provenance}
        with invocation(out, base):
            timings = run_tasks(_task_job, todo, (cfg.to_dict(), str(out), str(zoo_root) if zoo_root else None),
                                workers=workers, scheduler=scheduler, progress=progress, total=len(plan(cfg)),
                                desc=f"evaluate {cfg.dataset.value}")
        df = collect(out)
        write_record(out, {"config": cfg.to_dict(), "seed": cfg.seed, "tasks": len(plan(cfg)), "computed_now": len(todo),
                           "wall_time_s": round(time.perf_counter() - t0, 1), "workers": workers, "scheduler": scheduler,
                           "task_seconds": {t.part: round(sec, 2) for t, sec in timings}, **provenance})
    return df


def collect(out: Path | str):
    """Join every part file under ``out/parts`` into ``out/empirical.csv``; return the DataFrame."""
    import pandas as pd

    out = Path(out)
    parts = sorted((out / "parts").glob("*/*/*.csv"))
    if not parts:
        raise FileNotFoundError(f"no results under {out}/parts. Fix: run `python -m fkd evaluate ... --out {out}`.")
    df = pd.concat([pd.read_csv(p, keep_default_na=False) for p in parts], ignore_index=True)
    df = df.sort_values(["eps", "student", "metric", "image"], kind="stable").reset_index(drop=True)
    df.to_csv(out / "empirical.csv", index=False)
    return load_results(out / "empirical.csv")  # the dtypes every reader of the file gets


def load_results(path: Path | str):
    """Read an ``empirical.csv`` or ``empirical.csv.gz`` (or a run directory holding one) as a DataFrame."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        path = next((path / n for n in ("empirical.csv", "empirical.csv.gz") if (path / n).exists()),
                    path / "empirical.csv")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist. Fix: run `python -m fkd evaluate ...` first.")
    return pd.read_csv(path, keep_default_na=False)
