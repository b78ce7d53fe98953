"""Certified faithfulness runs: EMPLB and FAITHUB (eqs. 9-11) per image, student and eps.

One task per (image, eps): the teacher is lowered and bounded once and shared by every student.
Rows (dataset, teacher, student, eps, image, emplb, faithub_<mode> ..., method, solver, status,
seconds_<mode> ..., seed) go to one part file per task, so runs resume; a run's shard
(``fkd.experiments.verify_config``) lets any scheduler spread it over machines, and ``merge``
joins the shards' part files.
"""
from __future__ import annotations

import json
import shutil
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from fkd.bounds import as_net
from fkd.bounds.agreement import certify_agreement
from fkd.bounds.obbt import obbt_options
from fkd.bounds.real import REAL_TOL
from fkd.bounds.shared import ImageBounds
from fkd.config import Dataset, Domain, EpsUnits, resolve_model
from fkd.empirical_bound import emplb
from fkd.metrics import disagreement_point
from fkd.experiments.runner import RunDir, check_out, merge_part, read_part, run_growing, task_generator, write_csv_atomic
from fkd.experiments.verify_config import VerifyConfig
from fkd.units import pixel_label, radius


def _nets(dataset: Dataset, name: str, units: EpsUnits):
    """(model, lowered net) of a zoo model, lowered once per weights file (``fkd.zoo.model_key``)."""
    from fkd.models import INPUT_SHAPE
    from fkd.zoo import model_key

    return _lowered(model_key(dataset, name, units), INPUT_SHAPE[dataset])


@lru_cache(maxsize=16)
def _lowered(key: tuple, shape: tuple):
    from fkd.zoo import _load_cached

    model = _load_cached(key)
    return model, as_net(model, shape)


def run_task(cfg: VerifyConfig, position: int, eps: float) -> list[dict[str, Any]]:
    """Rows of one image at one eps (in ``cfg.units``), one per student; raises if EMPLB > FAITHUB (a bug)."""
    from fkd.data import eval_subset

    x, _, idx = eval_subset(cfg.dataset, cfg.n_images)
    x0 = x[position]
    r = radius(eps, cfg.units, cfg.dataset)  # the pixel radius, per channel where the std differs
    teacher, t_net = _nets(cfg.dataset, "rt", cfg.units)
    clamp = cfg.domain is Domain.CLAMPED
    shared = ImageBounds(x0, r, cfg.method, cfg.solver, cfg.time_limit, cfg.tightening, cfg.budget, clamp,
                         **obbt_options(cfg.tightening, cfg.obbt_limit, cfg.obbt_budget))
    rows = []
    for name in cfg.students:
        student, s_net = _nets(cfg.dataset, name, cfg.units)
        g = task_generator(cfg.seed, cfg.dataset.value, name, eps, position, "emplb")
        lower = float(emplb(teacher, student, x0[None], r, cfg.attack, "both", g, clamp).value[0])
        method, alpha = resolve_model(cfg.dataset, name)
        row: dict[str, Any] = {"dataset": cfg.dataset.value, "teacher": "rt", "student": name,
                               "method": method.value, "alpha": alpha, "eps": eps, "image": idx[position],
                               "emplb": f"{lower:.7g}", "bound_method": cfg.method.value, "seed": cfg.seed}
        statuses, solvers = [], set()
        for mode in cfg.modes:
            res = shared.faithub(mode, t_net, s_net)
            row[f"faithub_{mode.value}"] = f"{res.value:.7g}"
            row[f"seconds_{mode.value}"] = round(res.seconds, 4)
            row[f"solves_{mode.value}"] = res.solves
            statuses.append(res.status)
            solvers.update(res.solvers)
            if lower > res.value + REAL_TOL:  # EMPLB is a real gap (fkd.bounds.real)
                raise AssertionError(f"soundness violated: EMPLB {lower} > FAITHUB {res.value} ({mode.value}, "
                                     f"{cfg.method.value}) for {cfg.dataset.value} image {idx[position]}, "
                                     f"student {name}, eps {eps}. This is a bug; please report it.")
        if cfg.agreement:
            g = task_generator(cfg.seed, cfg.dataset.value, name, eps, position, "agreement")
            point = disagreement_point(teacher, student, x0, r, cfg.attack, g)
            ag = certify_agreement(teacher, student, t_net, s_net, x0, r, cfg.solver, cfg.time_limit, point)
            row.update(agreement=ag.outcome.value, agreement_by=ag.decided_by, seconds_agreement=round(ag.seconds, 4))
            if ag.decided_by == "milp":
                statuses.append({"optimal": "ok"}.get(ag.status, ag.status))  # time_limit or failed
                solvers.add(ag.solver)
        row["status"] = next((s for s in ("failed", "time_limit") if s in statuses), "ok")
        row["solver"] = "+".join(sorted(solvers)) or "none"
        row.update(units=cfg.units.value, eps_pixel=pixel_label(r), domain=cfg.domain.value)
        rows.append(row)
    return rows


def _columns(cfg: VerifyConfig) -> list[str]:
    modes = [m.value for m in cfg.modes]
    return (["dataset", "teacher", "student", "method", "alpha", "eps", "units", "eps_pixel", "domain", "image", "emplb"]
            + [f"faithub_{m}" for m in modes] + ["bound_method", "solver", "status"]
            + [f"seconds_{m}" for m in modes] + [f"solves_{m}" for m in modes]
            + (["agreement", "agreement_by", "seconds_agreement"] if cfg.agreement else []) + ["seed"])


def _part(position: int, eps: float) -> str:
    return f"eps{eps:.6f}/{position:05d}.csv"


def _have(out: Path, task: tuple[int, float]) -> list[dict[str, str]]:
    """The rows already in a task's part file (none if it does not exist)."""
    return read_part(out / "parts" / _part(*task))


def _job(cfg_dict: dict, out: str, task: tuple[int, float, tuple[str, ...]], threads: int | None):
    """Compute the students ``task[2]`` of one (image, eps) and add their rows to its part file."""
    if threads:
        torch.set_num_threads(threads)
    position, eps, students = task
    cfg = VerifyConfig(**{**cfg_dict, "students": students})
    t0 = time.perf_counter()
    merge_part(Path(out) / "parts" / _part(position, eps), run_task(cfg, position, eps), _columns(cfg))
    return task, time.perf_counter() - t0


def verify(cfg: VerifyConfig, out: Path | str, *, workers: int = 1, scheduler: str | None = None,
           progress: bool = True):
    """Run (or resume) ``cfg`` into ``out``; returns every row found there (all shards present).

    Resumable and growable: a task (image, eps) is computed for the students its part file lacks
    only, so adding students, eps or images to an existing run computes just the new rows.
    """
    from fkd.provenance import record

    from fkd.zoo import weights_sha256

    if cfg.fp_margin != "derived":
        raise ValueError("rows with the constant float margin are read and restored, never computed: the bounds "
                         "carry the derived margin (fkd.bounds.fp). Fix: verify into a new --out")
    out = Path(out)
    models = {m: weights_sha256(cfg.dataset, m, cfg.units) for m in ("rt", *cfg.students)}
    with RunDir(out).hold(cfg.fingerprint(), cfg.to_dict(), "choose another --out (method, modes, solver, time "
                          "limit, tightening, its obbt settings, budget, attack, seed, units or domain differ)", models):
        provenance = record()
        tasks = [(p, e) for e in cfg.eps for p in cfg.images()]
        run_growing(_job, cfg, out, tasks, cfg.students, lambda t: _have(out, t), workers=workers,
                    scheduler=scheduler, progress=progress, desc=f"verify {cfg.dataset.value}", provenance=provenance)
        return merge(out, [out])


def merge(out: Path | str, shards: list[Path | str]):
    """Join the part files of ``shards`` (run directories) into ``out/verify.csv``; returns the rows.

    Shards must come from the same config (their ``config.json`` fingerprints must agree).
    """
    import pandas as pd

    out = Path(out)
    for s in shards:
        if not (Path(s) / "config.json").is_file():
            what = "does not exist" if not Path(s).exists() else f"has no {Path(s) / 'config.json'}"
            raise ValueError(f"--merge {s}: the shard directory {what}. Fix: pass the --out directories of "
                             f"`python -m fkd verify --shard k/n ...` runs (each holds config.json and parts/)")
    prints = {json.loads((Path(s) / "config.json").read_text())["fingerprint"] for s in shards}
    if len(prints) > 1:
        raise ValueError(f"the shards {', '.join(map(str, shards))} come from different configs; merge only "
                         f"shards of one run (same method, modes, solver, attack, seed, images)")
    parts = sorted(p for s in shards for p in (Path(s) / "parts").glob("*/*.csv"))
    if not parts:
        raise ValueError(f"--merge: no verification results in {', '.join(map(str, shards))} (no parts/*/*.csv). "
                         f"Fix: run `python -m fkd verify --shard k/n --out DIR` into them first")
    df = pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)
    df = df.drop_duplicates(["student", "eps", "image"]).sort_values(["eps", "student", "image"]).reset_index(drop=True)
    out.mkdir(parents=True, exist_ok=True)
    if all(Path(s).resolve() != out.resolve() for s in shards):
        _merge_records(out, [Path(s) for s in shards])
    df.to_csv(out / "verify.csv", index=False)
    return df


def _merge_records(out: Path, shards: list[Path]) -> None:
    """The merged run's records: ``config.json`` (the shards' config, ``shard`` [1, 1] when they cover
    every share of the images, with ``merged_from`` naming each shard's share), ``runs.jsonl`` (every
    invocation of every shard) and ``run.json`` (the first shard's record with the merged config and
    each shard's commit, tasks and wall time under ``merged_from``)."""
    metas = [json.loads((s / "config.json").read_text()) for s in shards]
    shares = [m["config"].get("shard", [1, 1]) for m in metas]
    n = shares[0][1]
    whole = sorted(k for k, _ in shares) == list(range(1, n + 1)) and all(m == n for _, m in shares)
    meta = {**metas[0], "config": {**metas[0]["config"], "shard": [1, 1] if whole else shares[0]}, "merged_from": shares}
    (out / "config.json").write_text(json.dumps(meta, indent=1))
    lines = [line for s in shards if (s / "runs.jsonl").exists()
             for line in (s / "runs.jsonl").read_text().splitlines() if line.strip()]
    (out / "runs.jsonl").write_text("".join(line + "\n" for line in lines))
    runs = [json.loads((s / "run.json").read_text()) for s in shards if (s / "run.json").exists()]
    if runs:
        first = {**runs[0], "config": meta["config"]}
        first["merged_from"] = [{"shard": r.get("config", {}).get("shard"), "git_commit": r.get("git_commit"),
                                 "tasks": r.get("tasks"), "wall_time_s": r.get("wall_time_s")} for r in runs]
        (out / "run.json").write_text(json.dumps(first, indent=1))


def restore(published: Path | str, out: Path | str) -> int:
    """Start (or complete) run directory ``out`` from a published run (``export``'s ``verify.csv.gz``
    and records), so the run grows without recomputing the published rows.

    Writes the part file of every (image, eps) the published rows cover and ``out`` lacks (the rows'
    text kept verbatim), the published ``config.json`` (``out`` must hold the same config or none)
    and its ``runs.jsonl`` (when ``out`` has none). Returns the number of part files written.
    """
    import pandas as pd

    from fkd.data import eval_indices

    published, out = Path(published), Path(out)
    for name in ("config.json", "verify.csv.gz"):
        if not (published / name).exists():
            raise FileNotFoundError(f"--restore {published}: {published / name} not found. Fix: restore from a "
                                    f"directory written by `python -m fkd verify --export DIR` (results/certified/<dataset>)")
    meta = json.loads((published / "config.json").read_text())
    cfg = VerifyConfig(**{"units": EpsUnits.PIXEL, "fp_margin": "constant", **meta["config"]})  # configs without units predate the
    # normalised reading: they were all pixel-unit runs
    check_out(out, meta["fingerprint"], meta["config"], "restore into an empty directory or one of the same run")
    rows = pd.read_csv(published / "verify.csv.gz", dtype=str, keep_default_na=False)
    if "units" not in rows.columns and cfg.units is EpsUnits.PIXEL:  # exported before rows named their units
        at = list(rows.columns).index("eps") + 1
        rows.insert(at, "units", "pixel")
        rows.insert(at + 1, "eps_pixel", [pixel_label(float(e)) for e in rows.eps])
    if "domain" not in rows.columns and cfg.domain is Domain.CLAMPED:  # and before the plain ball existed
        rows.insert(list(rows.columns).index("eps_pixel") + 1, "domain", "clamped")
    columns = _columns(cfg)
    if list(rows.columns) != columns:
        raise ValueError(f"{published / 'verify.csv.gz'} has columns {list(rows.columns)}, this config "
                         f"writes {columns}: it was not exported from this run's config")
    position = {i: p for p, i in enumerate(eval_indices(cfg.dataset))}
    written = 0
    for (eps, image), group in rows.groupby(["eps", "image"], sort=False):
        path = out / "parts" / _part(position[int(image)], float(eps))
        if not path.exists():
            write_csv_atomic(path, group.to_dict("records"), columns)
            written += 1
    if (published / "runs.jsonl").exists() and not (out / "runs.jsonl").exists():
        shutil.copyfile(published / "runs.jsonl", out / "runs.jsonl")
    return written
