"""Costs over records: parameters, MACs, FLOPs, activations and shapes of every layer, block and stage
at an input size. Pure functions; no modules, tensors or caches: the rules of rules.py applied along
the network, so a 16384x16384 input costs what a 224x224 one does. Conventions: rules.py.

An op no rule describes ("probed") is counted by a `Probe` the caller may pass (the API passes one
that runs a meta-tensor forward of that module alone); without one, or when it cannot run, the op is
listed in `Costs.uncounted` and every total is a lower bound (`Costs.complete` is False).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import InspectError
from ..records.types import BlockRecord, NetRecord, Op
from .rules import FLOPS_PER_MAC, Shape, rule
from .sizes import check_input

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


@dataclass(frozen=True)
class Probed:
    """What a probe measured for one op at one input shape (per sample)."""

    output: Shape
    macs: int
    activations: int


Probe = Callable[[Op, Shape], "Probed | None"]


@dataclass(frozen=True)
class Uncounted:
    """A module whose work is missing from the totals, and why."""

    module: str
    kind: str  # its class
    reason: str


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
    uncounted: tuple[Uncounted, ...] = ()
    notes: tuple[str, ...] = ()  # how the numbers were obtained, where not by the rules alone

    @property
    def complete(self) -> bool:
        """Every layer's work is in the totals (otherwise they are lower bounds)."""
        return not self.uncounted

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


@dataclass
class _Pass:
    """One pass through a network at one input: what every op needs to know, and what was missed."""

    label: str
    size: tuple[int, int]
    batch: int
    probe: Probe | None
    uncounted: list[Uncounted] = field(default_factory=list)

    def through(self, ops: Iterable[Op], shape: Shape, part: str) -> tuple[Shape, list[LayerCost]]:
        """Every op from `shape` on: the shape handed on, and a LayerCost per op."""
        rows: list[LayerCost] = []
        for op in ops:
            new, macs, acts = self.probed(op, shape) if op.kind == "probed" else self.ruled(op, shape)
            rows.append(LayerCost(op.name, op.kind, part, new, op.params, macs * self.batch, acts * self.batch))
            shape = new
        return shape, rows

    def ruled(self, op: Op, shape: Shape) -> tuple[Shape, int, int]:
        step = rule(op)
        problem = step.accepts(op, shape)
        h, w = self.size
        if problem:
            raise InspectError(f"{self.label}: {op.name} {problem} at {h}x{w}")
        new = step.shape(op, shape)
        if any(d < 1 for d in new[1:]):
            raise InspectError(
                f"{h}x{w} is too small for {self.label}: {op.name} would produce {new[1]}x{new[2]} from "
                f"{shape[1]}x{shape[2]}",
                "input",
            )
        return new, step.macs(op, shape, new), step.activations(op, shape, new)

    def probed(self, op: Op, shape: Shape) -> tuple[Shape, int, int]:
        result = self.probe(op, shape) if self.probe else None
        if result is None:
            reason = "no rule describes it and it could not be run alone" if self.probe else "no rule describes it"
            self.uncounted.append(Uncounted(op.name, op.module, reason))
            return shape, 0, 0  # its output shape is taken to be its input's
        return result.output, result.macs, result.activations

    def stage(self, blocks: Sequence[BlockRecord], shape: Shape, stride: int):
        """One stage's blocks from `shape`: the shape and stride it hands on, its blocks' costs, its layers'."""
        rows: list[LayerCost] = []
        parts: list[PartCost] = []
        for block in blocks:
            main, main_rows = self.through(block.main, shape, block.name)
            short, short_rows = self.through(block.shortcut, shape, block.name)
            if main != short:
                h, w = self.size
                raise InspectError(
                    f"{h}x{w}: {block.name}'s branches disagree ({'x'.join(map(str, main))} vs "
                    f"{'x'.join(map(str, short))}); the module would fail in forward",
                    "input",
                )
            shape, stride = main, stride * block.stride
            parts.append(_part(block.name, main_rows + short_rows, block.params, shape, stride))
            rows += main_rows + short_rows
        return shape, stride, parts, rows


def _part(name: str, rows: Sequence[LayerCost], params: int, output: Shape, stride: int) -> PartCost:
    return PartCost(name, params, sum(r.macs for r in rows), sum(r.activations for r in rows), output, stride)


def check_dtype(dtype: str) -> None:
    """InspectError for a dtype this tool does not size."""
    if dtype not in DTYPE_BYTES:
        raise InspectError(f"must be one of {', '.join(DTYPE_BYTES)}, not {dtype!r}", "dtype")


def costs(
    record: NetRecord, height: int, width: int, batch: int = 1, dtype: str = "float32", probe: Probe | None = None
) -> Costs:
    """Parameters, MACs, FLOPs, activations and shapes of every layer, block and stage."""
    check_input(height, width, batch)
    check_dtype(dtype)
    run = _Pass(record.model, (height, width), batch, probe)
    shape, stem_rows = run.through(record.stem.ops, (record.stem.in_ch, height, width), "stem")
    stride = record.stem.stride
    stages = [_part("stem", stem_rows, record.stem.params, shape, stride)]
    layers, blocks = list(stem_rows), []
    for stage, stage_blocks in record.stage_blocks().items():
        shape, stride, block_parts, rows = run.stage(stage_blocks, shape, stride)
        stages.append(_part(stage, rows, sum(b.params for b in stage_blocks), shape, stride))
        blocks += block_parts
        layers += rows
    shape, head_rows = run.through(record.head, shape, "head")
    stages.append(_part("head", head_rows, record.head_params, shape, stride))
    layers += head_rows
    return Costs(
        model=record.model,
        input=(height, width),
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
        uncounted=tuple(run.uncounted),
    )


def stage_through(
    label: str,
    blocks: Sequence[BlockRecord],
    shape: Shape,
    stride: int,
    batch: int,
    size: tuple[int, int],
    probe: Probe | None = None,
) -> tuple[Shape, int, list[PartCost], list[LayerCost]]:
    """One stage's blocks from `shape` (a RoI's pooled features, say): the shape and stride it hands
    on, its blocks' costs, its layers'."""
    return _Pass(label, size, batch, probe).stage(blocks, shape, stride)


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
