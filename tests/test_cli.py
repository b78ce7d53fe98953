import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "fkd", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, **kw)


def test_unknown_method_lists_the_options():
    r = run("train", "--dataset", "mnist", "--method", "kd")
    assert r.returncode == 2
    assert "rt, sd, ard, rslad, fd" in r.stderr


def test_unknown_dataset_lists_the_options():
    r = run("train", "--dataset", "svhn", "--method", "rt")
    assert r.returncode == 2 and "mnist, fashion-mnist, cifar10" in r.stderr


def test_zoo_markdown_sets_ours_beside_the_papers():
    r = run("zoo", "--markdown")
    assert r.returncode == 0, r.stderr
    assert "| mnist | pixel | rt | " in r.stdout and "| 97.88 |" in r.stdout


def test_zoo_csv_lists_models():
    r = run("zoo", "--csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows and {"dataset", "method", "alpha", "clean_acc", "epochs_run", "wall_time_s"} <= set(rows[0])


@pytest.mark.slow
def test_train_quick_teacher_then_student_from_it(tmp_path):
    """End to end on real MNIST: one epoch of the quick teacher, then an SD student from it."""
    out, ck = tmp_path / "zoo", tmp_path / "ck"
    r = run("train", "--dataset", "mnist", "--method", "rt", "--profile", "quick", "--epochs", "1", "--threads", "1",
            "--out", str(out), "--checkpoint-dir", str(ck / "rt"), "--quiet")
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "mnist" / "rt.json").read_text())
    assert meta["config"]["profile"] == "quick" and meta["epochs_run"] == 1
    r = run("train", "--dataset", "mnist", "--method", "sd", "--profile", "quick", "--epochs", "1", "--threads", "1",
            "--out", str(out), "--teacher", str(out / "mnist" / "rt.safetensors"),
            "--checkpoint-dir", str(ck / "sd"), "--quiet")
    assert r.returncode == 0, r.stderr
    meta = json.loads((out / "mnist" / "sd-a0.5.json").read_text())
    assert meta["teacher"]["path"].endswith("rt") and meta["clean_acc"] > 50
    r = run("zoo", "--zoo", str(out), "--evaluate")
    assert r.returncode == 0 and "robust_acc_pgd20" in r.stdout


def test_missing_teacher_is_a_clear_error(tmp_path):
    r = run("train", "--dataset", "mnist", "--method", "fd", "--profile", "quick",
            "--teacher", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path))
    assert r.returncode != 0 and "python -m fkd train" in r.stderr


def test_bad_values_are_one_line_errors_not_tracebacks(tmp_path):
    r = run("train", "--dataset", "mnist", "--method", "rt", "--alpha", "0.5", "--out", str(tmp_path))
    assert r.returncode == 2 and "error: alpha" in r.stderr and "Traceback" not in r.stderr
    r = run("train", "--dataset", "mnist", "--method", "rt", "--epochs", "3")
    assert r.returncode == 2 and "--profile quick" in r.stderr


def test_zero_images_and_unknown_units_are_refused(tmp_path):
    from fkd.cli import main

    assert main(["verify", "--dataset", "mnist", "--n-images", "0", "--out", str(tmp_path / "v")]) == 2
    assert not (tmp_path / "v").exists()
    r = run("evaluate", "--dataset", "mnist", "--eps-units", "percent", "--out", str(tmp_path / "e"))
    assert r.returncode == 2 and "normalised, pixel" in r.stderr


def test_missing_directories_and_unwritable_out_are_clear_errors(tmp_path):
    from fkd.cli import main

    assert main(["verify", "--restore", str(tmp_path / "nowhere"), "--out", str(tmp_path / "v")]) == 2
    assert main(["verify", "--merge", str(tmp_path / "nowhere"), "--out", str(tmp_path / "v")]) == 2
    (tmp_path / "file").write_text("a file, not a directory")
    r = run("verify", "--dataset", "mnist", "--students", "fd", "--eps", "0.1", "--n-images", "1",
            "--out", str(tmp_path / "file" / "run"))
    assert r.returncode == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr


def test_help_shows_every_default():
    import os
    r = run("verify", "--help", env={**os.environ, "COLUMNS": "300"})
    assert "(default: crown)" in r.stdout and "(default: auto)" in r.stdout


def test_help_shows_every_default_once(capsys):
    """Options with a default name it in --help (verify's method, seed and workers were invisible),
    enum defaults by their command-line value, and no option says "(default: ...)" twice."""
    from fkd.cli import main

    def options(command: str) -> dict[str, str]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out.split("options:", 1)[1]
        out, name = {}, None
        for line in text.splitlines():
            head = line.strip().split(" ")[0]
            if line.startswith("  -") and head.startswith("-"):
                name = head.rstrip(",")
                out[name] = line
            elif name:
                out[name] += " " + line.strip()
        return {k: " ".join(v.split()) for k, v in out.items()}

    verify, train, audit = options("verify"), options("train"), options("audit")
    assert "(default: crown)" in verify["--method"] and "(default: 0)" in verify["--seed"]
    assert "(default: 1)" in verify["--workers"] and "1000" in verify["--n-images"]
    assert "(default: cpu)" in train["--device"] and "EpsUnits" not in " ".join(train.values())
    assert "(default: crown)" in audit["--method"] and "(default: 30.0)" in audit["--time-limit"]
    for command in (verify, train, audit):
        assert all(v.count("(default:") <= 1 for v in command.values()), command


def test_train_never_overwrites_a_model_of_another_config(tmp_path, capsys):
    """A finished model of the same config is kept (nothing retrained); one of another config is
    refused without --force, naming what differs."""
    from fkd.cli import main
    from fkd.train_config import train_config

    stem = tmp_path / "mnist" / "sd-a0.5"
    stem.parent.mkdir(parents=True)
    same = train_config("mnist", "sd", profile="quick", epochs=1)
    (tmp_path / "mnist" / "sd-a0.5.json").write_text(json.dumps({"config": same.to_dict()}))
    argv = ["train", "--dataset", "mnist", "--method", "sd", "--profile", "quick", "--epochs", "1", "--out", str(tmp_path)]
    assert main(argv) == 0 and "already this run's model" in capsys.readouterr().out
    other = train_config("mnist", "sd", profile="quick", epochs=2)
    (tmp_path / "mnist" / "sd-a0.5.json").write_text(json.dumps({"config": other.to_dict()}))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "epochs" in err and "--force" in err


def test_a_student_is_saved_under_its_own_name_and_its_teacher_is_left_alone(tmp_path, monkeypatch, capsys):
    """train writes <out>/<dataset>/<student>.safetensors and never touches the teacher's files; the
    student's checkpoints are named by its teacher too (training itself is replaced by a stub here)."""
    import hashlib
    import importlib

    from fkd.cli import main
    from fkd.train_config import train_config
    from fkd.models import architecture, make_model
    from fkd.train import TrainResult
    from fkd.zoo import save_model

    save_model(make_model("mnist", "teacher"), architecture("mnist", "teacher"),
               {"config": train_config("mnist", "rt").to_dict(), "clean_acc": 90.0}, tmp_path / "mnist" / "rt")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "mnist").iterdir()}
    seen = {}

    def stub(cfg, *, teacher, checkpoint_dir, **kw):
        seen["ckpt"] = checkpoint_dir
        return TrainResult(make_model("mnist", "student"), {"config": cfg.to_dict(), "clean_acc": 50.0,
                                                            "best_epoch": 1, "epochs_run": 1, "status": "completed"})

    monkeypatch.setattr(importlib.import_module("fkd.train"), "train", stub)  # the module, not fkd.train()
    monkeypatch.setenv("FKD_CHECKPOINTS", str(tmp_path / "ck"))
    assert main(["train", "--dataset", "mnist", "--method", "sd", "--profile", "quick", "--epochs", "1",
                 "--out", str(tmp_path), "--teacher", str(tmp_path / "mnist" / "rt"), "--quiet"]) == 0
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "mnist").iterdir()}
    assert {k: after[k] for k in before} == before and {"sd-a0.5.safetensors", "sd-a0.5.json"} <= set(after)
    assert f"-t{before['rt.safetensors'][:12]}" in str(seen["ckpt"])


def test_merge_restore_and_a_raw_missing_file_name_the_option_and_the_fix(tmp_path, capsys, monkeypatch):
    """A missing --merge or --restore directory, and a raw FileNotFoundError from any handler, each end
    in one line naming the path and the fix (no "[Errno 2]")."""
    from fkd import commands
    from fkd.cli import main

    assert main(["verify", "--merge", "/nonexistent", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "--merge /nonexistent" in err and "does not exist" in err and "Fix:" in err and "Errno" not in err
    (tmp_path / "empty").mkdir()
    assert main(["verify", "--merge", str(tmp_path / "empty"), "--out", str(tmp_path / "m")]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main(["verify", "--restore", "/nonexistent", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--restore /nonexistent" in err and "--export" in err and "Fix:" in err

    def raw(args):
        open("/nonexistent/some.csv")
    monkeypatch.setattr(commands, "cmd_zoo", raw)
    assert main(["zoo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: /nonexistent/some.csv does not exist. Fix:") and "Errno" not in err


def test_an_unwritable_out_or_checkpoint_dir_fails_before_training(tmp_path, capsys):
    """train names the option whose directory cannot be written, before a step runs (we run as root,
    so the unwritable place is a path under a regular file)."""
    from fkd.cli import main

    (tmp_path / "file").write_text("a file, not a directory")
    base = ["train", "--dataset", "mnist", "--method", "rt", "--profile", "quick", "--epochs", "1", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "file" / "zoo")]) == 2
    err = capsys.readouterr()
    assert "(--out): Not a directory. Fix:" in err.err and "training" not in err.out
    assert main([*base, "--out", str(tmp_path / "zoo"), "--checkpoint-dir", str(tmp_path / "file" / "ck")]) == 2
    assert "(--checkpoint-dir): Not a directory" in capsys.readouterr().err


def test_a_checkpoint_that_is_not_one_is_a_clear_error(tmp_path, capsys):
    """A truncated checkpoint, or a readable file that is not a training checkpoint, is named with the fix."""
    import torch

    from fkd.cli import main
    from fkd.train import CHECKPOINT

    argv = ["train", "--dataset", "mnist", "--method", "rt", "--profile", "quick", "--epochs", "1", "--quiet",
            "--out", str(tmp_path / "zoo"), "--checkpoint-dir", str(tmp_path / "ck")]
    (tmp_path / "ck").mkdir()
    for write in (lambda p: p.write_bytes(b"\x80\x04truncated"), lambda p: torch.save(torch.zeros(2), p)):
        write(tmp_path / "ck" / CHECKPOINT)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "is not a readable training checkpoint" in err and "Fix: delete it" in err and "Warning" not in err
    assert not (tmp_path / "zoo" / "mnist" / "rt.safetensors").exists()


@pytest.mark.parametrize("command", [
    ["verify", "--students", "fd", "--out", "unused"],
    ["audit", "--teacher", "zoo:mnist/rt", "--student", "zoo:mnist/fd", "--dataset", "mnist", "--out", "unused"],
    ["exact", "--out", "unused"]])
def test_method_is_the_bound_method_outside_train(command, capsys):
    """--method means one thing per command family: train's is the training method; verify's, audit's and
    exact's the bound method, and a training method's name there is refused with where it goes."""
    from fkd.cli import main

    with pytest.raises(SystemExit) as exit:
        main([*command, "--method", "fd"])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "'fd' is a training method" in err and "bound method" in err
    assert ("--student zoo:mnist/fd" if command[0] == "audit" else "--students fd") in err
    with pytest.raises(SystemExit):
        main([*command, "--method", "fastest"])
    assert "unknown bound method 'fastest'" in capsys.readouterr().err


def test_an_attack_study_of_two_students_writes_how_often_they_swap(tmp_path):
    """attack-study on two students keeps the ordering flips beside its rows (flips.csv)."""
    out = tmp_path / "study"
    r = run("attack-study", "--dataset", "mnist", "--eps", "0.1", "--students", "sd,fd", "--steps", "1,3",
            "--restarts", "1", "--n-images", "2", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    flips = list(csv.DictReader((out / "flips.csv").open()))
    assert {row["steps"] for row in flips} == {"1", "3"} and all(0 <= float(row["flipped"]) <= 1 for row in flips)
