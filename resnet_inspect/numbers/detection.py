"""The detection view of a backbone (seed 002): Faster R-CNN's split into a base that runs once per
image and a head that runs once per RoI, and detectron2's freeze_at. Pure functions over records."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InspectError
from ..records.types import NetRecord
from .costs import PartCost, Probe, costs, stage_through
from .rules import FLOPS_PER_MAC, Shape

SPLITS = ("c4", "c5")


@dataclass(frozen=True)
class SplitCosts:
    """Faster R-CNN's view of a backbone: the base runs once on the image, the head once per RoI on
    `roi_size` x `roi_size` pooled features of the base (C4), or there is no head (C5)."""

    model: str
    split: str  # "c4" or "c5"
    input: tuple[int, int]
    batch: int
    base_stages: tuple[str, ...]
    base: PartCost  # params, MACs per batch, output shape and stride of the base
    head_stages: tuple[str, ...]
    roi_size: int
    rois: int  # per image
    head_per_roi: PartCost | None  # one RoI: params, MACs, output shape (stride relative to the RoI)
    base_parts: tuple[PartCost, ...] = ()  # the stem and each base stage, per batch
    base_blocks: tuple[PartCost, ...] = ()  # each block of the base stages, per batch
    head_blocks: tuple[PartCost, ...] = ()  # each block of the head, per RoI

    @property
    def head_runs(self) -> int:
        """How many times the head runs: once per RoI of every image."""
        return self.rois * self.batch if self.head_per_roi else 0

    @property
    def head_activations(self) -> int:
        """Activations of the head for every RoI of every image."""
        return self.head_per_roi.activations * self.head_runs if self.head_per_roi else 0

    @property
    def activations(self) -> int:
        """Base plus head."""
        return self.base.activations + self.head_activations

    @property
    def head_macs(self) -> int:
        """MACs of the head for every RoI of every image."""
        return self.head_per_roi.macs * self.rois * self.batch if self.head_per_roi else 0

    @property
    def head_flops(self) -> int:
        """2 x the head's MACs."""
        return FLOPS_PER_MAC * self.head_macs

    @property
    def macs(self) -> int:
        """Base plus head."""
        return self.base.macs + self.head_macs

    @property
    def flops(self) -> int:
        """2 x MACs."""
        return FLOPS_PER_MAC * self.macs

    @property
    def params(self) -> int:
        """Base plus head (the classifier belongs to neither)."""
        return self.base.params + (self.head_per_roi.params if self.head_per_roi else 0)


def split_costs(
    record: NetRecord,
    height: int,
    width: int,
    split: str = "c4",
    rois: int = 300,
    roi_size: int = 7,
    batch: int = 1,
    probe: Probe | None = None,
) -> SplitCosts:
    """Base (stem and every stage but the last for C4, every stage for C5) at the image size, and
    the last stage on one RoI's pooled features (C4)."""
    if split not in SPLITS:
        raise InspectError(f"must be c4 or c5, not {split!r}", "split")
    if not 1 <= rois <= 100_000:
        raise InspectError(f"must be 1 to 100000, got {rois}", "rois")
    if not 1 <= roi_size <= 1024:
        raise InspectError(f"must be 1 to 1024, got {roi_size}", "roi_size")
    full = costs(record, height, width, batch, probe=probe)
    stages = record.stages
    base_stages = stages[:-1] if split == "c4" else stages
    if not base_stages:
        raise InspectError(f"{record.model} has one stage: nothing is left for a C4 base", "split")
    parts = [full.stage(name) for name in ("stem", *base_stages)]
    last = parts[-1]
    base = PartCost(
        "base",
        sum(p.params for p in parts),
        sum(p.macs for p in parts),
        sum(p.activations for p in parts),
        last.output,
        last.stride,
    )
    stage_of = {b.name: b.stage for b in record.blocks}
    head, head_blocks = None, []
    if split == "c4":
        blocks = record.stage_blocks()[stages[-1]]
        roi: Shape = (last.output[0], roi_size, roi_size)
        shape, stride, head_blocks, rows = stage_through(record.model, blocks, roi, 1, 1, (roi_size, roi_size), probe)
        head = PartCost(
            stages[-1],
            sum(b.params for b in blocks),
            sum(r.macs for r in rows),
            sum(r.activations for r in rows),
            shape,
            stride,
        )
    return SplitCosts(
        record.model,
        split,
        (height, width),
        batch,
        tuple(base_stages),
        base,
        (stages[-1],) if split == "c4" else (),
        roi_size,
        rois,
        head,
        tuple(parts),
        tuple(b for b in full.blocks if stage_of[b.name] in base_stages),
        tuple(head_blocks),
    )


@dataclass(frozen=True)
class Freeze:
    """detectron2's freeze_at on a backbone: 0 freezes nothing, 1 the stem, 2 the stem and layer1, and
    so on. The backbone is the stem and the stages; the classifier (head) is not part of it."""

    freeze_at: int
    frozen_parts: tuple[str, ...]
    frozen_params: int
    trainable_params: int  # backbone parameters outside the frozen parts
    bn_layers: int  # every batch norm of the backbone
    bn_params: int  # their weights and biases
    bn_params_trainable: int  # those outside the frozen parts (frozen too where BN is frozen, the usual)
    backbone_params: int = 0  # stem + stages = frozen + trainable
    head_params: int = 0  # the classifier's, in neither count

    @property
    def trainable_with_frozen_bn(self) -> int:
        """Trainable parameters when every batch norm is frozen (FrozenBatchNorm2d, detection's usual)."""
        return self.trainable_params - self.bn_params_trainable


def freeze(record: NetRecord, freeze_at: int) -> Freeze:
    """Frozen and trainable backbone parameters at `freeze_at`, and the backbone's batch norms."""
    parts = ("stem", *record.stages)
    if not 0 <= freeze_at <= len(parts):
        raise InspectError(
            f"must be 0 to {len(parts)} (detectron2: 0 none, 1 stem, 2 stem + layer1, ...), got {freeze_at}",
            "freeze_at",
        )
    frozen = parts[:freeze_at]
    ops_by_part = {"stem": list(record.stem.ops)}
    params = {"stem": record.stem.params}
    for stage, blocks in record.stage_blocks().items():
        ops_by_part[stage] = [op for b in blocks for op in (*b.main, *b.shortcut)]
        params[stage] = sum(b.params for b in blocks)
    bn = {part: [op for op in ops if op.kind in ("bn", "frozen_bn")] for part, ops in ops_by_part.items()}
    frozen_params = sum(params[p] for p in frozen)
    backbone = sum(params.values())
    return Freeze(
        freeze_at=freeze_at,
        frozen_parts=frozen,
        frozen_params=frozen_params,
        trainable_params=backbone - frozen_params,
        bn_layers=sum(len(ops) for ops in bn.values()),
        bn_params=sum(op.params for ops in bn.values() for op in ops),
        bn_params_trainable=sum(op.params for part, ops in bn.items() if part not in frozen for op in ops),
        backbone_params=backbone,
        head_params=record.head_params,
    )
