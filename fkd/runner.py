"""Run independent tasks here or on Dask, with atomic part files, resume and run records.

Shared by the empirical evaluation (``fkd.evaluate``) and the verifier (``fkd.verify``): each
task writes its rows to its own part file; a part that exists is a finished task, so a killed run
resumes by skipping it. Tasks run in this process, on a Dask LocalCluster of ``workers`` single-
thread processes, or on a running Dask scheduler (e.g. from dask-jobqueue on Slurm/PBS).
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence


def write_csv_atomic(path: Path, rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write ``rows`` to ``path`` as CSV via a temporary file and a rename (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def run_tasks(job: Callable[..., tuple[Any, float]], tasks: Sequence[Any], args: tuple, *, workers: int = 1,
              scheduler: str | None = None, progress: bool = True, total: int | None = None,
              desc: str = "tasks") -> list[tuple[Any, float]]:
    """Call ``job(*args, task, threads)`` for every task; returns its (task, seconds) results.

    Args:
        workers: 1 runs here (``threads`` None: torch's default); K > 1 starts a Dask LocalCluster
            of K single-thread processes (``threads`` 1).
        scheduler: address of a running Dask scheduler instead of a LocalCluster.
        total: the run's task count including those already done (for the progress bar).
    """
    from tqdm.auto import tqdm

    total = len(tasks) if total is None else total
    bar = tqdm(total=total, initial=total - len(tasks), desc=desc, unit="task", disable=not progress)
    results = []
    if tasks and (workers > 1 or scheduler):
        from dask.distributed import Client, LocalCluster, as_completed

        saved_environ = dict(os.environ)  # Dask sets OMP_NUM_THREADS=1 etc. here for its workers and leaves
        try:                               # them set: later child processes would run single-threaded
            cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                          dashboard_address=":0")
            with Client(scheduler or cluster) as client:
                futures = [client.submit(job, *args, t, 1, pure=False) for t in tasks]
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update()
            if cluster is not None:
                cluster.close()
        finally:
            os.environ.clear()
            os.environ.update(saved_environ)
    else:
        for t in tasks:
            results.append(job(*args, t, None))
            bar.update()
    bar.close()
    return results


def run_growing(job: Callable[..., tuple[Any, float]], cfg: Any, out: Path, tasks: Sequence[tuple], students: Sequence[str],
                have: Callable[[tuple], Iterable[dict[str, Any]]], *, workers: int = 1, scheduler: str | None = None,
                progress: bool = True, desc: str = "tasks", provenance: dict[str, Any] | None = None) -> None:
    """Run every task whose part file lacks some of ``students`` (runs resume and grow in students,
    eps and images), as ``job(cfg.to_dict(), out, (*task, missing students), threads)``, then write
    the run record. ``have(task)``: the rows already in the task's part file."""
    from .provenance import record

    provenance = provenance or record()
    todo = []
    for t in tasks:
        done = {r["student"] for r in have(t)}
        missing = tuple(s for s in students if s not in done)
        if missing:
            todo.append((*t, missing))
    t0 = time.perf_counter()
    timings = run_tasks(job, todo, (cfg.to_dict(), str(out)), workers=workers, scheduler=scheduler,
                        progress=progress, total=len(tasks), desc=desc)
    write_record(out, {"config": cfg.to_dict(), "seed": cfg.seed, "tasks": len(tasks), "computed_now": len(todo),
                       "wall_time_s": round(time.perf_counter() - t0, 1), "workers": workers,
                       "task_seconds": {f"eps{t[1]:.6f}/{t[0]:05d}.csv:{'+'.join(t[2])}": round(sec, 3) for t, sec in timings},
                       **provenance})


def check_out(out: Path, fingerprint: str, config: dict[str, Any], fix: str) -> None:
    """Refuse to mix rows of a different config into ``out``; record the config otherwise."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("fingerprint") != fingerprint:
            raise ValueError(f"{out} holds results of a different run (config {old.get('config')}). "
                             f"Fix: {fix}, or delete {out}.")
    path.write_text(json.dumps({"fingerprint": fingerprint, "config": config}, indent=1) + "\n")


def write_record(out: Path, run: dict[str, Any]) -> None:
    """``run.json`` (this invocation) and a line in ``runs.jsonl`` (every invocation, resumed or not)."""
    (out / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    with (out / "runs.jsonl").open("a") as f:
        f.write(json.dumps(run) + "\n")


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn(), seconds it took)."""
    t0 = time.perf_counter()
    return fn(), time.perf_counter() - t0


def task_generator(seed: int, *key: object):
    """A torch.Generator fixed by ``seed`` and the task ``key`` (names, eps, image...): results do not
    depend on task order, workers or resumption."""
    import torch

    text = "/".join(f"{k:.6f}" if isinstance(k, float) else str(k) for k in (seed, *key))
    return torch.Generator().manual_seed(seed * 2**32 + zlib.crc32(text.encode()))


class torch_threads(contextlib.ContextDecorator):
    """Context manager (or decorator): torch's intra-op threads set to ``n`` inside, restored after.

    Small networks gain nothing from a second thread, and when another process keeps the other
    core busy, two torch threads can make them ~100x slower (measured here: an explorer frame took
    12.6 s with 2 threads and 0.08 s with 1 while a verification run used the other core).
    """

    def __init__(self, n: int = 1) -> None:
        self.n, self.before = n, None

    def __enter__(self) -> "torch_threads":
        import torch

        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.before)
