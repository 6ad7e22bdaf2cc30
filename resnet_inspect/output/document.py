"""A view's output as data: headings, tables and paragraphs, with numbers still numbers. The same
document renders as terminal tables (rich), GitHub markdown or CSV (render.py); every command's
`--format` picks one. Nothing here imports rich or torch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def count(n: int) -> str:
    """12345678 -> '12,345,678'."""
    return f"{n:,}"


@dataclass(frozen=True)
class Styled:
    """Text with a style (rich's names: bold, dim, red, green, yellow)."""

    text: str
    style: str | None = None


@dataclass(frozen=True)
class Share:
    """A part of a total, drawn as a bar in a terminal and as a percentage elsewhere."""

    part: int
    total: int

    @property
    def fraction(self) -> float:
        """part / total (0 when the total is 0)."""
        return self.part / self.total if self.total else 0.0


Cell = str | int | float | None | Styled | Share | tuple[Styled, ...]


@dataclass(frozen=True)
class Column:
    """A table column: its header, alignment, how a value reads as text, and its CSV name."""

    header: str
    left: bool = False
    text: Callable[[Any], str] = str  # for ints, floats and None (other cells carry their own text)
    key: str = ""  # the CSV header; the header itself when empty
    short: str = ""  # a shorter header for a narrow terminal (the legend under the table spells it out)
    optional: str = ""  # why the column may be left out when a terminal is too narrow ("= 2 x MACs")

    @property
    def csv_key(self) -> str:
        """The column's name in CSV."""
        return self.key or self.header


def counted(header: str, key: str = "", short: str = "", optional: str = "") -> Column:
    """A right-aligned column of counts with thousands separators."""
    return Column(header, text=count, key=key, short=short, optional=optional)


def plain(header: str, key: str = "", short: str = "") -> Column:
    """A left-aligned text column."""
    return Column(header, left=True, key=key, short=short)


@dataclass
class Table:
    """Rows of cells under columns; `styles` holds a style per row (a bold total, dim equal rows)."""

    title: str
    columns: Sequence[Column]
    rows: list[tuple[Cell, ...]] = field(default_factory=list)
    styles: list[str | None] = field(default_factory=list)
    wrap_last: bool = False  # the last column may wrap between phrases (long descriptions); no other cell does

    def add(self, *cells: Cell, style: str | None = None) -> None:
        """Append a row."""
        assert len(cells) == len(self.columns), (self.title, cells)
        self.rows.append(cells)
        self.styles.append(style)


@dataclass(frozen=True)
class Heading:
    """A view's first lines: a bold title and lines under it."""

    title: str
    lines: tuple[str, ...] = ()
    style: str = "dim"  # of the lines


@dataclass(frozen=True)
class Paragraph:
    """One paragraph, made of styled pieces."""

    pieces: tuple[Styled, ...]

    @property
    def text(self) -> str:
        """The paragraph without styles."""
        return "".join(p.text for p in self.pieces)


def note(text: str, style: str | None = "dim") -> Paragraph:
    """A one-style paragraph."""
    return Paragraph((Styled(text, style),))


Part = Heading | Table | Paragraph


@dataclass
class Document:
    """What a command prints: parts in order, and the one flat table its CSV form holds (if any)."""

    parts: list[Part] = field(default_factory=list)
    csv: Table | None = None

    def extend(self, other: Document) -> None:
        """Append another document's parts (their CSV tables are not merged)."""
        self.parts += other.parts


def _joined(cell: Cell) -> str | None:
    if isinstance(cell, Styled):
        return cell.text
    if isinstance(cell, tuple):
        return "".join(piece.text for piece in cell)
    return None


def cell_text(cell: Cell, column: Column) -> str:
    """A cell as plain text (markdown, and the width of terminal cells)."""
    text = _joined(cell)
    if text is not None:
        return text
    if isinstance(cell, Share):
        return f"{100 * cell.fraction:.1f}%"
    return "" if cell is None else column.text(cell)


def cell_value(cell: Cell) -> object:
    """A cell as CSV holds it: numbers raw, text plain, shares as fractions."""
    text = _joined(cell)
    if text is not None:
        return text
    if isinstance(cell, Share):
        return round(cell.fraction, 6)
    return "" if cell is None else cell
