"""Batch reproduction: execute the book's chapters with papermill (``python -m fkd reproduce``).

Every chapter is a notebook with a ``parameters`` cell (profile, dataset, n_images, eps grid,
device, seed, output directory). ``reproduce`` runs the chapters in order, each into
``out/<chapter>.ipynb``, and writes a stamp ``out/<chapter>.stamp.json`` after a chapter succeeds.
The stamp holds a hash of what decides the chapter's output: the notebook's source, the parameters,
and the ``fkd`` package source. A chapter whose stamp matches is skipped (up to date); a run that
is killed resumes at the first chapter without a matching stamp (and the chapter's own long steps,
evaluation and verification runs, resume from their part files).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fkd.config import Profile, parse

from fkd.paths import ROOT, TOC


class ChapterFailed(RuntimeError):
    """A chapter raised while executing; the executed notebook with the traceback is kept."""


@dataclass(frozen=True)
class Outcome:
    chapter: str
    status: str          # "ran" or "up to date"
    seconds: float
    output: Path


def chapters(toc: Path | str = TOC) -> list[Path]:
    """The notebooks (.ipynb) named in the book's table of contents, in reading order."""
    toc = Path(toc)
    files = []
    for line in toc.read_text().splitlines():
        line = line.strip()
        for key in ("root:", "- file:", "file:"):
            if line.startswith(key):
                name = line[len(key):].strip()
                path = toc.parent / f"{name}.ipynb"
                if path.exists():
                    files.append(path)
                break
    return files


def _source_hash() -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "fkd").rglob("*")):
        if p.is_file() and p.suffix in (".py", ".csv", ".json"):
            h.update(p.relative_to(ROOT).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _stamp(notebook: Path, parameters: dict[str, Any], package: str) -> str:
    """Hash of the notebook's cell sources (outputs ignored), the parameters and the package."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    body = json.dumps({"cells": [c.source for c in nb.cells], "parameters": parameters, "package": package},
                      sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def parameters(profile: Profile | str, out: Path | str, seed: int = 0, device: str = "cpu") -> dict[str, Any]:
    """The values every chapter's ``parameters`` cell receives (a chapter picks what it uses)."""
    return {"profile": parse(Profile, profile).value, "out": str(Path(out).resolve()), "seed": seed, "device": device}


def reproduce(profile: Profile | str = Profile.QUICK, out: Path | str = "_build/reproduce", *,
              only: list[str] | None = None, notebooks: list[Path] | None = None, seed: int = 0,
              device: str = "cpu", kernel: str | None = None,
              report: Callable[[str], None] = print) -> list[Outcome]:
    """Execute the chapters (all, or those named in ``only``) with papermill; skip up-to-date ones.

    Args:
        notebooks: chapter files (default: ``chapters()`` from ``_toc.yml``).
        kernel: Jupyter kernel name (default: the notebook's own).
        report: called with one progress line per chapter.
    Returns:
        one Outcome per chapter. Raises ``ChapterFailed`` naming the chapter and its output file.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    nbs = list(notebooks) if notebooks is not None else chapters()
    if only:
        names = {p.stem: p for p in nbs}
        unknown = [c for c in only if c not in names]
        if unknown:
            raise ValueError(f"unknown chapters {', '.join(unknown)}; choose from: "
                             f"{', '.join(names) or '(none: _toc.yml names no chapter notebook yet)'}")
        nbs = [names[c] for c in only]
    params = parameters(profile, out, seed, device)
    package = _source_hash()
    # the kernels import the fkd of this checkout, installed or not
    env_before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env_before]))
    try:
        return _run(nbs, out, params, package, kernel, report)
    finally:
        if env_before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_before


def _run(nbs: list[Path], out: Path, params: dict, package: str, kernel: str | None,
         report: Callable[[str], None]) -> list[Outcome]:
    import papermill as pm

    outcomes = []
    for k, nb in enumerate(nbs, 1):
        target, stamp_file = out / nb.name, out / f"{nb.stem}.stamp.json"
        stamp = _stamp(nb, params, package)
        if target.exists() and stamp_file.exists() and json.loads(stamp_file.read_text()).get("stamp") == stamp:
            outcomes.append(Outcome(nb.stem, "up to date", 0.0, target))
            report(f"[{k}/{len(nbs)}] {nb.stem}: up to date")
            continue
        report(f"[{k}/{len(nbs)}] {nb.stem}: running ...")
        t0 = time.perf_counter()
        stamp_file.unlink(missing_ok=True)
        try:
            pm.execute_notebook(str(nb), str(target), parameters=params, kernel_name=kernel, cwd=str(nb.parent),
                                progress_bar=False)
        except pm.PapermillExecutionError as e:
            raise ChapterFailed(f"chapter {nb.stem} failed in cell {e.exec_count}: {e.ename}: {e.evalue}. "
                                f"The executed notebook with the traceback is {target}.") from None
        seconds = time.perf_counter() - t0
        stamp_file.write_text(json.dumps({"stamp": stamp, "parameters": params, "seconds": round(seconds, 1)}) + "\n")
        outcomes.append(Outcome(nb.stem, "ran", seconds, target))
        report(f"[{k}/{len(nbs)}] {nb.stem}: done in {seconds:.1f} s -> {target}")
    return outcomes
