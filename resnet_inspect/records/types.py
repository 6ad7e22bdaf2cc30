"""What the walker reads off a module: one `Op` per leaf layer, grouped into the stem, residual
blocks and the head. Frozen dataclasses, tuples not lists; nothing here imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Op kinds: each has one entry in numbers.rules.RULES, which says what it does to a shape, what it
# costs and how it moves a receptive field.
OpKind = Literal[
    "conv",  # nn.Conv2d and subclasses, read by geometry (`same`: TF padding at run time)
    "blur",  # anti-aliasing blur pool: a fixed depthwise k x k conv with stride (Zhang 2019)
    "linear",  # on the flattened features, or on the last dimension (tokens)
    "bn",  # batch norms
    "frozen_bn",  # batch norms with fixed statistics and affine terms: x * scale + shift from buffers
    "gn",  # group norms (`groups`: the number of groups)
    "norm",  # other per-channel norms (EvoNorm, filter response norm)
    "pad",  # constant padding
    "maxpool",
    "avgpool",
    "avgpool_same",
    "adaptive_avgpool",
    "se",  # squeeze-excitation: global pool, C -> hidden -> C, gate (Hu et al. 2018)
    "eca",  # efficient channel attention: global pool, 1-D conv of kernel k across channels
    "split_attn",  # ResNeSt's split attention: conv into `paths` radix groups, attention over them
    "selective_kernel",  # SKNet: `paths` convs of growing dilation, attention over them
    "res2",  # Res2Net's split-and-chain 3x3 convs over `paths` channel groups
    "attention_pool",  # CLIP's attention pool: tokens = H*W + 1, q/k/v/proj and attention
    "probed",  # a module no rule describes: counted from a meta-tensor forward of it alone
]
POOLS = ("maxpool", "avgpool", "avgpool_same")
NORM_KINDS = ("bn", "frozen_bn", "gn")  # per-channel norms a ReLU may follow (memory places the ReLUs)
CONV_KINDS = ("conv", "split_attn", "selective_kernel", "res2")  # what makes a residual block's main path
ATTENTION_KINDS = ("se", "eca", "split_attn", "selective_kernel")
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
    "attention",
    "anti_alias",
)
STEM_FIELDS = ("kind", "convs", "widths", "pool", "in_ch", "out_ch", "stride", "params")


@dataclass(frozen=True)
class Op:
    """One layer (or one composite whose data flow is known) as read from its module: kind, channels,
    window geometry, parameters."""

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
    same: bool = False  # TF "same" padding computed at run time (conv, avgpool_same)
    hidden: int = 0  # a gate's squeezed channels (se, split_attn, selective_kernel) or embedding width
    paths: int = 1  # radix (split_attn), paths (selective_kernel), scale (res2)
    chained: bool = False  # res2: each split's 3x3 also sees the previous one's output
    split: bool = True  # selective_kernel: each path sees 1/paths of the input channels
    module: str = ""  # the module's class, for kinds read from a whole composite (and probed ones)

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
    attention: str | None = None  # se, eca, split_attn or selective_kernel on the main path
    anti_alias: str | None = None  # blur or avgpool: the pool that carries the stride (Zhang 2019)

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
    unrecognised: tuple[str, ...]  # "name (Type)" of modules left out (between stages)
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
    def probed(self) -> tuple[Op, ...]:
        """Ops no rule describes, to be counted from a forward pass of their module alone."""
        ops = (*self.stem.ops, *(op for b in self.blocks for op in (*b.main, *b.shortcut)), *self.head)
        return tuple(op for op in ops if op.kind == "probed")

    @property
    def head_params(self) -> int:
        """Parameters of the layers after the last stage."""
        return sum(op.params for op in self.head)
