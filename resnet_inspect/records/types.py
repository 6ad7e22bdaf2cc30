"""What the walker reads off a module: one `Op` per leaf layer, grouped into the stem, residual
blocks and the head. Frozen dataclasses, tuples not lists; nothing here imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Op kinds: each has one entry in numbers.rules.RULES, which says what it does to a shape, what it
# costs and how it moves a receptive field.
OpKind = Literal["conv", "linear", "bn", "maxpool", "avgpool", "avgpool_same", "adaptive_avgpool"]
POOLS = ("maxpool", "avgpool", "avgpool_same")
# The public fields of the records (JSON, CSV and diff show these; ops and branches stay internal).
BLOCK_FIELDS = (
    "name",
    "stage",
    "index",
    "type",
    "inplanes",
    "planes",
    "width",
    "outplanes",
    "stride",
    "stride_at",
    "dilation",
    "dilations",
    "groups",
    "base_width",
    "downsample",
    "params",
)
STEM_FIELDS = ("kind", "convs", "widths", "pool", "in_ch", "out_ch", "stride", "params")


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
    output_size: tuple[int | None, int | None] | None = None  # adaptive pools only
    params: int = 0

    def window(self) -> str:
        """'3x3/2', '1x1': kernel and stride as the tables print them."""
        return f"{self.kernel[0]}x{self.kernel[1]}" + (f"/{self.stride[0]}" if self.stride[0] != 1 else "")


@dataclass(frozen=True)
class Downsample:
    """A projection shortcut: 'conv' (1x1 conv carrying the stride) or 'avgpool+conv'."""

    kind: Literal["conv", "avgpool+conv"]
    stride: int


@dataclass(frozen=True)
class StemRecord:
    """The layers before the first stage."""

    kind: Literal["classic", "deep"]  # one conv, or a stack of convs
    convs: tuple[str, ...]  # e.g. ("7x7/2",) or ("3x3/2", "3x3", "3x3")
    widths: tuple[int, ...]  # output channels of each conv
    pool: str | None  # e.g. "max 3x3/2"
    in_ch: int
    out_ch: int
    stride: int
    params: int
    ops: tuple[Op, ...]


@dataclass(frozen=True)
class BlockRecord:
    """One residual block as its modules define it (torchvision's vocabulary)."""

    name: str  # "layer2.0"
    stage: str  # "layer2"
    index: int
    type: Literal["basic", "bottleneck"]
    inplanes: int
    planes: int
    width: int
    outplanes: int
    stride: int
    stride_at: str | None  # the kernel of the conv carrying the stride: "1x1" or "3x3"
    dilation: int  # the first 3x3's dilation (torchvision's block argument)
    dilations: tuple[int, ...]  # every 3x3's dilation, in order
    groups: int
    base_width: int | float  # width per group x 64 / planes (torchvision's base_width)
    downsample: Downsample | None
    params: int
    main: tuple[Op, ...]
    shortcut: tuple[Op, ...]

    @property
    def shortcut_layers(self) -> str | None:
        """The shortcut's layers in order, e.g. 'conv1x1/2' or 'avgpool2x2/2 + conv1x1'."""
        if self.downsample is None:
            return None
        parts = []
        for op in self.shortcut:
            if op.kind == "conv" or op.kind in POOLS:
                same = "(same)" if op.kind == "avgpool_same" else ""
                parts.append(f"{op.kind.removesuffix('_same')}{op.window()}{same}")
        return " + ".join(parts)


@dataclass(frozen=True)
class NetRecord:
    """A whole network: stem, blocks in forward order, head, and what the walker could not read."""

    model: str
    stem: StemRecord
    blocks: tuple[BlockRecord, ...]
    head: tuple[Op, ...]
    params: int
    unrecognised: tuple[str, ...]  # "name (Type)" of leaves with no rule
    state: tuple[tuple[str, tuple[int, ...]], ...] = ()  # state-dict names and shapes (walk(state=True))

    @property
    def stages(self) -> tuple[str, ...]:
        """Stage names in order."""
        return tuple(dict.fromkeys(b.stage for b in self.blocks))

    def stage_blocks(self) -> dict[str, tuple[BlockRecord, ...]]:
        """The blocks of every stage, in order."""
        grouped: dict[str, list[BlockRecord]] = {}
        for block in self.blocks:
            grouped.setdefault(block.stage, []).append(block)
        return {stage: tuple(blocks) for stage, blocks in grouped.items()}

    @property
    def head_params(self) -> int:
        """Parameters of the layers after the last stage."""
        return sum(op.params for op in self.head)
