"""ONNX networks as the verifier's ``nn.Sequential``: converted with onnx2torch, checked against onnxruntime.

The verifier (``fkd.bounds.network.lower``) takes a chain of Flatten, Linear, Conv2d, ReLU and
MaxPool2d. An ONNX graph is first put into that shape on the ONNX side:
- a Reshape to (N, features) (PyTorch's ``x.view(x.size(0), -1)``, with its Shape / Gather /
  Unsqueeze / Concat / Constant sub-graph) becomes a Flatten;
- a leading normalisation (Sub, Div, Mul or Add by constants, e.g. ``(x - mean) / std``) is taken
  out and folded into the first Linear or Conv2d (exact for a Linear and for a Conv2d without
  padding), so the network takes images in [0, 1] like the zoo's;
- a trailing Softmax or LogSoftmax is dropped: FAITHUB bounds the softmax of the logits itself.
Then onnx2torch converts the graph, the chain is read off its ``GraphModule`` and onnxruntime runs
the original file on a batch of inputs: the converted network must agree within ``TOLERANCE``
(after the dropped softmax, where there was one) or ``ConversionMismatch`` is raised.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .models import fold_input_affine

#: the converted network's outputs may differ from onnxruntime's by at most this, relative to the
#: logit scale: |ours - ort| <= TOLERANCE * (1 + max |ort|) on every output of the check batch
TOLERANCE = 1e-4
LAYERS = "Gemm (Linear), Conv, Relu, MaxPool, Flatten, Reshape to (N, features), Identity, Dropout"
SUPPORTED = {"Gemm", "Conv", "Relu", "MaxPool", "Flatten", "Reshape", "Identity", "Dropout"}
SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Concat", "Constant", "Squeeze", "Slice", "Cast"}
AFFINE_OPS = {"Sub": "subtract", "Div": "divide", "Mul": "multiply", "Add": "add"}
SOFTMAX_OPS = {"Softmax", "LogSoftmax"}


class NetworkFileError(ValueError):
    """A network file cannot be audited; the message names the file, the problem and the fix."""


class UnsupportedLayer(NetworkFileError):
    """The network holds an operation the verifier cannot bound."""


class ConversionMismatch(NetworkFileError):
    """The converted network disagrees with onnxruntime on the check batch."""


@dataclass(frozen=True)
class Converted:
    """An ONNX network as an eval-mode ``nn.Sequential`` and how it was checked.

    ``input_shape``: one input's shape (C, H, W) or (D,); ``check``: the onnxruntime comparison
    (inputs, max abs difference, tolerance, output compared: logits or softmax); ``notes``: what the
    conversion changed (a folded normalisation, a dropped softmax, a flatten)."""
    model: nn.Sequential
    input_shape: tuple[int, ...]
    check: dict[str, Any]
    notes: tuple[str, ...] = field(default=())


def _shape(value_info) -> tuple[int | str, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                 for d in value_info.type.tensor_type.shape.dim)


def _constants(graph) -> dict[str, torch.Tensor]:
    import onnx.numpy_helper as nh

    out = {i.name: torch.from_numpy(nh.to_array(i).copy()) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute:
            out[n.output[0]] = torch.from_numpy(nh.to_array(n.attribute[0].t).copy())
    return out


def _prepare(model, path: Path) -> tuple[Any, torch.Tensor, torch.Tensor, str | None, list[str]]:
    """Rewrite the graph into a plain chain; returns (graph model, scale, shift, dropped softmax, notes)
    where the removed leading normalisation is x -> scale * x + shift (broadcast over (C, H, W))."""
    import onnx
    from onnx import helper

    graph = model.graph
    consts = _constants(graph)
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise NetworkFileError(f"{path}: the network has {len(inputs)} inputs and {len(graph.output)} outputs; "
                               "the verifier takes one image batch in and one logit vector out. Fix: export "
                               "the classifier alone (torch.onnx.export(model, example_image, path)).")
    x_name, notes = inputs[0].name, []
    nodes = [n for n in graph.node if n.op_type != "Constant"]
    unknown = sorted({n.op_type for n in nodes} - SUPPORTED - SHAPE_OPS - set(AFFINE_OPS) - SOFTMAX_OPS)
    if unknown:
        raise UnsupportedLayer(f"{path}: the verifier cannot bound the ONNX operation(s) {', '.join(unknown)}. "
                               f"Supported: {LAYERS}; a leading normalisation (Sub/Div/Mul/Add by constants) "
                               "and a trailing Softmax. Fix: export a network made of those layers.")
    scale, shift = torch.ones(()), torch.zeros(())
    while nodes and nodes[0].op_type in AFFINE_OPS and nodes[0].input[0] == x_name:
        n = nodes.pop(0)
        c = consts.get(n.input[1])
        if c is None:
            raise UnsupportedLayer(f"{path}: {n.op_type} of the input by a non-constant; only a normalisation by "
                                   "constants can be folded. Fix: export the network without it.")
        c = c.double().squeeze(0) if c.dim() == 4 else c.double()
        scale, shift = {"Sub": (scale, shift - c), "Add": (scale, shift + c),
                        "Mul": (scale * c, shift * c), "Div": (scale / c, shift / c)}[n.op_type]
        for m in nodes:  # the next node now reads the graph input
            m.input[:] = [x_name if i == n.output[0] else i for i in m.input]
        notes.append(f"folded the leading {n.op_type} by a constant into the first layer")
    rest = [n for n in nodes if n.op_type in AFFINE_OPS]
    if rest:
        raise UnsupportedLayer(f"{path}: {rest[0].op_type} ({rest[0].name}) inside the network; only a leading "
                               "normalisation of the input can be folded. Fix: export without it.")
    softmax = None
    if nodes and nodes[-1].op_type in SOFTMAX_OPS and nodes[-1].output[0] == graph.output[0].name:
        last = nodes.pop()
        softmax = last.op_type
        for m in nodes:
            m.output[:] = [graph.output[0].name if o == last.input[0] else o for o in m.output]
        notes.append(f"dropped the trailing {softmax}: FAITHUB bounds the softmax of the logits")
    if any(n.op_type in SOFTMAX_OPS for n in nodes):
        raise UnsupportedLayer(f"{path}: a Softmax inside the network. Fix: export the classifier up to its logits.")
    chain = []
    for n in nodes:
        if n.op_type == "Reshape":
            chain.append(helper.make_node("Flatten", [n.input[0]], [n.output[0]], axis=1, name=n.name or "Flatten"))
            notes.append("read Reshape to (N, features) as Flatten")
        elif n.op_type not in SHAPE_OPS:
            chain.append(n)
    feeding = {i for n in chain for i in n.input}
    stray = [n for n in nodes if n.op_type in SHAPE_OPS and set(n.output) & feeding]
    if stray:
        raise UnsupportedLayer(f"{path}: {stray[0].op_type} feeds a layer's data; shape operations are only "
                               "read as part of a flattening Reshape. Fix: use nn.Flatten before the first Linear.")
    del graph.node[:]
    graph.node.extend(chain)
    used = {i for n in chain for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    onnx.checker.check_model(model)
    return model, scale, shift, softmax, notes


def _chain(gm: nn.Module, path: Path) -> list[nn.Module]:
    """The layers of onnx2torch's ``GraphModule``, in order; refuses anything but a chain."""
    layers, prev = [], None
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output"):
            if node.op == "output" and prev is not None and node.args[0] is not prev:
                raise UnsupportedLayer(f"{path}: the output is not the last layer (a branching graph). Fix: "
                                       "export a plain chain of layers.")
            prev = node if node.op == "placeholder" else prev
            continue
        mod = gm.get_submodule(node.target) if node.op == "call_module" else None
        if mod is None or len(node.args) != 1 or node.args[0] is not prev:
            raise UnsupportedLayer(f"{path}: {node.target} is not one layer of a chain (skip connections and "
                                   f"branches cannot be bounded here). Supported: {LAYERS}.")
        if isinstance(mod, nn.Flatten) and (mod.start_dim, mod.end_dim) != (1, -1):
            raise UnsupportedLayer(f"{path}: Flatten from axis {mod.start_dim}; only (N, features) is supported.")
        if not isinstance(mod, (nn.Linear, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Identity, nn.Dropout)):
            raise UnsupportedLayer(f"{path}: {str(node.target).split('/')[-1]} converts to {type(mod).__name__}, "
                                   f"which the verifier cannot bound. Supported: {LAYERS}.")
        if isinstance(mod, nn.Conv2d) and (mod.groups != 1 or mod.dilation != (1, 1) or mod.padding_mode != "zeros"):
            raise UnsupportedLayer(f"{path}: a grouped or dilated Conv; only plain convolutions are supported.")
        if not isinstance(mod, (nn.Identity, nn.Dropout)):
            layers.append(mod)
        prev = node
    return layers


def convert(path: Path | str, input_shape: Sequence[int] | None = None, n_check: int = 16, seed: int = 0) -> Converted:
    """Load an ONNX classifier as a chain the verifier bounds, checked against onnxruntime.

    Args:
        path: the .onnx file. input_shape: one input's shape, e.g. (1, 28, 28); None: the file's own
            (its input must then have static non-batch dimensions).
        n_check: inputs drawn uniformly from [0, 1] for the onnxruntime comparison.
    Returns:
        Converted(model (eval mode, float32), input_shape, check, notes).
    Raises:
        NetworkFileError (unreadable file, several inputs), UnsupportedLayer (names the operation and
        lists the supported ones), ConversionMismatch (outputs differ beyond ``TOLERANCE``).
    """
    try:
        import onnx
        import onnx2torch
        import onnxruntime as ort
    except ImportError as exc:
        raise NetworkFileError(f"auditing ONNX files needs onnx, onnx2torch and onnxruntime ({exc}). "
                               "Fix: pip install 'fkd[onnx]' (or: make setup).") from None
    path = Path(path)
    try:
        original = onnx.load(str(path))
        onnx.checker.check_model(original)
    except Exception as exc:
        raise NetworkFileError(f"{path} is not a readable ONNX model ({exc}). Fix: re-export it "
                               "(torch.onnx.export) or check the path.") from None
    declared = _shape([i for i in original.graph.input if i.name not in _constants(original.graph)][0])[1:]
    shape = tuple(int(s) for s in (input_shape or declared))
    if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
        raise NetworkFileError(f"{path}: input dimensions {declared} are not static; pass the input shape.")
    flat_in = len(declared) == 1
    if all(isinstance(d, int) for d in declared) and tuple(declared) != shape and \
            not (flat_in and declared[0] == int(torch.tensor(shape).prod())):
        raise NetworkFileError(f"{path} takes inputs shaped {tuple(declared)}, the images are {shape}. Fix: pass "
                               "images of the shape the network was exported for (or the matching --dataset).")
    prepared, scale, shift, softmax, notes = _prepare(onnx.load(str(path)), path)
    try:
        gm = onnx2torch.convert(prepared)
    except Exception as exc:
        raise UnsupportedLayer(f"{path}: onnx2torch cannot convert it ({exc}). Supported: {LAYERS}.") from None
    layers = _chain(gm, path)
    if flat_in and (not layers or not isinstance(layers[0], nn.Flatten)):
        layers.insert(0, nn.Flatten())
    if not any(isinstance(m, (nn.Linear, nn.Conv2d)) for m in layers):
        raise UnsupportedLayer(f"{path}: no Linear or Conv layer; nothing to verify.")
    if scale.numel() > 1 or shift.numel() > 1 or float(scale) != 1.0 or float(shift) != 0.0:
        try:
            fold_input_affine(nn.Sequential(*layers), scale, shift,
                              (int(torch.tensor(shape).prod()),) if flat_in else shape)
        except ValueError as exc:
            raise UnsupportedLayer(f"{path}: {exc}. Fix: export the network without its normalisation and pass "
                                   "--std to read eps in normalised units") from None
    model = nn.Sequential(*layers).float().eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((n_check, *shape), generator=gen)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = x.reshape(n_check, -1) if flat_in else x
    name = session.get_inputs()[0].name
    try:
        ref = torch.from_numpy(session.run(None, {name: feed.numpy()})[0]).double()
    except Exception:  # a file exported for batch 1 only
        ref = torch.cat([torch.from_numpy(session.run(None, {name: feed[i:i + 1].numpy()})[0]) for i in range(n_check)]).double()
    with torch.no_grad():
        got = model(x).double()
    compared = "logits"
    if softmax == "Softmax":
        got, compared = got.softmax(-1), "softmax"
    elif softmax == "LogSoftmax":
        got, compared = got.log_softmax(-1), "log-softmax"
    if got.shape != ref.shape:
        raise ConversionMismatch(f"{path}: the converted network gives outputs shaped {tuple(got.shape)}, "
                                 f"onnxruntime {tuple(ref.shape)}. Fix: export a plain classifier.")
    err = float((got - ref).abs().max())
    limit = TOLERANCE * (1 + float(ref.abs().max()))
    check = {"inputs": n_check, "seed": seed, "max_abs_diff": err, "tolerance": limit, "compared": compared,
             "onnxruntime": ort.__version__}
    if not err <= limit:
        raise ConversionMismatch(f"{path}: the converted network differs from onnxruntime by {err:.3g} "
                                 f"(allowed {limit:.3g}) on {n_check} random inputs. Fix: export a plain chain of "
                                 f"{LAYERS}; if it is one, please report this file.")
    return Converted(model, shape, check, tuple(dict.fromkeys(notes)))


def export(model: nn.Module, path: Path | str, input_shape: Sequence[int]) -> Path:
    """Write ``model`` (eval mode) to ``path`` as ONNX with a variable batch size: the file a user
    would hand to ``python -m fkd audit``. Uses PyTorch's TorchScript exporter (no onnxscript needed).

    Args:
        input_shape: one input's shape, e.g. (1, 28, 28).
    """
    import warnings

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(model.eval(), torch.zeros(1, *input_shape), str(path), dynamo=False, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    return path
