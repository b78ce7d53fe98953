"""The six architectures of spec.md, built as ``nn.Sequential`` from a small JSON-able spec.

Inputs are images in [0, 1], shape (N, C, H, W); there is no normalisation layer, so eps is in
pixel units. The spec (a list of layer tuples) is stored beside the weights in the zoo, so a
model is rebuilt from data, never unpickled.
"""
from __future__ import annotations

from typing import Literal, Sequence

from torch import nn

from .config import Dataset, parse

Role = Literal["teacher", "student"]
LayerSpec = Sequence  # ("linear", in, out) | ("conv", in, out, k, stride, pad) | ("relu",) | ("maxpool", k, s) | ("flatten",)


def _mlp(widths: Sequence[int]) -> list[tuple]:
    layers: list[tuple] = [("flatten",)]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(("linear", a, b))
        if i < len(widths) - 2:
            layers.append(("relu",))
    return layers


def _cifar(c1: int, fcs: Sequence[int]) -> list[tuple]:
    layers: list[tuple] = [("conv", 3, c1, 3, 2, 0), ("relu",), ("maxpool", 2, 2),
                           ("conv", c1, 16, 3, 2, 1), ("relu",),
                           ("conv", 16, 32, 3, 1, 0),  # Table 4: no ReLU after the third conv
                           ("flatten",)]
    return layers + _mlp([128, *fcs])[1:]


#: spec.md, "Architectures" (appendix A.1, A.2 and Table 4).
ARCHITECTURES: dict[tuple[Dataset, str], list[tuple]] = {
    (Dataset.MNIST, "teacher"): _mlp([784, 30, 30, 30, 30, 30, 10]),
    (Dataset.MNIST, "student"): _mlp([784, 20, 20, 20, 20, 10]),
    (Dataset.FASHION_MNIST, "teacher"): _mlp([784, 64, 32, 32, 32, 32, 16, 10]),
    (Dataset.FASHION_MNIST, "student"): _mlp([784, 30, 30, 30, 30, 10]),
    (Dataset.CIFAR10, "teacher"): _cifar(8, [128, 64, 10]),
    (Dataset.CIFAR10, "student"): _cifar(6, [64, 32, 10]),
}

INPUT_SHAPE = {Dataset.MNIST: (1, 28, 28), Dataset.FASHION_MNIST: (1, 28, 28), Dataset.CIFAR10: (3, 32, 32)}


def architecture(dataset: Dataset | str, role: Role) -> list[tuple]:
    """The layer spec of the teacher or the student of ``dataset``."""
    if role not in ("teacher", "student"):
        raise ValueError(f"unknown role {role!r}; choose one of: teacher, student")
    return [tuple(layer) for layer in ARCHITECTURES[(parse(Dataset, dataset), role)]]


def build(spec: Sequence[LayerSpec]) -> nn.Sequential:
    """Build an ``nn.Sequential`` from a layer spec (see ``ARCHITECTURES``)."""
    layers: list[nn.Module] = []
    for layer in spec:
        kind, *args = layer
        if kind == "linear":
            layers.append(nn.Linear(int(args[0]), int(args[1])))
        elif kind == "conv":
            cin, cout, k, s, p = (int(a) for a in args)
            layers.append(nn.Conv2d(cin, cout, k, stride=s, padding=p))
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "maxpool":
            layers.append(nn.MaxPool2d(int(args[0]), stride=int(args[1])))
        elif kind == "flatten":
            layers.append(nn.Flatten())
        else:
            raise ValueError(f"unknown layer kind {kind!r}; choose one of: linear, conv, relu, maxpool, flatten")
    return nn.Sequential(*layers)


def fold_input_affine(model: nn.Sequential, scale, shift, input_shape: Sequence[int]) -> nn.Sequential:
    """Fold x -> scale * x + shift in front of ``model`` into its first Linear or Conv2d, in place.

    Exact for a Linear (after Flatten) and for a Conv2d without padding (padding would pad the
    transformed image with zeros, not with shift); a normalisation (x - mean) / std is scale 1 / std,
    shift -mean / std per channel.

    Args:
        scale, shift: tensors broadcastable to one input ``input_shape`` (C, H, W) or (D,), e.g. (C, 1, 1).
    Raises:
        ValueError where the fold would not be exact.
    """
    import torch

    first = next((m for m in model if isinstance(m, (nn.Linear, nn.Conv2d))), None)
    ones = torch.ones(tuple(input_shape), dtype=torch.float64)
    s, b = torch.as_tensor(scale, dtype=torch.float64) * ones, torch.as_tensor(shift, dtype=torch.float64) * ones
    with torch.no_grad():
        if isinstance(first, nn.Linear):
            w = first.weight.double()
            bias = first.bias.double() if first.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
            first.bias = nn.Parameter((bias + w @ b.reshape(-1)).float())
            first.weight.copy_((w * s.reshape(1, -1)).float())
            return model
        if not isinstance(first, nn.Conv2d) or first.padding not in ((0, 0), 0):
            raise ValueError(f"an input normalisation cannot be folded exactly into {type(first).__name__} "
                             "with padding (the padding would pad the normalised image)")
        if not (torch.allclose(s, s[:, :1, :1]) and torch.allclose(b, b[:, :1, :1])):
            raise ValueError("a normalisation that varies across pixels cannot be folded into a Conv2d")
        w = first.weight.double()
        bias = first.bias.double() if first.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        first.bias = nn.Parameter((bias + (w * b[:, 0, 0].view(1, -1, 1, 1)).sum((1, 2, 3))).float())
        first.weight.copy_((w * s[:, 0, 0].view(1, -1, 1, 1)).float())
    return model


def make_model(dataset: Dataset | str, role: Role) -> nn.Sequential:
    """A freshly initialised teacher or student (PyTorch's default init, seeded by the caller)."""
    return build(architecture(dataset, role))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
