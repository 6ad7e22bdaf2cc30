"""The ResNet trunk and its blocks, built from a NetSpec: stem, layer1..4, global average pool, fc.

Module and parameter names are torchvision's (conv1, bn1, layer1..4, downsample.0/.1, fc); the deep
stem, the avg-pool shortcut, attention (`se`), anti-aliasing (`aa`) and ResNet-RS's conv stem pool
(`maxpool.0/.1`) use timm's, so that state dicts of both load with strict=True into the model of
the same name.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import Factory, SamePadAvgPool2d
from .spec import BlockSpec, NetSpec, ShortcutSpec, StemSpec


def shortcut(in_ch: int, out_ch: int, spec: ShortcutSpec, make: Factory) -> nn.Sequential:
    """A projection shortcut: conv + norm (torchvision), or pool + conv + norm (ResNet-D)."""
    if spec.kind == "conv":
        return nn.Sequential(make.conv(in_ch, out_ch, 1, spec.stride), make.norm(out_ch))
    pool: nn.Module
    if spec.pool == "avg":
        pool = nn.AvgPool2d(2, spec.stride, ceil_mode=True, count_include_pad=False)
    elif spec.pool == "avg_same":
        pool = SamePadAvgPool2d((2, 2), (1, 1), ceil_mode=True, count_include_pad=False)
    else:
        pool = nn.Identity()
    return nn.Sequential(pool, make.conv(in_ch, out_ch, 1), make.norm(out_ch))


class BasicBlock(nn.Module):
    """Two 3x3 convs (the first carries the stride, or an anti-aliasing pool after it does), the
    optional attention gate, plus the shortcut."""

    expansion = 1

    def __init__(self, b: BlockSpec, make: Factory) -> None:
        super().__init__()
        aa = b.anti_alias != "none"
        self.conv1 = make.conv(b.in_ch, b.planes, 3, 1 if aa else b.stride, b.first_dilation)
        self.bn1 = make.norm(b.planes)
        self.aa = make.anti_alias(b.anti_alias, b.planes, b.stride) if aa else None
        self.conv2 = make.conv(b.planes, b.planes, 3, 1, b.dilation)
        self.bn2 = make.norm(b.planes)
        self.se = make.attention(b.attention, b.planes, b.attention_size)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut(b.in_ch, b.out_ch, b.shortcut, make) if b.shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(se(bn2(conv2(aa(relu(bn1(conv1(x))))))) + shortcut(x))."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        if self.aa is not None:
            out = self.aa(out)
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped, dilated), 1x1 expand; the stride on the 3x3, on the first 1x1, or on an
    anti-aliasing pool after the 3x3; the optional attention gate after the last norm."""

    expansion = 4

    def __init__(self, b: BlockSpec, make: Factory) -> None:
        super().__init__()
        aa = b.anti_alias != "none"
        stride_1x1, stride_3x3 = (b.stride, 1) if b.stride_at == "1x1" else (1, 1 if aa else b.stride)
        self.conv1 = make.conv(b.in_ch, b.width, 1, stride_1x1)
        self.bn1 = make.norm(b.width)
        self.conv2 = make.conv(b.width, b.width, 3, stride_3x3, b.first_dilation, b.groups)
        self.bn2 = make.norm(b.width)
        self.aa = make.anti_alias(b.anti_alias, b.width, b.stride) if aa else None
        self.conv3 = make.conv(b.width, b.out_ch, 1)
        self.bn3 = make.norm(b.out_ch)
        self.se = make.attention(b.attention, b.out_ch, b.attention_size)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = shortcut(b.in_ch, b.out_ch, b.shortcut, make) if b.shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(se(bn3(conv3(aa(...conv1(x))))) + shortcut(x))."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        if self.aa is not None:
            out = self.aa(out)
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + identity)


def stem_conv(stem: StemSpec, make: Factory) -> nn.Module:
    """One 7x7/2 conv, or three 3x3 convs (the first /2) with norm and ReLU between them."""
    if stem.kind == "classic":
        return make.conv(3, stem.out_ch, 7, 2)
    w0, w1, w2 = stem.widths
    return nn.Sequential(
        make.conv(3, w0, 3, 2),
        make.norm(w0),
        nn.ReLU(inplace=True),
        make.conv(w0, w1, 3),
        make.norm(w1),
        nn.ReLU(inplace=True),
        make.conv(w1, w2, 3),
    )


def stem_pool(stem: StemSpec, make: Factory) -> nn.Module:
    """The stem's /2 pool: torch's padded 3x3 max-pool, Caffe's unpadded ceil-mode one, ResNet-RS's
    strided 3x3 conv + norm + ReLU, or the anti-aliased forms timm builds (avg: AvgPool2d(2); blur:
    a stride-1 max-pool then a blur pool /2)."""
    channels = stem.out_ch
    if stem.pool == "conv":
        aa = stem.anti_alias != "none"
        layers = [make.conv(channels, channels, 3, 1 if aa else 2)]
        layers += [make.anti_alias(stem.anti_alias, channels, 2)] if aa else []
        return nn.Sequential(*layers, make.norm(channels), nn.ReLU(inplace=True))
    if stem.anti_alias == "avg":
        return nn.AvgPool2d(2)
    if stem.anti_alias == "blur":
        return nn.Sequential(nn.MaxPool2d(3, 1, 1), make.anti_alias("blur", channels, 2))
    if stem.pool == "caffe":
        return nn.MaxPool2d(3, 2, 0, ceil_mode=True)
    return nn.MaxPool2d(3, 2, 1)


class ResNet(nn.Module):
    """The whole family from one NetSpec: stem, layer1..4, global average pool, fc."""

    def __init__(self, spec: NetSpec, device: str | torch.device | None = None) -> None:
        super().__init__()
        make = Factory(device, spec.norm)
        self.spec = spec
        stem = spec.stem_spec()
        self.conv1 = stem_conv(stem, make)
        self.bn1 = make.norm(stem.out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = stem_pool(stem, make)
        block_class = Bottleneck if spec.block == "bottleneck" else BasicBlock
        for stage, blocks in enumerate(spec.stages(), start=1):
            self.add_module(f"layer{stage}", nn.Sequential(*(block_class(b, make) for b in blocks)))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        out_ch = spec.blocks()[-1].out_ch
        self.fc = make.linear(out_ch, spec.num_classes) if spec.num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk: stem and every stage, before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in range(1, len(self.spec.layers) + 1):
            x = getattr(self, f"layer{stage}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (or pooled features when num_classes is 0)."""
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))
