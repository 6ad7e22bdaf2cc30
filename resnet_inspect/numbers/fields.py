"""Receptive fields over records (Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional
Neural Networks", Distill 2019): each op's step comes from its rule; at a residual sum the field is
the union of what the two branches see. Pure functions; conventions in docs/conventions.md."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..errors import InspectError
from ..geometry import whole
from ..records.types import BlockRecord, NetRecord, Op
from .rules import Field, NeedsSize, rule


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
    whole_input: bool = False  # a global pool or attention lies on the path: every unit sees the whole input
    complete: bool = True  # False after a module no rule describes: the field may be larger


@dataclass(frozen=True)
class FieldReport:
    """Receptive fields of a model: after the stem, every block and every stage."""

    model: str
    output_stride: int
    stem: FieldRow
    blocks: tuple[FieldRow, ...]
    stages: tuple[FieldRow, ...]

    @property
    def complete(self) -> bool:
        """Every field is exact (no module without a rule on any path)."""
        return all(row.complete for row in (self.stem, *self.blocks))

    def stage(self, name: str) -> FieldRow:
        """The row of the stage called `name`."""
        for row in self.stages:
            if row.name == name:
                return row
        raise InspectError(f"must be one of {', '.join(r.name for r in self.stages)}, not {name!r}", "stage")


def _row(name: str, field: Field, aligned: bool, main: Field, short: Field) -> FieldRow:
    return FieldRow(
        name,
        field.size,
        field.jump,
        field.padding,
        whole(field.center),
        aligned,
        main.size,
        short.size,
        field.whole_input,
        field.known,
    )


def _fields(ops: Iterable[Op], field: Field, axis: int) -> Field:
    for op in ops:
        try:
            field = rule(op).field(op, field, axis, None)
        except NeedsSize as error:
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
    for stage, stage_blocks in record.stage_blocks().items():
        stage_aligned = True
        for block in stage_blocks:
            field, main, short = block_field(block, field, axis)
            aligned = main.jump == short.jump and main.center == short.center
            stage_aligned &= aligned
            blocks.append(_row(block.name, field, aligned, main, short))
        stages.append(replace(blocks[-1], name=stage, aligned=stage_aligned))
    return FieldReport(record.model, field.jump, stem, tuple(blocks), tuple(stages))
