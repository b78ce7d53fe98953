"""The model zoo: safetensors weights plus JSON metadata; ``load_model`` in one call.

Layout: ``zoo/<dataset>/<name>.safetensors`` and ``<name>.json`` for the models trained with the
paper's eps in normalised units, ``zoo/pixel/<dataset>/...`` for the earlier zoo trained with eps
in pixel units (``fkd.units``); ``name`` is ``rt`` for the robust teacher and ``<method>-a<alpha>``
for a student. The JSON holds the layer spec, so models are rebuilt from data and no pickle is
ever loaded. ``units=None`` everywhere means the dataset's default reading (``fkd.units.DEFAULT_UNITS``).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from .config import Dataset, EpsUnits, Method, hparams, model_name, parse
from .models import build
from .paths import REFERENCE, zoo_dir


class ZooError(LookupError):
    """A zoo model is missing or unreadable; the message names the file and the fix."""


def with_ext(stem: Path, ext: str) -> Path:
    """``stem`` + ``ext`` (``Path.with_suffix`` would eat the ".5" of ``fd-a0.5``)."""
    return stem.parent / (stem.name + ext)


def strip_ext(path: Path | str) -> Path:
    """The stem of a zoo file: drops a trailing .safetensors or .json, nothing else."""
    path = Path(path)
    for ext in (".safetensors", ".json"):
        if path.name.endswith(ext):
            return path.parent / path.name[: -len(ext)]
    return path


def units_root(units: EpsUnits | str, root: Path | None = None) -> Path:
    """The zoo directory of one reading: ``zoo/`` (normalised) or ``zoo/pixel/``."""
    base = root or zoo_dir()
    return base / "pixel" if parse(EpsUnits, units) is EpsUnits.PIXEL else base


def model_path(dataset: Dataset | str, method: Method | str, alpha: float | None = None,
               root: Path | None = None, units: EpsUnits | str | None = None) -> Path:
    """Path stem (no suffix) of a zoo model; ``alpha=None`` is the paper's alpha for the row.

    Args:
        root: a zoo root laid out like ``zoo/`` (default ``$FKD_ZOO`` or the shipped zoo).
        units: the reading the model was trained under; None is the dataset's default.
    """
    from .units import resolve_units

    dataset, method = parse(Dataset, dataset), parse(Method, method)
    if alpha is None:
        alpha = hparams(dataset, method)[4]
    return units_root(resolve_units(units, dataset), root) / dataset.value / model_name(method, alpha)


def save_model(model: nn.Module, spec: list, meta: dict[str, Any], stem: Path) -> None:
    """Write ``stem``.safetensors and ``stem``.json (metadata with the layer spec), each atomically
    (a temporary file renamed into place: a kill mid-write leaves the previous model intact)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = with_ext(stem, ".safetensors.tmp")
    save_file(tensors, str(weights))
    weights.replace(with_ext(stem, ".safetensors"))
    body = {**meta, "architecture": [list(layer) for layer in spec]}
    tmp = with_ext(stem, ".json.tmp")
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    tmp.replace(with_ext(stem, ".json"))


def missing(stem: Path) -> ZooError:
    """The error for a model that is not at ``stem`` (.json / .safetensors), with the fix."""
    return ZooError(f"no model at {stem}(.json/.safetensors). Fix: train it with "
                    f"`python -m fkd train ...` or check out the shipped zoo (`python -m fkd zoo` lists it).")


def load_from(stem: Path) -> tuple[nn.Sequential, dict[str, Any]]:
    """Load a model and its metadata from ``stem``.safetensors / .json, in eval mode."""
    meta_path, weights = with_ext(stem, ".json"), with_ext(stem, ".safetensors")
    if not meta_path.exists() or not weights.exists():
        raise missing(stem)
    try:
        meta = json.loads(meta_path.read_text())
        model = build(meta["architecture"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ZooError(f"{meta_path} is not a model description (broken or incomplete JSON: {exc}). "
                       f"Fix: restore it from git or retrain the model.") from exc
    _check_architecture(meta, meta_path)
    try:
        model.load_state_dict(load_file(str(weights)))
    except Exception as exc:
        raise ZooError(f"{weights} is unreadable or does not match its architecture ({exc}). "
                       f"Fix: restore it from git or retrain it.") from exc
    return model.eval(), meta


def _check_architecture(meta: dict[str, Any], path: Path) -> None:
    """A model whose config names a zoo dataset must have that dataset's architecture: an extra
    weight-free layer (a ReLU, a Flatten) would otherwise load silently as another network."""
    from .models import architecture

    cfg = meta.get("config") or {}
    if "dataset" not in cfg or "method" not in cfg or path.parent.parent.name == "small":
        return  # not a zoo model of the paper's architectures (the small pairs carry their own)
    role = "teacher" if cfg["method"] == "rt" else "student"
    want = [list(layer) for layer in architecture(cfg["dataset"], role)]
    if [list(layer) for layer in meta["architecture"]] != want:
        raise ZooError(f"{path} describes {meta['architecture']}, not the {cfg['dataset']} {role} architecture "
                       f"{want}. Fix: restore the file from git or retrain the model.")


def load_model(dataset: Dataset | str, method: Method | str, alpha: float | None = None,
               root: Path | None = None, units: EpsUnits | str | None = None) -> nn.Sequential:
    """A ready, eval-mode ``nn.Sequential`` from the zoo, e.g. ``load_model("mnist", "fd")``.

    Args:
        dataset: mnist, fashion-mnist or cifar10. method: rt, sd, ard, rslad or fd (related: kdiga, tfkd, fdboth).
        alpha: the student's distillation weight; None is the paper's (CIFAR-10 FD also has 0.5, 0.75).
        units: the zoo of one reading, ``normalised`` or ``pixel``; None is the dataset's default.
    """
    return load_from(model_path(dataset, method, alpha, root, units))[0]


def model_key(dataset: Dataset, name: str, units: EpsUnits | None = None, root: str | None = None) -> tuple:
    """What identifies a zoo model's weights for a cache: (path stem, mtime in ns, size) of its
    weights file, so that another zoo (``$FKD_ZOO``, ``root``) or a retrained file is another key."""
    from .config import resolve_model

    stem = model_path(dataset, *resolve_model(dataset, name), root=Path(root) if root else None, units=units)
    weights = with_ext(stem, ".safetensors")
    try:
        st = weights.stat()
    except FileNotFoundError:
        raise missing(stem) from None
    return str(stem), st.st_mtime_ns, st.st_size


def cached_model(dataset: Dataset, name: str, units: EpsUnits | None = None, root: str | None = None) -> nn.Sequential:
    """A zoo model by its zoo name, loaded once per process (per weights file): the runs' one model loader.

    Args:
        dataset: a ``Dataset``; name: rt, fd, fd-a0.75, ...; units: the zoo of one reading (None:
            the dataset's); root: a zoo root (None: ``fkd.paths.zoo_dir()``).
    Returns:
        The eval-mode model with its parameters frozen (no gradients); shared, so never train it.
    """
    return _load_cached(model_key(dataset, name, units, root))


@functools.lru_cache(maxsize=32)
def _load_cached(key: tuple) -> nn.Sequential:
    model = load_from(Path(key[0]))[0]
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def weights_sha256(dataset: Dataset | str, name: str, units: EpsUnits | str | None = None,
                   root: Path | None = None) -> str:
    """sha256 of a zoo model's weights file (``name``: rt, fd, fd-a0.75, ...): what a run directory
    records, so that rows computed with other weights are never reused."""
    import hashlib

    from .config import resolve_model

    stem = model_path(dataset, *resolve_model(dataset, name), root=root, units=units)
    path = with_ext(stem, ".safetensors")
    if not path.exists():
        raise missing(stem)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_meta(dataset: Dataset | str, method: Method | str, alpha: float | None = None,
              root: Path | None = None, units: EpsUnits | str | None = None) -> dict[str, Any]:
    stem = model_path(dataset, method, alpha, root, units)
    if not with_ext(stem, ".json").exists():
        raise ZooError(f"no metadata at {stem}.json. Fix: train the model or check out the shipped zoo.")
    return json.loads(with_ext(stem, ".json").read_text())


def list_zoo(root: Path | None = None, units: EpsUnits | str | None = None,
             all_readings: bool = False) -> list[dict[str, Any]]:
    """One row per shipped model: dataset, units, method, alpha, accuracy, epochs, wall time, status.

    Args:
        units: only the zoo of this reading; None: each dataset's default reading.
        all_readings: both readings' zoos (normalised first); overrides ``units``.
    """
    from .units import default_units

    rows = []
    readings = list(EpsUnits) if all_readings or units is None else [parse(EpsUnits, units)]
    paths = [p for u in readings for p in sorted(units_root(u, root).glob("*/*.json"))
             if p.parent.name in {d.value for d in Dataset}
             and (all_readings or units is not None or default_units(p.parent.name) is u)]
    for meta_path in paths:
        stem = strip_ext(meta_path)
        meta = json.loads(meta_path.read_text())
        cfg = meta["config"]
        rows.append({"dataset": cfg["dataset"], "units": cfg["eps_units"], "method": cfg["method"], "alpha": cfg["alpha"],
                     "profile": cfg["profile"], "clean_acc": meta["clean_acc"],
                     "epochs_run": meta["epochs_run"], "epochs_planned": meta["epochs_planned"],
                     "best_epoch": meta["best_epoch"],
                     "wall_time_s": round(meta["wall_time_s"], 1), "device": meta["record"]["machine"]["device"],
                     "status": meta["status"], "file": with_ext(stem, ".safetensors").name})
    order = {**{d.value: i for i, d in enumerate(Dataset)}, **{m.value: i for i, m in enumerate(Method)},
             **{u.value: i for i, u in enumerate(EpsUnits)}}
    return sorted(rows, key=lambda r: (order[r["units"]], order[r["dataset"]], order[r["method"]], r["alpha"] or 0))


def paper_clean_accuracy() -> dict[tuple[str, str, float | None], float]:
    """The paper's published clean accuracies, keyed by (dataset, method, alpha)."""
    path = REFERENCE / "paper_clean_accuracy.csv"
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")][1:]
    out = {}
    for ln in lines:
        d, m, a, acc = ln.split(",")
        out[(d, m, float(a) if a else None)] = float(acc)
    return out

