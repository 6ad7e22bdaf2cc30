"""Pure functions over records: costs (parameters, MACs, FLOPs, activations, shapes) at an input
size, and receptive fields. No modules, tensors or caches: the arithmetic of rules.py applied
along the network, so a 16384x16384 input costs what a 224x224 one does.

Conventions (docs/conventions.md):
- MACs: multiply-accumulates of convolutions and linear layers. This is what torchvision's model
  tables, fvcore, timm and the ResNet/ResNeXt papers call "FLOPs".
- FLOPs: 2 x MACs (torch.utils.flop_counter's convention).
- Activations: output elements of convolution and linear layers (fvcore's ActivationCountAnalysis);
  activation bytes = activations x the element size of the dtype.
- Receptive fields: Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
  Networks", Distill 2019, with dilation (effective kernel d(k-1)+1) and, at a residual sum, the
  union of what the two branches see.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import InspectError
from .rules import Field, Op, Shape, activations, macs, out_shape, rf_step
from .walker import BlockRecord, NetRecord


@dataclass(frozen=True)
class LayerCost:
    """One op at a given input: what it outputs and what it costs (per batch)."""

    name: str
    kind: str
    part: str  # stem, layer1.0, ..., head
    output: Shape
    params: int
    macs: int
    activations: int


@dataclass(frozen=True)
class PartCost:
    """A stage (stem, layer1..4, head) or a block: totals and the shape it hands on."""

    name: str
    params: int
    macs: int
    flops: int
    activations: int
    output: Shape
    stride: int  # cumulative stride at its output


@dataclass(frozen=True)
class Costs:
    """Every number of `flops` for one model at one input size and batch."""

    model: str
    input: tuple[int, int]
    batch: int
    output_stride: int
    params: int
    macs: int
    flops: int
    activations: int
    activation_bytes: int
    dtype: str
    stages: tuple[PartCost, ...]
    blocks: tuple[PartCost, ...]
    layers: tuple[LayerCost, ...]
    channels: int = 3  # of the input image


DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def _through(ops: Iterable[Op], shape: Shape, part: str, batch: int, label: str, in_hw: tuple[int, int]):
    rows: list[LayerCost] = []
    for op in ops:
        if op.kind == "linear":
            features = math.prod(shape)
            if features != op.in_ch:
                raise InspectError(
                    f"{label}: {op.name} expects {op.in_ch} features but receives {features} at "
                    f"{in_hw[0]}x{in_hw[1]}"
                )
        elif op.kind in ("conv", "bn") and shape[0] != op.in_ch:
            raise InspectError(f"{label}: {op.name} expects {op.in_ch} channels but receives {shape[0]}")
        new = out_shape(op, shape)
        if any(d < 1 for d in new[1:]):
            raise InspectError(
                f"input {in_hw[0]}x{in_hw[1]} is too small for {label}: {op.name} would produce "
                f"{new[1]}x{new[2]} from {shape[1]}x{shape[2]}"
            )
        rows.append(LayerCost(op.name, op.kind, part, new, op.params, macs(op, new) * batch,
                              activations(op, new) * batch))  # fmt: skip
        shape = new
    return shape, rows


def _part(name: str, rows: Sequence[LayerCost], params: int, output: Shape, stride: int) -> PartCost:
    total = sum(r.macs for r in rows)
    return PartCost(name, params, total, 2 * total, sum(r.activations for r in rows), output, stride)


def _stride(ops: Iterable[Op]) -> int:
    return math.prod(op.stride[0] for op in ops if op.is_window)


def check_input(height: int, width: int, batch: int = 1) -> None:
    """InspectError for a non-positive size or batch."""
    if height < 1 or width < 1:
        raise InspectError(f"input size must be positive, got {height}x{width}")
    if batch < 1:
        raise InspectError(f"batch must be at least 1, got {batch}")


def costs(record: NetRecord, height: int, width: int, batch: int = 1, dtype: str = "float32") -> Costs:
    """Parameters, MACs, FLOPs, activations and shapes of every layer, block and stage."""
    check_input(height, width, batch)
    if dtype not in DTYPE_BYTES:
        raise InspectError(f"unknown dtype {dtype!r}: {', '.join(DTYPE_BYTES)}")
    label, hw = record.model, (height, width)
    shape: Shape = (record.stem.in_ch, height, width)
    shape, stem_rows = _through(record.stem.ops, shape, "stem", batch, label, hw)
    stride = record.stem.stride
    stages = [_part("stem", stem_rows, record.stem.params, shape, stride)]
    layers, blocks = list(stem_rows), []
    for stage in record.stages:
        shape, stride, stage_part, block_parts, rows = _stage_through(record, stage, shape, stride, batch, hw)
        stages.append(stage_part)
        blocks += block_parts
        layers += rows
    shape, head_rows = _through(record.head, shape, "head", batch, label, hw)
    stages.append(_part("head", head_rows, sum(op.params for op in record.head), shape, stride))
    layers += head_rows
    total = sum(r.macs for r in layers)
    acts = sum(r.activations for r in layers)
    trunk_stride = stages[-2].stride
    return Costs(
        model=record.model, input=hw, batch=batch, output_stride=trunk_stride, params=record.params,
        macs=total, flops=2 * total, activations=acts, activation_bytes=acts * DTYPE_BYTES[dtype],
        dtype=dtype, stages=tuple(stages), blocks=tuple(blocks), layers=tuple(layers),
        channels=record.stem.in_ch,
    )  # fmt: skip


def _stage_through(record: NetRecord, stage: str, shape: Shape, stride: int, batch: int,
                   hw: tuple[int, int]) -> tuple[Shape, int, PartCost, list[PartCost], list[LayerCost]]:  # fmt: skip
    """One stage's blocks from `shape`: the shape and stride it hands on, its cost, its blocks'."""
    rows: list[LayerCost] = []
    blocks: list[PartCost] = []
    stage_blocks = [b for b in record.blocks if b.stage == stage]
    for block in stage_blocks:
        main, main_rows = _through(block.main, shape, block.name, batch, record.model, hw)
        short, short_rows = _through(block.shortcut, shape, block.name, batch, record.model, hw)
        if main != short:
            raise InspectError(
                f"input {hw[0]}x{hw[1]}: {block.name}'s branches disagree ({_fmt(main)} vs "
                f"{_fmt(short)}); the module would fail in forward"
            )
        shape, stride = main, stride * block.stride
        blocks.append(_part(block.name, main_rows + short_rows, block.params, shape, stride))
        rows += main_rows + short_rows
    part = _part(stage, rows, sum(b.params for b in stage_blocks), shape, stride)
    return shape, stride, part, blocks, rows


def _fmt(shape: Shape) -> str:
    return "x".join(map(str, shape))


# -- receptive fields ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRow:
    """Receptive field of the units at a block's or stage's output (vertical axis)."""

    name: str
    size: int
    stride: int  # the jump: input pixels between neighbouring units
    padding: int  # effective padding: how far unit 0's field starts before pixel 0
    center: int | float  # centre of unit 0's field in input coordinates
    aligned: bool  # the residual branches have the same jump and the same centre
    main_size: int  # the residual branch alone
    shortcut_size: int  # the shortcut branch alone (= the block input's for an identity)


@dataclass(frozen=True)
class FieldReport:
    """Receptive fields of a model: after the stem, every block and every stage."""

    model: str
    output_stride: int
    stem: FieldRow
    blocks: tuple[FieldRow, ...]
    stages: tuple[FieldRow, ...]


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def _row(name: str, field: Field, aligned: bool, main: Field, short: Field) -> FieldRow:
    return FieldRow(name, field.size, field.jump, field.padding, _number(field.center), aligned,
                    main.size, short.size)  # fmt: skip


def _fields(ops: Iterable[Op], field: Field, axis: int) -> Field:
    for op in ops:
        try:
            field = rf_step(op, field, axis)
        except ValueError as error:
            raise InspectError(f"{op.name}: {error}") from None
    return field


def block_field(block: BlockRecord, field: Field, axis: int = 0) -> tuple[Field, Field, Field]:
    """The fields of a block's output, its main branch and its shortcut, from its input's."""
    main = _fields(block.main, field, axis)
    short = _fields(block.shortcut, field, axis)
    return main.union(short), main, short


def receptive_fields(record: NetRecord, axis: int = 0) -> FieldReport:
    """Theoretical receptive field, jump, effective padding and centre after every block and stage."""
    field = _fields(record.stem.ops, Field(1, 1, 0), axis)
    stem = _row("stem", field, True, field, field)
    blocks: list[FieldRow] = []
    stages: list[FieldRow] = []
    for stage in record.stages:
        stage_aligned = True
        for block in (b for b in record.blocks if b.stage == stage):
            field, main, short = block_field(block, field, axis)
            aligned = main.jump == short.jump and main.center == short.center
            stage_aligned &= aligned
            blocks.append(_row(block.name, field, aligned, main, short))
        last = blocks[-1]
        stages.append(FieldRow(stage, last.size, last.stride, last.padding, last.center, stage_aligned,
                               last.main_size, last.shortcut_size))  # fmt: skip
    return FieldReport(record.model, field.jump, stem, tuple(blocks), tuple(stages))


def parse_input(text: str) -> tuple[int, int]:
    """'224' -> (224, 224); '512x1024' -> (512, 1024) as height x width."""
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise InspectError(
            f"input size must be N or HxW with positive integers (e.g. 224, 512x1024), got {text!r}"
        )
    height, width = int(parts[0]), int(parts[-1])
    check_input(height, width)
    return height, width


def peak_activation_elements(costs: Costs) -> int:
    """An upper bound on the activation elements alive at once in an inference forward pass.

    Under no_grad a part (the stem, one block, the head) holds its input while it runs and, at
    worst, every tensor its layers produce; the largest part bounds the whole pass."""
    per_part: dict[str, int] = {}
    for row in costs.layers:
        per_part[row.part] = per_part.get(row.part, 0) + math.prod(row.output)
    peak, previous = 0, (costs.channels, *costs.input)
    parts = [("stem", costs.stages[0].output), *((b.name, b.output) for b in costs.blocks),
             ("head", costs.stages[-1].output)]  # fmt: skip
    for name, output in parts:
        peak = max(peak, math.prod(previous) + per_part.get(name, 0))
        previous = output
    return peak * costs.batch


# -- detection: a backbone split into a shared base and a per-RoI head ------------------------------


@dataclass(frozen=True)
class SplitCosts:
    """Faster R-CNN's view of a backbone (seed 002): the base runs once on the image, the head once
    per RoI on `roi_size` x `roi_size` pooled features of the base (C4), or there is no head (C5)."""

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

    @property
    def head_macs(self) -> int:
        """MACs of the head for every RoI of every image."""
        return self.head_per_roi.macs * self.rois * self.batch if self.head_per_roi else 0

    @property
    def macs(self) -> int:
        """Base plus head."""
        return self.base.macs + self.head_macs


def split_costs(record: NetRecord, height: int, width: int, split: str = "c4", rois: int = 300,
                roi_size: int = 7, batch: int = 1) -> SplitCosts:  # fmt: skip
    """Base (stem and every stage but the last for C4, every stage for C5) at the image size, and
    the last stage on one RoI's pooled features (C4)."""
    if split not in ("c4", "c5"):
        raise InspectError(f"--split is c4 or c5, not {split!r}")
    if rois < 1:
        raise InspectError(f"--rois must be at least 1, got {rois}")
    if roi_size < 1:
        raise InspectError(f"--roi-size must be at least 1, got {roi_size}")
    full = costs(record, height, width, batch)
    stages = record.stages
    base_stages = stages[:-1] if split == "c4" else stages
    if not base_stages:
        raise InspectError(f"{record.model} has one stage: nothing is left for a C4 base")
    parts = {p.name: p for p in full.stages}
    last = parts[base_stages[-1]]
    base = PartCost(
        "base", record.stem.params + sum(parts[s].params for s in base_stages),
        parts["stem"].macs + sum(parts[s].macs for s in base_stages),
        parts["stem"].flops + sum(parts[s].flops for s in base_stages),
        parts["stem"].activations + sum(parts[s].activations for s in base_stages),
        last.output, last.stride,
    )  # fmt: skip
    head = None
    if split == "c4":
        roi_shape: Shape = (last.output[0], roi_size, roi_size)
        *_, head, _, _ = _stage_through(record, stages[-1], roi_shape, 1, 1, (roi_size, roi_size))
    return SplitCosts(record.model, split, (height, width), batch, tuple(base_stages), base,
                      (stages[-1],) if split == "c4" else (), roi_size, rois, head)  # fmt: skip


@dataclass(frozen=True)
class Freeze:
    """detectron2's freeze_at: 0 freezes nothing, 1 the stem, 2 the stem and layer1, and so on."""

    freeze_at: int
    frozen_parts: tuple[str, ...]
    frozen_params: int
    trainable_params: int
    bn_layers: int  # every batch norm of the model
    bn_params: int  # their weights and biases
    bn_params_trainable: int  # those outside the frozen parts (frozen too where BN is frozen, the usual)


def freeze(record: NetRecord, freeze_at: int) -> Freeze:
    """Frozen and trainable parameters at `freeze_at`, and the batch norms."""
    parts = ("stem", *record.stages)
    if not 0 <= freeze_at <= len(parts):
        raise InspectError(f"--freeze-at must be 0 to {len(parts)} (detectron2: 0 none, 1 stem, 2 stem + layer1, ...)")
    frozen = parts[:freeze_at]
    ops_by_part: dict[str, list[Op]] = {"stem": list(record.stem.ops), "head": list(record.head)}
    params = {"stem": record.stem.params, "head": sum(op.params for op in record.head)}
    for block in record.blocks:
        ops_by_part.setdefault(block.stage, []).extend(block.main + block.shortcut)
        params[block.stage] = params.get(block.stage, 0) + block.params
    bn = {part: [op for op in ops if op.kind == "bn"] for part, ops in ops_by_part.items()}
    frozen_params = sum(params[p] for p in frozen)
    return Freeze(
        freeze_at=freeze_at,
        frozen_parts=frozen,
        frozen_params=frozen_params,
        trainable_params=record.params - frozen_params,
        bn_layers=sum(len(ops) for ops in bn.values()),
        bn_params=sum(op.params for ops in bn.values() for op in ops),
        bn_params_trainable=sum(op.params for part, ops in bn.items() if part not in frozen for op in ops),
    )
