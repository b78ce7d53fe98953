"""An install that works outside the checkout: the wheel carries the zoo, runs from a directory that
is not the checkout, writes nothing into its own site directory; the pins live in the lock file, the
package's requirements are ranges."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    from pip._vendor import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_the_package_list_names_every_package_and_the_zoo():
    """pyproject lists the packages explicitly: every folder of fkd/ with an __init__.py, and the
    zoo mapped in as fkd._zoo (a new subpackage left out of the list would be missing from the wheel)."""
    tool = _pyproject()["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "fkd").rglob("__init__.py")}
    assert set(tool["packages"]) == found | {"fkd._zoo"}
    assert tool["package-dir"] == {"fkd._zoo": "zoo"}


def test_install_requirements_are_ranges_and_the_lock_pins_them():
    """No exact pin in the install requirements; requirements.lock pins every one of them (and the
    extras make setup installs) to a version inside its range, as environment.yml does."""
    from packaging.requirements import Requirement

    project = _pyproject()["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for extra in ("book", "test", "onnx", "gurobi")
             for r in project["optional-dependencies"][extra]]
    lock = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].split(";")[0].strip()
        if line:
            name, version = line.split("==")
            lock[re.sub(r"[-_.]+", "-", name).lower()] = version
    env = dict(re.findall(r"^\s*- ([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s#]+)", (REPO / "environment.yml").read_text(),
                          re.M))
    for r in reqs:
        assert not any(s.operator in ("==", "===") for s in r.specifier), f"{r} is pinned in pyproject.toml"
        name = re.sub(r"[-_.]+", "-", r.name).lower()
        assert name in lock, f"{r.name} is not in requirements.lock"
        assert r.specifier.contains(lock[name], prereleases=True), f"the lock's {r.name}=={lock[name]} is outside {r}"
        pinned = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in env.items()}
        assert pinned.get(name) in (None, lock[name]), f"environment.yml pins {r.name} {pinned[name]}, the lock {lock[name]}"


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_a_wheel_loads_a_model_and_verifies_two_images_outside_the_checkout(tmp_path):
    """Build the wheel from a copy of the sources, install it into a target directory and, from a
    directory that is not the checkout and without gurobipy, load a zoo model and run a two-image
    verify (about 10 s)."""
    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ there
    for name in ("pyproject.toml", "README.md"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.tmp")
    shutil.copytree(REPO / "fkd", src / "fkd", ignore=ignore)
    shutil.copytree(REPO / "zoo", src / "zoo", ignore=ignore)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    r = subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(wheels)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = wheels.glob("fkd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(str(p.relative_to(REPO / "zoo")) for p in (REPO / "zoo").rglob("*")
                     if p.suffix in (".json", ".safetensors"))
    assert sorted(n.removeprefix("fkd/_zoo/") for n in names if n.startswith("fkd/_zoo/")) == shipped
    assert "fkd/subsets/mnist.json" in names and not any(n.startswith(("zoo/", "results/", "data/")) for n in names)

    site = tmp_path / "site"
    r = subprocess.run([*pip, "install", "--no-deps", "--no-compile", "--target", str(site), str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    before = _files(site)
    work, home = tmp_path / "elsewhere", tmp_path / "home"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FKD_") and k not in ("PYTHONPATH", "XDG_CACHE_HOME")}
    hidden = tmp_path / "no-gurobi" / "gurobipy"  # gurobipy is optional: the run must not need it
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('gurobipy hidden by the test')\n")
    env.update(PYTHONPATH=os.pathsep.join([str(hidden.parent), str(site)]), FKD_DATA=str(REPO / "data"), HOME=str(home), PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = ("import fkd, fkd.paths as p; m = fkd.load_model('mnist', 'fd'); "
            "print(fkd.__file__); print(p.zoo_dir()); print(p.in_checkout()); print(type(m).__name__)")
    r = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    file, zoo, checkout, kind = r.stdout.split()
    assert Path(file).is_relative_to(site) and Path(zoo) == site / "fkd" / "_zoo"
    assert checkout == "False" and kind == "Sequential"

    out = tmp_path / "v"
    r = subprocess.run([sys.executable, "-m", "fkd", "verify", "--dataset", "mnist", "--n-images", "2", "--eps", "0.1",
                        "--method", "crown", "--threads", "1", "--quiet", "--out", str(out)],
                       cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    import pandas as pd

    rows = pd.read_csv(out / "verify.csv")
    assert rows.image.nunique() == 2 and rows.student.nunique() == 4 and len(rows) == 2 * 4  # one eps
    import json

    record = json.loads((out / "run.json").read_text())
    assert record["git_commit"] == "installed-0.1.0" and record["solvers"]["gurobi"] == "not installed"
    assert _files(site) == before, "the run wrote into the installed package"
    assert not (home / ".cache" / "fkd" / "data").exists()  # FKD_DATA was used, nothing downloaded


def test_outside_a_checkout_data_checkpoints_and_training_go_to_the_users_cache(tmp_path, monkeypatch):
    """Outside a checkout (as from a wheel): data, checkpoints and trained models default to
    $XDG_CACHE_HOME/fkd; the zoo is the packaged one, which training never writes, even with force."""
    from fkd import paths
    from fkd.train_config import train_config
    from fkd.experiments.zoo_training import plan_training

    shipped = tmp_path / "site" / "fkd" / "_zoo"
    monkeypatch.setattr(paths, "in_checkout", lambda: False)
    monkeypatch.setattr(paths, "PACKAGED_ZOO", shipped)
    monkeypatch.setattr(paths, "packaged_zoo", lambda: shipped)
    for var in ("FKD_ZOO", "FKD_DATA", "FKD_CHECKPOINTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = tmp_path / "cache" / "fkd"
    assert paths.zoo_dir() == shipped and paths.user_zoo_dir() == cache / "zoo"
    assert paths.data_dir() == (cache / "data").resolve() and paths.checkpoint_dir() == cache / "checkpoints"
    cfg = train_config("mnist", "rt", profile="quick", epochs=1)
    plan = plan_training(cfg)
    assert plan.stem.is_relative_to(cache / "zoo") and plan.checkpoints.is_relative_to(cache / "checkpoints")
    for force in (False, True):
        try:
            plan_training(cfg, out=shipped, force=force)
        except ValueError as exc:
            assert "installed with the package" in str(exc) and "--out" in str(exc)
        else:
            raise AssertionError("training into the packaged zoo was not refused")
    from fkd.small import get_pair, train_small
    try:
        train_small(get_pair("mnist-7x7"), "rt", root=shipped)
    except ValueError as exc:
        assert "installed with the package" in str(exc)
    else:
        raise AssertionError("training a small pair into the packaged zoo was not refused")
    monkeypatch.setenv("FKD_ZOO", str(tmp_path / "mine"))
    assert paths.zoo_dir() == paths.user_zoo_dir() == (tmp_path / "mine").resolve()
    monkeypatch.setenv("FKD_DATA", str(tmp_path / "d"))
    assert paths.data_dir() == (tmp_path / "d").resolve()
