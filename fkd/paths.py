"""Where things live: the repository, the zoo, the results, the data, the checkpoints, the
reference files. The one module that knows the layout; every other module asks it.

The zoo is ``$FKD_ZOO`` when set, else the repository's ``zoo/``; the data directory ``$FKD_DATA``,
else ``<repo>/data``; checkpoints ``$FKD_CHECKPOINTS``, else ``~/.cache/fkd/checkpoints``.
"""
from __future__ import annotations

import os
from pathlib import Path

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
