"""The reader table: which Op each module type is, read off the module's own attributes.

The walker looks every module up here by its exact type before it looks inside. A type in `READERS`
(or `OPTIONAL_READERS`, for libraries that are already imported) becomes one `Op`: a leaf layer
(conv, norm, pool) or a whole composite whose data flow is known (a squeeze-excitation gate, split
attention, a selective kernel, an attention pool). A type in `IGNORED` does no spatial or multiply
work. A subclass of a conv or a linear layer is read by its geometry even when it overrides
`forward` (weight standardisation changes no size or count); a subclass of anything else that
overrides `forward` is not assumed to behave like its parent. Whatever is left is counted from a
forward pass of that module alone (kind "probed"), never counted as zero.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Literal

from torch import nn

from ..model.layers import (
    BatchNormReLU,
    BlurPool2d,
    EfficientChannelAttention,
    FrozenBatchNorm2d,
    GroupNormReLU,
    SamePadAvgPool2d,
    SqueezeExcite,
)
from .types import Op, OpKind

Reader = Callable[[str, nn.Module], Op]


def _pair(value: int | tuple[int, ...] | list[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if len(value) == 1:
        return (int(value[0]), int(value[0]))
    return (int(value[0]), int(value[1]))


def own_params(module: nn.Module) -> int:
    """Parameters held by the module itself, not its children."""
    # `_parameters` is what parameters(recurse=False) walks, without its generator machinery,
    # which would dominate the walk of a large model.
    return sum(p.numel() for p in module._parameters.values() if p is not None)


def all_params(module: nn.Module) -> int:
    """Parameters of the module and everything under it."""
    return sum(p.numel() for p in module.parameters())


def _channels(m: nn.Module) -> int:
    """A norm's channels: its declared count, or the length of its per-channel weight or buffer."""
    for attribute in ("num_features", "num_channels"):
        value = getattr(m, attribute, None)
        if isinstance(value, int):
            return value
    for attribute in ("weight", "running_mean", "bias"):
        tensor = getattr(m, attribute, None)
        if tensor is not None and hasattr(tensor, "shape") and len(tensor.shape) >= 1:
            return int(tensor.shape[0] if len(tensor.shape) == 1 else tensor.numel())
    raise LookupError(f"{type(m).__name__} has no channel count")


def _conv_op(name: str, m: nn.Module, kind: OpKind = "conv", same: bool = False, params: int | None = None) -> Op:
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
        kind,
        m.in_channels,  # type: ignore[arg-type]
        m.out_channels,  # type: ignore[arg-type]
        kernel,
        _pair(m.stride),  # type: ignore[arg-type]
        padding,
        dilation,
        m.groups,  # type: ignore[arg-type]
        params=own_params(m) if params is None else params,
        same=same,
    )


def read_conv(name: str, m: nn.Module) -> Op:
    """A Conv2d's geometry; string paddings ('same') are resolved as torch does for stride 1."""
    return _conv_op(name, m)


def read_same_conv(name: str, m: nn.Module) -> Op:
    """A conv padded at run time to TF "same" (timm's Conv2dSame family): ceil(size / stride) out."""
    return _conv_op(name, m, same=True)


def read_linear(name: str, m: nn.Module) -> Op:
    """A Linear layer: in_features -> out_features (on every token when applied to tokens)."""
    return Op(name, "linear", m.in_features, m.out_features, params=own_params(m))  # type: ignore[arg-type]


def _norm(kind: OpKind) -> Reader:
    def read(name: str, m: nn.Module) -> Op:
        channels = _channels(m)
        groups = int(m.num_groups) if kind == "gn" else 1  # type: ignore[arg-type]
        return Op(name, kind, channels, channels, groups=groups, params=all_params(m))

    read.__doc__ = f"A per-channel norm ({kind}); channels from its own count or weights."
    return read


def _pool(kind: OpKind, same: bool = False) -> Reader:
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
            same=same,
        )

    read.__doc__ = f"A {kind} layer's window."
    return read


def read_adaptive_pool(name: str, m: nn.Module) -> Op:
    """An adaptive pool to a fixed output size (None keeps that dimension)."""
    size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size, m.output_size)
    return Op(name, "adaptive_avgpool", 0, 0, output_size=size)  # type: ignore[arg-type]


def read_pad(name: str, m: nn.Module) -> Op:
    """Constant padding, the same on every side."""
    top, bottom, left, right = _sides(m.padding)  # type: ignore[arg-type]
    if top != bottom or left != right:
        raise LookupError("asymmetric padding")
    return Op(name, "pad", 0, 0, padding=(top, left))


def _sides(padding: int | tuple[int, ...]) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return (padding,) * 4  # type: ignore[return-value]
    left, right, top, bottom = padding
    return top, bottom, left, right


def read_blur(name: str, m: nn.Module) -> Op:
    """timm's BlurPool2d: reflect padding, then a fixed depthwise filt x filt conv with its stride."""
    channels = int(m.filt.shape[0]) if getattr(m, "filt", None) is not None else int(m.channels)  # type: ignore[union-attr]
    padding = m.padding if isinstance(m.padding, (list, tuple)) else [m.padding] * 4  # type: ignore[union-attr]
    if len(set(padding)) != 1:
        raise LookupError("asymmetric blur padding")
    size = int(m.filt_size)  # type: ignore[arg-type]
    return Op(name, "blur", channels, channels, (size, size), _pair(m.stride), (int(padding[0]),) * 2, groups=channels)  # type: ignore[arg-type]


# -- composites whose data flow is known -----------------------------------------------------------


def read_se(name: str, m: nn.Module) -> Op:
    """A squeeze-excitation gate: pooled C -> fc1 -> hidden -> fc2 -> C, multiplying the input."""
    fc1, fc2 = m.fc1, m.fc2  # timm, legacy senet; torchvision's SqueezeExcitation names them alike
    channels = getattr(fc1, "in_channels", getattr(fc1, "in_features", None))
    hidden = getattr(fc1, "out_channels", getattr(fc1, "out_features", None))
    back = getattr(fc2, "out_channels", getattr(fc2, "out_features", None))
    if channels is None or hidden is None or back != channels or getattr(fc1, "groups", 1) != 1:
        raise LookupError("not a plain squeeze-excitation")
    return Op(name, "se", channels, channels, hidden=hidden, params=all_params(m), module=type(m).__name__)


def read_eca(name: str, m: nn.Module) -> Op:
    """Efficient channel attention: pooled C -> 1-D conv of kernel k across channels -> gate."""
    conv = getattr(m, "conv", None)
    if not isinstance(conv, nn.Conv1d) or conv.in_channels != 1 or conv.out_channels != 1:
        raise LookupError("not a plain ECA module")
    k = int(conv.kernel_size[0])
    return Op(name, "eca", 0, 0, kernel=(k, k), params=all_params(m), module=type(m).__name__)


def read_split_attn(name: str, m: nn.Module) -> Op:
    """ResNeSt's SplitAttn: a conv into radix x C channels, then attention over the radix groups."""
    conv = _conv_op(name, m.conv)  # type: ignore[arg-type]
    radix = int(m.radix)  # type: ignore[arg-type]
    return Op(
        name,
        "split_attn",
        conv.in_ch,
        conv.out_ch // radix,
        conv.kernel,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        params=all_params(m),
        hidden=m.fc1.out_channels,  # type: ignore[arg-type]
        paths=radix,
        module=type(m).__name__,
    )


def read_selective_kernel(name: str, m: nn.Module) -> Op:
    """SKNet's SelectiveKernel: parallel 3x3 convs of dilation 1, 2, ..., attention over them."""
    convs = [path.conv for path in m.paths]  # type: ignore[union-attr]
    paths = len(convs)
    first = _conv_op(name, convs[0])
    plain = all(
        c.kernel_size == convs[0].kernel_size
        and c.stride == convs[0].stride
        and _pair(c.dilation) == (i + 1, i + 1)
        and _pair(c.padding) == (i + 1, i + 1)
        and getattr(path, "aa", None) is None
        for i, (c, path) in enumerate(zip(convs, m.paths))  # type: ignore[arg-type]
    )
    if not plain or first.kernel != (3, 3):
        raise LookupError("not a plain selective kernel")
    split = bool(m.split_input)
    return Op(
        name,
        "selective_kernel",
        first.in_ch * paths if split else first.in_ch,
        first.out_ch,
        first.kernel,
        first.stride,
        (paths, paths),  # the widest path's padding and dilation (every path keeps the size)
        (paths, paths),
        first.groups,
        params=all_params(m),
        hidden=m.attn.fc_reduce.out_channels,  # type: ignore[union-attr]
        paths=paths,
        split=split,
        module=type(m).__name__,
    )


def read_attention_pool(name: str, m: nn.Module) -> Op:
    """CLIP's AttentionPool2d: a mean token and H*W tokens, q/k/v, attention, the projection; the
    output is token 0."""
    if getattr(m, "pool_type", "token") != "token" or getattr(m, "cls_token", None) is not None:
        raise LookupError("an attention pool other than CLIP's")
    if getattr(m, "qkv", None) is not None:
        channels, embed = m.qkv.in_features, m.qkv.out_features // 3  # type: ignore[union-attr]
    else:
        channels, embed = m.q.in_features, m.q.out_features  # type: ignore[union-attr]
    out = m.proj.out_features  # type: ignore[union-attr]
    return Op(name, "attention_pool", channels, out, hidden=embed, params=all_params(m), module=type(m).__name__)


READERS: dict[type, Reader] = {
    nn.Conv2d: read_conv,
    nn.Linear: read_linear,
    nn.BatchNorm2d: _norm("bn"),
    nn.SyncBatchNorm: _norm("bn"),
    nn.GroupNorm: _norm("gn"),
    nn.MaxPool2d: _pool("maxpool"),
    nn.AvgPool2d: _pool("avgpool"),
    SamePadAvgPool2d: _pool("avgpool_same", same=True),
    nn.AdaptiveAvgPool2d: read_adaptive_pool,
    nn.AdaptiveMaxPool2d: read_adaptive_pool,
    nn.ConstantPad2d: read_pad,
    nn.ZeroPad2d: read_pad,
    # the family's own layers (model/layers.py)
    BatchNormReLU: _norm("bn"),
    GroupNormReLU: _norm("gn"),
    FrozenBatchNorm2d: _norm("frozen_bn"),
    SqueezeExcite: read_se,
    EfficientChannelAttention: read_eca,
    BlurPool2d: read_blur,
}

# Types from optional libraries, used only when that library is already imported.
OPTIONAL_READERS: dict[str, Reader] = {
    "timm.layers.pool2d_same.AvgPool2dSame": _pool("avgpool_same", same=True),
    "timm.layers.pool2d_same.MaxPool2dSame": _pool("maxpool", same=True),
    "timm.layers.conv2d_same.Conv2dSame": read_same_conv,
    "timm.layers.std_conv.StdConv2dSame": read_same_conv,
    "timm.layers.std_conv.ScaledStdConv2dSame": read_same_conv,
    "timm.layers.blur_pool.BlurPool2d": read_blur,
    "torchvision.ops.misc.FrozenBatchNorm2d": _norm("frozen_bn"),
    "timm.layers.norm.FrozenBatchNorm2d": _norm("frozen_bn"),
    "timm.layers.norm_act.FrozenBatchNormAct2d": _norm("frozen_bn"),
    "timm.layers.norm_act.BatchNormAct2d": _norm("bn"),
    "timm.layers.norm.GroupNorm": _norm("gn"),
    "timm.layers.norm.GroupNorm1": _norm("gn"),
    "timm.layers.norm_act.GroupNormAct": _norm("gn"),
    "timm.layers.norm_act.GroupNorm1Act": _norm("gn"),
    "timm.layers.evo_norm.EvoNorm2dS0": _norm("norm"),
    "timm.layers.evo_norm.EvoNorm2dS0a": _norm("norm"),
    "timm.layers.evo_norm.EvoNorm2dB0": _norm("norm"),
    "timm.layers.filter_response_norm.FilterResponseNormTlu2d": _norm("norm"),
    "timm.layers.filter_response_norm.FilterResponseNormAct2d": _norm("norm"),
    "timm.layers.squeeze_excite.SEModule": read_se,
    "timm.models.senet.SEModule": read_se,
    "torchvision.ops.misc.SqueezeExcitation": read_se,
    "timm.layers.eca.EcaModule": read_eca,
    "timm.layers.split_attn.SplitAttn": read_split_attn,
    "timm.layers.selective_kernel.SelectiveKernel": read_selective_kernel,
    "timm.layers.attention_pool2d.AttentionPool2d": read_attention_pool,
}

IGNORED: frozenset[type] = frozenset(
    {
        nn.ReLU,
        nn.ReLU6,
        nn.LeakyReLU,
        nn.SiLU,
        nn.GELU,
        nn.Sigmoid,
        nn.Tanh,
        nn.Hardswish,
        nn.Hardsigmoid,
        nn.Mish,
        nn.ELU,
        nn.Identity,
        nn.Flatten,
        nn.Dropout,
        nn.Dropout2d,
    }
)
OPTIONAL_IGNORED = frozenset(
    {
        "timm.layers.drop.DropPath",
        "timm.layers.drop.DropBlock2d",
        "timm.layers.activations.Sigmoid",
        "timm.layers.activations.Tanh",
        "timm.layers.activations.GELU",
        "timm.layers.activations.Swish",
        "timm.layers.activations.HardSigmoid",
        "timm.layers.activations.HardSwish",
        "timm.layers.activations.Mish",
    }
)
BY_GEOMETRY = (nn.Conv2d, nn.Linear)  # subclasses overriding forward are still read by their geometry


def optional_type(path: str) -> type | None:
    """The class at a dotted path, if its module is already imported (never imports it)."""
    module_name, _, attr = path.rpartition(".")
    module = sys.modules.get(module_name)
    return getattr(module, attr, None) if module is not None else None


def reader_for(module: nn.Module) -> Reader | None | Literal["ignore"]:
    """The reader for this module's type, "ignore" for a no-op layer, None when no rule knows it."""
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
            if kind.forward is not parent.forward and parent not in BY_GEOMETRY:  # type: ignore[attr-defined]
                return None
            return READERS.get(parent, "ignore")
    return None


def read(name: str, module: nn.Module) -> Op | None | Literal["ignore"]:
    """The module as one Op, "ignore" for a no-op layer, None when no rule reads it (a module whose
    attributes do not fit its reader, an asymmetric pad say, is None too)."""
    reader = reader_for(module)
    if reader is None or reader == "ignore":
        return reader
    try:
        return reader(name, module)
    except (LookupError, AttributeError, TypeError, ValueError):
        return None


def probed(name: str, module: nn.Module) -> Op:
    """A module no rule reads, to be counted from a meta-tensor forward of it alone."""
    return Op(name, "probed", 0, 0, params=all_params(module), module=type(module).__name__)
