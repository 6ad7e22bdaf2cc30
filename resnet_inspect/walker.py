"""nn.Module -> records: a true inspection of the layers, read from the modules' own attributes.

The walker knows the shape of a ResNet, not our classes: top-level children before the first stage
are the stem, a stage is a container whose children are all residual blocks (modules with at least
two convolutions on their main path), a block's child named `downsample` (or `shortcut`) is its
projection shortcut, and whatever follows the last stage is the head. torchvision's, timm's and our
own models all read the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from torch import nn

from .errors import InspectError
from .rules import Op, reader_for

SHORTCUT_NAMES = ("downsample", "shortcut")
CONTAINERS = (nn.Sequential, nn.ModuleList)


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


@dataclass(frozen=True)
class NetRecord:
    """A whole network: stem, blocks in forward order, head, and what the walker could not read."""

    model: str
    stem: StemRecord
    blocks: tuple[BlockRecord, ...]
    head: tuple[Op, ...]
    params: int
    unrecognised: tuple[str, ...]  # "name (Type)" of leaves with no rule
    state: tuple[tuple[str, tuple[int, ...]], ...] = ()  # state-dict names and shapes, in order

    @property
    def stages(self) -> tuple[str, ...]:
        """Stage names in order."""
        return tuple(dict.fromkeys(b.stage for b in self.blocks))


def _leaf_ops(prefix: str, module: nn.Module, unknown: list[str], skip: tuple[str, ...] = ()) -> list[Op]:
    """Ops of every leaf under `module` in registration (= forward) order."""
    ops: list[Op] = []
    for name, child in module.named_modules(prefix=prefix):
        local = name[len(prefix) + 1 :] if prefix else name
        if any(local == s or local.startswith(s + ".") for s in skip):
            continue
        if isinstance(child, CONTAINERS):
            continue
        has_children = next(iter(child.children()), None) is not None
        if has_children:
            if next(iter(child.parameters(recurse=False)), None) is not None:
                unknown.append(f"{name} ({type(child).__name__}, holds parameters itself)")
            continue
        reader = reader_for(child)
        if reader == "ignore":
            continue
        if reader is None:
            unknown.append(f"{name} ({type(child).__name__})")
            continue
        ops.append(reader(name, child))
    return ops


def _shortcut_child(block: nn.Module) -> tuple[str, nn.Module | None]:
    for name in SHORTCUT_NAMES:
        if hasattr(block, name):
            child = getattr(block, name)
            return name, child if isinstance(child, nn.Module) else None
    return "", None


def _main_convs(block: nn.Module) -> list[nn.Module]:
    skip, _ = _shortcut_child(block)
    return [
        m
        for n, m in block.named_modules()
        if isinstance(m, nn.Conv2d) and not (skip and (n == skip or n.startswith(skip + ".")))
    ]


def is_block(module: nn.Module) -> bool:
    """A residual block: not a plain container, with two or more convs on its main path."""
    return not isinstance(module, CONTAINERS) and len(_main_convs(module)) >= 2


def is_stage(module: nn.Module) -> bool:
    """A container whose children are all residual blocks."""
    children = list(module.children())
    return isinstance(module, CONTAINERS) and bool(children) and all(map(is_block, children))


def _window(op: Op) -> str:
    k, s = op.kernel[0], op.stride[0]
    return f"{k}x{k}" + (f"/{s}" if s != 1 else "")


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def read_block(name: str, stage: str, index: int, block: nn.Module, unknown: list[str]) -> BlockRecord:
    """One block's record from its convs (main path) and its shortcut child."""
    skip, shortcut_module = _shortcut_child(block)
    main = tuple(_leaf_ops(name, block, unknown, skip=(skip,) if skip else ()))
    shortcut = tuple(_leaf_ops(f"{name}.{skip}", shortcut_module, unknown)) if shortcut_module else ()
    convs = [op for op in main if op.kind == "conv"]
    spatial = [op for op in convs if op.kernel != (1, 1)] or convs
    kind: Literal["basic", "bottleneck"] = "bottleneck" if len(convs) >= 3 else "basic"
    expansion = getattr(type(block), "expansion", 4 if kind == "bottleneck" else 1)
    outplanes = convs[-1].out_ch
    planes = outplanes // expansion if isinstance(expansion, int) and expansion > 0 else outplanes
    first_spatial = spatial[0]
    width = first_spatial.out_ch
    stride = math.prod(op.stride[0] for op in main if op.is_window)
    strided = next((op for op in main if op.is_window and op.stride[0] > 1), None)
    downsample = None
    if shortcut:
        pooled = any(op.kind in ("avgpool", "avgpool_same") for op in shortcut)
        downsample = Downsample(
            "avgpool+conv" if pooled else "conv", math.prod(op.stride[0] for op in shortcut if op.is_window)
        )
    return BlockRecord(
        name=name,
        stage=stage,
        index=index,
        type=kind,
        inplanes=convs[0].in_ch,
        planes=planes,
        width=width,
        outplanes=outplanes,
        stride=stride,
        stride_at=f"{strided.kernel[0]}x{strided.kernel[1]}" if strided else None,
        dilation=first_spatial.dilation[0],
        dilations=tuple(op.dilation[0] for op in spatial),
        groups=first_spatial.groups,
        base_width=_number(width / first_spatial.groups * 64 / planes) if planes else 0,
        downsample=downsample,
        params=sum(p.numel() for p in block.parameters()),
        main=main,
        shortcut=shortcut,
    )


def read_stem(ops: list[Op], params: int) -> StemRecord:
    """The stem's record from its ops."""
    convs = [op for op in ops if op.kind == "conv"]
    if not convs:
        raise InspectError("the stem holds no convolution; this does not read as a ResNet")
    pools = [op for op in ops if op.kind in ("maxpool", "avgpool")]
    pool = f"{pools[0].kind[:3]} {_window(pools[0])}" if pools else None
    return StemRecord(
        kind="classic" if len(convs) == 1 else "deep",
        convs=tuple(_window(op) for op in convs),
        widths=tuple(op.out_ch for op in convs),
        pool=pool,
        in_ch=convs[0].in_ch,
        out_ch=convs[-1].out_ch,
        stride=math.prod(op.stride[0] for op in ops if op.is_window),
        params=params,
        ops=tuple(ops),
    )


def walk(model: nn.Module, label: str = "") -> NetRecord:
    """Read a ResNet-like module into records; InspectError if it has no stages of residual blocks."""
    children = list(model.named_children())
    stage_at = [i for i, (_, child) in enumerate(children) if is_stage(child)]
    if not stage_at:
        raise InspectError(
            f"{label or type(model).__name__} does not read as a ResNet: expected top-level "
            "containers (like layer1..layer4) of residual blocks, each block with two or more "
            "convolutions and an optional `downsample` shortcut"
        )
    unknown: list[str] = []
    stem_ops: list[Op] = []
    stem_params = 0
    for name, child in children[: stage_at[0]]:
        stem_ops += _leaf_ops(name, child, unknown)
        stem_params += sum(p.numel() for p in child.parameters())
    blocks = []
    for name, stage in (children[i] for i in stage_at):
        for index, (block_name, block) in enumerate(stage.named_children()):
            blocks.append(read_block(f"{name}.{block_name}", name, index, block, unknown))
    head: list[Op] = []
    for name, child in children[stage_at[-1] + 1 :]:
        head += _leaf_ops(name, child, unknown)
    for name, child in children[stage_at[0] : stage_at[-1] + 1]:
        if not is_stage(child):
            unknown.append(f"{name} ({type(child).__name__}, between stages)")
    return NetRecord(
        model=label or type(model).__name__,
        stem=read_stem(stem_ops, stem_params),
        blocks=tuple(blocks),
        head=tuple(head),
        params=sum(p.numel() for p in model.parameters()),
        unrecognised=tuple(unknown),
        state=tuple((name, tuple(t.shape)) for name, t in model.state_dict().items()),
    )
