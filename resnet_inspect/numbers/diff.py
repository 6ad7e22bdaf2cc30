"""Two analysed networks side by side: totals, the stem, every block field, stage costs and the
state-dict names. Pure functions over records, costs and receptive fields."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..records import types as records
from ..records.types import BlockRecord, NetRecord, StemRecord
from .costs import Costs
from .fields import FieldReport

# What differs between two blocks or stems: every public field but the position and the
# first-3x3 dilation (`dilations` holds it).
BLOCK_FIELDS = tuple(f for f in records.BLOCK_FIELDS if f not in ("name", "stage", "index", "dilation"))
STEM_FIELDS = tuple(f for f in records.STEM_FIELDS if f != "in_ch")


def _number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Metric:
    """One number on both sides."""

    name: str
    a: Any
    b: Any

    @property
    def delta(self) -> Any:
        """b - a for numbers, None otherwise."""
        return self.b - self.a if _number(self.a) and _number(self.b) else None

    @property
    def ratio(self) -> float | None:
        """b / a for numbers, None otherwise (or when a is 0)."""
        if _number(self.a) and _number(self.b) and self.a:
            return float(Fraction(self.b, self.a))
        return None

    @property
    def changed(self) -> bool:
        """Whether the two sides differ."""
        return self.a != self.b


@dataclass(frozen=True)
class BlockDiff:
    """A block position: on both sides (with every field), or on one side only."""

    name: str
    status: str  # "same", "changed", "only_a", "only_b"
    fields: tuple[Metric, ...]  # every compared field (status only_*: that side's values)


@dataclass(frozen=True)
class StageDiff:
    """A stage: its costs on both sides and its blocks aligned by index."""

    name: str
    params: Metric
    macs: Metric
    output: Metric
    blocks: tuple[BlockDiff, ...]

    @property
    def changed(self) -> bool:
        """Whether anything in the stage differs."""
        return any(m.changed for m in (self.params, self.macs, self.output)) or any(
            b.status != "same" for b in self.blocks
        )


@dataclass(frozen=True)
class StateDiff:
    """State-dict names (parameters and buffers) for porting weights from A to B."""

    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    reshaped: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
    common: int


@dataclass(frozen=True)
class Diff:
    """Everything `diff` reports."""

    a: str
    b: str
    input: tuple[int, int]
    summary: tuple[Metric, ...]
    stem: tuple[Metric, ...]
    stages: tuple[StageDiff, ...]
    state: StateDiff

    @property
    def identical(self) -> bool:
        """Same structure, numbers and state-dict names and shapes."""
        return (
            not any(m.changed for m in (*self.summary, *self.stem))
            and not any(s.changed for s in self.stages)
            and not (self.state.only_a or self.state.only_b or self.state.reshaped)
        )


def _value(obj: object, field: str) -> Any:
    if field == "downsample" and isinstance(obj, BlockRecord):
        return obj.shortcut_layers
    return getattr(obj, field)


def _block_fields(
    block: BlockRecord, costs: Costs, other: BlockRecord | None = None, other_costs: Costs | None = None
) -> tuple[Metric, ...]:
    output = {b.name: b.output for b in costs.blocks}[block.name]
    if other is None:
        return tuple(Metric(f, _value(block, f), None) for f in BLOCK_FIELDS) + (Metric("output", output, None),)
    assert other_costs is not None
    other_output = {b.name: b.output for b in other_costs.blocks}[other.name]
    return tuple(Metric(f, _value(block, f), _value(other, f)) for f in BLOCK_FIELDS) + (
        Metric("output", output, other_output),
    )


def _stage(name: str, ra: NetRecord, ca: Costs, rb: NetRecord, cb: Costs) -> StageDiff:
    blocks_a = ra.stage_blocks().get(name, ())
    blocks_b = rb.stage_blocks().get(name, ())
    rows: list[BlockDiff] = []
    for index in range(max(len(blocks_a), len(blocks_b))):
        if index >= len(blocks_b):
            block = blocks_a[index]
            rows.append(BlockDiff(block.name, "only_a", _block_fields(block, ca)))
        elif index >= len(blocks_a):
            block = blocks_b[index]
            flipped = tuple(Metric(m.name, None, m.a) for m in _block_fields(block, cb))
            rows.append(BlockDiff(block.name, "only_b", flipped))
        else:
            fields = _block_fields(blocks_a[index], ca, blocks_b[index], cb)
            status = "changed" if any(m.changed for m in fields) else "same"
            rows.append(BlockDiff(blocks_a[index].name, status, fields))
    return _stage_totals(name, ca, cb, tuple(rows))


def _stage_totals(name: str, ca: Costs, cb: Costs, blocks: tuple[BlockDiff, ...]) -> StageDiff:
    stage_a = next((s for s in ca.stages if s.name == name), None)
    stage_b = next((s for s in cb.stages if s.name == name), None)
    return StageDiff(
        name,
        Metric("params", stage_a.params if stage_a else 0, stage_b.params if stage_b else 0),
        Metric("macs", stage_a.macs if stage_a else 0, stage_b.macs if stage_b else 0),
        Metric("output", stage_a.output if stage_a else None, stage_b.output if stage_b else None),
        blocks,
    )


def _stem(a: StemRecord, b: StemRecord) -> tuple[Metric, ...]:
    return tuple(Metric(f, getattr(a, f), getattr(b, f)) for f in STEM_FIELDS)


def state_diff(a: NetRecord, b: NetRecord) -> StateDiff:
    """Names only in A, only in B, and in both with different shapes."""
    shapes_a, shapes_b = dict(a.state), dict(b.state)
    return StateDiff(
        only_a=tuple(n for n in shapes_a if n not in shapes_b),
        only_b=tuple(n for n in shapes_b if n not in shapes_a),
        reshaped=tuple((n, s, shapes_b[n]) for n, s in shapes_a.items() if n in shapes_b and s != shapes_b[n]),
        common=sum(1 for n in shapes_a if n in shapes_b),
    )


def diff(ra: NetRecord, ca: Costs, fa: FieldReport, rb: NetRecord, cb: Costs, fb: FieldReport) -> Diff:
    """A against B: totals, stem, stages and blocks, state-dict names."""
    last_a, last_b = fa.stages[-1], fb.stages[-1]
    summary = (
        Metric("params", ca.params, cb.params),
        Metric("macs", ca.macs, cb.macs),
        Metric("flops", ca.flops, cb.flops),
        Metric("activations", ca.activations, cb.activations),
        Metric("feature map", ca.trunk.output, cb.trunk.output),
        Metric("output stride", ca.output_stride, cb.output_stride),
        Metric("receptive field", last_a.size, last_b.size),
        Metric("receptive field jump", last_a.stride, last_b.stride),
        Metric("sees whole input", last_a.whole_input, last_b.whole_input),
    )
    names = list(dict.fromkeys([*ra.stages, *rb.stages]))
    stages = tuple(_stage(name, ra, ca, rb, cb) for name in names)
    head = _stage_totals("head", ca, cb, ())
    stem_a, stem_b = ca.stage("stem"), cb.stage("stem")
    stem = _stem(ra.stem, rb.stem) + (
        Metric("macs", stem_a.macs, stem_b.macs),
        Metric("output", stem_a.output, stem_b.output),
    )
    return Diff(ra.model, rb.model, ca.input, summary, stem, (*stages, head), state_diff(ra, rb))
