"""A network as the bound methods see it: affine maps, ReLUs and max-pools on flat vectors.

``lower(model, input_shape)`` turns an ``nn.Sequential`` of Flatten, Linear, Conv2d, ReLU and
MaxPool2d (``fkd.models``) into a ``Net``: a list of ops acting on the flattened input (C*H*W,).
Conv2d becomes an equivalent dense matrix (inputs are small: 784 or 3072 pixels), consecutive
affine maps are merged into one (exact), Flatten disappears, and a MaxPool2d keeps the index set of
each window. Section 4.2 of the paper: "a convolution is a linear operation".

Everything is float64: bounds are computed for the real-arithmetic network; the float32 torch
forward differs from it by rounding only, which the public entry points cover with a margin per
logit: ``fkd.bounds.fp.logit_margin``, the a-priori float32 forward error over the input box, at
least ``FP_MARGIN``. A merged affine map keeps its factors (``Affine.parts``) so that the error
analysis follows the layers torch evaluates one after the other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, Union

import torch
from torch import Tensor, nn

#: The absolute floor (logit units) of the margin added outward to every bound the public API
#: returns (``fkd.bounds.fp.logit_margin``): it covers the float64 rounding of the bound
#: computations themselves; the float32 forward error is derived per network and box.
FP_MARGIN = 1e-5

DTYPE = torch.float64


@dataclass(frozen=True)
class Affine:
    """z = W a + b. W (out, in), b (out,), float64. ``parts``: the layers this map merges, in the
    order torch evaluates them (empty for a single layer)."""
    weight: Tensor
    bias: Tensor
    parts: tuple["Affine", ...] = field(default=(), compare=False, repr=False)

    @property
    def out_dim(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True)
class ReLU:
    """a = max(z, 0), elementwise."""


@dataclass(frozen=True)
class MaxPool:
    """y_k = max_{j in windows[k]} a_j. windows (out, k*k) long indices into the flat input."""
    windows: Tensor

    @property
    def out_dim(self) -> int:
        return self.windows.shape[0]


Op = Union[Affine, ReLU, MaxPool]


@dataclass(frozen=True)
class Net:
    """A lowered network: ``ops`` act on flat inputs of ``in_dim`` = prod(``input_shape``).

    Invariants: the first and last ops are ``Affine``; every ReLU/MaxPool follows an op whose output
    bounds are known (``pre`` index). The output is the last op's output: the logits (K,).
    """
    ops: tuple[Op, ...]
    input_shape: tuple[int, ...]

    @property
    def in_dim(self) -> int:
        n = 1
        for s in self.input_shape:
            n *= s
        return n

    @property
    def out_dim(self) -> int:
        return self.ops[-1].out_dim

    def forward(self, x: Tensor) -> Tensor:
        """Evaluate the lowered net: x (B, in_dim) or (B, C, H, W) -> logits (B, K), float64."""
        a = x.reshape(x.shape[0], -1).to(DTYPE)
        for op in self.ops:
            a = apply(op, a)
        return a


def apply(op: Op, a: Tensor) -> Tensor:
    """One op on a batch of flat vectors (B, n_in) -> (B, n_out)."""
    if isinstance(op, Affine):
        return a @ op.weight.T + op.bias
    if isinstance(op, ReLU):
        return a.clamp(min=0)
    return a[:, op.windows].amax(-1)


def _conv_matrix(conv: nn.Conv2d, shape: tuple[int, int, int]) -> tuple[Affine, tuple[int, int, int]]:
    """Dense (out, in) matrix of ``conv`` on inputs of ``shape`` (C, H, W), by probing the basis."""
    if len(shape) != 3 or shape[0] != conv.in_channels:
        raise ValueError(f"a Conv2d layer of {conv.in_channels} input channels meets inputs shaped {tuple(shape)}: "
                         f"pass images (C, H, W) of the shape the network was built for")
    n = shape[0] * shape[1] * shape[2]
    w = conv.weight.detach().to("cpu", DTYPE)
    eye = torch.eye(n, dtype=DTYPE).view(n, *shape)
    cols = torch.nn.functional.conv2d(eye, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    out_shape = tuple(cols.shape[1:])
    weight = cols.reshape(n, -1).T.contiguous()
    bias = conv.bias.detach().to("cpu", DTYPE) if conv.bias is not None else torch.zeros(out_shape[0], dtype=DTYPE)
    bias = bias[:, None].expand(out_shape[0], out_shape[1] * out_shape[2]).reshape(-1).clone()
    return Affine(weight, bias), out_shape


def _pool_windows(pool: nn.MaxPool2d, shape: tuple[int, int, int]) -> tuple[MaxPool, tuple[int, int, int]]:
    """Index sets of every max-pool window on inputs of ``shape`` (C, H, W)."""
    if len(shape) != 3:
        raise ValueError(f"a MaxPool2d layer meets inputs shaped {tuple(shape)}: it needs images (C, H, W)")
    pad = pool.padding if isinstance(pool.padding, int) else max(pool.padding)
    dil = pool.dilation if isinstance(pool.dilation, int) else max(pool.dilation)
    if pad != 0 or dil != 1 or pool.ceil_mode:
        raise ValueError("only MaxPool2d with padding 0, dilation 1 and ceil_mode False is supported")
    c, h, w = shape
    idx = torch.arange(c * h * w, dtype=DTYPE).view(1, c, h, w)
    k, s = pool.kernel_size, pool.stride
    k = (k, k) if isinstance(k, int) else tuple(k)
    s = (s, s) if isinstance(s, int) else tuple(s)
    patches = idx.unfold(2, k[0], s[0]).unfold(3, k[1], s[1])  # (1, C, Ho, Wo, kh, kw)
    out_shape = (c, patches.shape[2], patches.shape[3])
    return MaxPool(patches.reshape(-1, k[0] * k[1]).long()), out_shape


def lower(model: nn.Module, input_shape: Sequence[int], check: bool = True) -> Net:
    """Lower an ``nn.Sequential`` of Flatten/Linear/Conv2d/ReLU/MaxPool2d to a ``Net``.

    Args:
        model: the network (eval-mode semantics; no dropout or batch norm).
        input_shape: one input's shape, e.g. (1, 28, 28) or (3, 32, 32).
        check: compare the lowered net with ``model``'s forward on random inputs in [0, 1]
            and raise ``ValueError`` on a mismatch above 1e-4 (relative to the logit scale).
    Returns:
        Net whose ``forward`` equals ``model`` on flattened inputs.
    """
    shape: tuple[int, ...] = tuple(int(s) for s in input_shape)
    ops: list[Op] = []
    for layer in model.children() if isinstance(model, nn.Sequential) else [model]:
        if isinstance(layer, nn.Flatten):
            shape = (int(torch.tensor(shape).prod()),)
        elif isinstance(layer, nn.Linear):
            if len(shape) != 1 or shape[0] != layer.in_features:
                raise ValueError(f"a Linear layer of {layer.in_features} inputs meets inputs shaped {shape} "
                                 f"(the network's input {tuple(input_shape)}): pass images of the shape the "
                                 f"network was built for, with a Flatten before the first Linear")
            w = layer.weight.detach().to("cpu", DTYPE)
            b = layer.bias.detach().to("cpu", DTYPE) if layer.bias is not None else torch.zeros(w.shape[0], dtype=DTYPE)
            ops.append(Affine(w, b))
            shape = (w.shape[0],)
        elif isinstance(layer, nn.Conv2d):
            op, shape = _conv_matrix(layer, shape)  # type: ignore[arg-type]
            ops.append(op)
        elif isinstance(layer, nn.ReLU):
            ops.append(ReLU())
        elif isinstance(layer, nn.MaxPool2d):
            op, shape = _pool_windows(layer, shape)  # type: ignore[arg-type]
            ops.append(op)
        else:
            raise ValueError(f"unsupported layer {type(layer).__name__}; choose one of: "
                             "Flatten, Linear, Conv2d, ReLU, MaxPool2d")
    net = Net(tuple(_merge_affine(ops)), tuple(int(s) for s in input_shape))
    if not net.ops or not isinstance(net.ops[0], Affine) or not isinstance(net.ops[-1], Affine):
        raise ValueError("a network must start and end with an affine layer (Linear or Conv2d)")
    if check:
        check_lowering(model, net)
    return net


def _merge_affine(ops: list[Op]) -> list[Op]:
    """Merge runs of consecutive affine maps into one: W2 (W1 a + b1) + b2."""
    out: list[Op] = []
    for op in ops:
        if isinstance(op, Affine) and out and isinstance(out[-1], Affine):
            prev = out.pop()
            parts = (prev.parts or (prev,)) + (op,)
            op = Affine(op.weight @ prev.weight, op.weight @ prev.bias + op.bias, parts)
        out.append(op)
    return out


@torch.no_grad()
def check_lowering(model: nn.Module, net: Net, n: int = 8, seed: int = 0) -> float:
    """Max abs difference between ``model`` (float64 copy) and ``net`` on ``n`` random inputs.

    Raises ValueError if it exceeds 1e-6 * (1 + max |logit|) (float64 on both sides).
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *net.input_shape), generator=gen, dtype=DTYPE)
    params = [p.detach().to("cpu", DTYPE) for p in model.parameters()]
    ref = torch.func.functional_call(model, {k: v for (k, _), v in zip(model.named_parameters(), params)}, (x,))
    got = net.forward(x)
    err = (ref - got).abs().max().item()
    if err > 1e-6 * (1 + ref.abs().max().item()):
        raise ValueError(f"lowered network differs from the torch forward by {err:.3g}")
    return err


def check_net(net) -> None:
    """ValueError unless ``net`` is a lowered network (``Net``)."""
    if not isinstance(net, Net):
        raise ValueError(f"expected a lowered network, got {type(net).__name__}: pass fkd.bounds.as_net(model, x0.shape)")


def check_pair(teacher: Net, student: Net) -> None:
    """ValueError unless teacher and student are lowered networks that take the same inputs and give
    the same number of classes."""
    check_net(teacher)
    check_net(student)
    if teacher.input_shape != student.input_shape:
        raise ValueError(f"the teacher takes inputs shaped {teacher.input_shape}, the student "
                         f"{student.input_shape}: a pair must share its inputs")
    if teacher.out_dim != student.out_dim:
        raise ValueError(f"the teacher has {teacher.out_dim} classes, the student {student.out_dim}: "
                         f"FAITHUB compares their confidences class by class")


def check_one_image(x0: Tensor, name: str) -> None:
    """ValueError unless x0 is one image (C, H, W) (a batch goes to ``bounds`` or image by image)."""
    if x0.dim() != 3:
        raise ValueError(f"{name} takes one image (C, H, W), got shape {tuple(x0.shape)}: pass x[i] "
                         f"for image i of a batch")
