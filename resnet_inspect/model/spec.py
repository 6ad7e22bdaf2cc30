"""Frozen descriptions of a ResNet-family network and the per-block plan derived from them.

A `NetSpec` holds the few orthogonal knobs that cover the whole family (torchvision, timm, Paddle
ResNet_vd); `NetSpec.blocks()` does all channel, stride and dilation bookkeeping before any module
exists. Nothing here imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from ..errors import InspectError

BlockType = Literal["basic", "bottleneck"]
StemKind = Literal["classic", "deep", "tiered"]
StemPool = Literal["torch", "caffe", "conv"]
ShortcutKind = Literal["conv", "avgpool"]
StrideAt = Literal["1x1", "3x3"]
DilationStyle = Literal["torchvision", "paddle"]
Attention = Literal["none", "se", "eca"]
AntiAlias = Literal["none", "blur", "avg"]
Norm = Literal["bn", "gn", "frozen_bn"]

STEM_POOLS = ("torch", "caffe", "conv")
ATTENTIONS = ("none", "se", "eca")
ANTI_ALIASES = ("none", "blur", "avg")
NORMS = ("bn", "gn", "frozen_bn")
GN_GROUPS = 32  # timm's GroupNorm (He & Wu 2018's default)

EXPANSION = {"basic": 1, "bottleneck": 4}
STAGE_PLANES = (64, 128, 256, 512)
OUTPUT_STRIDES = (8, 16, 32)
STEM_STRIDE = 4  # stem conv /2 then max-pool /2
MAX_BLOCKS = 1000  # ResNet-1001 (He et al. 2016b) has 333; beyond this a typo is likelier than a model
MAX_CHANNELS = 2**20  # keeps every weight's element count far inside int64

# Stage depths: He et al. 2016 (Table 1) and timm's resnet.py; Paddle's ResNet_vd differs at 200.
BASIC_DEPTHS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
HE_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}
BOTTLENECK_DEPTHS = {14: (1, 1, 1, 1), 26: (2, 2, 2, 2), 38: (3, 3, 3, 3), **HE_DEPTHS}  # 14: timm's resnet14t
PADDLE_DEPTHS = {200: (3, 12, 48, 3)}  # PaddleClas / PaddleSeg ResNet_vd
# ResNet-RS (Bello et al. 2021, timm's resnetrs*): He's tables, then its own deeper ones from 270 on
RS_DEPTHS = {**HE_DEPTHS, 270: (4, 29, 53, 4), 350: (4, 36, 72, 4), 420: (4, 44, 87, 4)}


def make_divisible(value: float, divisor: int = 8) -> int:
    """timm's channel rounding with round_limit 0: the nearest multiple of `divisor`, at least `divisor`."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


def eca_kernel(channels: int) -> int:
    """ECA's kernel from the channel count (Wang et al. 2020, gamma 2, b 1): odd, at least 3."""
    t = int(abs(math.log2(channels) + 1) / 2)
    return max(t if t % 2 else t + 1, 3)


@dataclass(frozen=True)
class StemSpec:
    """The layers before layer1: one 7x7/2 conv, or three 3x3 convs (the first /2); then the stem's
    pool (/2): a 3x3 max-pool padded as torch does or unpadded with ceil_mode as Caffe does, a strided
    3x3 conv (ResNet-RS), or an anti-aliasing pool."""

    kind: StemKind
    widths: tuple[int, ...]
    pool: StemPool = "torch"
    anti_alias: AntiAlias = "none"

    @property
    def out_ch(self) -> int:
        """Channels entering layer1."""
        return self.widths[-1]


@dataclass(frozen=True)
class ShortcutSpec:
    """A projection shortcut: `conv` = 1x1 conv carrying the stride (torchvision);
    `avgpool` = pool (or Identity) + 1x1 conv stride 1 (ResNet-D, timm and Paddle)."""

    kind: ShortcutKind
    stride: int
    pool: Literal["none", "avg", "avg_same"] = "none"
    # avg: AvgPool(2, stride, ceil_mode, padding not counted); avg_same: timm's 2x2 stride-1
    # "same"-padded pool it keeps in a dilated stage; none: Identity (or no pool for kind conv).


@dataclass(frozen=True)
class BlockSpec:
    """One residual block, with every channel count, stride and dilation resolved."""

    stage: int  # 1-based: layer1 .. layer4
    index: int  # 0-based within the stage
    block: BlockType
    in_ch: int
    planes: int
    width: int
    out_ch: int
    stride: int
    stride_at: StrideAt
    first_dilation: int  # the first 3x3 conv's dilation
    dilation: int  # the stage's dilation (a basic block's second 3x3)
    groups: int
    shortcut: ShortcutSpec | None
    attention: Attention = "none"
    attention_size: int = 0  # SE: the squeezed channels; ECA: the 1-D kernel
    anti_alias: AntiAlias = "none"  # the pool that carries the stride (the 3x3 then runs at stride 1)


@dataclass(frozen=True)
class NetSpec:
    """One network of the family; every name resolves to one and every one builds a module."""

    block: BlockType
    layers: tuple[int, ...]
    groups: int = 1
    width_per_group: int = 64
    stem: StemKind = "classic"
    stem_width: int = 64  # classic: the 7x7's output; deep: the first two 3x3s (the third gives 2x)
    stem_pool: StemPool = "torch"
    shortcut: ShortcutKind = "conv"
    stride_at: StrideAt = "3x3"
    project_first: bool = False  # every stage's first block projects (Paddle ResNet_vd)
    output_stride: int = 32
    multi_grid: tuple[int, ...] | None = None
    dilation_style: DilationStyle = "torchvision"
    attention: Attention = "none"
    attention_reduction: int = 16  # SE: squeezed channels = make_divisible(C / reduction)
    anti_alias: AntiAlias = "none"
    norm: Norm = "bn"
    preact: bool = False  # pre-activation blocks (ResNetV2, He et al. 2016b) in timm's layout
    num_classes: int = 1000
    convention: str = field(default="torchvision", compare=False)  # where the definition comes from
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        check_spec(self)

    @property
    def expansion(self) -> int:
        """Output channels of a block per plane: 1 (basic) or 4 (bottleneck)."""
        return EXPANSION[self.block]

    @property
    def depth(self) -> int:
        """Weighted layer count as in the ResNet paper: convs per block x blocks + stem + fc."""
        return sum(self.layers) * (2 if self.block == "basic" else 3) + 2

    def stem_spec(self) -> StemSpec:
        """The stem's convolution widths and its pool."""
        if self.stem == "classic":
            widths: tuple[int, ...] = (self.stem_width,)
        elif self.stem == "tiered":
            widths = (3 * (self.stem_width // 4), self.stem_width, 2 * self.stem_width)
        else:
            widths = (self.stem_width, self.stem_width, 2 * self.stem_width)
        return StemSpec(self.stem, widths, self.stem_pool, self.anti_alias)

    def with_overrides(self, **changes: object) -> NetSpec:
        """A copy with some knobs changed (validated again)."""
        return replace(self, **changes)

    def blocks(self) -> tuple[BlockSpec, ...]:
        """Every block in forward order, with channels, strides, dilations and shortcuts resolved."""
        plans: list[BlockSpec] = []
        in_ch = self.stem_spec().out_ch
        net_stride, dilation = STEM_STRIDE, 1
        for stage, (planes, count) in enumerate(zip(STAGE_PLANES, self.layers), start=1):
            previous_dilation = dilation
            stride = 1 if stage == 1 else 2
            if net_stride >= self.output_stride:
                dilation *= stride
                stride = 1
            else:
                net_stride *= stride
            width = planes * self.width_per_group // 64 * self.groups  # torchvision's int(planes * w / 64) * g
            out_ch = planes * self.expansion
            for index in range(count):
                block_stride = stride if index == 0 else 1
                first = dilation
                if index == 0 and self.dilation_style == "torchvision":
                    first = previous_dilation  # torchvision/timm: the first block keeps the old rate
                block_dilation = dilation
                if self.multi_grid and stage == len(self.layers):
                    first *= self.multi_grid[index]
                    block_dilation *= self.multi_grid[index]
                needs_projection = block_stride != 1 or in_ch != out_ch
                if index == 0 and self.project_first:
                    needs_projection = True
                shortcut = self._shortcut(block_stride, dilation) if needs_projection else None
                plans.append(
                    BlockSpec(
                        stage=stage,
                        index=index,
                        block=self.block,
                        in_ch=in_ch,
                        planes=planes,
                        width=width if self.block == "bottleneck" else planes,
                        out_ch=out_ch,
                        stride=block_stride,
                        stride_at=self.stride_at if self.block == "bottleneck" else "3x3",
                        first_dilation=first,
                        dilation=block_dilation,
                        groups=self.groups,
                        shortcut=shortcut,
                        attention=self.attention,
                        attention_size=self._attention_size(out_ch if self.block == "bottleneck" else planes),
                        anti_alias=self.anti_alias
                        if self.anti_alias != "none" and (block_stride == 2 or first != block_dilation)
                        else "none",
                    )
                )
                in_ch = out_ch
        return tuple(plans)

    def stages(self) -> tuple[tuple[BlockSpec, ...], ...]:
        """The blocks of each stage, in order."""
        blocks = self.blocks()
        return tuple(tuple(b for b in blocks if b.stage == stage) for stage in range(1, len(self.layers) + 1))

    def _attention_size(self, channels: int) -> int:
        if self.attention == "se":
            return make_divisible(channels / self.attention_reduction)
        if self.attention == "eca":
            return eca_kernel(channels)
        return 0

    def _shortcut(self, stride: int, stage_dilation: int) -> ShortcutSpec:
        if self.shortcut == "conv":
            return ShortcutSpec("conv", stride)
        if stride != 1:
            return ShortcutSpec("avgpool", stride, "avg")
        if stage_dilation > 1 and self.dilation_style == "torchvision":
            return ShortcutSpec("avgpool", 1, "avg_same")  # timm downsample_avg in a dilated stage
        return ShortcutSpec("avgpool", 1, "none")


def check_spec(spec: NetSpec) -> None:
    """Raise InspectError for a combination no reference implementation can build."""
    label = f" ({spec.name})" if spec.name else ""
    if spec.block not in EXPANSION:
        raise InspectError(f"must be basic or bottleneck, not {spec.block!r}{label}", "block")
    if len(spec.layers) != len(STAGE_PLANES) or any(n < 1 for n in spec.layers):
        raise InspectError(
            f"needs {len(STAGE_PLANES)} positive block counts, got {','.join(map(str, spec.layers))}{label}",
            "layers",
        )
    if spec.groups < 1 or spec.width_per_group < 1:
        raise InspectError(f"must be at least 1{label}", ("groups", "width_per_group"))
    if spec.block == "basic" and (spec.groups != 1 or spec.width_per_group != 64):
        raise InspectError(
            f"do not apply to basic blocks (torchvision and timm refuse groups={spec.groups}, "
            f"width_per_group={spec.width_per_group}); use a bottleneck depth (26, 38, 50, 101, 152, 200){label}",
            ("groups", "width_per_group"),
        )
    if sum(spec.layers) > MAX_BLOCKS:
        raise InspectError(
            f"add up to {sum(spec.layers)} blocks; this tool builds at most {MAX_BLOCKS}{label}", "layers"
        )
    widest = max(spec.stem_width * 2, STAGE_PLANES[-1] * spec.width_per_group // 64 * spec.groups)
    if widest > MAX_CHANNELS:
        raise InspectError(
            f"would make a layer of {widest} channels; this tool builds at most {MAX_CHANNELS}{label}",
            ("groups", "width_per_group", "stem_width"),
        )
    if spec.stem not in ("classic", "deep", "tiered"):
        raise InspectError(f"must be classic, deep or tiered, not {spec.stem!r}{label}", "stem")
    if spec.stem_width < 1:
        raise InspectError(f"must be at least 1, got {spec.stem_width}{label}", "stem_width")
    if spec.shortcut not in ("conv", "avgpool"):
        raise InspectError(f"must be conv or avgpool, not {spec.shortcut!r}{label}", "shortcut")
    if spec.stride_at not in ("1x1", "3x3"):
        raise InspectError(f"must be 1x1 or 3x3, not {spec.stride_at!r}{label}", "stride_at")
    if spec.output_stride not in OUTPUT_STRIDES:
        raise InspectError(f"must be 8, 16 or 32, got {spec.output_stride}{label}", "output_stride")
    if spec.dilation_style not in ("torchvision", "paddle"):
        raise InspectError(f"must be torchvision or paddle, not {spec.dilation_style!r}{label}", "dilation_style")
    if not 0 <= spec.num_classes <= MAX_CHANNELS:
        raise InspectError(f"must be 0 to {MAX_CHANNELS}, got {spec.num_classes}{label}", "num_classes")
    if spec.multi_grid is not None:
        last = spec.layers[-1]
        grid = ",".join(map(str, spec.multi_grid))
        if len(spec.multi_grid) != last:
            raise InspectError(
                f"needs one factor per block of the last stage ({last}), got {grid}{label}", "multi_grid"
            )
        if any(g < 1 for g in spec.multi_grid):
            raise InspectError(f"factors must be at least 1, got {grid}{label}", "multi_grid")
        if spec.output_stride == 32 and any(g != 1 for g in spec.multi_grid):
            raise InspectError(
                f"scales the dilated last stage (DeepLabv3); it needs output stride 8 or 16{label}",
                "multi_grid",
            )
    check_knobs(spec, label)


def check_knobs(spec: NetSpec, label: str) -> None:
    """The knobs beyond the plain family: attention, anti-aliasing, norms, the stem pool, pre-activation."""
    for param, value, allowed in (
        ("stem_pool", spec.stem_pool, STEM_POOLS),
        ("attention", spec.attention, ATTENTIONS),
        ("anti_alias", spec.anti_alias, ANTI_ALIASES),
        ("norm", spec.norm, NORMS),
    ):
        if value not in allowed:
            raise InspectError(f"must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {value!r}{label}", param)
    if not 1 <= spec.attention_reduction <= 1024:
        raise InspectError(f"must be 1 to 1024, got {spec.attention_reduction}{label}", "attention_reduction")
    if spec.anti_alias != "none" and spec.stride_at == "1x1":
        raise InspectError(
            f"needs the stride on the 3x3 (no reference moves a 1x1's stride to a pool){label}", "anti_alias"
        )
    if spec.stem_pool == "caffe" and spec.anti_alias != "none":
        raise InspectError(f"replaces the stem's max-pool; it cannot also be Caffe's{label}", "anti_alias")
    if spec.norm == "gn":
        odd = sorted({c for c in _channels(spec) if c % GN_GROUPS})
        if odd:
            raise InspectError(
                f"gn divides channels into {GN_GROUPS} groups; {', '.join(map(str, odd))} do not divide{label}", "norm"
            )
    if spec.preact:
        refused = [
            ("attention", spec.attention != "none"),
            ("anti_alias", spec.anti_alias != "none"),
            ("stem_pool", spec.stem_pool != "torch"),
            ("stride_at", spec.stride_at != "3x3"),
            ("dilation_style", spec.dilation_style != "torchvision"),
        ]
        named = tuple(param for param, given in refused if given)
        if named or spec.project_first:
            raise InspectError(
                f"do not apply to pre-activation networks (timm's ResNetV2 has none of them){label}",
                named or "project_first",
            )


def _channels(spec: NetSpec) -> set[int]:
    """Every channel count a norm of this spec sees."""
    counts = set(spec.stem_spec().widths)
    for b in spec.blocks():
        counts |= {b.width, b.out_ch} if b.block == "bottleneck" else {b.planes}
    return counts
