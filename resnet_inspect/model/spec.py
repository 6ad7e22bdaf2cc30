"""Frozen descriptions of a ResNet-family network and the per-block plan derived from them.

A `NetSpec` holds the few orthogonal knobs that cover the whole family (torchvision, timm, Paddle
ResNet_vd); `NetSpec.blocks()` does all channel, stride and dilation bookkeeping before any module
exists. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from ..errors import InspectError

BlockType = Literal["basic", "bottleneck"]
StemKind = Literal["classic", "deep"]
ShortcutKind = Literal["conv", "avgpool"]
StrideAt = Literal["1x1", "3x3"]
DilationStyle = Literal["torchvision", "paddle"]

EXPANSION = {"basic": 1, "bottleneck": 4}
STAGE_PLANES = (64, 128, 256, 512)
OUTPUT_STRIDES = (8, 16, 32)
STEM_STRIDE = 4  # stem conv /2 then max-pool /2
MAX_BLOCKS = 1000  # ResNet-1001 (He et al. 2016b) has 333; beyond this a typo is likelier than a model
MAX_CHANNELS = 2**20  # keeps every weight's element count far inside int64

# Stage depths: He et al. 2016 (Table 1) and timm's resnet.py; Paddle's ResNet_vd differs at 200.
BASIC_DEPTHS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
BOTTLENECK_DEPTHS = {
    26: (2, 2, 2, 2),
    38: (3, 3, 3, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}
PADDLE_DEPTHS = {200: (3, 12, 48, 3)}  # PaddleClas / PaddleSeg ResNet_vd


@dataclass(frozen=True)
class StemSpec:
    """The layers before layer1: one 7x7/2 conv, or three 3x3 convs (the first /2); then a 3x3/2 max-pool."""

    kind: StemKind
    widths: tuple[int, ...]

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


@dataclass(frozen=True)
class NetSpec:
    """One network of the family; every name resolves to one and every one builds a module."""

    block: BlockType
    layers: tuple[int, ...]
    groups: int = 1
    width_per_group: int = 64
    stem: StemKind = "classic"
    stem_width: int = 64  # classic: the 7x7's output; deep: the first two 3x3s (the third gives 2x)
    shortcut: ShortcutKind = "conv"
    stride_at: StrideAt = "3x3"
    project_first: bool = False  # every stage's first block projects (Paddle ResNet_vd)
    output_stride: int = 32
    multi_grid: tuple[int, ...] | None = None
    dilation_style: DilationStyle = "torchvision"
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
        """The stem's convolution widths."""
        if self.stem == "classic":
            return StemSpec("classic", (self.stem_width,))
        return StemSpec("deep", (self.stem_width, self.stem_width, 2 * self.stem_width))

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
                    )
                )
                in_ch = out_ch
        return tuple(plans)

    def stages(self) -> tuple[tuple[BlockSpec, ...], ...]:
        """The blocks of each stage, in order."""
        blocks = self.blocks()
        return tuple(tuple(b for b in blocks if b.stage == stage) for stage in range(1, len(self.layers) + 1))

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
    if spec.stem not in ("classic", "deep"):
        raise InspectError(f"must be classic or deep, not {spec.stem!r}{label}", "stem")
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
    if spec.num_classes < 0:
        raise InspectError(f"cannot be negative{label}", "num_classes")
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
