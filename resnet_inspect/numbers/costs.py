"""Costs over records: parameters, MACs, FLOPs, activations and shapes of every layer, block and stage
at an input size. Pure functions; no modules, tensors or caches: the rules of rules.py applied along
the network, so a 16384x16384 input costs what a 224x224 one does. Conventions: rules.py."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import InspectError
from ..records.types import BlockRecord, NetRecord, Op
from .rules import FLOPS_PER_MAC, Shape, rule
from .sizes import check_input

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


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
    activations: int
    output: Shape
    stride: int  # cumulative stride at its output

    @property
    def flops(self) -> int:
        """2 x MACs."""
        return FLOPS_PER_MAC * self.macs


@dataclass(frozen=True)
class Costs:
    """Every number of `flops` for one model at one input size and batch."""

    model: str
    input: tuple[int, int]
    batch: int
    output_stride: int
    params: int
    macs: int
    activations: int
    dtype: str
    stages: tuple[PartCost, ...]  # stem, the stages, head
    blocks: tuple[PartCost, ...]
    layers: tuple[LayerCost, ...]
    channels: int = 3  # of the input image

    @property
    def flops(self) -> int:
        """2 x MACs."""
        return FLOPS_PER_MAC * self.macs

    @property
    def activation_bytes(self) -> int:
        """Activations x the dtype's element size."""
        return self.activations * DTYPE_BYTES[self.dtype]

    @property
    def trunk(self) -> PartCost:
        """The last stage before the head: the final feature map."""
        return self.stages[-2] if len(self.stages) > 1 else self.stages[-1]

    def stage(self, name: str) -> PartCost:
        """The stage called `name` (stem, layer1, ..., head)."""
        return next(part for part in self.stages if part.name == name)


def _through(ops: Iterable[Op], shape: Shape, part: str, batch: int, label: str, hw: tuple[int, int]):
    """Every op from `shape` on: the shape handed on, and a LayerCost per op."""
    rows: list[LayerCost] = []
    for op in ops:
        step = rule(op)
        problem = step.accepts(op, shape)
        if problem:
            raise InspectError(f"{label}: {op.name} {problem} at {hw[0]}x{hw[1]}")
        new = step.shape(op, shape)
        if any(d < 1 for d in new[1:]):
            raise InspectError(
                f"{hw[0]}x{hw[1]} is too small for {label}: {op.name} would produce {new[1]}x{new[2]} from "
                f"{shape[1]}x{shape[2]}",
                "input",
            )
        macs, acts = step.macs(op, shape, new), step.activations(op, new)
        rows.append(LayerCost(op.name, op.kind, part, new, op.params, macs * batch, acts * batch))
        shape = new
    return shape, rows


def _part(name: str, rows: Sequence[LayerCost], params: int, output: Shape, stride: int) -> PartCost:
    return PartCost(name, params, sum(r.macs for r in rows), sum(r.activations for r in rows), output, stride)


def check_dtype(dtype: str) -> None:
    """InspectError for a dtype this tool does not size."""
    if dtype not in DTYPE_BYTES:
        raise InspectError(f"must be one of {', '.join(DTYPE_BYTES)}, not {dtype!r}", "dtype")


def costs(record: NetRecord, height: int, width: int, batch: int = 1, dtype: str = "float32") -> Costs:
    """Parameters, MACs, FLOPs, activations and shapes of every layer, block and stage."""
    check_input(height, width, batch)
    check_dtype(dtype)
    label, hw = record.model, (height, width)
    shape, stem_rows = _through(record.stem.ops, (record.stem.in_ch, height, width), "stem", batch, label, hw)
    stride = record.stem.stride
    stages = [_part("stem", stem_rows, record.stem.params, shape, stride)]
    layers, blocks = list(stem_rows), []
    for stage, stage_blocks in record.stage_blocks().items():
        shape, stride, block_parts, rows = stage_through(label, stage_blocks, shape, stride, batch, hw)
        stages.append(_part(stage, rows, sum(b.params for b in stage_blocks), shape, stride))
        blocks += block_parts
        layers += rows
    shape, head_rows = _through(record.head, shape, "head", batch, label, hw)
    stages.append(_part("head", head_rows, record.head_params, shape, stride))
    layers += head_rows
    return Costs(
        model=record.model,
        input=hw,
        batch=batch,
        output_stride=stride,
        params=record.params,
        macs=sum(r.macs for r in layers),
        activations=sum(r.activations for r in layers),
        dtype=dtype,
        stages=tuple(stages),
        blocks=tuple(blocks),
        layers=tuple(layers),
        channels=record.stem.in_ch,
    )


def stage_through(
    label: str, blocks: Sequence[BlockRecord], shape: Shape, stride: int, batch: int, hw: tuple[int, int]
) -> tuple[Shape, int, list[PartCost], list[LayerCost]]:
    """One stage's blocks from `shape`: the shape and stride it hands on, its blocks' costs, its layers'."""
    rows: list[LayerCost] = []
    parts: list[PartCost] = []
    for block in blocks:
        main, main_rows = _through(block.main, shape, block.name, batch, label, hw)
        short, short_rows = _through(block.shortcut, shape, block.name, batch, label, hw)
        if main != short:
            raise InspectError(
                f"{hw[0]}x{hw[1]}: {block.name}'s branches disagree ({'x'.join(map(str, main))} vs "
                f"{'x'.join(map(str, short))}); the module would fail in forward",
                "input",
            )
        shape, stride = main, stride * block.stride
        parts.append(_part(block.name, main_rows + short_rows, block.params, shape, stride))
        rows += main_rows + short_rows
    return shape, stride, parts, rows


def peak_activation_elements(costs: Costs) -> int:
    """An upper bound on the activation elements alive at once in an inference forward pass.

    Under no_grad a part (the stem, one block, the head) holds its input while it runs and, at
    worst, every tensor its layers produce; the largest part bounds the whole pass."""
    per_part: dict[str, int] = {}
    for row in costs.layers:
        per_part[row.part] = per_part.get(row.part, 0) + math.prod(row.output)
    peak, previous = 0, (costs.channels, *costs.input)
    parts = [costs.stages[0], *costs.blocks, costs.stages[-1]]
    for part in parts:
        peak = max(peak, math.prod(previous) + per_part.get(part.name, 0))
        previous = part.output
    return peak * costs.batch
