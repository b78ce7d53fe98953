"""A network named by a file or a zoo name, loaded and checked for the verifier.

``path.onnx`` (converted and checked by ``fkd.onnx_import``), ``path.safetensors`` with the zoo's
JSON architecture beside it, or ``zoo:<dataset>/<name>`` (``zoo:pixel/<dataset>/<name>`` for the
pixel-reading zoo).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from .config import EpsUnits, resolve_model
from .onnx_import import NetworkFileError, convert
from .zoo import ZooError, load_from, model_path, strip_ext, with_ext


class Loaded(NamedTuple):
    """A network ready for the audit: ``model`` (eval mode), where it came from and how it was checked."""
    model: nn.Sequential
    kind: str                  # onnx | safetensors | zoo
    path: str
    sha256: str
    check: dict[str, Any] | None
    notes: tuple[str, ...]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_network(spec: str, input_shape: tuple[int, ...]) -> Loaded:
    """A network from ``spec``: ``path.onnx``, ``path.safetensors`` (with ``path.json``) or ``zoo:<dataset>/<name>``.

    Args:
        input_shape: one image's shape (C, H, W); the network must accept it.
    Raises:
        NetworkFileError naming the file, what is wrong and the fix.
    """
    if spec.startswith("zoo:"):
        parts = spec[4:].strip("/").split("/")
        units = EpsUnits.PIXEL if parts[0] == "pixel" else EpsUnits.NORMALISED  # zoo/pixel/<d> or zoo/<d>
        parts = parts[1:] if units is EpsUnits.PIXEL else parts
        if len(parts) != 2:
            raise NetworkFileError(f"{spec!r}: write a zoo name as zoo:<dataset>/<name>, e.g. zoo:mnist/fd or "
                                   "zoo:pixel/cifar10/fd-a0.75 (`python -m fkd zoo` lists the models)")
        try:
            stem = model_path(parts[0], *resolve_model(parts[0], parts[1]), units=units)
            model, _ = load_from(stem)
        except (ValueError, ZooError) as exc:
            raise NetworkFileError(f"{spec!r}: {exc}") from None
        path, kind, check, notes = with_ext(stem, ".safetensors"), "zoo", None, ()
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise NetworkFileError(f"{path}: no such file. Fix: pass an .onnx file, a .safetensors file with its "
                                   ".json beside it, or a zoo name such as zoo:mnist/fd")
        if path.suffix == ".onnx":
            conv = convert(path, input_shape)
            model, kind, check, notes = conv.model, "onnx", conv.check, conv.notes
        elif path.suffix in (".safetensors", ".json"):
            try:
                model, _ = load_from(strip_ext(path))
            except ZooError as exc:
                raise NetworkFileError(str(exc)) from None
            path, kind, check, notes = with_ext(strip_ext(path), ".safetensors"), "safetensors", None, ()
        else:
            raise NetworkFileError(f"{path}: unknown format {path.suffix!r}. Fix: pass an .onnx file, a "
                                   ".safetensors file with the zoo's JSON architecture beside it, or zoo:<dataset>/<name>")
    try:
        with torch.no_grad():
            out = model(torch.rand(2, *input_shape))
    except RuntimeError as exc:
        raise NetworkFileError(f"{spec}: the network does not take images shaped {input_shape} ({exc}). Fix: "
                               "audit it on images of the shape it was made for (--dataset or --images).") from None
    if out.dim() != 2:
        raise NetworkFileError(f"{spec}: the network outputs shape {tuple(out.shape[1:])} per image, not a logit vector.")
    return Loaded(model.eval(), kind, str(path), _sha(Path(path)), check, notes)
