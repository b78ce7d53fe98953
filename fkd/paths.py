"""Where things live: the repository, the zoo, the results, the data, the checkpoints, the
reference files. The one module that knows the layout; every other module asks it.

The zoo is ``$FKD_ZOO`` when set, else the repository's ``zoo/``; the data directory ``$FKD_DATA``,
else ``<repo>/data``; checkpoints ``$FKD_CHECKPOINTS``, else ``~/.cache/fkd/checkpoints``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

#: the package directory (``fkd/``) and the repository (checkout) holding it
PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
#: the published runs, the shipped zoo
RESULTS = ROOT / "results"
ZOO = ROOT / "zoo"
#: package data: the paper's reference numbers and the fixed evaluation subsets
REFERENCE = PACKAGE / "reference"
SUBSETS = PACKAGE / "subsets"
#: the published run directories by kind (``results/<kind>/<dataset>``)
EMPIRICAL = RESULTS / "empirical"
CERTIFIED = RESULTS / "certified"
BEYOND = RESULTS / "beyond"
FIGURES = RESULTS / "figures"
#: the book: its chapters (notebooks) and its table of contents
CHAPTERS = ROOT / "book"
TOC = ROOT / "_toc.yml"
#: the built book (jupyter-book's HTML)
SITE = ROOT / "_build" / "html"


def zoo_dir() -> Path:
    """The zoo root: ``$FKD_ZOO`` when set, else the shipped ``zoo/``."""
    return Path(os.environ.get("FKD_ZOO", ZOO)).expanduser().resolve()


def data_dir() -> Path:
    """The writable data directory: ``$FKD_DATA``, else ``<repo>/data``."""
    return Path(os.environ.get("FKD_DATA", ROOT / "data")).expanduser().resolve()


def shared_data_candidates() -> list[Path]:
    """Where a read-only offline copy of the datasets may be: ``$FKD_SHARED_DATA`` when set (empty:
    none), else ``../shared/data`` beside the repository or beside the working directory."""
    if "FKD_SHARED_DATA" in os.environ:
        value = os.environ["FKD_SHARED_DATA"]
        return [Path(value).expanduser()] if value else []
    return [ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]


def checkpoint_dir() -> Path:
    """Resumable training checkpoints: ``$FKD_CHECKPOINTS``, else ``~/.cache/fkd/checkpoints``."""
    return Path(os.environ.get("FKD_CHECKPOINTS", Path.home() / ".cache" / "fkd" / "checkpoints"))


class RunDirs(NamedTuple):
    """The run directories of one dataset's studies, by kind."""
    empirical: Path
    certified: Path
    certified_plain: Path
    calibration: Path
    agreement: Path


def kind_dirs(base: Path | str) -> RunDirs:
    """A study tree laid out by kind under ``base``: ``base/empirical``, ``base/certified``, ... (a
    chapter's ``out/<dataset>``, ``results/units/<dataset>``, ``results/related/<dataset>``)."""
    base = Path(base)
    return RunDirs(base / "empirical", base / "certified", base / "certified-plain", base / "calibration",
                   base / "agreement")


def published_runs(dataset: str, results: Path | str = RESULTS) -> RunDirs:
    """The published runs of the paper's reading, laid out by kind first: ``results/<kind>/<dataset>``
    (certified agreement: ``results/beyond/agreement-<dataset>``)."""
    r = Path(results)
    return RunDirs(r / "empirical" / dataset, r / "certified" / dataset, r / "certified-plain" / dataset,
                   r / "calibration" / dataset, r / "beyond" / f"agreement-{dataset}")


def units_base(dataset: str, results: Path | str = RESULTS, variant: str = "") -> Path:
    """The normalised reading's published runs of ``dataset``: ``results/units/<dataset>[/<variant>]``."""
    return Path(results) / "units" / dataset / variant


def related_base(results: Path | str = RESULTS) -> Path:
    """The related methods' published runs and tables: ``results/related``."""
    return Path(results) / "related"


def under_root(path: Path | str) -> Path:
    """``path`` as given when absolute, else inside the repository."""
    return Path(path) if Path(path).is_absolute() else ROOT / path


def audit_example(out: Path | str) -> Path:
    """Where the audit chapter's example run goes below a book run directory ``out``."""
    return under_root(out) / "audit" / "mnist-pixel-fd"
