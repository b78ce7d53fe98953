"""Run directories cannot lose or mix rows: one writer at a time, one row per (task, student),
rows of other weights refused, and an interrupted invocation still recorded."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fkd.experiments.runner import check_out, invocation, locked, merge_part, read_part

REPO = Path(__file__).resolve().parent.parent


def test_a_second_writer_is_refused_with_who_holds_the_directory(tmp_path):
    """Two invocations at once on one --out: the second says who holds it and writes nothing."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from fkd.experiments.runner import locked\n"
        f"with locked(Path({str(tmp_path / 'run')!r})):\n"
        "    print('held', flush=True); time.sleep(30)")], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = subprocess.run([sys.executable, "-m", "fkd", "verify", "--dataset", "mnist", "--students", "fd",
                            "--eps", "0.1", "--n-images", "1", "--out", str(tmp_path / "run")],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and f"pid {holder.pid}" in r.stderr and "wait for that run" in r.stderr
        assert not (tmp_path / "run" / "parts").exists()
    finally:
        holder.kill()
        holder.wait()
    with locked(tmp_path / "run"):  # a killed holder releases the directory
        pass


def test_a_task_computed_twice_keeps_one_row_per_student(tmp_path):
    path, cols = tmp_path / "p.csv", ["student", "value"]
    merge_part(path, [{"student": "sd", "value": 1}], cols)
    merge_part(path, [{"student": "fd", "value": 2}], cols)
    merge_part(path, [{"student": "fd", "value": 3}], cols)  # the same task again: replaced, not appended
    assert read_part(path) == [{"student": "sd", "value": "1"}, {"student": "fd", "value": "3"}]


def test_rows_of_other_weights_are_never_reused(tmp_path):
    check_out(tmp_path, "f", {"a": 1}, "fix", {"rt": "aaa", "fd": "bbb"})
    check_out(tmp_path, "f", {"a": 1}, "fix", {"rt": "aaa", "sd": "ccc"})  # a new student joins
    assert json.loads((tmp_path / "config.json").read_text())["models"] == {"rt": "aaa", "fd": "bbb", "sd": "ccc"}
    with pytest.raises(ValueError, match="other weights of fd"):
        check_out(tmp_path, "f", {"a": 1}, "fix", {"rt": "aaa", "fd": "zzz"})
    with pytest.raises(ValueError, match=r"differs in \{'a': 1\}"):
        check_out(tmp_path, "g", {"a": 2}, "fix")


def test_an_interrupted_invocation_is_recorded(tmp_path):
    (tmp_path / "parts").mkdir()
    with pytest.raises(KeyboardInterrupt):
        with invocation(tmp_path, {"config": {"dataset": "mnist"}, "seed": 0}):
            (tmp_path / "parts" / "done.csv").write_text("student\nfd\n")
            time.sleep(0.01)
            raise KeyboardInterrupt
    rec = json.loads((tmp_path / "run.json").read_text())
    assert rec["status"] == "interrupted" and rec["parts_written"] == 1 and rec["wall_time_s"] >= 0
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 1


def test_a_signal_from_a_scheduler_leaves_a_record(tmp_path):
    """SIGTERM (a batch scheduler's or a session's end) is turned into an interrupted record."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", (
        "import time; from pathlib import Path; from fkd.experiments.runner import invocation\n"
        f"out = Path({str(out)!r}); out.mkdir()\n"
        "with invocation(out, {'config': {}, 'seed': 0}):\n"
        "    print('running', flush=True); time.sleep(30)")], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "running"
    proc.terminate()
    proc.wait(timeout=30)
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"


@pytest.mark.slow
def test_a_real_cluster_gives_the_rows_of_the_in_process_run(tmp_path):
    """A Dask scheduler and two workers as separate processes on the loopback interface (what
    dask-jobqueue starts on Slurm or PBS): `verify --scheduler` writes the same rows as in-process."""
    import socket

    from fkd.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr, "--nthreads", "1",
                                           "--no-dashboard", "--host", "127.0.0.1"], cwd=REPO,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client
        with Client(addr, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        args = ["verify", "--dataset", "mnist", "--students", "sd,fd", "--eps", "0.05", "--n-images", "3",
                "--method", "crown", "--quiet"]
        assert main([*args, "--scheduler", addr, "--out", str(tmp_path / "cluster")]) == 0
        assert main([*args, "--out", str(tmp_path / "here")]) == 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    import pandas as pd
    cols = ["student", "eps", "image", "emplb", "faithub_paper", "faithub_tight"]
    a = pd.read_csv(tmp_path / "cluster" / "verify.csv")[cols]
    b = pd.read_csv(tmp_path / "here" / "verify.csv")[cols]
    pd.testing.assert_frame_equal(a, b)


def test_every_study_holds_its_run_directory(tmp_path):
    """Calibration and the attack study, like evaluate and verify, refuse another config in their run
    directory and a second writer while one holds it (``RunDir``)."""
    from fkd.experiments.attack_study import AttackStudyConfig, run_study
    from fkd.experiments.calibration import calibration_config, run

    out = tmp_path / "cal"
    run(calibration_config("mnist", ["sd"], n_images=2), out)
    assert (out / "config.json").exists() and (out / "runs.jsonl").exists()
    with pytest.raises(ValueError, match="holds results of a different run"):
        run(calibration_config("mnist", ["fd"], n_images=2), out)
    with locked(out), pytest.raises(ValueError, match="is in use by"):
        run(calibration_config("mnist", ["sd"], n_images=2), out)
    study = tmp_path / "attack"
    cfg = AttackStudyConfig("mnist", ("fd",), 0.1, (0,), steps=(1,), restarts=(1,))
    run_study(cfg, study, progress=False)
    assert len(json.loads((study / "run.json").read_text())["config"]["students"]) == 1
    with pytest.raises(ValueError, match="holds results of a different run"):
        run_study(AttackStudyConfig("mnist", ("sd",), 0.1, (0,), steps=(1,), restarts=(1,)), study, progress=False)
