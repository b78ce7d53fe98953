"""Run independent tasks here or on Dask, with atomic part files, resume and run records.

Shared by the empirical evaluation (``fkd.experiments.evaluate``) and the verifier (``fkd.experiments.verify``): each
task writes its rows to its own part file; a part that exists is a finished task, so a killed run
resumes by skipping it. Tasks run in this process, on a Dask LocalCluster of ``workers`` single-
thread processes, or on a running Dask scheduler (e.g. from dask-jobqueue on Slurm/PBS).
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import signal
import socket
import sys
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


def read_part(path: Path) -> list[dict[str, str]]:
    """The rows of a part file (none if it does not exist)."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def merge_part(path: Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Add ``rows`` to a part file, one row per student: a student's new row replaces its old one
    (a task computed twice never writes its rows twice); the other students' rows are kept."""
    new = {r["student"] for r in rows}
    write_csv_atomic(path, [r for r in read_part(path) if r["student"] not in new] + list(rows), columns)


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
    from fkd.provenance import record

    provenance = provenance or record()
    todo = []
    for t in tasks:
        done = {r["student"] for r in have(t)}
        missing = tuple(s for s in students if s not in done)
        if missing:
            todo.append((*t, missing))
    t0 = time.perf_counter()
    base = {"config": cfg.to_dict(), "seed": cfg.seed, "tasks": len(tasks), "workers": workers, **provenance}
    with invocation(out, base):
        timings = run_tasks(job, todo, (cfg.to_dict(), str(out)), workers=workers, scheduler=scheduler,
                            progress=progress, total=len(tasks), desc=desc)
    write_record(out, {"config": cfg.to_dict(), "seed": cfg.seed, "tasks": len(tasks), "computed_now": len(todo),
                       "wall_time_s": round(time.perf_counter() - t0, 1), "workers": workers,
                       "task_seconds": {f"eps{t[1]:.6f}/{t[0]:05d}.csv:{'+'.join(t[2])}": round(sec, 3) for t, sec in timings},
                       **provenance})


def check_out(out: Path, fingerprint: str, config: dict[str, Any], fix: str,
              models: dict[str, str] | None = None) -> None:
    """Refuse to mix rows of a different config, or of different model weights, into ``out``;
    record the config (and the sha256 of every model's weights) otherwise.

    Args:
        models: model name -> sha256 of its weights; a name ``out`` recorded with other weights is
            refused (the zoo changed since the run was made), new names are added.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    if old and old.get("fingerprint") != fingerprint:
        before = old.get("config") or {}
        held = {k: before.get(k) for k in sorted(set(before) | set(config)) if config.get(k) != before.get(k)}
        raise ValueError(f"{out} holds results of a different run (it differs in {held}). "
                         f"Fix: {fix}, or delete {out}.")
    known = dict(old.get("models") or {})
    changed = sorted(m for m, sha in (models or {}).items() if known.get(m, sha) != sha)
    if changed:
        raise ValueError(f"{out} was computed with other weights of {', '.join(changed)} than the zoo holds now "
                         f"(sha256 differs): its rows are not this zoo's. Fix: choose another --out, or delete {out}.")
    known.update(models or {})
    body = {"fingerprint": fingerprint, "config": config, **({"models": known} if known else {})}
    path.write_text(json.dumps(body, indent=1) + "\n")


LOCK = ".lock"


@contextlib.contextmanager
def locked(out: Path):
    """Hold ``out`` for this invocation: one writer per run directory. A second invocation on the
    same directory is refused at once with who holds it (pid, host, command, since when); the lock
    is the kernel's (flock), so a killed holder releases it."""
    out.mkdir(parents=True, exist_ok=True)
    f = (out / LOCK).open("a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise ValueError(f"{out} is in use by {holder}. Fix: wait for that run to finish (it resumes "
                         f"from the same directory), or choose another --out") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')} "
            f"({' '.join(sys.argv[:1] + sys.argv[1:6])})")
    f.flush()
    try:
        yield
    finally:
        f.seek(0)
        f.truncate()
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()


class RunDir:
    """One run directory, the one home of its rules for every study: one writer at a time
    (``locked``), never rows of another config or of other weights (``check_out``), a record per
    invocation (``invocation``, ``write_record``)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @contextlib.contextmanager
    def hold(self, fingerprint: str, config: dict[str, Any], fix: str, models: dict[str, str] | None = None):
        """Lock the directory for this invocation and check (then record) its config and model
        weights; ValueError naming the holder or the difference and ``fix`` otherwise."""
        with locked(self.path):
            check_out(self.path, fingerprint, config, fix, models)
            yield self


@contextlib.contextmanager
def invocation(out: Path, record: dict[str, Any]):
    """Write the run record of an invocation that is interrupted (Ctrl-C, SIGTERM from a scheduler
    or a session's end): ``record`` plus ``status: interrupted``, its wall time and the part files
    it finished, so no invocation's work goes unrecorded. A normal end writes its own record."""
    t0, started = time.perf_counter(), time.time()

    def _term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _term) if _main_thread() else None
    try:
        yield
    except BaseException:
        written = [p for p in (out / "parts").rglob("*.csv") if p.stat().st_mtime >= started] \
            if (out / "parts").exists() else []
        write_record(out, {**record, "status": "interrupted", "parts_written": len(written),
                           "wall_time_s": round(time.perf_counter() - t0, 1)})
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def write_record(out: Path, run: dict[str, Any]) -> None:
    """``run.json`` (this invocation) and a line in ``runs.jsonl`` (every invocation, resumed or not).

    A config with a dataset, eps and their units also records each eps's pixel radius (``eps_pixel``).
    """
    cfg = run.get("config", {})
    if {"dataset", "eps", "units"} <= set(cfg) and "eps_pixel" not in run:
        from fkd.units import pixel_label, radius

        grid = cfg["eps"] if isinstance(cfg["eps"], (list, tuple)) else [cfg["eps"]]
        std = tuple(cfg["std"]) if cfg.get("std") else None
        run = {**run, "eps_pixel": {f"{e:g}": pixel_label(radius(float(e), cfg["units"], cfg["dataset"], std))
                                    for e in grid}}
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
