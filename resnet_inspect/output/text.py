"""Words and number formats shared by every view: shapes, giga-units, the counting convention in one
sentence, and a spec described in words."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model.spec import NetSpec

CONVENTION = (
    "MACs = multiply-accumulates of conv and linear layers (what torchvision, fvcore and the papers "
    "call FLOPs); FLOPs = 2 x MACs; activations = output elements of conv and linear layers"
)


def shape_text(shape: Sequence[int]) -> str:
    """(256, 56, 56) -> '256x56x56'."""
    return "x".join(map(str, shape))


def giga(n: int) -> str:
    """4089184256 -> '4.089 G'."""
    return f"{n / 1e9:.3f} G"


def size_text(size: Sequence[int]) -> str:
    """(512, 1024) -> '512x1024'."""
    return f"{size[0]}x{size[1]}"


def grouping(spec: NetSpec) -> str:
    """ResNeXt's '32x4d' only where the 3x3s are grouped; a plain or wide ResNet in words."""
    g, w = spec.groups, spec.width_per_group
    if g > 1:
        return f"{g}x{w}d ({g} groups of {w} channels at 64 planes)"
    if spec.block == "basic" or w == 64:
        return "no groups (plain ResNet)" + (", width 64 per 64 planes" if spec.block == "bottleneck" else "")
    return f"no groups, width {w} per 64 planes ({w / 64:g}x wide)"


def describe_spec(spec: NetSpec) -> str:
    """One line naming every knob of a spec."""
    stem = (
        f"7x7 stem ({spec.stem_width})"
        if spec.stem == "classic"
        else f"{spec.stem} stem 3x3 x3 (" + ", ".join(map(str, spec.stem_spec().widths)) + ")"
    )
    pool = {"caffe": "Caffe's unpadded ceil-mode stem max-pool", "conv": "strided 3x3 conv as stem pool"}
    parts = [
        f"{spec.block} {list(spec.layers)}",
        grouping(spec),
        stem,
        "1x1 conv shortcut" if spec.shortcut == "conv" else "avg-pool + 1x1 conv shortcut",
        f"stride on the {spec.stride_at}" if spec.block == "bottleneck" else "",
        "first block of every stage projects" if spec.project_first else "",
        f"output stride {spec.output_stride}",
        f"multi-grid {'-'.join(map(str, spec.multi_grid))}" if spec.multi_grid else "",
        f"{spec.dilation_style} dilation" if spec.output_stride != 32 else "",
        pool.get(spec.stem_pool, ""),
        "pre-activation blocks" if spec.preact else "",
        {"se": f"squeeze-excitation (C/{spec.attention_reduction})", "eca": "ECA"}.get(spec.attention, ""),
        {"blur": "blur-pool anti-aliasing", "avg": "avg-pool anti-aliasing"}.get(spec.anti_alias, ""),
        {"gn": "GroupNorm (32 groups)", "frozen_bn": "frozen batch norm"}.get(spec.norm, ""),
        f"{spec.num_classes} classes",
    ]
    return ", ".join(p for p in parts if p)


def family(spec: NetSpec) -> str:
    """ResNet / ResNeXt / Wide ResNet with its bag-of-tricks letter (He et al. 2019), from the knobs."""
    base = "ResNeXt" if spec.groups > 1 else "Wide ResNet" if spec.width_per_group > 64 else "ResNet"
    if spec.preact:
        base += "V2"
    letters = {
        ("1x1", "classic", "conv"): "A",
        ("3x3", "classic", "conv"): "B",
        ("3x3", "deep", "conv"): "C",
        ("3x3", "deep", "avgpool"): "D",
        ("3x3", "tiered", "avgpool"): "T",
    }
    stride_at = spec.stride_at if spec.block == "bottleneck" else "3x3"
    prefix = {"se": "SE-", "eca": "ECA-"}.get(spec.attention, "")
    return f"{prefix}{base}-{letters.get((stride_at, spec.stem, spec.shortcut), '?')}"


def listed(names: Sequence[str], first: int = 3) -> str:
    """'a, b, c, ... (4 more)'."""
    more = f", ... ({len(names) - first} more)" if len(names) > first else ""
    return ", ".join(names[:first]) + more
