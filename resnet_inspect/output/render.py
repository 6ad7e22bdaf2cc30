"""Documents -> terminal tables (rich), GitHub markdown or CSV, and JSON data -> text. The only place
that knows how each format looks; rich is imported only for the terminal form."""

from __future__ import annotations

import csv
import io
import json
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


def _rich_cell(cell: Cell, column: Column) -> Any:
    from rich.bar import Bar
    from rich.text import Text

    if isinstance(cell, Share):
        return Bar(size=1.0, begin=0.0, end=cell.fraction, width=12)
    if isinstance(cell, Styled):
        return Text(cell.text, style=cell.style or "")
    if isinstance(cell, tuple):
        text = Text()
        for piece in cell:
            text.append(piece.text, style=piece.style or "")
        return text
    return Text(cell_text(cell, column))


def _rich_table(table: Table) -> Any:
    from rich import box
    from rich.table import Table as RichTable

    out = RichTable(
        title=table.title or None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 0, 0, 0),
        show_edge=False,
    )
    for i, column in enumerate(table.columns):
        wraps = table.wrap_last and i == len(table.columns) - 1
        out.add_column(column.header, justify="left" if column.left else "right", no_wrap=not wraps)
    for row, style in zip(table.rows, table.styles):
        out.add_row(*(_rich_cell(cell, c) for cell, c in zip(row, table.columns)), style=style)
    return out


def to_rich(document: Document) -> list[Any]:
    """Rich renderables, one per part."""
    from rich.text import Text

    out: list[Any] = []
    for part in document.parts:
        if isinstance(part, Heading):
            text = Text()
            text.append(part.title, style="bold")
            for line in part.lines:
                text.append("\n" + line, style=part.style)
            out.append(text)
        elif isinstance(part, Paragraph):
            text = Text()
            for piece in part.pieces:
                text.append(piece.text, style=piece.style or "")
            out.append(text)
        else:
            out.append(_rich_table(part))
    return out


def styled_line(*pieces: tuple[str, str | None]) -> Paragraph:
    """A paragraph from (text, style) pairs."""
    return Paragraph(tuple(Styled(text, style) for text, style in pieces))
