"""Pre-activation ResNets (He et al., "Identity Mappings in Deep Residual Networks", 2016b) in timm's
ResNetV2 layout: norm + ReLU before each conv, nothing after the residual sum, a final norm + ReLU,
and a 1x1 conv classifier. Names follow timm (stem.conv, stages.N.blocks.M.{downsample.conv, norm1,
conv1, ...}, norm, head.fc) so that timm's resnetv2 checkpoints load with strict=True.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .layers import Factory
from .resnet import stem_pool
from .spec import BlockSpec, NetSpec, ShortcutSpec, StemSpec


def preact_shortcut(in_ch: int, out_ch: int, spec: ShortcutSpec, make: Factory) -> nn.Sequential:
    """timm's DownsampleConv (conv) or DownsampleAvg (pool, conv); no norm before a pre-activated block."""
    from .resnet import shortcut

    plain = shortcut(in_ch, out_ch, spec, make)  # conv, norm  or  pool, conv, norm
    named = [("conv", plain[0])] if spec.kind == "conv" else [("pool", plain[0]), ("conv", plain[1])]
    return nn.Sequential(OrderedDict([*named, ("norm", nn.Identity())]))


class PreActBlock(nn.Module):
    """norm1 -> conv1 -> norm2 -> conv2 (-> norm3 -> conv3 for a bottleneck), plus the shortcut, which
    sees the pre-activated input when it projects. Registration order is timm's: the shortcut first."""

    def __init__(self, b: BlockSpec, make: Factory) -> None:
        super().__init__()
        self.expansion = 4 if b.block == "bottleneck" else 1
        self.downsample = preact_shortcut(b.in_ch, b.out_ch, b.shortcut, make) if b.shortcut else None
        self.norm1 = make.norm(b.in_ch, act=True)
        if b.block == "bottleneck":
            self.conv1 = make.conv(b.in_ch, b.width, 1)
            self.norm2 = make.norm(b.width, act=True)
            self.conv2 = make.conv(b.width, b.width, 3, b.stride, b.first_dilation, b.groups)
            self.norm3 = make.norm(b.width, act=True)
            self.conv3 = make.conv(b.width, b.out_ch, 1)
        else:
            self.conv1 = make.conv(b.in_ch, b.planes, 3, b.stride, b.first_dilation)
            self.norm2 = make.norm(b.planes, act=True)
            self.conv2 = make.conv(b.planes, b.planes, 3, 1, b.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """convs(norms(x)) + shortcut(norm1(x)) (or + x)."""
        pre = self.norm1(x)
        shortcut = x if self.downsample is None else self.downsample(pre)
        out = self.conv2(self.norm2(self.conv1(pre)))
        if hasattr(self, "conv3"):
            out = self.conv3(self.norm3(out))
        return out + shortcut


class Stage(nn.Module):
    """One stage: its blocks in `blocks` (timm's ResNetStage)."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The blocks in order."""
        return self.blocks(x)


def preact_stem(stem: StemSpec, make: Factory) -> nn.Sequential:
    """conv 7x7/2 (or conv1, norm1, conv2, norm2, conv3: no norm after the last, the first block
    norms), then the max-pool."""
    if stem.kind == "classic":
        layers: list[tuple[str, nn.Module]] = [("conv", make.conv(3, stem.out_ch, 7, 2))]
    else:
        w0, w1, w2 = stem.widths
        layers = [
            ("conv1", make.conv(3, w0, 3, 2)),
            ("norm1", make.norm(w0, act=True)),
            ("conv2", make.conv(w0, w1, 3)),
            ("norm2", make.norm(w1, act=True)),
            ("conv3", make.conv(w1, w2, 3)),
        ]
    return nn.Sequential(OrderedDict([*layers, ("pool", stem_pool(stem, make))]))


class PreActResNet(nn.Module):
    """A pre-activation network from one NetSpec (preact=True): stem, stages, norm, head."""

    def __init__(self, spec: NetSpec, device: str | torch.device | None = None) -> None:
        super().__init__()
        make = Factory(device, spec.norm)
        self.spec = spec
        self.stem = preact_stem(spec.stem_spec(), make)
        self.stages = nn.Sequential(*(Stage([PreActBlock(b, make) for b in blocks]) for blocks in spec.stages()))
        out_ch = spec.blocks()[-1].out_ch
        self.norm = make.norm(out_ch, act=True)
        fc: nn.Module = nn.Identity()
        if spec.num_classes:
            fc = nn.Conv2d(out_ch, spec.num_classes, 1, device=device)
        head = [("global_pool", nn.AdaptiveAvgPool2d((1, 1))), ("fc", fc), ("flatten", nn.Flatten(1))]
        self.head = nn.Sequential(OrderedDict(head))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem, stages and the final norm."""
        return self.norm(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (or pooled features when num_classes is 0)."""
        return self.head(self.forward_features(x))
