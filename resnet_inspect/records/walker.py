"""nn.Module -> records: a true inspection of the layers, read from the modules' own attributes.

The walker knows the shape of a ResNet, not our classes. Top-level children before the first stage
are the stem; a stage is a container whose children are all residual blocks (modules with at least
two convolutions on their main path), and a top-level container of such stages (timm's `stages`,
each stage a container of blocks or a module holding one in `blocks`) is read stage by stage. A
block's child named `downsample` (or `shortcut`) is its projection shortcut, and whatever follows
the last stage is the head. torchvision's, timm's (ResNet, ResNetV2, ByobNet, SENet) and our own
models all read the same way.

Inside a block, a module the reader table knows becomes one Op; a container whose forward runs its
children in order is read child by child; any other module (its forward may branch, reshape or
gate) becomes a "probed" Op, counted later from a forward pass of that module alone, so that a
composite is never read as a chain and never silently dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from ..errors import InspectError
from ..geometry import whole
from .readers import all_params, optional_type, own_params, probed, read, read_conv
from .types import ATTENTION_KINDS, CONV_KINDS, POOLS, BlockRecord, Downsample, NetRecord, Op, StemRecord

SHORTCUT_NAMES = ("downsample", "shortcut")
CONTAINERS = (nn.Sequential, nn.ModuleList)
# Composite layers known to run their children in order (only used when that library is loaded).
OPTIONAL_CHAINS = (
    "timm.layers.adaptive_avgmax_pool.SelectAdaptivePool2d",
    "timm.layers.conv_bn_act.ConvNormAct",
    "timm.layers.classifier.ClassifierHead",
    "timm.layers.classifier.NormMlpClassifierHead",
    "timm.models.resnetv2.DownsampleConv",
    "timm.models.resnetv2.DownsampleAvg",
    "timm.models.byobnet.DownsampleAvg",
)


def is_chain(module: nn.Module) -> bool:
    """A container whose forward applies its children one after the other."""
    kind = type(module)
    if kind in CONTAINERS:
        return True
    if isinstance(module, nn.Sequential) and kind.forward is nn.Sequential.forward:
        return True
    return any(optional_type(path) is kind for path in OPTIONAL_CHAINS)


def _subtree(prefix: str, module: nn.Module) -> tuple[list[Op], int]:
    """Ops of the module (one Op when it is read whole, else its children's in forward order), and
    the parameters of the whole subtree, in one pass."""
    op = read(prefix, module)
    if op == "ignore":
        return [], own_params(module)
    if op is not None:
        return [op], op.params
    children = list(module.named_children())
    if not children or not is_chain(module):
        return [probed(prefix, module)], all_params(module)
    ops: list[Op] = []
    params = own_params(module)
    for name, child in children:
        child_ops, child_params = _subtree(f"{prefix}.{name}" if prefix else name, child)
        ops += child_ops
        params += child_params
    return ops, params


@dataclass(frozen=True)
class _Parts:
    """A candidate block split into its main path and its shortcut."""

    main: list[Op]
    shortcut: list[Op]
    params: int

    @property
    def is_block(self) -> bool:
        """Two or more convolutions on the main path."""
        return sum(op.kind in CONV_KINDS for op in self.main) >= 2


def _parts(name: str, module: nn.Module) -> _Parts:
    special = _block_reader(module)
    if special is not None:
        try:
            return special(name, module)
        except (LookupError, AttributeError, TypeError, ValueError):
            return _Parts([probed(name, module)], [], all_params(module))
    main: list[Op] = []
    shortcut: list[Op] = []
    params = own_params(module)
    for child_name, child in module.named_children():
        ops, child_params = _subtree(f"{name}.{child_name}", child)
        (shortcut if child_name in SHORTCUT_NAMES else main).extend(ops)
        params += child_params
    return _Parts(main, shortcut, params)


def _res2_parts(name: str, block: nn.Module) -> _Parts:
    """timm's Bottle2neck: conv1 (C -> width x scale), the split-and-chain 3x3s, conv3, then SE."""
    convs = list(block.convs)  # type: ignore[arg-type]
    scale = int(block.scale)  # type: ignore[arg-type]
    if scale < 2 or len(convs) != scale - 1:
        raise LookupError("a Res2Net block without splits")
    first = read_conv(f"{name}.convs", convs[0])
    hierarchy = Op(
        f"{name}.convs",
        "res2",
        first.in_ch * scale,
        first.out_ch * scale,
        first.kernel,
        first.stride,
        first.padding,
        first.dilation,
        first.groups,
        params=all_params(block.convs) + all_params(block.bns),  # type: ignore[arg-type]
        paths=scale,
        chained=not block.is_first,
        module=type(block).__name__,
    )
    main: list[Op] = []
    for part in ("conv1", "bn1"):
        main += _subtree(f"{name}.{part}", getattr(block, part))[0]
    main.append(hierarchy)
    for part in ("conv3", "bn3", "se"):
        child = getattr(block, part, None)
        if isinstance(child, nn.Module):
            main += _subtree(f"{name}.{part}", child)[0]
    shortcut = _subtree(f"{name}.downsample", block.downsample)[0] if block.downsample is not None else []  # type: ignore[arg-type]
    return _Parts(main, shortcut, all_params(block))


OPTIONAL_BLOCKS: dict[str, Callable[[str, nn.Module], _Parts]] = {"timm.models.res2net.Bottle2neck": _res2_parts}


def _block_reader(module: nn.Module) -> Callable[[str, nn.Module], _Parts] | None:
    return next((reader for path, reader in OPTIONAL_BLOCKS.items() if optional_type(path) is type(module)), None)


StageBlocks = list[tuple[str, nn.Module, _Parts]]


def _blocks(name: str, module: nn.Module) -> StageBlocks | None:
    """The blocks of a stage, or None when `module` is not a container of residual blocks."""
    if not isinstance(module, CONTAINERS):
        return None
    blocks = [(f"{name}.{n}", child, _parts(f"{name}.{n}", child)) for n, child in module.named_children()]
    if not blocks or not all(p.is_block and not isinstance(b, CONTAINERS) for _, b, p in blocks):
        return None
    return blocks


def _stages(name: str, module: nn.Module) -> list[tuple[str, StageBlocks]] | None:
    """The stages a top-level child holds: itself (a container of blocks), or each of its children
    (containers of blocks, or modules holding one as `blocks`); None when it holds none."""
    blocks = _blocks(name, module)
    if blocks is not None:
        return [(name, blocks)]
    if not isinstance(module, CONTAINERS):
        return None
    stages = []
    for child_name, child in module.named_children():
        stage = f"{name}.{child_name}"
        children = dict(child.named_children())
        found = _blocks(stage, child)
        if found is None and list(children) == ["blocks"]:
            found = _blocks(f"{stage}.blocks", children["blocks"])
        if found is None:
            return None
        stages.append((stage, found))
    return stages or None


def read_block(name: str, stage: str, index: int, block: nn.Module, parts: _Parts) -> BlockRecord:
    """One block's record from its convs (main path) and its shortcut child."""
    main, shortcut = tuple(parts.main), tuple(parts.shortcut)
    convs = [op for op in main if op.kind in CONV_KINDS]
    spatial = [op for op in convs if op.kernel != (1, 1)] or convs
    kind: Literal["basic", "bottleneck"] = "bottleneck" if len(convs) >= 3 else "basic"
    expansion = getattr(type(block), "expansion", 4 if kind == "bottleneck" else 1)
    outplanes = convs[-1].out_ch
    planes = outplanes // expansion if isinstance(expansion, int) and expansion > 0 else outplanes
    first_spatial = spatial[0]
    width = first_spatial.out_ch
    strided = next((op for op in main if op.stride[0] > 1), None)
    downsample = None
    if shortcut:
        pooled = any(op.kind in ("avgpool", "avgpool_same") for op in shortcut)
        downsample = Downsample("avgpool+conv" if pooled else "conv", math.prod(op.stride[0] for op in shortcut))
    attention = next((op.kind for op in main if op.kind in ATTENTION_KINDS), None)
    anti_alias = next((op.kind for op in main if op.kind in ("blur", "avgpool")), None)
    return BlockRecord(
        name=name,
        stage=stage,
        index=index,
        type=kind,
        inplanes=convs[0].in_ch,
        planes=planes,
        width=width,
        outplanes=outplanes,
        stride=math.prod(op.stride[0] for op in main),
        stride_at=_where(strided) if strided else None,
        dilation=first_spatial.dilation[0],
        dilations=tuple(op.dilation[0] for op in spatial),
        groups=first_spatial.groups,
        base_width=whole(width / first_spatial.groups * 64 / planes) if planes else 0,
        downsample=downsample,
        params=parts.params,
        main=main,
        shortcut=shortcut,
        attention=attention,
        anti_alias=anti_alias,
    )


def _where(op: Op) -> str:
    """The layer carrying a block's stride: the conv's kernel ('3x3'), or the pool's kind ('blur')."""
    return f"{op.kernel[0]}x{op.kernel[1]}" if op.kind in CONV_KINDS else op.kind


def read_stem(ops: list[Op], params: int) -> StemRecord:
    """The stem's record from its ops."""
    convs = [op for op in ops if op.kind == "conv"]
    if not convs:
        raise InspectError("the stem holds no convolution; this does not read as a ResNet")
    pools = [op for op in ops if op.kind in (*POOLS, "blur")]
    pool = " + ".join(
        f"{op.kind.removesuffix('_same')[:3] if op.kind != 'blur' else 'blur'} {op.window()}" for op in pools
    )
    return StemRecord(
        kind="classic" if len(convs) == 1 else "deep",
        convs=tuple(op.window() for op in convs),
        widths=tuple(op.out_ch for op in convs),
        pool=pool or None,
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
    stages = {i: _stages(name, child) for i, (name, child) in enumerate(children)}
    stage_at = [i for i, found in stages.items() if found is not None]
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
        ops, params = _subtree(name, child)
        stem_ops += ops
        stem_params += params
    blocks = []
    for i in range(stage_at[0], stage_at[-1] + 1):
        name, child = children[i]
        found = stages[i]
        if found is None:
            unknown.append(f"{name} ({type(child).__name__}, between stages)")
            continue
        for stage, stage_blocks in found:
            for index, (block_name, block, parts) in enumerate(stage_blocks):
                blocks.append(read_block(block_name, stage, index, block, parts))
    head: list[Op] = []
    for name, child in children[stage_at[-1] + 1 :]:
        head += _subtree(name, child)[0]
    return NetRecord(
        model=label or type(model).__name__,
        stem=read_stem(stem_ops, stem_params),
        blocks=tuple(blocks),
        head=tuple(head),
        params=sum(p.numel() for p in model.parameters()),
        unrecognised=tuple(unknown),
        state=tuple((name, tuple(t.shape)) for name, t in model.state_dict().items()) if state else (),
    )
