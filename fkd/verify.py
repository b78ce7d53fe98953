"""Certified faithfulness runs: EMPLB and FAITHUB (eqs. 9-11) per image, student and eps.

One task per (image, eps): the teacher is lowered and bounded once and shared by every student.
Rows (dataset, teacher, student, eps, image, emplb, faithub_<mode> ..., method, solver, status,
seconds_<mode> ..., seed) go to one part file per task, so runs resume; ``shard=(k, n)`` keeps the
images whose position p in the subset has p % n == k - 1, so any scheduler can spread a run over
machines, and ``merge`` joins the shards' part files.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from .bounds import DiffMode, Method as BoundMethod, as_net, faithub
from .config import Dataset, model_name, parse, resolve_model
from .metrics import PAPER_ATTACK, Attack, emplb
from .runner import check_out, run_tasks, task_generator, write_csv_atomic, write_record

#: a bound may never sit below the attack's value; beyond this slack a violation is a bug and is raised
SOUNDNESS_TOL = 1e-6


@dataclass(frozen=True)
class VerifyConfig:
    """EMPLB and FAITHUB of ``students`` against the zoo teacher on the first ``n_images`` images
    of the fixed subset (this shard of them), for every eps and FAITHUB mode."""
    dataset: Dataset
    students: tuple[str, ...]
    eps: tuple[float, ...]
    n_images: int
    method: BoundMethod = BoundMethod.CROWN
    modes: tuple[DiffMode, ...] = (DiffMode.PAPER, DiffMode.TIGHT)
    solver: str = "auto"
    time_limit: float = 60.0
    attack: Attack = PAPER_ATTACK
    seed: int = 0
    shard: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        d = parse(Dataset, self.dataset)
        object.__setattr__(self, "dataset", d)
        object.__setattr__(self, "method", parse(BoundMethod, self.method))
        object.__setattr__(self, "modes", tuple(parse(DiffMode, m) for m in self.modes))
        if isinstance(self.attack, dict):
            object.__setattr__(self, "attack", Attack(**self.attack))
        object.__setattr__(self, "students", tuple(model_name(*resolve_model(d, s)) for s in self.students))
        object.__setattr__(self, "eps", tuple(float(e) for e in self.eps))
        object.__setattr__(self, "shard", tuple(int(v) for v in self.shard))
        if not self.students or "rt" in self.students:
            raise ValueError("students must name at least one student (sd, ard, rslad, fd, or e.g. fd-a0.75)")
        if not self.eps or any(not 0.0 < e <= 1.0 for e in self.eps):
            raise ValueError(f"eps must lie in (0, 1] (pixel units), got {self.eps}")
        k, n = self.shard
        if not 1 <= k <= n:
            raise ValueError(f"shard must be k/n with 1 <= k <= n, got {k}/{n}")
        if self.n_images < 1 or self.time_limit <= 0:
            raise ValueError("n_images and time_limit must be positive")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: (v.value if hasattr(v, "value") else [getattr(x, "value", x) for x in v]
                    if isinstance(v, tuple) else v) for k, v in d.items()}

    def fingerprint(self) -> str:
        """Hash of what decides a row's values (students, eps and shard may differ between invocations)."""
        keep = {k: v for k, v in self.to_dict().items() if k not in ("students", "eps", "shard")}
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]

    def images(self) -> list[int]:
        """Positions in the fixed subset of this shard's images."""
        k, n = self.shard
        return [p for p in range(self.n_images) if p % n == k - 1]


def parse_shard(text: str) -> tuple[int, int]:
    """"2/8" -> (2, 8); ValueError naming the format otherwise."""
    try:
        k, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"cannot read shard {text!r}; write k/n, e.g. 2/8") from None
    return k, n


@lru_cache(maxsize=16)
def _nets(dataset: Dataset, name: str):
    from .models import INPUT_SHAPE
    from .zoo import load_model

    model = load_model(dataset, *resolve_model(dataset, name))
    return model, as_net(model, INPUT_SHAPE[dataset])


def run_task(cfg: VerifyConfig, position: int, eps: float) -> list[dict[str, Any]]:
    """Rows of one image at one eps, one per student; raises if EMPLB > FAITHUB (a bug)."""
    from .data import eval_subset

    x, _, idx = eval_subset(cfg.dataset, cfg.n_images)
    x0 = x[position]
    teacher, t_net = _nets(cfg.dataset, "rt")
    rows = []
    for name in cfg.students:
        student, s_net = _nets(cfg.dataset, name)
        g = task_generator(cfg.seed, cfg.dataset.value, name, eps, position, "emplb")
        lower = float(emplb(teacher, student, x0[None], eps, cfg.attack, "both", g).value[0])
        row: dict[str, Any] = {"dataset": cfg.dataset.value, "teacher": "rt", "student": name, "eps": eps,
                               "image": idx[position], "emplb": f"{lower:.7g}", "method": cfg.method.value,
                               "solver": cfg.solver, "seed": cfg.seed}
        statuses = []
        for mode in cfg.modes:
            t0 = time.perf_counter()
            fu = faithub(t_net, s_net, x0, eps, mode=mode, method=cfg.method, solver=cfg.solver,
                         time_limit=cfg.time_limit)
            row[f"faithub_{mode.value}"] = f"{fu.value:.7g}"
            row[f"seconds_{mode.value}"] = round(time.perf_counter() - t0, 4)
            statuses.append("degraded" if fu.teacher.degraded or fu.student.degraded else "ok")
            if lower > fu.value + SOUNDNESS_TOL:
                raise AssertionError(f"soundness violated: EMPLB {lower} > FAITHUB {fu.value} ({mode.value}, "
                                     f"{cfg.method.value}) for {cfg.dataset.value} image {idx[position]}, "
                                     f"student {name}, eps {eps}. This is a bug; please report it.")
        row["status"] = "degraded" if "degraded" in statuses else "ok"
        rows.append(row)
    return rows


def _columns(cfg: VerifyConfig) -> list[str]:
    modes = [m.value for m in cfg.modes]
    return (["dataset", "teacher", "student", "eps", "image", "emplb"] + [f"faithub_{m}" for m in modes]
            + ["method", "solver", "status"] + [f"seconds_{m}" for m in modes] + ["seed"])


def _part(position: int, eps: float) -> str:
    return f"eps{eps:.6f}/{position:05d}.csv"


def _job(cfg_dict: dict, out: str, task: tuple[int, float], threads: int | None):
    if threads:
        torch.set_num_threads(threads)
    cfg = VerifyConfig(**cfg_dict)
    t0 = time.perf_counter()
    write_csv_atomic(Path(out) / "parts" / _part(*task), run_task(cfg, *task), _columns(cfg))
    return task, time.perf_counter() - t0


def verify(cfg: VerifyConfig, out: Path | str, *, workers: int = 1, scheduler: str | None = None,
           progress: bool = True):
    """Run (or resume) ``cfg`` into ``out``; returns every row found there (all shards present)."""
    from .provenance import record

    out = Path(out)
    check_out(out, cfg.fingerprint(), cfg.to_dict(), "choose another --out (method, modes, solver, time "
                                                      "limit, attack, seed or image count differ)")
    provenance = record()
    tasks = [(p, e) for e in cfg.eps for p in cfg.images()]
    todo = [t for t in tasks if not (out / "parts" / _part(*t)).exists()]
    t0 = time.perf_counter()
    timings = run_tasks(_job, todo, (cfg.to_dict(), str(out)), workers=workers, scheduler=scheduler,
                        progress=progress, total=len(tasks), desc=f"verify {cfg.dataset.value}")
    write_record(out, {"config": cfg.to_dict(), "seed": cfg.seed, "tasks": len(tasks), "computed_now": len(todo),
                       "wall_time_s": round(time.perf_counter() - t0, 1), "workers": workers,
                       "task_seconds": {_part(*t): round(s, 3) for t, s in timings}, **provenance})
    return merge(out, [out])


def merge(out: Path | str, shards: list[Path | str]):
    """Join the part files of ``shards`` (run directories) into ``out/verify.csv``; returns the rows.

    Shards must come from the same config (their ``config.json`` fingerprints must agree).
    """
    import pandas as pd

    out = Path(out)
    prints = {json.loads((Path(s) / "config.json").read_text())["fingerprint"] for s in shards}
    if len(prints) > 1:
        raise ValueError(f"the shards {', '.join(map(str, shards))} come from different configs; merge only "
                         f"shards of one run (same method, modes, solver, attack, seed, images)")
    parts = sorted(p for s in shards for p in (Path(s) / "parts").glob("*/*.csv"))
    if not parts:
        raise FileNotFoundError(f"no verification results in {', '.join(map(str, shards))}")
    df = pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)
    df = df.drop_duplicates(["student", "eps", "image"]).sort_values(["eps", "student", "image"]).reset_index(drop=True)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "verify.csv", index=False)
    return df
