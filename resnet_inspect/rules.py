"""The handler table: what each layer type is, read off the module's own attributes.

Every leaf module the walker meets is looked up here by its exact type. A type in `READERS` becomes
an `Op` (geometry and parameter count); a type in `IGNORED` does no spatial or multiply work
(activations, identities, dropout); anything else is reported by the walker as unrecognised,
never counted as zero. A subclass of a known type is read like its parent only when it does not
override `forward` (timm's AvgPool2dSame, a subclass of nn.AvgPool2d with its own padding, is not).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from .builder import SamePadAvgPool2d

OpKind = Literal["conv", "linear", "bn", "maxpool", "avgpool", "avgpool_same", "adaptive_avgpool"]


@dataclass(frozen=True)
class Op:
    """One leaf layer as read from its module: kind, channels, window geometry, parameters."""

    name: str
    kind: OpKind
    in_ch: int
    out_ch: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    ceil_mode: bool = False
    output_size: tuple[int, int] | None = None  # adaptive pools only
    params: int = 0

    @property
    def is_window(self) -> bool:
        """A sliding-window op (conv or pool), the ones that move the receptive field."""
        return self.kind in ("conv", "maxpool", "avgpool", "avgpool_same")


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if len(value) == 1:
        return (value[0], value[0])
    return (int(value[0]), int(value[1]))


def own_params(module: nn.Module) -> int:
    """Parameters held by the module itself, not its children."""
    # `_parameters` is what parameters(recurse=False) walks, without its generator machinery,
    # which would dominate the walk of a large model.
    return sum(p.numel() for p in module._parameters.values() if p is not None)


def read_conv(name: str, m: nn.Conv2d) -> Op:
    """A Conv2d's geometry; string paddings ('same') are resolved as torch does for stride 1."""
    kernel, dilation = _pair(m.kernel_size), _pair(m.dilation)
    if isinstance(m.padding, str):
        if m.padding == "valid":
            padding = (0, 0)
        else:  # torch allows 'same' only with stride 1; the total is split left-first
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))  # type: ignore[assignment]
    else:
        padding = _pair(m.padding)
    return Op(
        name, "conv", m.in_channels, m.out_channels, kernel, _pair(m.stride), padding,  # type: ignore[arg-type]
        dilation, m.groups, params=own_params(m),
    )  # fmt: skip


def read_linear(name: str, m: nn.Linear) -> Op:
    """A Linear layer: in_features -> out_features."""
    return Op(name, "linear", m.in_features, m.out_features, params=own_params(m))


def read_bn(name: str, m: nn.Module) -> Op:
    """Any batch norm: channels in = channels out."""
    return Op(name, "bn", m.num_features, m.num_features, params=own_params(m))  # type: ignore[arg-type]


def _pool(kind: OpKind) -> Callable[[str, nn.Module], Op]:
    def read(name: str, m: nn.Module) -> Op:
        """The pool's window."""
        stride = m.stride if m.stride is not None else m.kernel_size  # type: ignore[attr-defined]
        return Op(
            name, kind, 0, 0, _pair(m.kernel_size), _pair(stride), _pair(m.padding),  # type: ignore[attr-defined]
            _pair(getattr(m, "dilation", 1)), ceil_mode=bool(m.ceil_mode),  # type: ignore[attr-defined]
        )  # fmt: skip

    read.__doc__ = f"A {kind} layer's window."
    return read


def read_adaptive_avgpool(name: str, m: nn.AdaptiveAvgPool2d) -> Op:
    """An adaptive average pool to a fixed output size (None keeps that dimension)."""
    size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size, m.output_size)
    return Op(name, "adaptive_avgpool", 0, 0, output_size=size)  # type: ignore[arg-type]


READERS: dict[type, Callable[[str, nn.Module], Op]] = {
    nn.Conv2d: read_conv,  # type: ignore[dict-item]
    nn.Linear: read_linear,  # type: ignore[dict-item]
    nn.BatchNorm2d: read_bn,
    nn.SyncBatchNorm: read_bn,
    nn.MaxPool2d: _pool("maxpool"),
    nn.AvgPool2d: _pool("avgpool"),
    SamePadAvgPool2d: _pool("avgpool_same"),
    nn.AdaptiveAvgPool2d: read_adaptive_avgpool,  # type: ignore[dict-item]
}

# Types from optional libraries, used only when that library is already imported.
OPTIONAL_READERS: dict[str, Callable[[str, nn.Module], Op]] = {
    "timm.layers.pool2d_same.AvgPool2dSame": _pool("avgpool_same"),
    "torchvision.ops.misc.FrozenBatchNorm2d": read_bn,
    "timm.layers.norm.FrozenBatchNorm2d": read_bn,
    "timm.layers.norm_act.FrozenBatchNorm2d": read_bn,
    "timm.layers.norm_act.BatchNormAct2d": read_bn,
}

IGNORED: frozenset[type] = frozenset(
    {
        nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Identity, nn.Flatten,
        nn.Dropout, nn.Dropout2d,
    }
)  # fmt: skip
OPTIONAL_IGNORED = frozenset({"timm.layers.drop.DropPath", "timm.layers.drop.DropBlock2d"})


def optional_type(path: str) -> type | None:
    """The class at a dotted path, if its module is already imported (never imports it)."""
    module_name, _, attr = path.rpartition(".")
    module = sys.modules.get(module_name)
    return getattr(module, attr, None) if module is not None else None


def reader_for(module: nn.Module) -> Callable[[str, nn.Module], Op] | None | Literal["ignore"]:
    """The reader for this module's type, "ignore" for a no-op layer, None when unknown."""
    kind = type(module)
    if kind in READERS:
        return READERS[kind]
    if kind in IGNORED:
        return "ignore"
    for path, reader in OPTIONAL_READERS.items():
        if optional_type(path) is kind:
            return reader
    if any(optional_type(path) is kind for path in OPTIONAL_IGNORED):
        return "ignore"
    for parent in kind.__mro__[1:]:
        if parent in READERS or parent in IGNORED:
            if kind.forward is not parent.forward:  # type: ignore[attr-defined]
                return None
            return READERS.get(parent, "ignore")
    return None


# -- arithmetic per op kind: output size, multiply-accumulates, receptive-field step -------------
# Pure integer functions of an Op and the size it receives; nothing here runs a tensor.

Shape = tuple[int, ...]  # (C, H, W) per sample, or (features,) after a Linear


def window_out(op: Op, size: int, axis: int) -> int:
    """Output length along one spatial axis, with torch's own formulas (conv, pooling with
    ceil_mode, TF-"same" padding, adaptive pooling)."""
    k, s, p, d = op.kernel[axis], op.stride[axis], op.padding[axis], op.dilation[axis]
    if op.kind == "conv":
        return (size + 2 * p - d * (k - 1) - 1) // s + 1
    if op.kind in ("maxpool", "avgpool"):
        span = size + 2 * p - d * (k - 1) - 1 + (s - 1 if op.ceil_mode else 0)
        out = span // s + 1
        if op.ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside
            out -= 1
        return out
    if op.kind == "avgpool_same":
        return -(-size // s)
    if op.kind == "adaptive_avgpool":
        assert op.output_size is not None
        target = op.output_size[axis]
        return size if target is None else target
    return size


def same_pad_before(op: Op, size: int, axis: int) -> int:
    """Padding before the first element of a TF-"same" op (the smaller half)."""
    k, s, d = op.kernel[axis], op.stride[axis], op.dilation[axis]
    total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2


def out_shape(op: Op, shape: Shape) -> Shape:
    """The shape after `op` (per sample)."""
    if op.kind == "linear":
        return (op.out_ch,)
    channels = op.out_ch if op.kind in ("conv", "bn") else shape[0]
    return (channels, window_out(op, shape[1], 0), window_out(op, shape[2], 1))


def macs(op: Op, out: Shape) -> int:
    """Multiply-accumulates of one sample: conv out_c*out_h*out_w*(in_c/groups)*kh*kw, linear in*out."""
    if op.kind == "conv":
        return out[0] * out[1] * out[2] * (op.in_ch // op.groups) * op.kernel[0] * op.kernel[1]
    if op.kind == "linear":
        return op.in_ch * op.out_ch
    return 0


def activations(op: Op, out: Shape) -> int:
    """Output elements of convolution and linear layers (fvcore's activation convention)."""
    if op.kind in ("conv", "linear"):
        n = 1
        for dim in out:
            n *= dim
        return n
    return 0


@dataclass(frozen=True)
class Field:
    """The receptive field of unit 0 along one axis, in input pixels (Araujo et al., Distill 2019):
    `size` pixels starting at `left` (negative = inside the padding); neighbours are `jump` apart."""

    size: int
    jump: int
    left: int

    @property
    def padding(self) -> int:
        """Effective padding: how far unit 0's field reaches before the first input pixel."""
        return -self.left

    @property
    def center(self) -> float:
        """Centre of unit 0's field in input coordinates (pixel centres are integers)."""
        return self.left + (self.size - 1) / 2

    @property
    def right(self) -> int:
        """Last input pixel of unit 0's field."""
        return self.left + self.size - 1

    def union(self, other: Field) -> Field:
        """What a sum of two branches sees: the span of both fields."""
        left = min(self.left, other.left)
        return Field(max(self.right, other.right) - left + 1, min(self.jump, other.jump), left)


def rf_step(op: Op, field: Field, axis: int, size: int | None = None) -> Field:
    """The field after `op`: r += (k_eff - 1) * jump, left -= pad * jump, jump *= stride."""
    if not op.is_window:
        return field
    k_eff = op.dilation[axis] * (op.kernel[axis] - 1) + 1
    pad = op.padding[axis]
    if op.kind == "avgpool_same":
        if op.stride[axis] != 1 and size is None:
            raise ValueError("a strided 'same' pool's padding depends on the input size")
        pad = same_pad_before(op, size or 1, axis)
    return Field(
        field.size + (k_eff - 1) * field.jump,
        field.jump * op.stride[axis],
        field.left - pad * field.jump,
    )
