"""Documents -> terminal tables (rich), GitHub markdown or CSV, and JSON data -> text. The only place
that knows how each format looks; rich is imported only for the terminal form."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .document import Cell, Column, Document, Heading, Paragraph, Share, Styled, Table, cell_text, cell_value

FORMATS = ("table", "json", "markdown", "csv")


def to_json(data: object) -> str:
    """Indented JSON text."""
    return json.dumps(data, indent=2)


# -- markdown ---------------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(document: Document) -> str:
    """GitHub markdown: `##` for a heading, `###` for a table's title, pipes for its rows."""
    lines: list[str] = []
    for part in document.parts:
        if lines:
            lines.append("")
        if isinstance(part, Heading):
            lines.append(f"## {part.title}")
            if part.lines:
                lines += ["", *part.lines]
        elif isinstance(part, Paragraph):
            lines.append(part.text)
        else:
            if part.title:
                lines += [f"### {part.title}", ""]
            columns = part.columns
            lines.append("| " + " | ".join(_md_escape(c.header) for c in columns) + " |")
            lines.append("|" + "|".join("---" if c.left else "---:" for c in columns) + "|")
            for row in part.rows:
                cells = [_md_escape(cell_text(cell, c)) for cell, c in zip(row, columns)]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# -- CSV --------------------------------------------------------------------------------------------


def to_csv(table: Table) -> str:
    """One table as CSV: a header row of column keys, then raw values (no thousands separators)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.csv_key for c in table.columns])
    for row in table.rows:
        writer.writerow([cell_value(cell) for cell in row])
    return buffer.getvalue()


# -- terminal ---------------------------------------------------------------------------------------
#
# A terminal has a width; a file or a pipe has none. Given a width, every table is laid out to fit it,
# in this order of preference: as it is; with short headers and shares as percentages; without the
# columns that may go (FLOPs = 2 x MACs, say); split into several tables that repeat the first column.
# A row is never wrapped and a cell never cut; only a last column marked `wrap_last` breaks, between
# phrases. Titles, heading lines and paragraphs break between phrases (after ', ' or '; ', or at a run
# of spaces, never inside parentheses; a phrase longer than a line breaks between words). Without a
# width nothing is wrapped and nothing is cut.

BAR_WIDTH = 12  # a share drawn as a bar
INDENT = "  "  # continuation lines of a wrapped title, heading line or cell
WRAP_MIN = 24  # the least a wrapping last column is given before the table is laid out otherwise


def _cell_len(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.split("\n")), default=0)


def phrases(text: str) -> list[tuple[int, int]]:
    """Where `text` may break: (end of a phrase, start of the next) offsets. A phrase ends after ', '
    or '; ', or at a run of two or more spaces, outside parentheses."""
    out: list[tuple[int, int]] = []
    depth = i = 0
    while i < len(text):
        char = text[i]
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        elif depth == 0 and (char in ",;" and text[i + 1 : i + 2] == " " or text[i : i + 2] == "  "):
            end = i if char == " " else i + 1
            start = end
            while start < len(text) and text[start] == " ":
                start += 1
            out.append((end, start))
            i = start
            continue
        i += 1
    return out


def _cuts(text: str, width: int | None) -> list[tuple[int, int]]:
    """The breaks that fit `text` into lines of `width` cells (continuation lines indented), greedily
    between phrases; a phrase too long for a line of its own may also break between its words."""
    if width is None or "\n" in text or _cell_len(text) <= width:
        return []
    breaks: list[tuple[int, int]] = []
    begin = 0
    for end, start in [*phrases(text), (len(text), len(text))]:
        if len(INDENT) + _cell_len(text[begin:end]) > width:  # words, where the phrase cannot be whole
            breaks += [(i, i + 1) for i in range(begin + 1, end) if text[i] == " " and text[i - 1] != " "]
        breaks.append((end, start))
        begin = start
    cuts: list[tuple[int, int]] = []
    line_start, indent, last = 0, 0, None
    for end, start in breaks:
        if indent + _cell_len(text[line_start:end]) > width and last is not None:
            cuts.append(last)
            line_start, indent = last[1], len(INDENT)
        last = (end, start)
    return cuts


def wrap_phrases(text: str, width: int | None) -> list[str]:
    """`text` in lines of at most `width` cells where it can be, broken only between phrases;
    continuation lines are indented."""
    lines, begin = [], 0
    for end, start in _cuts(text, width):
        lines.append(text[begin:end])
        begin = start
    lines.append(text[begin:])
    return [lines[0], *(INDENT + line for line in lines[1:])]


def _wrapped(text: Any, width: int | None) -> Any:
    """A rich Text broken between phrases to fit `width` (styles kept)."""
    from rich.text import Text

    cuts = _cuts(text.plain, width)
    if not cuts:
        return text
    offsets = [n for cut in cuts for n in cut]
    pieces = text.divide(offsets)
    lines = [piece for i, piece in enumerate(pieces) if i % 2 == 0]
    return Text("\n" + INDENT, style=text.style).join(lines)


def _header(column: Column, short: bool) -> str:
    return (column.short or column.header) if short else column.header


def _width_of(cell: Cell, column: Column, short: bool) -> int:
    if isinstance(cell, Share) and not short:
        return BAR_WIDTH
    return _cell_len(cell_text(cell, column))


def column_width(table: Table, index: int, short: bool = False) -> int:
    """Cells a column needs: its header and every cell on one line."""
    column = table.columns[index]
    return max([_cell_len(_header(column, short)), *(_width_of(row[index], column, short) for row in table.rows)])


def _needed(table: Table, shown: Sequence[int], short: bool) -> tuple[int, int]:
    """(cells the shown columns need, cells of it the wrapping last column could give up)."""
    widths = [column_width(table, i, short) for i in shown]
    total = sum(widths) + len(widths) - 1
    wraps = table.wrap_last and shown[-1] == len(table.columns) - 1
    return total, (max(0, widths[-1] - WRAP_MIN) if wraps else 0)


def _fits(table: Table, shown: Sequence[int], short: bool, width: int) -> bool:
    total, slack = _needed(table, shown, short)
    return total - slack <= width


@dataclass(frozen=True)
class Layout:
    """How one table is printed at one width: which columns, in how many pieces, with which headers."""

    pieces: tuple[tuple[int, ...], ...]  # column indices of each printed piece (the key column repeated)
    short: bool  # short headers, shares as percentages
    dropped: tuple[int, ...] = ()  # optional columns left out


def layout(table: Table, width: int | None) -> Layout:
    """The first layout that fits `width` (see the comment above); everything at once when None."""
    every = tuple(range(len(table.columns)))
    if width is None or not table.columns:
        return Layout((every,), False)
    for short in (False, True):
        if _fits(table, every, short, width):
            return Layout((every,), short)
    kept = tuple(i for i in every if not table.columns[i].optional)
    dropped = tuple(i for i in every if table.columns[i].optional)
    if _fits(table, kept, True, width):
        return Layout((kept,), True, dropped)
    key, rest = kept[:1], kept[1:]
    pieces: list[tuple[int, ...]] = []
    current: list[int] = []
    for index in rest:
        if current and not _fits(table, (*key, *current, index), True, width):
            pieces.append((*key, *current))
            current = []
        current.append(index)
    pieces.append((*key, *current))
    return Layout(tuple(pieces), True, dropped)


def table_width(table: Table, width: int | None = None) -> int:
    """The widest line a table prints at `width` (its title included)."""
    plan = layout(table, width)
    widest = max(_needed(table, piece, plan.short)[0] for piece in plan.pieces) if table.columns else 0
    titles = [_cell_len(line) for line in wrap_phrases(table.title, width)] if table.title else []
    return max([widest, *titles])


def _wrapped_cell(cell: Cell, width: int) -> Any:
    """A wrapping cell broken between phrases (a piece starting with two spaces starts a phrase)."""
    from rich.text import Text

    pieces = cell if isinstance(cell, tuple) else (Styled(_joined_text(cell)),)
    groups: list[list[Styled]] = []
    for piece in pieces:
        if not groups or piece.text.startswith("  "):
            groups.append([])
        groups[-1].append(piece)
    text, used = Text(), 0
    for group in groups:
        length = sum(_cell_len(p.text) for p in group)
        if used and used + length > width:
            text.append("\n" + INDENT)
            group = [Styled(group[0].text.lstrip(), group[0].style), *group[1:]]
            length = sum(_cell_len(p.text) for p in group) + len(INDENT)
            used = 0
        for piece in group:
            text.append(piece.text, style=piece.style or "")
        used += length
    return text


def _joined_text(cell: Cell) -> str:
    return cell.text if isinstance(cell, Styled) else str(cell)


def _rich_cell(cell: Cell, column: Column, short: bool) -> Any:
    from rich.bar import Bar
    from rich.text import Text

    if isinstance(cell, Share) and not short:
        return Bar(size=1.0, begin=0.0, end=cell.fraction, width=BAR_WIDTH)
    if isinstance(cell, Styled):
        return Text(cell.text, style=cell.style or "")
    if isinstance(cell, tuple):
        text = Text()
        for piece in cell:
            text.append(piece.text, style=piece.style or "")
        return text
    return Text(cell_text(cell, column))


def _rich_piece(table: Table, shown: Sequence[int], short: bool, width: int | None) -> Any:
    from rich import box
    from rich.table import Table as RichTable

    out = RichTable(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0, 0, 0), show_edge=False)
    last = len(table.columns) - 1
    wraps = table.wrap_last and shown[-1] == last and width is not None
    room = 0
    if wraps:
        assert width is not None
        room = width - (_needed(table, shown, short)[0] - column_width(table, last, short))
    for i in shown:
        column = table.columns[i]
        out.add_column(
            _header(column, short), justify="left" if column.left else "right", no_wrap=True, overflow="fold"
        )
    for row, style in zip(table.rows, table.styles):
        cells = []
        for i in shown:
            if wraps and i == last and _width_of(row[i], table.columns[i], short) > room:
                cells.append(_wrapped_cell(row[i], room))
            else:
                cells.append(_rich_cell(row[i], table.columns[i], short))
        out.add_row(*cells, style=style)
    return out


def _rich_table(table: Table, width: int | None, said: set[str]) -> list[Any]:
    from rich.text import Text

    plan = layout(table, width)
    out: list[Any] = []
    for n, piece in enumerate(plan.pieces):
        title = table.title + (" (continued)" if n else "") if table.title or n else ""
        if title:
            out.append(_wrapped(Text(title.strip(), style="italic"), width))
        out.append(_rich_piece(table, piece, plan.short, width))
    shown = sorted({i for piece in plan.pieces for i in piece})
    spelled = [
        f"{table.columns[i].short} = {table.columns[i].header}"
        for i in shown
        if plan.short and table.columns[i].short and table.columns[i].short != table.columns[i].header
    ]
    spelled = [line for line in spelled if line not in said]  # each abbreviation spelled out once
    said.update(spelled)
    if spelled:
        out.append(_wrapped(Text(", ".join(spelled), style="dim"), width))
    if plan.dropped:
        gone = ", ".join(f"{table.columns[i].header} ({table.columns[i].optional})" for i in plan.dropped)
        line = f"left out to fit {width} columns: {gone}; a wider terminal or another --format shows them"
        out.append(_wrapped(Text(line, style="dim"), width))
    return out


def _paragraph_text(part: Paragraph) -> Any:
    from rich.text import Text

    text = Text()
    for piece in part.pieces:
        text.append(piece.text, style=piece.style or "")
    return text


def to_rich(document: Document, width: int | None = None) -> list[Any]:
    """Rich renderables for a terminal `width` cells wide (None: no width, nothing wrapped)."""
    from rich.text import Text

    out: list[Any] = []
    said: set[str] = set()
    for part in document.parts:
        if isinstance(part, Heading):
            out.append(_wrapped(Text(part.title, style="bold"), width))
            out += [_wrapped(Text(line, style=part.style), width) for line in part.lines]
        elif isinstance(part, Paragraph):
            out.append(_wrapped(_paragraph_text(part), width))
        else:
            out += _rich_table(part, width, said)
    return out


def natural_width(document: Document) -> int:
    """The widest line the document prints with no width to fit."""
    widths = [1]
    for part in document.parts:
        if isinstance(part, Heading):
            widths += [_cell_len(part.title), *(_cell_len(line) for line in part.lines)]
        elif isinstance(part, Paragraph):
            widths.append(_cell_len(part.text))
        else:
            widths.append(table_width(part))
    return max(widths)


def print_rich(document: Document, console: Any, width: int | None) -> None:
    """Print a document on a rich console laid out for `width` cells (None: the console is widened to
    the document's widest line, so that nothing wraps and nothing is cut)."""
    if width is None:
        console.width = max(80, natural_width(document))
    for renderable in to_rich(document, width):
        console.print(renderable)


def styled_line(*pieces: tuple[str, str | None]) -> Paragraph:
    """A paragraph from (text, style) pairs."""
    return Paragraph(tuple(Styled(text, style) for text, style in pieces))
