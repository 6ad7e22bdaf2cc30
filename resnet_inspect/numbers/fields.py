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


@dataclass(frozen=True)
class Coverage:
    """What the centre unit of a stage's feature map sees of one input image (docs/conventions.md):
    its theoretical field as a box of input pixels, and that box clipped to the image."""

    name: str
    input: tuple[int, int]  # the image, height x width
    feature: tuple[int, int]  # the stage's feature map, height x width
    unit: tuple[int, int]  # the centre unit: ((H - 1) // 2, (W - 1) // 2)
    box: tuple[int, int, int, int]  # top, left, bottom, right input pixels of its field (may pass the borders;
    # the whole image when a global pool or attention lies on the path)
    clipped: tuple[int, int, int, int]  # the box intersected with the image
    whole_input: bool = False  # a global pool or attention on the path: the unit sees every pixel

    @property
    def covered(self) -> tuple[int, int]:
        """Height and width, in pixels, of the image the field covers."""
        top, left, bottom, right = self.clipped
        return max(0, bottom - top + 1), max(0, right - left + 1)

    @property
    def image_fraction(self) -> float:
        """The share of the image's pixels the field covers."""
        h, w = self.covered
        return h * w / (self.input[0] * self.input[1])

    @property
    def inside_fraction(self) -> float:
        """The share of the field's pixels that lie on the image (the rest is padding)."""
        top, left, bottom, right = self.box
        h, w = self.covered
        return h * w / ((bottom - top + 1) * (right - left + 1))


def coverage(record: NetRecord, maps: dict[str, tuple[int, int]], height: int, width: int) -> tuple[Coverage, ...]:
    """The centre unit of the stem's and every stage's feature map (`maps`: name -> height x width at
    this input) and how much of a `height` x `width` image its theoretical field covers."""
    per_axis = [receptive_fields(record, axis) for axis in (0, 1)]
    out = []
    for rows in zip((per_axis[0].stem, *per_axis[0].stages), (per_axis[1].stem, *per_axis[1].stages)):
        feature = maps[rows[0].name]
        unit = ((feature[0] - 1) // 2, (feature[1] - 1) // 2)
        first = [unit[a] * rows[a].stride - rows[a].padding for a in (0, 1)]
        last = [first[a] + rows[a].size - 1 for a in (0, 1)]
        box = (first[0], first[1], last[0], last[1])
        whole_input = rows[0].whole_input or rows[1].whole_input
        if whole_input:  # every pixel of the image, and nothing else
            box = (0, 0, height - 1, width - 1)
        clipped = (max(box[0], 0), max(box[1], 0), min(box[2], height - 1), min(box[3], width - 1))
        out.append(Coverage(rows[0].name, (height, width), feature, unit, box, clipped, whole_input))
    return tuple(out)
