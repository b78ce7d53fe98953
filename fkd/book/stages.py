"""The full reproduction stage by stage: one record per (dataset, stage) saying what ran,
on which machine, with which solver and licence, from which commit, and for how long in total.

It reads what the runs left behind and holds no number of its own: the zoo's metadata (training:
wall time, device, record) and the run directories under ``results/`` (``runs.jsonl``, one line per
invocation, else ``run.json``). A run grown or resumed over several invocations counts the wall
time of each.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fkd.config import Dataset, Method, resolve_model

from fkd.losses import PAPER_STUDENTS
from fkd.paths import RESULTS

#: the stages of the reproduction, in the order they run
STAGES = ("train teacher", "train students", "evaluate (Tables 1, 5)", "attack study (Table 3)",
          "verify (Tables 2, 5)")
PAPER_METHODS = {Method(m) for m in PAPER_STUDENTS}

#: run directories of each evaluation-side stage, relative to ``results/``
RUN_DIRS = {
    "evaluate (Tables 1, 5)": {d.value: [f"empirical/{d.value}"] for d in Dataset},
    "attack study (Table 3)": {"mnist": ["empirical/attack-study-mnist"],
                               "fashion-mnist": ["empirical/table3", "empirical/table3-flips-fmnist"]},
    "verify (Tables 2, 5)": {"mnist": ["certified/mnist"], "fashion-mnist": ["certified/fashion-mnist"],
                             "cifar10": ["certified/cifar10", "certified/cifar10-modes", "certified/cifar10-lp"]},
}


def invocations(run_dir: Path | str) -> list[dict[str, Any]]:
    """Every recorded invocation of a run directory (``runs.jsonl``; else its one ``run.json``).

    Raises FileNotFoundError naming the directory when it holds neither."""
    run_dir = Path(run_dir)
    if (run_dir / "runs.jsonl").exists():
        return [json.loads(line) for line in (run_dir / "runs.jsonl").read_text().splitlines() if line.strip()]
    if (run_dir / "run.json").exists():
        return [json.loads((run_dir / "run.json").read_text())]
    raise FileNotFoundError(f"no run record in {run_dir} (runs.jsonl or run.json). Fix: run the stage, e.g. "
                            "`make evaluate` or `make verify`, or restore the published results/ directory.")


def _commits(records: list[dict[str, Any]]) -> str:
    seen = []
    for r in records:
        c = r.get("git_commit", "unknown")
        short = c[:7] + ("-dirty" if c.endswith("-dirty") else "")
        if short not in seen:
            seen.append(short)
    return ", ".join(seen)


def _machine(records: list[dict[str, Any]], workers: bool = True) -> str:
    m = records[-1].get("machine", {})
    text = f"{m.get('device', '?')} ({m.get('device_name', '?')}), {m.get('cpu_count', '?')} cores"
    if workers:
        text += ", " + "/".join(sorted({str(r.get("workers", 1)) for r in records})) + " worker(s)"
    return text


def _solvers(run_dir: Path, records: list[dict[str, Any]]) -> tuple[str, str]:
    """(solvers the rows used, licence as recorded) of a verification run."""
    import pandas as pd

    used = "none"
    if (run_dir / "verify.csv.gz").exists():
        col = pd.read_csv(run_dir / "verify.csv.gz", usecols=["solver"]).solver
        used = ", ".join(sorted(set(col.astype(str)))) or "none"
    if used == "none":
        return used, "none needed (no solver: interval or CROWN bounds)"
    licences = [r["solvers"] for r in records if r.get("solvers")]
    if licences:
        return used, "; ".join(f"{k}: {v}" for k, v in licences[-1].items())
    gp = records[-1].get("packages", {}).get("gurobipy", "not installed")
    return used, f"not recorded (gurobipy {gp} from pip, whose licence is the size-limited one)"


def _train_rows(dataset: Dataset, zoo: Path) -> list[dict[str, Any]]:
    teacher, students = [], []
    for path in sorted((zoo / dataset.value).glob("*.json")):
        meta = json.loads(path.read_text())
        method, _ = resolve_model(dataset, path.stem)
        if method is Method.RT:
            teacher.append((path.stem, meta))
        elif method in PAPER_METHODS:
            students.append((path.stem, meta))
    out = []
    for stage, models in (("train teacher", teacher), ("train students", students)):
        if not models:
            continue
        records = [m["record"] for _, m in models]
        profiles = sorted({m["config"]["profile"] for _, m in models})
        out.append({"dataset": dataset.value, "stage": stage,
                    "what": ", ".join(f"{n} ({m['epochs_run']} epochs)" for n, m in models)
                    + f"; profile {'/'.join(profiles)}",
                    "runs": len(models), "images": None,
                    "wall_time_s": round(sum(m["wall_time_s"] for _, m in models), 1),
                    "machine": _machine(records, workers=False)
                    + ", torch threads " + "/".join(sorted({str(r["machine"].get("torch_threads")) for r in records})),
                    "solver": "none", "licence": "none needed",
                    "seed": "/".join(sorted({str(m["seed"]) for _, m in models})), "commit": _commits(records)})
    return out


def stage_records(results: Path | str = RESULTS, zoo: Path | str | None = None):
    """One row per (dataset, stage) of the full reproduction.

    Returns:
        DataFrame (dataset, stage, what, runs, images, wall_time_s (summed over invocations),
        machine, solver (the backends the rows used), licence, seed, commit).
    """
    import pandas as pd

    from fkd.units import default_units
    from fkd.zoo import units_root, zoo_dir

    results, zoo = Path(results), Path(zoo) if zoo else zoo_dir()
    rows = []
    for d in Dataset:
        rows += _train_rows(d, units_root(default_units(d), zoo))  # the zoo of the dataset's reading
        for stage, dirs in RUN_DIRS.items():
            for rel in dirs.get(d.value, []):
                run_dir = results / rel
                if not run_dir.exists():
                    continue
                recs = invocations(run_dir)
                cfg = recs[-1].get("config", {})
                solver, licence = (_solvers(run_dir, recs) if stage.startswith("verify")
                                   else ("none", "none needed"))
                images = cfg.get("n_images") or len(cfg.get("images") or []) or None
                rows.append({"dataset": d.value, "stage": stage,
                             "what": f"{rel}: {cfg.get('method', 'PGD')} on {images} images, "
                                     f"{', '.join(cfg.get('students', []))}",
                             "runs": len(recs), "images": images,
                             "wall_time_s": round(sum(float(r.get("wall_time_s") or 0) for r in recs), 1),
                             "machine": _machine(recs), "solver": solver, "licence": licence,
                             "seed": "/".join(sorted({str(r.get("seed")) for r in recs})), "commit": _commits(recs)})
    return pd.DataFrame(rows)


def wall_times(records):
    """Total wall time (hours) per dataset and stage, with each dataset's total (``stage_records``
    rows in, a dataset x stage table out; a stage that did not run is empty)."""
    table = records.pivot_table(index="dataset", columns="stage", values="wall_time_s", aggfunc="sum") / 3600
    table = table.reindex(index=[d.value for d in Dataset if d.value in set(records.dataset)],
                          columns=[s for s in STAGES if s in table.columns])
    table["total"] = table.sum(axis=1)
    return table.round(2)
