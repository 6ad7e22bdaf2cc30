"""A Diff -> rich tables and JSON. A change reads like `git diff --word-diff`: [-old-]{+new+},
red and green where the terminal has colour."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from typing import TYPE_CHECKING

from .render import compact_table, count
from .render_costs import shape_text

if TYPE_CHECKING:
    from .compare import BlockDiff, Diff, Metric, StageDiff

DIFF_SCHEMA = "resnet-inspect/diff/1"
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


def word_diff(metric: Metric) -> Any:
    """'[-a-]{+b+}' for a change, the value itself otherwise."""
    from rich.text import Text

    if not metric.changed:
        return Text(text(metric.a, metric.name))
    out = Text()
    out.append(f"[-{text(metric.a, metric.name)}-]", style="red")
    out.append(f"{{+{text(metric.b, metric.name)}+}}", style="green")
    return out


def _signed(n: int | None) -> str:
    return "" if n is None else (f"+{count(n)}" if n > 0 else count(n))


def _ratio(r: float | None) -> str:
    return "" if r is None else f"{r:.4f}x"


def identical_line(d: Diff) -> str:
    """The one line for two inputs that build the same network."""
    return (
        f"{d.a} and {d.b} are identical: same stem and blocks, same costs at {d.input[0]}x{d.input[1]}, "
        "same receptive fields, same state-dict names and shapes"
    )


def _block_row(block: BlockDiff, label_a: str, label_b: str) -> tuple[str, Any]:
    from rich.text import Text

    if block.status == "only_a":
        return block.name, Text(f"only in A ({label_a})", style="red")
    if block.status == "only_b":
        return block.name, Text(f"only in B ({label_b})", style="green")
    changes = [m for m in block.fields if m.changed]
    if not changes:
        return block.name, Text("=", style="dim")
    out = Text()
    for i, metric in enumerate(changes):
        if i:
            out.append("  ")
        out.append(f"{metric.name} ")
        out.append_text(word_diff(metric))
    return block.name, out


def _collapse(rows: list[tuple[BlockDiff, tuple[str, Any]]]) -> list[tuple[str, Any]]:
    """Consecutive blocks with the same change (or present on one side only) become one row."""
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(rows):
        block, (name, cell) = rows[i]
        j = i
        while j + 1 < len(rows) and rows[j + 1][0].status == block.status and rows[j + 1][1][1].plain == cell.plain:
            j += 1
        if j > i:
            name = f"{name}..{rows[j][0].name.rsplit('.', 1)[1]}"
            cell = cell.copy().append(f" ({j - i + 1} blocks)", style="dim")
        out.append((name, cell))
        i = j + 1
    return out


def _stage_line(stage: StageDiff) -> Any:
    from rich.text import Text

    line = Text()
    line.append(stage.name, style="bold")
    for metric, label in ((stage.params, "params"), (stage.macs, "MACs"), (stage.output, "output")):
        line.append(f"  {label} ")
        line.append_text(word_diff(metric))
        if metric.changed and metric.delta is not None:
            line.append(f" ({_signed(metric.delta)})")
    return line


def diff_tables(d: Diff, show_all: bool = False) -> list[Any]:
    """`diff`: the summary, the stem, each stage's blocks, the state-dict names."""
    from rich.text import Text

    header = Text()
    header.append("A ", style="bold")
    header.append(d.a, style="red")
    header.append("   B ", style="bold")
    header.append(d.b, style="green")
    header.append(f"   at {d.input[0]}x{d.input[1]} (MACs = multiply-accumulates, FLOPs = 2 x MACs)")
    out: list[Any] = [header]

    summary = compact_table("summary", [("", True), ("A", False), ("B", False), ("B - A", False), ("B / A", False)])
    for m in d.summary:  # always whole: an unchanged total is news too
        summary.add_row(m.name, text(m.a, m.name), text(m.b, m.name), _signed(m.delta), _ratio(m.ratio),
                        style=None if m.changed else "dim")  # fmt: skip
    out.append(summary)

    stem = compact_table("stem", [("field", True), ("A -> B", True)])
    for m in d.stem:
        if m.changed or show_all:
            stem.add_row(m.name, word_diff(m))
    if stem.row_count:
        out.append(stem)

    for stage in d.stages:
        if not (stage.changed or show_all):
            continue
        out.append(_stage_line(stage))
        rows = [(b, _block_row(b, d.a, d.b)) for b in stage.blocks if show_all or b.status != "same"]
        if rows:
            table = compact_table("", [("block", True), ("what changes", True)], wrap_last=True)
            for name, cell in _collapse(rows):
                table.add_row(name, cell)
            out.append(table)

    s = d.state
    state = Text(f"state dict (parameters and buffers): {s.common} names in both", style="bold")
    lines = [state]
    for label, names, style in (("only in A", s.only_a, "red"), ("only in B", s.only_b, "green")):
        if names:
            more = f", ... ({len(names) - FIRST} more)" if len(names) > FIRST else ""
            lines.append(Text(f"  {label}: {len(names)}: " + ", ".join(names[:FIRST]) + more, style=style))
    if s.reshaped:
        shown = ", ".join(f"{n} {shape_text(a)} -> {shape_text(b)}" for n, a, b in s.reshaped[:FIRST])
        more = f", ... ({len(s.reshaped) - FIRST} more)" if len(s.reshaped) > FIRST else ""
        lines.append(Text(f"  different shapes: {len(s.reshaped)}: {shown}{more}", style="yellow"))
    if not (s.only_a or s.only_b or s.reshaped):
        lines.append(Text("  same names and shapes: A's weights load into B with strict=True"))
    out.extend(lines)
    return out


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _metric(m: Metric) -> dict[str, Any]:
    data = {"a": _jsonable(m.a), "b": _jsonable(m.b)}
    if m.delta is not None:
        data["delta"] = m.delta
        data["ratio"] = m.ratio
    return data


def diff_data(d: Diff, show_all: bool = False) -> dict[str, Any]:
    """`diff --json` (schema resnet-inspect/diff/1, docs/cli.md); equal fields only with `show_all`."""

    def fields(metrics: tuple[Metric, ...]) -> dict[str, Any]:
        """The metrics that differ (all of them with `show_all`)."""
        return {m.name: _metric(m) for m in metrics if m.changed or show_all}

    stages = []
    for stage in d.stages:
        if not (stage.changed or show_all):
            continue
        stages.append({
            "name": stage.name,
            "params": _metric(stage.params),
            "macs": _metric(stage.macs),
            "output": _metric(stage.output),
            "blocks": [
                {"name": b.name, "status": b.status, "fields": fields(b.fields) if b.status != "same" or show_all
                 else {}}
                for b in stage.blocks if b.status != "same" or show_all
            ],
        })  # fmt: skip
    state = asdict(d.state)
    state["reshaped"] = [{"name": n, "a": list(a), "b": list(b)} for n, a, b in d.state.reshaped]
    return {
        "schema": DIFF_SCHEMA,
        "a": d.a,
        "b": d.b,
        "input": list(d.input),
        "identical": d.identical,
        "summary": {m.name: _metric(m) for m in d.summary},
        "stem": fields(d.stem),
        "stages": stages,
        "state_dict": {**state, "only_a": list(d.state.only_a), "only_b": list(d.state.only_b)},
    }
