"""Exact delta* runs: where EMPLB and FAITHUB sit relative to delta*.

One task per (image, eps): for every student, EMPLB (the paper's attack, both objectives), FAITHUB
(paper, tight and joint modes) and delta* by branch and bound over input splits
(``fkd.bounds.exact``), started from the EMPLB point. Rows (dataset, pair, teacher, student, method,
alpha, eps, image, emplb, faithub_<mode>, delta_lower, delta_upper, status, nodes, seconds, seed)
go to one part file per task, so runs resume, and a run raises if EMPLB > delta_upper or
delta_lower > FAITHUB (a bug by definition). ``pair`` picks the networks: a small pair of
``fkd.small`` (``mnist-7x7``), or ``zoo`` for the paper's zoo networks of ``dataset``, where the
branch and bound stops at its budget long before the gap closes (784 inputs).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from fkd.bounds import DiffMode, as_net
from fkd.bounds.exact import exact_delta
from fkd.bounds.real import REAL_TOL
from fkd.bounds.shared import ImageBounds
from fkd.config import Dataset, EpsUnits, parse, resolve_model
from fkd.empirical_bound import emplb
from fkd.metrics import PAPER_ATTACK, Attack
from fkd.experiments.study import StudyConfig, as_attack, zoo_students
from fkd.experiments.runner import RunDir, merge_part, run_growing, task_generator
from fkd.units import pixel_label, radius, resolve_units
from fkd.experiments.verify import _have, _part

MODES = (DiffMode.PAPER, DiffMode.TIGHT, DiffMode.JOINT)
COLUMNS = ["dataset", "pair", "teacher", "student", "method", "alpha", "eps", "units", "eps_pixel", "image", "emplb",
           "faithub_paper", "faithub_tight", "faithub_joint", "delta_lower", "delta_upper", "gap", "status",
           "bab_lower", "bab_upper", "bab_status", "nodes", "root_upper", "global_lower", "global_upper",
           "global_status", "global_solves", "global_variables", "seconds_faithub", "seconds_exact",
           "seconds_global", "bound_method", "seed"]


@dataclass(frozen=True)
class ExactConfig(StudyConfig):
    """delta* of ``students`` against the pair's teacher on the first ``n_images`` images of the
    fixed subset, at every eps: branch and bound to ``tol`` within ``time_limit`` seconds (or
    ``max_nodes``) per (image, student); FAITHUB by ``bound_method`` (lp or crown); Gurobi's global
    MINLP with ``global_time_limit`` seconds per (class, sign) and four times that per (image,
    student), started from the branch and bound's bounds (0: skip it). ``units``: how eps is read;
    a small pair is defined in pixel units, the zoo pair takes the dataset's reading by default."""
    dataset: Dataset = Dataset.MNIST
    pair: str = "mnist-7x7"
    students: tuple[str, ...] = ("sd", "fd")
    eps: tuple[float, ...] = (0.02, 0.05, 0.1)
    n_images: int = 10
    tol: float = 1e-3
    time_limit: float = 120.0
    max_nodes: int = 200_000
    bound_method: str = "lp"
    global_time_limit: float = 30.0
    attack: Attack = PAPER_ATTACK
    seed: int = 0
    units: EpsUnits | None = None

    def __post_init__(self) -> None:
        d = parse(Dataset, self.dataset)
        self._set(dataset=d)
        units = resolve_units(self.units, d) if self.pair == "zoo" else parse(EpsUnits, self.units or "pixel")
        if self.pair != "zoo" and units is not EpsUnits.PIXEL:
            raise ValueError(f"the small pair {self.pair} is defined in pixel units; leave units unset or pixel")
        self._set(units=units)
        self._set(attack=as_attack(self.attack))
        self._set(students=zoo_students(d, self.students))
        self._set(eps=tuple(float(e) for e in self.eps))
        if not self.students or "rt" in self.students:
            raise ValueError("students must name at least one student (e.g. sd, fd)")
        if not self.eps or any(not 0.0 < e <= 1.0 for e in self.eps):
            raise ValueError(f"eps must lie in (0, 1] ({self.units.value} units), got {self.eps}")
        if self.n_images < 1 or self.time_limit <= 0 or self.tol <= 0 or self.max_nodes < 0:
            raise ValueError("n_images, time_limit and tol must be positive, max_nodes >= 0")
        if self.bound_method not in ("crown", "lp"):
            raise ValueError(f"unknown bound method {self.bound_method!r}; choose one of: crown, lp")
        if self.pair != "zoo" and self.small_pair().dataset is not d:
            raise ValueError(f"pair {self.pair} is a {self.small_pair().dataset.value} pair, not {d.value}")

    def small_pair(self):
        """The ``fkd.small.SmallPair`` (ValueError listing the options for an unknown name)."""
        from fkd.small import get_pair

        return get_pair(self.pair)

    @property
    def pair_name(self) -> str:
        return self.pair

    VARYING = ("students", "eps", "n_images")  # may grow between invocations

    def fingerprint_fields(self) -> dict[str, Any]:
        keep = super().fingerprint_fields()
        if self.units is EpsUnits.PIXEL:  # pixel-unit runs made before units were recorded keep theirs
            keep.pop("units")
        return keep


def _model(dataset: Dataset, pair: str, name: str, units: EpsUnits = EpsUnits.PIXEL):
    """(model, lowered net) of a zoo model (pair ``zoo``, the zoo of ``units``) or of the small pair's
    model, lowered once per weights file (a zoo model's ``fkd.zoo.model_key``)."""
    from fkd.zoo import model_key

    key = model_key(dataset, name, units) if pair == "zoo" else None
    return _lowered(dataset, pair, name, key)


@lru_cache(maxsize=16)
def _lowered(dataset: Dataset, pair: str, name: str, key: tuple | None):
    from fkd.models import INPUT_SHAPE
    from fkd.small import get_pair, load_small
    from fkd.zoo import _load_cached

    method, _ = resolve_model(dataset, name)
    if pair == "zoo":
        model, shape = _load_cached(key), INPUT_SHAPE[dataset]
    else:
        small = get_pair(pair)
        model, shape = load_small(small, method), small.input_shape
    return model, as_net(model, shape)


def images(cfg: ExactConfig) -> tuple[torch.Tensor, list[int]]:
    """The run's images (N, C, H, W) (pooled for a small pair) and their test-set indices."""
    from fkd.data import eval_subset
    from fkd.small import small_subset

    if cfg.pair == "zoo":
        x, _, idx = eval_subset(cfg.dataset, cfg.n_images)
    else:
        x, _, idx = small_subset(cfg.small_pair(), cfg.n_images)
    return x, idx


def run_task(cfg: ExactConfig, position: int, eps: float) -> list[dict[str, Any]]:
    """Rows of one image at one eps, one per student; raises if the sandwich is broken (a bug)."""
    x, idx = images(cfg)
    x0 = x[position]
    r = radius(eps, cfg.units, cfg.dataset)  # the pixel radius (a small pair: eps itself)
    teacher, t_net = _model(cfg.dataset, cfg.pair, "rt", cfg.units)
    shared = ImageBounds(x0, r, cfg.bound_method, "auto", 60.0)
    rows = []
    for name in cfg.students:
        student, s_net = _model(cfg.dataset, cfg.pair, name, cfg.units)
        g = task_generator(cfg.seed, cfg.dataset.value, cfg.pair_name, name, eps, position, "emplb")
        e = emplb(teacher, student, x0[None], r, cfg.attack, "both", g)
        t0 = time.perf_counter()
        bounds = {m.value: shared.faithub(m, t_net, s_net).value for m in MODES}
        t1 = time.perf_counter()
        d = exact_delta(teacher, student, x0, r, tol=cfg.tol, max_nodes=cfg.max_nodes,
                        time_limit=cfg.time_limit, start_points=e.point, t_net=t_net, s_net=s_net)
        lower = float(e.value[0])
        nl = _global(cfg, teacher, student, t_net, s_net, x0, r, e, d)
        upper = min(d.upper, nl.upper, *bounds.values())  # every one is a proven bound on delta*
        best = max(d.lower, nl.lower)
        if lower > upper + REAL_TOL or best > upper + REAL_TOL:
            raise AssertionError(f"soundness violated: EMPLB {lower}, delta* in [{best}, {upper}] (branch and bound [{d.lower}, {d.upper}], global [{nl.lower}, {nl.upper}]), FAITHUB "
                                 f"{bounds} for {cfg.pair_name} image {idx[position]}, student {name}, eps {eps}. "
                                 f"This is a bug; please report it.")
        method, alpha = resolve_model(cfg.dataset, name)
        rows.append({"dataset": cfg.dataset.value, "pair": cfg.pair_name, "teacher": "rt", "student": name,
                     "method": method.value, "alpha": alpha, "eps": eps, "units": cfg.units.value,
                     "eps_pixel": pixel_label(r), "image": idx[position],
                     "emplb": f"{lower:.7g}", **{f"faithub_{m}": f"{v:.7g}" for m, v in bounds.items()},
                     "delta_lower": f"{best:.7g}", "delta_upper": f"{upper:.7g}", "gap": f"{upper - best:.3g}",
                     "status": "closed" if upper - best <= cfg.tol else "open",
                     "bab_lower": f"{d.lower:.7g}", "bab_upper": f"{d.upper:.7g}", "bab_status": d.status,
                     "nodes": d.nodes, "root_upper": f"{d.root_upper:.7g}",
                     "global_lower": f"{nl.lower:.7g}", "global_upper": f"{nl.upper:.7g}", "global_status": nl.status,
                     "global_solves": nl.solves, "global_variables": nl.variables, "seconds_global": round(nl.seconds, 3),
                     "seconds_faithub": round(t1 - t0, 3), "seconds_exact": round(d.seconds, 3),
                     "bound_method": cfg.bound_method, "seed": cfg.seed})
    return rows


def _global(cfg: ExactConfig, teacher, student, t_net, s_net, x0, eps, e, bab):
    """Gurobi's global MINLP (``fkd.bounds.global_nl``) where asked for and where the licence allows;
    otherwise a record that it did not run (bounds 0 and 1, status skipped or unavailable)."""
    from fkd.bounds.global_nl import GlobalDelta, global_delta
    from fkd.bounds.solvers import SolverUnavailable

    skipped = GlobalDelta(0.0, 1.0, x0, 0.0, "skipped", 0, 0)
    if cfg.global_time_limit <= 0 or len(t_net.ops) != len(s_net.ops):
        return skipped
    try:
        start = max(float(e.value[0]), bab.lower)
        return global_delta(teacher, student, t_net, s_net, x0, eps, time_limit=cfg.global_time_limit,
                            budget=4 * cfg.global_time_limit, start=start,
                            start_point=e.point[0] if start == float(e.value[0]) else bab.point, cap=bab.upper)
    except SolverUnavailable as exc:
        import warnings

        warnings.warn(f"global delta* not computed: {exc}")
        return GlobalDelta(0.0, 1.0, x0, 0.0, "unavailable", 0, 0)


def _job(cfg_dict: dict, out: str, task: tuple[int, float, tuple[str, ...]], threads: int | None):
    if threads:  # a Dask worker's share; in-process runs keep the caller's setting
        torch.set_num_threads(threads)
    position, eps, students = task
    cfg = ExactConfig(**{**cfg_dict, "students": students})
    t0 = time.perf_counter()
    merge_part(Path(out) / "parts" / _part(position, eps), run_task(cfg, position, eps), COLUMNS)
    return task, time.perf_counter() - t0


def exact_study(cfg: ExactConfig, out: Path | str, *, workers: int = 1, scheduler: str | None = None,
                progress: bool = True):
    """Run (or resume, or grow) ``cfg`` into ``out``; returns every row as a DataFrame (``exact.csv``)."""
    import pandas as pd

    out = Path(out)
    with RunDir(out).hold(cfg.fingerprint(), cfg.to_dict(), "choose another --out (pair, tolerance, budget, bound "
                          "method, attack, seed or units differ)"):
        tasks = [(p, e) for e in cfg.eps for p in range(cfg.n_images)]
        run_growing(_job, cfg, out, tasks, cfg.students, lambda t: _have(out, t), workers=workers,
                    scheduler=scheduler, progress=progress, desc=f"exact delta* {cfg.pair_name}")
    df = pd.concat([pd.read_csv(p) for p in sorted((out / "parts").glob("*/*.csv"))], ignore_index=True)
    df = df.drop_duplicates(["student", "eps", "image"]).sort_values(["eps", "student", "image"]).reset_index(drop=True)
    df.to_csv(out / "exact.csv", index=False)
    return df


def export(out: Path | str, dest: Path | str) -> Path:
    """Publish a run directory: ``exact.csv`` and its run records (config.json, run.json, runs.jsonl)."""
    import shutil

    out, dest = Path(out), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("exact.csv", "config.json", "run.json", "runs.jsonl"):
        if (out / name).exists():
            shutil.copyfile(out / name, dest / name)
    return dest
