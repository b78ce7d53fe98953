"""Where things live: the repository, the zoo, the results, the data, the checkpoints, the
reference files. The one module that knows the layout; every other module asks it.

Two situations: running from a checkout (``fkd/`` beside ``pyproject.toml`` and ``zoo/``) or from an
installed wheel (site-packages, no checkout). The zoo is ``$FKD_ZOO`` when set, else the checkout's
``zoo/``, else the zoo packaged in the wheel (``fkd/_zoo``, read-only). The data directory is
``$FKD_DATA``, else the checkout's ``data/``, else ``$XDG_CACHE_HOME/fkd/data`` (``~/.cache/fkd/data``);
checkpoints ``$FKD_CHECKPOINTS``, else ``~/.cache/fkd/checkpoints``. ``train`` writes into the zoo
(``zoo_dir``) in a checkout or when ``$FKD_ZOO`` is set, else into ``~/.cache/fkd/zoo`` (``user_zoo_dir``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

#: the package directory (``fkd/``) and the directory holding it (the checkout, or site-packages)
PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
#: the published runs, the checkout's zoo
RESULTS = ROOT / "results"
ZOO = ROOT / "zoo"
#: package data: the paper's reference numbers, the fixed evaluation subsets, the zoo of a wheel
REFERENCE = PACKAGE / "reference"
SUBSETS = PACKAGE / "subsets"
PACKAGED_ZOO = PACKAGE / "_zoo"
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


def in_checkout() -> bool:
    """Whether the package runs from a checkout of the repository (``pyproject.toml`` and ``zoo/``
    beside ``fkd/``), not from an installed wheel."""
    return (ROOT / "pyproject.toml").is_file() and ZOO.is_dir()


def packaged_zoo() -> Path:
    """The zoo shipped inside the installed package (``fkd/_zoo``; read-only: never trained into)."""
    from importlib.resources import files

    return Path(str(files("fkd") / "_zoo"))


def zoo_dir() -> Path:
    """The zoo root: ``$FKD_ZOO`` when set, else the checkout's ``zoo/``, else the packaged zoo."""
    if os.environ.get("FKD_ZOO"):
        return Path(os.environ["FKD_ZOO"]).expanduser().resolve()
    return ZOO if in_checkout() else packaged_zoo()


def cache_dir() -> Path:
    """The user's cache for fkd: ``$XDG_CACHE_HOME/fkd``, else ``~/.cache/fkd``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fkd"


def user_zoo_dir() -> Path:
    """Where ``train`` puts a model by default: the zoo (``zoo_dir``) in a checkout or when
    ``$FKD_ZOO`` is set, else ``~/.cache/fkd/zoo`` (the packaged zoo is never written)."""
    if os.environ.get("FKD_ZOO") or in_checkout():
        return zoo_dir()
    return cache_dir() / "zoo"


def is_packaged_zoo(path: Path | str) -> bool:
    """Whether ``path`` lies inside the zoo packaged with an installed wheel."""
    path, shipped = Path(path).resolve(), PACKAGED_ZOO.resolve()
    return not in_checkout() and (path == shipped or shipped in path.parents)


def data_dir() -> Path:
    """The writable data directory: ``$FKD_DATA``, else the checkout's ``data/``, else
    ``~/.cache/fkd/data`` (never inside site-packages)."""
    if os.environ.get("FKD_DATA"):
        return Path(os.environ["FKD_DATA"]).expanduser().resolve()
    return (ROOT / "data" if in_checkout() else cache_dir() / "data").resolve()


def shared_data_candidates() -> list[Path]:
    """Where a read-only offline copy of the datasets may be: ``$FKD_SHARED_DATA`` when set (empty:
    none), else ``../shared/data`` beside the checkout (in one) or beside the working directory."""
    if "FKD_SHARED_DATA" in os.environ:
        value = os.environ["FKD_SHARED_DATA"]
        return [Path(value).expanduser()] if value else []
    beside = [ROOT.parent / "shared" / "data"] if in_checkout() else []
    return beside + [Path.cwd().parent / "shared" / "data"]


def checkpoint_dir() -> Path:
    """Resumable training checkpoints: ``$FKD_CHECKPOINTS``, else ``~/.cache/fkd/checkpoints``."""
    if os.environ.get("FKD_CHECKPOINTS"):
        return Path(os.environ["FKD_CHECKPOINTS"]).expanduser()
    return cache_dir() / "checkpoints"


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
    """The normalised readings' unpublished runs of ``dataset``: ``results/units/<dataset>[/<variant>]``."""
    return Path(results) / "units" / dataset / variant


def reading_runs(dataset: str, reading: str, published: str, results: Path | str = RESULTS) -> RunDirs:
    """The run directories of ``dataset`` under one reading of eps (``fkd.units.Reading`` values).

    Args:
        reading: ``pixel``, ``normalised`` or ``input-norm``.
        published: the dataset's published reading (``fkd.units.PUBLISHED``), whose runs are
            ``results/<kind>/<dataset>``; the others: pixel ``results/pixel/<kind>/<dataset>`` (the
            published tree's layout under ``results/pixel``), normalised ``results/units/<dataset>``,
            input-norm ``results/units/<dataset>/input-norm``.
    """
    if reading == published:
        return published_runs(dataset, results)
    if reading == "pixel":
        return published_runs(dataset, Path(results) / "pixel")
    return kind_dirs(units_base(dataset, results, "input-norm" if reading == "input-norm" else ""))


def reading_zoo(reading: str, results: Path | str = RESULTS) -> Path:
    """The zoo root of one reading (``fkd.units.Reading`` values): input-norm the zoo itself
    (``zoo_dir``: its normalised models), pixel the same root (``fkd.zoo.units_root`` adds
    ``pixel/``), normalised on [0, 1] inputs ``results/units/zoo-normalised``."""
    return Path(results) / "units" / "zoo-normalised" if reading == "normalised" else zoo_dir()


def modes_run(dataset: str, results: Path | str = RESULTS) -> Path:
    """The published run of ``dataset`` in every FAITHUB mode (paper, tight and the modes beyond the
    paper), on its first images: ``results/certified/<dataset>-modes``."""
    return Path(results) / "certified" / f"{dataset}-modes"


def methods_base(dataset: str, results: Path | str = RESULTS) -> Path:
    """The method sweep of ``dataset``: paper-mode FAITHUB by every bound method and domain, one run
    directory each (``results/certified-methods/<dataset>``)."""
    return Path(results) / "certified-methods" / dataset


def related_base(results: Path | str = RESULTS) -> Path:
    """The related methods' published runs and tables: ``results/related``."""
    return Path(results) / "related"


def under_root(path: Path | str) -> Path:
    """``path`` as given when absolute, else inside the repository."""
    return Path(path) if Path(path).is_absolute() else ROOT / path


def audit_example(out: Path | str) -> Path:
    """Where the audit chapter's example run goes below a book run directory ``out``."""
    return under_root(out) / "audit" / "mnist-pixel-fd"
