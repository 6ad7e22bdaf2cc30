"""A Diff as a document. A change reads like `git diff --word-diff`: [-old-]{+new+}, red and green
where the terminal has colour."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .document import Column, Document, Paragraph, Styled, Table, count, note, plain
from .text import shape_text, size_text

if TYPE_CHECKING:
    from ..numbers.diff import BlockDiff, Diff, Metric, StageDiff

FIRST = 5  # names listed per state-dict section
SHAPES = ("output", "feature map")


def text(value: Any, name: str = "") -> str:
    """A field value as the tables print it: shapes as CxHxW, other tuples comma-separated."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return count(value)
    if isinstance(value, tuple):
        return shape_text(value) if name in SHAPES else ",".join(map(str, value))
    return str(value)


def word_diff(metric: Metric) -> tuple[Styled, ...]:
    """'[-a-]{+b+}' for a change, the value itself otherwise."""
    if not metric.changed:
        return (Styled(text(metric.a, metric.name)),)
    return (
        Styled(f"[-{text(metric.a, metric.name)}-]", "red"),
        Styled(f"{{+{text(metric.b, metric.name)}+}}", "green"),
    )


def _signed(n: int | None) -> str:
    return "" if n is None else (f"+{count(n)}" if n > 0 else count(n))


def _ratio(r: float | None) -> str:
    return "" if r is None else f"{r:.4f}x"


def identical_line(d: Diff) -> str:
    """The one line for two inputs that build the same network."""
    return (
        f"{d.a} and {d.b} are identical: same stem and blocks, same costs at {size_text(d.input)}, "
        "same receptive fields, same state-dict names and shapes"
    )


def _block_cell(block: BlockDiff, label_a: str, label_b: str) -> tuple[Styled, ...]:
    if block.status == "only_a":
        return (Styled(f"only in A ({label_a})", "red"),)
    if block.status == "only_b":
        return (Styled(f"only in B ({label_b})", "green"),)
    changes = [m for m in block.fields if m.changed]
    if not changes:
        return (Styled("=", "dim"),)
    pieces: list[Styled] = []
    for i, metric in enumerate(changes):
        pieces.append(Styled(("  " if i else "") + f"{metric.name} "))
        pieces += word_diff(metric)
    return tuple(pieces)


def _plain(cell: tuple[Styled, ...]) -> str:
    return "".join(piece.text for piece in cell)


def _collapse(rows: list[tuple[BlockDiff, tuple[Styled, ...]]]) -> list[tuple[str, tuple[Styled, ...]]]:
    """Consecutive blocks with the same change (or present on one side only) become one row."""
    out: list[tuple[str, tuple[Styled, ...]]] = []
    i = 0
    while i < len(rows):
        block, cell = rows[i]
        j = i
        while j + 1 < len(rows) and rows[j + 1][0].status == block.status and _plain(rows[j + 1][1]) == _plain(cell):
            j += 1
        name = block.name
        if j > i:
            name = f"{name}..{rows[j][0].name.rsplit('.', 1)[1]}"
            cell = (*cell, Styled(f" ({j - i + 1} blocks)", "dim"))
        out.append((name, cell))
        i = j + 1
    return out


def _stage_line(stage: StageDiff) -> Paragraph:
    pieces = [Styled(stage.name, "bold")]
    for metric, label in ((stage.params, "params"), (stage.macs, "MACs"), (stage.output, "output")):
        pieces.append(Styled(f"  {label} "))
        pieces += word_diff(metric)
        if metric.changed and metric.delta is not None:
            pieces.append(Styled(f" ({_signed(metric.delta)})"))
    return Paragraph(tuple(pieces))


def diff_document(d: Diff, show_all: bool = False) -> Document:
    """`diff`: the summary, the stem, each stage's blocks, the state-dict names."""
    header = Paragraph(
        (
            Styled("A ", "bold"),
            Styled(d.a, "red"),
            Styled("   B ", "bold"),
            Styled(d.b, "green"),
            Styled(f"   at {size_text(d.input)} (MACs = multiply-accumulates, FLOPs = 2 x MACs)"),
        )
    )
    doc = Document([header])
    summary = Table("summary", (plain(""), Column("A"), Column("B"), Column("B - A"), Column("B / A")))
    for m in d.summary:  # always whole: an unchanged total is news too
        summary.add(
            m.name,
            text(m.a, m.name),
            text(m.b, m.name),
            _signed(m.delta),
            _ratio(m.ratio),
            style=None if m.changed else "dim",
        )
    doc.parts.append(summary)
    stem = Table("stem", (plain("field"), plain("A -> B")))
    for m in d.stem:
        if m.changed or show_all:
            stem.add(m.name, word_diff(m))
    if stem.rows:
        doc.parts.append(stem)
    for stage in d.stages:
        if not (stage.changed or show_all):
            continue
        doc.parts.append(_stage_line(stage))
        rows = [(b, _block_cell(b, d.a, d.b)) for b in stage.blocks if show_all or b.status != "same"]
        if rows:
            table = Table("", (plain("block"), plain("what changes")), wrap_last=True)
            for name, cell in _collapse(rows):
                table.add(name, cell)
            doc.parts.append(table)
    doc.parts += _state_lines(d)
    doc.parts.append(
        note("[-x-]{+y+}: x in A, y in B; fields, stages and blocks that are equal are hidden (--all shows them)")
    )
    return doc


def _state_lines(d: Diff) -> list[Paragraph]:
    s = d.state
    lines = [note(f"state dict (parameters and buffers): {s.common} names in both", "bold")]
    for label, names, style in (("only in A", s.only_a, "red"), ("only in B", s.only_b, "green")):
        if names:
            more = f", ... ({len(names) - FIRST} more)" if len(names) > FIRST else ""
            lines.append(note(f"  {label}: {len(names)}: " + ", ".join(names[:FIRST]) + more, style))
    if s.reshaped:
        shown = ", ".join(f"{n} {shape_text(a)} -> {shape_text(b)}" for n, a, b in s.reshaped[:FIRST])
        more = f", ... ({len(s.reshaped) - FIRST} more)" if len(s.reshaped) > FIRST else ""
        lines.append(note(f"  different shapes: {len(s.reshaped)}: {shown}{more}", "yellow"))
    if not (s.only_a or s.only_b or s.reshaped):
        lines.append(note("  same names and shapes: A's weights load into B with strict=True", None))
    return lines
