"""The reader table: which Op each leaf module type is, read off the module's own attributes.

Every leaf module the walker meets is looked up here by its exact type. A type in `READERS` becomes
an `Op` (kind, geometry and parameter count); a type in `IGNORED` does no spatial or multiply work
(activations, identities, dropout); anything else is reported by the walker as unrecognised, never
counted as zero. A subclass of a known type is read like its parent only when it does not override
`forward` (timm's AvgPool2dSame, a subclass of nn.AvgPool2d with its own padding, is not).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Literal

from torch import nn

from ..model.layers import SamePadAvgPool2d
from .types import Op, OpKind

Reader = Callable[[str, nn.Module], Op]


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


def read_conv(name: str, m: nn.Module) -> Op:
    """A Conv2d's geometry; string paddings ('same') are resolved as torch does for stride 1."""
    kernel, dilation = _pair(m.kernel_size), _pair(m.dilation)  # type: ignore[arg-type]
    if isinstance(m.padding, str):
        if m.padding == "valid":
            padding = (0, 0)
        else:  # torch allows 'same' only with stride 1; the total is split left-first
            padding = (dilation[0] * (kernel[0] - 1) // 2, dilation[1] * (kernel[1] - 1) // 2)
    else:
        padding = _pair(m.padding)  # type: ignore[arg-type]
    return Op(
        name,
        "conv",
        m.in_channels,  # type: ignore[arg-type]
        m.out_channels,  # type: ignore[arg-type]
        kernel,
        _pair(m.stride),  # type: ignore[arg-type]
        padding,
        dilation,
        m.groups,  # type: ignore[arg-type]
        params=own_params(m),
    )


def read_linear(name: str, m: nn.Module) -> Op:
    """A Linear layer: in_features -> out_features."""
    return Op(name, "linear", m.in_features, m.out_features, params=own_params(m))  # type: ignore[arg-type]


def read_bn(name: str, m: nn.Module) -> Op:
    """Any batch norm: channels in = channels out."""
    return Op(name, "bn", m.num_features, m.num_features, params=own_params(m))  # type: ignore[arg-type]


def _pool(kind: OpKind) -> Reader:
    def read(name: str, m: nn.Module) -> Op:
        stride = m.stride if m.stride is not None else m.kernel_size
        return Op(
            name,
            kind,
            0,
            0,
            _pair(m.kernel_size),  # type: ignore[arg-type]
            _pair(stride),  # type: ignore[arg-type]
            _pair(m.padding),  # type: ignore[arg-type]
            _pair(getattr(m, "dilation", 1)),
            ceil_mode=bool(m.ceil_mode),
        )

    read.__doc__ = f"A {kind} layer's window."
    return read


def read_adaptive_avgpool(name: str, m: nn.Module) -> Op:
    """An adaptive average pool to a fixed output size (None keeps that dimension)."""
    size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size, m.output_size)
    return Op(name, "adaptive_avgpool", 0, 0, output_size=size)  # type: ignore[arg-type]


READERS: dict[type, Reader] = {
    nn.Conv2d: read_conv,
    nn.Linear: read_linear,
    nn.BatchNorm2d: read_bn,
    nn.SyncBatchNorm: read_bn,
    nn.MaxPool2d: _pool("maxpool"),
    nn.AvgPool2d: _pool("avgpool"),
    SamePadAvgPool2d: _pool("avgpool_same"),
    nn.AdaptiveAvgPool2d: read_adaptive_avgpool,
}

# Types from optional libraries, used only when that library is already imported.
OPTIONAL_READERS: dict[str, Reader] = {
    "timm.layers.pool2d_same.AvgPool2dSame": _pool("avgpool_same"),
    "torchvision.ops.misc.FrozenBatchNorm2d": read_bn,
    "timm.layers.norm.FrozenBatchNorm2d": read_bn,
    "timm.layers.norm_act.FrozenBatchNorm2d": read_bn,
    "timm.layers.norm_act.BatchNormAct2d": read_bn,
}

IGNORED: frozenset[type] = frozenset(
    {nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Identity, nn.Flatten, nn.Dropout, nn.Dropout2d}
)
OPTIONAL_IGNORED = frozenset({"timm.layers.drop.DropPath", "timm.layers.drop.DropBlock2d"})


def optional_type(path: str) -> type | None:
    """The class at a dotted path, if its module is already imported (never imports it)."""
    module_name, _, attr = path.rpartition(".")
    module = sys.modules.get(module_name)
    return getattr(module, attr, None) if module is not None else None


def reader_for(module: nn.Module) -> Reader | None | Literal["ignore"]:
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
