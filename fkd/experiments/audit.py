"""Audit a user's own teacher-student pair: EMPLB, FAITHUB and agreement per (image, eps).

A network is named by a path or a zoo name (``fkd.networks.load_network``): an ``.onnx`` file (converted and
checked by ``fkd.onnx_import``), a ``.safetensors`` file with the zoo's JSON architecture beside it,
or ``zoo:<dataset>/<name>`` (the zoo trained with eps in normalised units, ``zoo/<dataset>``;
``zoo:pixel/<dataset>/<name>`` for the pixel-reading zoo in ``zoo/pixel/<dataset>``). The images
are a dataset's fixed evaluation subset or the user's own array (N, C, H, W) in [0, 1].

One task per (image, eps) writes one part file, so a run resumes and may be spread over Dask
workers; ``audit(cfg, out)`` then writes ``audit.csv`` (one row per image and eps) and ``run.json``
(the files' sha256, the ONNX conversion checks, config, versions, machine); ``fkd.book.audit_report``
makes ``report.html`` from them.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import torch

from fkd.bounds import BoundMethod, DiffMode, Tightening, as_net
from fkd.bounds.agreement import certify_agreement
from fkd.bounds.obbt import obbt_options
from fkd.bounds.real import REAL_TOL
from fkd.bounds.shared import ImageBounds, check_tightening
from fkd.config import PAPER_EPS, Dataset, EpsUnits, parse
from fkd.empirical_bound import emplb
from fkd.metrics import PAPER_ATTACK, Attack, agreement, disagreement_point, predict
from fkd.networks import Loaded, load_network
from fkd.onnx_import import NetworkFileError
from fkd.experiments.study import StudyConfig, as_attack
from fkd.experiments.runner import RunDir, invocation, run_tasks, task_generator, write_csv_atomic, write_record
from fkd.units import pixel_label, radius, resolve_units

COLUMNS = ["image", "eps", "units", "eps_pixel", "label", "teacher_correct", "student_correct",
           "empirical_agreement", "emplb", "faithub", "faithub_mode", "agreement", "agreement_by", "seconds"]


@dataclass(frozen=True)
class AuditConfig(StudyConfig):
    """What to audit: ``teacher`` and ``student`` (``load_network`` specs) on a dataset's fixed
    subset (``dataset``) or the user's images (``images``, a .npy (N, C, H, W) in [0, 1]; optional
    ``labels``, a .npy (N,) of class indices), at each eps read in ``units`` (``std``: the per-channel
    normalisation of the normalised reading; a dataset's own by default). FAITHUB by ``method`` in
    each of ``modes``, with ``tightening`` of the intermediate layers (None: lp for lp / milp; obbt
    with ``obbt_limit`` seconds per MILP and ``obbt_budget`` CPU seconds per network, ``fkd.bounds.obbt``);
    ``agreement`` also certifies distillation agreement (MILP, ``time_limit`` s)."""
    teacher: str
    student: str
    dataset: Dataset | None = None
    images: str | None = None
    labels: str | None = None
    eps: tuple[float, ...] = ()
    units: EpsUnits | None = None
    std: tuple[float, ...] | None = None
    n_images: int = 100
    method: BoundMethod = BoundMethod.CROWN
    modes: tuple[DiffMode, ...] = (DiffMode.PAPER, DiffMode.TIGHT)
    solver: str = "auto"
    time_limit: float = 30.0
    agreement: bool = True
    attack: Attack = PAPER_ATTACK
    seed: int = 0
    tightening: Tightening | None = None
    obbt_limit: float | None = None
    obbt_budget: float | None = None

    def __post_init__(self) -> None:
        if (self.dataset is None) == (self.images is None):
            raise ValueError("give the images: a dataset (--dataset mnist|fashion-mnist|cifar10) or your own "
                             "array (--images FILE.npy), not both")
        if self.dataset is not None:
            self._set(dataset=parse(Dataset, self.dataset))
            self._set(units=resolve_units(self.units, self.dataset))
        else:
            default = EpsUnits.NORMALISED if self.std else EpsUnits.PIXEL
            self._set(units=parse(EpsUnits, self.units) if self.units else default)
            if self.units is EpsUnits.NORMALISED and not self.std:
                raise ValueError("eps in normalised units on your own images needs their std: pass --std "
                                 "(one value or one per channel), or read eps in pixel units")
        if self.std is not None:
            self._set(std=tuple(float(s) for s in self.std))
        self._set(method=parse(BoundMethod, self.method))
        self._set(modes=tuple(parse(DiffMode, m) for m in self.modes))
        self._set(attack=as_attack(self.attack))
        if self.tightening is not None:
            self._set(tightening=check_tightening(self.method, self.tightening)[1])
        obbt_options(self.tightening, self.obbt_limit, self.obbt_budget)
        eps = tuple(float(e) for e in self.eps) or tuple(e for e in PAPER_EPS.get(self.dataset, ()) if e > 0)
        if not eps or any(not 0.0 < e <= 1.0 for e in eps):
            raise ValueError(f"eps must be a non-empty list of radii in (0, 1] ({self.units.value} units), got {eps}")
        self._set(eps=tuple(float(e) for e in eps))
        if self.n_images < 1:
            raise ValueError(f"n_images must be at least 1, got {self.n_images}")
        if not self.modes:
            raise ValueError("modes must name at least one FAITHUB mode: paper, tight or joint")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AuditConfig":
        return cls(**{**d, "eps": tuple(d["eps"]), "modes": tuple(d["modes"]),
                      "std": tuple(d["std"]) if d.get("std") else None})

    VARYING = ("eps", "n_images")  # may grow between invocations
    OPTIONAL = ("tightening", "obbt_limit", "obbt_budget")


def load_images(cfg: AuditConfig) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
    """The audited images (N, C, H, W) float32 in [0, 1], their labels (N,) or None, and their ids
    (test-set indices of a dataset's fixed subset, or row numbers of the user's array)."""
    if cfg.dataset is not None:
        from fkd.data import eval_subset

        x, y, idx = eval_subset(cfg.dataset, cfg.n_images)
        return x, y, list(idx)
    import numpy as np

    def read(path: str, what: str):
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read the {what} ({exc}). Fix: save them with numpy.save") from None

    arr = read(cfg.images, "images")
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    if arr.ndim != 4 or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{cfg.images}: images must be a float array shaped (N, C, H, W), got {arr.dtype} "
                         f"{arr.shape}. Fix: add the channel axis (x[:, None]) or convert to float32 in [0, 1]")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"{cfg.images}: pixels must be finite and in [0, 1] (found {arr.min():.3g} .. "
                         f"{arr.max():.3g}). Fix: pass raw images scaled to [0, 1], not normalised ones; "
                         "give their std with --std to read eps in normalised units")
    x = torch.from_numpy(arr[:cfg.n_images].astype(np.float32))
    y = None
    if cfg.labels:
        lab = read(cfg.labels, "labels")
        if lab.shape != (arr.shape[0],) or not np.issubdtype(lab.dtype, np.integer):
            raise ValueError(f"{cfg.labels}: labels must be integers shaped ({arr.shape[0]},), got {lab.dtype} {lab.shape}")
        y = torch.from_numpy(lab[:cfg.n_images].astype(np.int64))
    if cfg.std is not None and len(cfg.std) not in (1, x.shape[1]):
        raise ValueError(f"--std has {len(cfg.std)} values for images of {x.shape[1]} channels: give one or {x.shape[1]}")
    return x, y, list(range(x.shape[0]))


def pixel_radius(cfg: AuditConfig, eps: float):
    """The pixel radius of ``eps`` (float, or (C, 1, 1) per channel), by ``fkd.units.radius``."""
    return radius(eps, cfg.units, cfg.dataset, cfg.std)


class Pair(NamedTuple):
    teacher: Loaded
    student: Loaded
    t_net: Any
    s_net: Any


@lru_cache(maxsize=4)
def _pair(cfg_json: str) -> tuple[Pair, torch.Tensor, torch.Tensor | None, list[int]]:
    cfg = AuditConfig.from_dict(json.loads(cfg_json))
    return load_pair(cfg)


def load_pair(cfg: AuditConfig) -> tuple[Pair, torch.Tensor, torch.Tensor | None, list[int]]:
    """Both networks, lowered for the verifier, and the images; refuses a pair that does not fit."""
    x, y, ids = load_images(cfg)
    shape = tuple(x.shape[1:])
    t, s = load_network(cfg.teacher, shape), load_network(cfg.student, shape)
    with torch.no_grad():
        kt, ks = t.model(x[:1]).shape[-1], s.model(x[:1]).shape[-1]
    if kt != ks:
        raise NetworkFileError(f"the teacher has {kt} classes, the student {ks}: a student must predict the "
                               "teacher's classes. Fix: audit a pair trained on the same labels")
    if y is not None and int(y.max()) >= kt:
        raise ValueError(f"labels go up to {int(y.max())}, the networks have {kt} classes. Fix: pass matching labels")
    try:
        nets = as_net(t.model, shape), as_net(s.model, shape)
    except ValueError as exc:
        raise NetworkFileError(f"the verifier cannot take this pair ({exc})") from None
    return Pair(t, s, *nets), x, y, ids


def run_task(cfg: AuditConfig, position: int, eps: float) -> dict[str, Any]:
    """The row of one image at one eps; raises if EMPLB > FAITHUB (a bug)."""
    pair, x, y, ids = _pair(json.dumps(cfg.to_dict(), sort_keys=True))
    teacher, student = pair.teacher.model, pair.student.model
    t0 = time.perf_counter()
    x0, r = x[position], pixel_radius(cfg, eps)
    g = task_generator(cfg.seed, "audit", eps, position)
    found = float(emplb(teacher, student, x0[None], r, cfg.attack, "both", g).value[0])
    agrees = bool(agreement(teacher, student, x0[None], r, cfg.attack, g)[0])
    shared = ImageBounds(x0, r, cfg.method, cfg.solver, cfg.time_limit, cfg.tightening,
                         **obbt_options(cfg.tightening, cfg.obbt_limit, cfg.obbt_budget))
    row: dict[str, Any] = {"image": ids[position], "eps": eps, "units": cfg.units.value, "eps_pixel": pixel_label(r),
                           "emplb": f"{found:.7g}", "empirical_agreement": int(agrees)}
    if y is not None:
        label = int(y[position])
        row.update(label=label, teacher_correct=int(predict(teacher, x0[None])[0] == label),
                   student_correct=int(predict(student, x0[None])[0] == label))
    best, status = None, []
    for mode in cfg.modes:
        res = shared.faithub(mode, pair.t_net, pair.s_net)
        row[f"faithub_{mode.value}"] = f"{res.value:.7g}"
        status.append(res.status)
        if found > res.value + REAL_TOL:  # EMPLB is a real gap (fkd.bounds.real)
            raise AssertionError(f"soundness violated: EMPLB {found} > FAITHUB {res.value} ({mode.value}) on image "
                                 f"{ids[position]} at eps {eps}. This is a bug; please report it.")
        best = (res.value, mode.value) if best is None or res.value < best[0] else best
    row.update(faithub=f"{best[0]:.7g}", faithub_mode=best[1])
    if cfg.agreement:
        point = disagreement_point(teacher, student, x0, r, cfg.attack,
                                   task_generator(cfg.seed, "audit-agreement", eps, position))
        ag = certify_agreement(teacher, student, pair.t_net, pair.s_net, x0, r, cfg.solver, cfg.time_limit, point)
        row.update(agreement=ag.outcome.value, agreement_by=ag.decided_by)
    row.update(status=next((s for s in ("failed", "time_limit") if s in status), "ok"),
               seconds=round(time.perf_counter() - t0, 3))
    return row


def _part(out: Path, position: int, eps: float) -> Path:
    return out / "parts" / f"eps{eps:.6f}" / f"{position:05d}.csv"


def _columns(cfg: AuditConfig) -> list[str]:
    return COLUMNS + [f"faithub_{m.value}" for m in cfg.modes] + ["status"]


def _job(cfg_dict: dict, out: str, task: tuple[int, float], threads: int | None):
    cfg = AuditConfig.from_dict(cfg_dict)
    if threads:  # a Dask worker: one thread
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    row = run_task(cfg, *task)
    write_csv_atomic(_part(Path(out), *task), [row], _columns(cfg))
    return task, time.perf_counter() - t0


def audit(cfg: AuditConfig, out: Path | str, *, workers: int = 1, scheduler: str | None = None,
          progress: bool = True) -> Path:
    """Audit the pair into ``out`` (resumable; one writer at a time); returns ``out/audit.csv``.

    Args:
        workers: K > 1 runs the tasks on a Dask LocalCluster of K processes; scheduler: a running
            Dask scheduler's address instead. ``fkd.book.audit_report.write_report(out)`` reads the result.
    """
    import csv

    from fkd.provenance import record

    out = Path(out)
    pair, x, _, _ = _pair(json.dumps(cfg.to_dict(), sort_keys=True))  # refuses a bad pair before anything is written
    files = {"teacher": pair.teacher._asdict(), "student": pair.student._asdict()}
    for f in files.values():
        f.pop("model")
    with RunDir(out).hold(cfg.fingerprint(), cfg.to_dict(), "choose another --out for another pair or config",
                          models={k: f["sha256"] for k, f in files.items()}):
        tasks = [(p, e) for e in cfg.eps for p in range(x.shape[0])]
        todo = [t for t in tasks if not _part(out, *t).exists()]
        t0 = time.perf_counter()
        provenance = record()
        base = {"config": cfg.to_dict(), "seed": cfg.seed, "files": files, "tasks": len(tasks), "workers": workers,
                "eps_pixel": {f"{e:g}": pixel_label(pixel_radius(cfg, e)) for e in cfg.eps}, **provenance}
        with invocation(out, base):
            run_tasks(_job, todo, (cfg.to_dict(), str(out)), workers=workers, scheduler=scheduler,
                      progress=progress, total=len(tasks), desc="audit")
        rows = []
        for t in tasks:
            with _part(out, *t).open() as f:
                rows.extend(csv.DictReader(f))
        write_csv_atomic(out / "audit.csv", rows, _columns(cfg))
        write_record(out, {**base, "computed_now": len(todo), "wall_time_s": round(time.perf_counter() - t0, 1)})
    return out / "audit.csv"
