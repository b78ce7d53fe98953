"""Run records: package versions, machine and code version, stored next to every result."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess

import torch

from .paths import PACKAGE, in_checkout

PACKAGES = ("torch", "torchvision", "numpy", "safetensors", "gurobipy", "highspy", "scipy", "pandas", "dask",
            "distributed")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine(device: str | torch.device = "cpu") -> dict[str, str | int]:
    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()
    return {"device": str(dev), "device_name": name, "cpu_count": os.cpu_count() or 0,
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def git_commit() -> str:
    """HEAD's commit, with ``-dirty`` when the working tree has uncommitted changes to tracked files;
    ``installed-<version>`` outside a checkout (a wheel: git would report whatever repository holds
    site-packages)."""
    if not in_checkout():
        try:
            return f"installed-{importlib.metadata.version('fkd')}"
        except importlib.metadata.PackageNotFoundError:
            return "unknown"
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PACKAGE, capture_output=True, text=True,
                              timeout=5).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD") or "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty and commit != "unknown" else "")


def record(device: str | torch.device = "cpu") -> dict:
    """Everything a result needs beside its config and seed to be traced back to its run."""
    from .bounds.solvers import solver_licences

    return {"packages": package_versions(), "machine": machine(device), "git_commit": git_commit(),
            "solvers": dict(solver_licences())}
