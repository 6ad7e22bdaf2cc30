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

from ..errors import InspectError
from ..geometry import whole
from .readers import optional_type, own_params, reader_for
from .types import POOLS, BlockRecord, Downsample, NetRecord, Op, StemRecord

SHORTCUT_NAMES = ("downsample", "shortcut")
CONTAINERS = (nn.Sequential, nn.ModuleList)
# Composite layers known to run their children in order (only used when that library is loaded).
OPTIONAL_CHAINS = ("timm.layers.adaptive_avgmax_pool.SelectAdaptivePool2d",)


def is_chain(module: nn.Module) -> bool:
    """A container whose forward applies its children one after the other."""
    if type(module) in CONTAINERS:
        return True
    return any(optional_type(path) is type(module) for path in OPTIONAL_CHAINS)


def _subtree(prefix: str, module: nn.Module, unknown: list[str]) -> tuple[list[Op], int]:
    """Ops of every leaf under `module` in registration (= forward) order, and the parameters of
    the whole subtree, in one pass."""
    params = own_params(module)
    children = list(module.named_children())
    if not children:
        reader = reader_for(module)
        if reader is None:
            unknown.append(f"{prefix} ({type(module).__name__})")
            return [], params
        return ([] if reader == "ignore" else [reader(prefix, module)]), params
    if not is_chain(module):
        # its forward may branch or reshape (a squeeze-excitation gate, say): reading its layers as a
        # chain could give numbers that look right and are not, so it is reported instead
        unknown.append(f"{prefix} ({type(module).__name__}, a composite layer the walker cannot follow)")
        return [], sum(p.numel() for p in module.parameters())
    ops: list[Op] = []
    for name, child in children:
        child_ops, child_params = _subtree(f"{prefix}.{name}" if prefix else name, child, unknown)
        ops += child_ops
        params += child_params
    return ops, params


@dataclass(frozen=True)
class _Parts:
    """A candidate block split into its main path and its shortcut."""

    main: list[Op]
    shortcut: list[Op]
    params: int
    unknown: list[str]

    @property
    def is_block(self) -> bool:
        """Two or more convolutions on the main path."""
        return sum(op.kind == "conv" for op in self.main) >= 2


def _parts(name: str, module: nn.Module) -> _Parts:
    unknown: list[str] = []
    main: list[Op] = []
    shortcut: list[Op] = []
    params = own_params(module)
    for child_name, child in module.named_children():
        ops, child_params = _subtree(f"{name}.{child_name}", child, unknown)
        (shortcut if child_name in SHORTCUT_NAMES else main).extend(ops)
        params += child_params
    return _Parts(main, shortcut, params, unknown)


def _stage_parts(name: str, module: nn.Module) -> list[tuple[str, nn.Module, _Parts]] | None:
    """The blocks of a stage, or None when `module` is not a container of residual blocks."""
    if not isinstance(module, CONTAINERS):
        return None
    blocks = [(f"{name}.{n}", child, _parts(f"{name}.{n}", child)) for n, child in module.named_children()]
    if not blocks or not all(p.is_block and not isinstance(b, CONTAINERS) for _, b, p in blocks):
        return None
    return blocks


def read_block(name: str, stage: str, index: int, block: nn.Module, parts: _Parts) -> BlockRecord:
    """One block's record from its convs (main path) and its shortcut child."""
    main, shortcut = tuple(parts.main), tuple(parts.shortcut)
    convs = [op for op in main if op.kind == "conv"]
    spatial = [op for op in convs if op.kernel != (1, 1)] or convs
    kind: Literal["basic", "bottleneck"] = "bottleneck" if len(convs) >= 3 else "basic"
    expansion = getattr(type(block), "expansion", 4 if kind == "bottleneck" else 1)
    outplanes = convs[-1].out_ch
    planes = outplanes // expansion if isinstance(expansion, int) and expansion > 0 else outplanes
    first_spatial = spatial[0]
    width = first_spatial.out_ch
    stride = math.prod(op.stride[0] for op in main)
    strided = next((op for op in main if op.stride[0] > 1), None)
    downsample = None
    if shortcut:
        pooled = any(op.kind in ("avgpool", "avgpool_same") for op in shortcut)
        downsample = Downsample("avgpool+conv" if pooled else "conv", math.prod(op.stride[0] for op in shortcut))
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
        base_width=whole(width / first_spatial.groups * 64 / planes) if planes else 0,
        downsample=downsample,
        params=parts.params,
        main=main,
        shortcut=shortcut,
    )


def read_stem(ops: list[Op], params: int) -> StemRecord:
    """The stem's record from its ops."""
    convs = [op for op in ops if op.kind == "conv"]
    if not convs:
        raise InspectError("the stem holds no convolution; this does not read as a ResNet")
    pools = [op for op in ops if op.kind in POOLS]
    pool = f"{pools[0].kind[:3]} {pools[0].window()}" if pools else None
    return StemRecord(
        kind="classic" if len(convs) == 1 else "deep",
        convs=tuple(op.window() for op in convs),
        widths=tuple(op.out_ch for op in convs),
        pool=pool,
        in_ch=convs[0].in_ch,
        out_ch=convs[-1].out_ch,
        stride=math.prod(op.stride[0] for op in ops),
        params=params,
        ops=tuple(ops),
    )


def walk(model: nn.Module, label: str = "", state: bool = False) -> NetRecord:
    """Read a ResNet-like module into records (with its state-dict names and shapes when `state`);
    InspectError if it has no stages of residual blocks."""
    children = list(model.named_children())
    stages = {i: _stage_parts(name, child) for i, (name, child) in enumerate(children)}
    stage_at = [i for i, blocks in stages.items() if blocks is not None]
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
        ops, params = _subtree(name, child, unknown)
        stem_ops += ops
        stem_params += params
    blocks = []
    for i in range(stage_at[0], stage_at[-1] + 1):
        name, child = children[i]
        stage_blocks = stages[i]
        if stage_blocks is None:
            unknown.append(f"{name} ({type(child).__name__}, between stages)")
            continue
        for index, (block_name, block, parts) in enumerate(stage_blocks):
            unknown += parts.unknown
            blocks.append(read_block(block_name, name, index, block, parts))
    head: list[Op] = []
    for name, child in children[stage_at[-1] + 1 :]:
        head += _subtree(name, child, unknown)[0]
    return NetRecord(
        model=label or type(model).__name__,
        stem=read_stem(stem_ops, stem_params),
        blocks=tuple(blocks),
        head=tuple(head),
        params=sum(p.numel() for p in model.parameters()),
        unrecognised=tuple(unknown),
        state=tuple((name, tuple(t.shape)) for name, t in model.state_dict().items()) if state else (),
    )
