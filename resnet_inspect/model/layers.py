"""The family's modules: stems, blocks, shortcuts and the ResNet trunk, built from a NetSpec.

Module and parameter names are torchvision's (conv1, bn1, layer1..4, downsample.0/.1, fc); the deep
stem and the avg-pool shortcut use timm's (conv1.0..6, downsample.0 pool, .1 conv, .2 bn), so that
state dicts of both load with strict=True into the model of the same name.

Layers are created without their default initialisation (`make`): the model is built on the meta
device, where initialising would only cost time, and `build.init_weights` gives real weights when
asked. Nothing process-wide is patched, so building is safe from any number of threads.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import same_padding
from .spec import BlockSpec, NetSpec, ShortcutSpec, StemSpec

Layer = TypeVar("Layer", bound=nn.Module)


def _skip_reset(self: nn.Module) -> None:
    return None


_UNINITIALISED: dict[type, type] = {
    cls: type(cls.__name__, (cls,), {"reset_parameters": _skip_reset}) for cls in (nn.Conv2d, nn.Linear, nn.BatchNorm2d)
}


def make(cls: type[Layer], *args: Any, **kwargs: Any) -> Layer:
    """`cls(*args, **kwargs)` without its default weight initialisation.

    The layer is constructed as a subclass whose `reset_parameters` does nothing, then given back its
    own class: the result is an ordinary `cls` instance, and no class other threads use is touched.
    """
    layer = _UNINITIALISED[cls](*args, **kwargs)
    layer.__class__ = cls
    return layer


class SamePadAvgPool2d(nn.AvgPool2d):
    """Average pool after TensorFlow-style "same" zero padding, the odd pixel padded bottom/right
    (timm's AvgPool2dSame, used in the avg-pool shortcut of a dilated stage)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad to "same", then average."""
        pads = []
        for size, k, s in reversed(list(zip(x.shape[-2:], self.kernel_size, self.stride))):
            total = same_padding(int(size), k, s)
            pads += [total // 2, total - total // 2]
        x = F.pad(x, pads)
        return F.avg_pool2d(x, self.kernel_size, self.stride, 0, self.ceil_mode, self.count_include_pad)


def conv(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1, **dd: Any
) -> nn.Conv2d:
    """A bias-free conv padded to keep the size (padding = dilation x (kernel - 1) / 2)."""
    padding = dilation * (kernel - 1) // 2
    return make(nn.Conv2d, in_ch, out_ch, kernel, stride, padding, dilation, groups, bias=False, **dd)


def norm(channels: int, **dd: Any) -> nn.BatchNorm2d:
    """The family's batch norm."""
    return make(nn.BatchNorm2d, channels, **dd)


def shortcut(in_ch: int, out_ch: int, spec: ShortcutSpec, dd: dict[str, Any]) -> nn.Sequential:
    """A projection shortcut: conv + BN (torchvision), or pool + conv + BN (ResNet-D)."""
    if spec.kind == "conv":
        return nn.Sequential(conv(in_ch, out_ch, 1, spec.stride, **dd), norm(out_ch, **dd))
    pool: nn.Module
    if spec.pool == "avg":
        pool = nn.AvgPool2d(2, spec.stride, ceil_mode=True, count_include_pad=False)
    elif spec.pool == "avg_same":
        pool = SamePadAvgPool2d((2, 2), (1, 1), ceil_mode=True, count_include_pad=False)
    else:
        pool = nn.Identity()
    return nn.Sequential(pool, conv(in_ch, out_ch, 1, **dd), norm(out_ch, **dd))


class BasicBlock(nn.Module):
    """Two 3x3 convs (the first carries the stride) plus the shortcut."""

    expansion = 1

    def __init__(self, b: BlockSpec, dd: dict[str, Any]) -> None:
        super().__init__()
        self.conv1 = conv(b.in_ch, b.planes, 3, b.stride, b.first_dilation, **dd)
        self.bn1 = norm(b.planes, **dd)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv(b.planes, b.planes, 3, 1, b.dilation, **dd)
        self.bn2 = norm(b.planes, **dd)
        self.downsample = shortcut(b.in_ch, b.out_ch, b.shortcut, dd) if b.shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped, dilated), 1x1 expand; the stride on the 3x3 or on the first 1x1."""

    expansion = 4

    def __init__(self, b: BlockSpec, dd: dict[str, Any]) -> None:
        super().__init__()
        stride_1x1, stride_3x3 = (b.stride, 1) if b.stride_at == "1x1" else (1, b.stride)
        self.conv1 = conv(b.in_ch, b.width, 1, stride_1x1, **dd)
        self.bn1 = norm(b.width, **dd)
        self.conv2 = conv(b.width, b.width, 3, stride_3x3, b.first_dilation, b.groups, **dd)
        self.bn2 = norm(b.width, **dd)
        self.conv3 = conv(b.width, b.out_ch, 1, **dd)
        self.bn3 = norm(b.out_ch, **dd)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut(b.in_ch, b.out_ch, b.shortcut, dd) if b.shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn3(conv3(...conv1(x))) + shortcut(x))."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def stem_conv(stem: StemSpec, dd: dict[str, Any]) -> nn.Module:
    """One 7x7/2 conv, or three 3x3 convs (the first /2) with BN and ReLU between them."""
    if stem.kind == "classic":
        return conv(3, stem.out_ch, 7, 2, **dd)
    w0, w1, w2 = stem.widths
    return nn.Sequential(
        conv(3, w0, 3, 2, **dd),
        norm(w0, **dd),
        nn.ReLU(inplace=True),
        conv(w0, w1, 3, 1, **dd),
        norm(w1, **dd),
        nn.ReLU(inplace=True),
        conv(w1, w2, 3, 1, **dd),
    )


class ResNet(nn.Module):
    """The whole family from one NetSpec: stem, layer1..4, global average pool, fc."""

    def __init__(self, spec: NetSpec, device: str | torch.device | None = None) -> None:
        super().__init__()
        dd = {"device": device}
        self.spec = spec
        stem = spec.stem_spec()
        self.conv1 = stem_conv(stem, dd)
        self.bn1 = norm(stem.out_ch, **dd)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        block_class = Bottleneck if spec.block == "bottleneck" else BasicBlock
        for stage, blocks in enumerate(spec.stages(), start=1):
            self.add_module(f"layer{stage}", nn.Sequential(*(block_class(b, dd) for b in blocks)))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        out_ch = spec.blocks()[-1].out_ch
        self.fc = make(nn.Linear, out_ch, spec.num_classes, **dd) if spec.num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk: stem and every stage, before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in range(1, len(self.spec.layers) + 1):
            x = getattr(self, f"layer{stage}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (or pooled features when num_classes is 0)."""
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))
