"""Results -> rich tables, layer notes, markdown and JSON. Numbers arrive as ints; only here do
they get separators, units and colour."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from typing import TYPE_CHECKING

from .spec import NetSpec

if TYPE_CHECKING:  # records come from torch-backed modules; rendering itself needs no torch
    from .analysis import Costs
    from .checkpoint import CheckpointReport
    from .walker import BlockRecord, NetRecord

SHOW_SCHEMA = "resnet-inspect/show/1"
BLOCK_FIELDS = (
    "name", "stage", "index", "type", "inplanes", "planes", "width", "outplanes", "stride",
    "stride_at", "dilation", "dilations", "groups", "base_width", "downsample", "params",
)  # fmt: skip
STEM_FIELDS = ("kind", "convs", "widths", "pool", "in_ch", "out_ch", "stride", "params")


def count(n: int) -> str:
    """12345678 -> '12,345,678'."""
    return f"{n:,}"


def describe_spec(spec: NetSpec) -> str:
    """One line naming every knob of a spec."""
    stem = (
        f"7x7 stem ({spec.stem_width})"
        if spec.stem == "classic"
        else "deep stem 3x3 x3 (" + ", ".join(map(str, spec.stem_spec().widths)) + ")"
    )
    shortcut = "1x1 conv shortcut" if spec.shortcut == "conv" else "avg-pool + 1x1 conv shortcut"
    parts = [
        f"{spec.block} {list(spec.layers)}",
        f"{spec.groups}x{spec.width_per_group}d" if spec.block == "bottleneck" else "",
        stem,
        shortcut,
        f"stride on the {spec.stride_at}" if spec.block == "bottleneck" else "",
        "first block of every stage projects" if spec.project_first else "",
        f"output stride {spec.output_stride}",
        f"multi-grid {'-'.join(map(str, spec.multi_grid))}" if spec.multi_grid else "",
        f"{spec.dilation_style} dilation" if spec.output_stride != 32 else "",
        f"{spec.num_classes} classes",
    ]
    return ", ".join(p for p in parts if p)


def _downsample_text(block: BlockRecord) -> str:
    d = block.downsample
    if d is None:
        return "-"
    return f"{d.kind}/{d.stride}" if d.stride != 1 else d.kind


def _stride_text(block: BlockRecord) -> str:
    return f"{block.stride}@{block.stride_at}" if block.stride_at else str(block.stride)


def _dilation_text(block: BlockRecord) -> str:
    return "/".join(map(str, block.dilations)) if len(set(block.dilations)) > 1 else str(block.dilation)


# -- table (rich) ------------------------------------------------------------------------------

# (header, left-aligned); "in"/"out" are inplanes/outplanes, "dil" the 3x3 dilation(s).
STEM_COLUMNS = (("kind", True), ("convs", True), ("widths", True), ("pool", True), ("in", False),
                ("out", False), ("stride", False), ("params", False))  # fmt: skip
BLOCK_COLUMNS = (("#", False), ("in", False), ("planes", False), ("width", False), ("out", False),
                 ("stride", True), ("dil", False), ("groups", False), ("base_width", False),
                 ("shortcut", True), ("params", False))  # fmt: skip
SHAPE_COLUMNS = (("output", False), ("cum", False))


def compact_table(title: str, columns: Sequence[tuple[str, bool]], wrap_last: bool = False) -> Any:
    """A compact rich table; cells never wrap (numbers stay whole) except the last column's when asked."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  padding=(0, 0, 0, 0), show_edge=False)  # fmt: skip
    for i, (header, left) in enumerate(columns):
        wraps = wrap_last and i == len(columns) - 1
        table.add_column(header, justify="left" if left else "right", no_wrap=not wraps)
    return table



def show_tables(record: NetRecord, spec: NetSpec | None, costs: Costs | None = None) -> list[Any]:
    """Rich renderables for `show`: a header, the stem, then one table per stage; with `costs`
    (an input size) each block's output shape and cumulative stride too."""
    from rich.text import Text

    header = Text()
    header.append(record.model, style="bold")
    header.append(f"  {count(record.params)} parameters")
    if spec is not None:
        header.append(f"  ({spec.convention})\n", style="dim")
        header.append(describe_spec(spec), style="dim")
    if costs is not None:
        header.append(f"\ninput {costs.input[0]}x{costs.input[1]}: output C x H x W and cumulative stride per block",
                      style="dim")  # fmt: skip
    out: list[Any] = [header]
    outputs = {b.name: b for b in costs.blocks} if costs else {}

    stem = record.stem
    stem_table = compact_table("stem", STEM_COLUMNS)
    stem_table.add_row(
        stem.kind,
        ",".join(stem.convs),
        ",".join(map(str, stem.widths)),
        stem.pool or "-",
        str(stem.in_ch),
        str(stem.out_ch),
        str(stem.stride),
        count(stem.params),
    )
    out.append(stem_table)

    for stage in record.stages:
        blocks = [b for b in record.blocks if b.stage == stage]
        kinds = "/".join(dict.fromkeys(b.type for b in blocks))
        table = compact_table(
            f"{stage}: {len(blocks)} {kinds} blocks, {count(sum(b.params for b in blocks))} parameters",
            BLOCK_COLUMNS + (SHAPE_COLUMNS if costs else ()),
        )
        for b in blocks:
            shape = (
                ["x".join(map(str, outputs[b.name].output)), str(outputs[b.name].stride)] if costs else []
            )
            table.add_row(
                str(b.index), str(b.inplanes), str(b.planes), str(b.width), str(b.outplanes),
                _stride_text(b), _dilation_text(b), str(b.groups), str(b.base_width),
                _downsample_text(b), count(b.params), *shape,
            )  # fmt: skip
        out.append(table)
    if record.unrecognised:
        out.append(Text(unrecognised_text(record.unrecognised), style="yellow"))
    return out


def unrecognised_text(items: Sequence[str], first: int = 3) -> str:
    """Leaves the walker has no rule for, grouped by kind: '16 x SEModule (...): layer1.0.se, ...'."""
    groups: dict[str, list[str]] = {}
    for item in items:
        name, _, kind = item.partition(" (")
        groups.setdefault(kind.rstrip(")"), []).append(name)
    lines = []
    for kind, names in groups.items():
        more = f", ... ({len(names) - first} more)" if len(names) > first else ""
        lines.append(f"{len(names)} x {kind}: {', '.join(names[:first])}{more}")
    return "not understood, so not counted: " + "; ".join(lines)


# -- notes (seed 000's layer-notes format) ------------------------------------------------------


def _block_label(block: BlockRecord) -> str:
    return ("Bottleneck" if block.type == "bottleneck" else "BasicBlock") + str(block.index + 1)


def notes(record: NetRecord) -> str:
    """The hand-written layer notes format, one `BottleneckN(...)` line per block, generated."""
    expansion = record.blocks[0].outplanes // record.blocks[0].planes if record.blocks[0].planes else 1
    lines = [
        f"# {record.model}",
        "",
        f"output of a {record.blocks[0].type} block is always planes * expansion ({expansion})",
        "",
        "## Stem",
        "",
        f"{', '.join(f'conv{c}' for c in record.stem.convs)} (widths {', '.join(map(str, record.stem.widths))})"
        + (f", {record.stem.pool} pool" if record.stem.pool else ""),
        f"\tIN: {record.stem.in_ch}, OUT: {record.stem.out_ch}",
    ]
    for number, stage in enumerate(record.stages, start=1):
        lines += ["", f"## Layer {number}", ""]
        for b in (b for b in record.blocks if b.stage == stage):
            args = [f"inplanes={b.inplanes}", f"planes={b.planes}", f"stride={b.stride}"]
            if b.downsample:
                args.append("downsample")
            args += [f"groups={b.groups}", f"base_width={b.base_width}", f"dilation={b.dilation}"]
            lines.append(f"{_block_label(b)}({', '.join(args)})")
            lines.append("\t" + _downsample_line(b))
            lines.append(f"\tIN: {b.inplanes}, OUT: {b.outplanes}")
    return "\n".join(lines) + "\n"


def _downsample_line(block: BlockRecord) -> str:
    if block.downsample is None:
        return "(No Downsample)"
    parts = []
    for op in block.shortcut:
        if op.kind in ("avgpool", "avgpool_same"):
            same = ", same padding" if op.kind == "avgpool_same" else ""
            parts.append(f"avgpool{op.kernel[0]}x{op.kernel[1]}(stride={op.stride[0]}{same})")
        elif op.kind == "conv":
            parts.append(
                f"conv{op.kernel[0]}x{op.kernel[1]}(inplanes={op.in_ch}, outplanes={op.out_ch}, stride={op.stride[0]})"
            )
    return f"-> Downsample({', '.join(parts)})"


# -- markdown -----------------------------------------------------------------------------------


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def markdown(record: NetRecord, spec: NetSpec | None) -> str:
    """`show` as GitHub markdown: a heading, the stem, one table per stage."""
    lines = [f"## {record.model}", "", f"{count(record.params)} parameters"]
    if spec is not None:
        lines[-1] += f" ({spec.convention}): {describe_spec(spec)}"
    stem = record.stem
    lines += ["", "### stem", ""]
    lines += _md_table(
        ("kind", "convs", "widths", "pool", "in", "out", "stride", "params"),
        [(stem.kind, ", ".join(stem.convs), ", ".join(map(str, stem.widths)), stem.pool or "-",
          stem.in_ch, stem.out_ch, stem.stride, count(stem.params))],
    )  # fmt: skip
    for stage in record.stages:
        lines += ["", f"### {stage}", ""]
        lines += _md_table(
            ("block", "type", "inplanes", "planes", "width", "outplanes", "stride", "dilation",
             "groups", "base_width", "downsample", "params"),
            [(b.name, b.type, b.inplanes, b.planes, b.width, b.outplanes, _stride_text(b),
              _dilation_text(b), b.groups, b.base_width, _downsample_text(b), count(b.params))
             for b in record.blocks if b.stage == stage],
        )  # fmt: skip
    return "\n".join(lines) + "\n"


# -- JSON ---------------------------------------------------------------------------------------


def spec_dict(spec: NetSpec | None) -> dict[str, Any] | None:
    """A spec as JSON-ready data (tuples become lists)."""
    if spec is None:
        return None
    data = asdict(spec)
    data["depth"] = spec.depth
    return json.loads(json.dumps(data))


def block_dict(block: BlockRecord) -> dict[str, Any]:
    """A block record's public fields."""
    data = asdict(block)
    return {k: data[k] for k in BLOCK_FIELDS}


def show_data(record: NetRecord, spec: NetSpec | None, costs: Costs | None = None) -> dict[str, Any]:
    """`show --format json`: schema resnet-inspect/show/1 (docs/cli.md)."""
    stem = asdict(record.stem)
    blocks = [block_dict(b) for b in record.blocks]
    cumulative = record.stem.stride
    for data, block in zip(blocks, record.blocks):
        cumulative *= block.stride
        data["cumulative_stride"] = cumulative
    if costs is not None:
        for data, part in zip(blocks, costs.blocks):
            data["output"] = list(part.output)
    return {
        "schema": SHOW_SCHEMA,
        "model": record.model,
        "spec": spec_dict(spec),
        "params": record.params,
        "input": list(costs.input) if costs else None,
        "stem": {k: stem[k] for k in STEM_FIELDS},
        "blocks": blocks,
        "unrecognised": list(record.unrecognised),
    }


def to_json(data: object) -> str:
    """Indented JSON text."""
    return json.dumps(data, indent=2)


# -- list ---------------------------------------------------------------------------------------


ZOO_COLUMNS = ("name", "family", "convention", "block", "layers", "GxW", "stem", "shortcut")


def family(spec: NetSpec) -> str:
    """ResNet / ResNeXt / Wide ResNet with its bag-of-tricks letter (He et al. 2019), from the knobs."""
    base = "ResNeXt" if spec.groups > 1 else "Wide ResNet" if spec.width_per_group > 64 else "ResNet"
    letters = {
        ("1x1", "classic", "conv"): "A",
        ("3x3", "classic", "conv"): "B",
        ("3x3", "deep", "conv"): "C",
        ("3x3", "deep", "avgpool"): "D",
    }
    stride_at = spec.stride_at if spec.block == "bottleneck" else "3x3"
    return f"{base}-{letters.get((stride_at, spec.stem, spec.shortcut), '?')}"


def zoo_table(specs: Sequence[NetSpec]) -> Any:
    """`resnet-inspect list`: one row per registered name."""
    table = compact_table(f"{len(specs)} registered variants", [(c, True) for c in ZOO_COLUMNS])
    for spec in specs:
        table.add_row(
            spec.name,
            family(spec),
            spec.convention,
            spec.block,
            "-".join(map(str, spec.layers)),
            f"{spec.groups}x{spec.width_per_group}d" if spec.block == "bottleneck" else "-",
            "7x7" if spec.stem == "classic" else "deep " + ",".join(map(str, spec.stem_spec().widths)),
            spec.shortcut,
        )
    return table


def zoo_data(specs: Sequence[NetSpec]) -> list[dict[str, Any]]:
    """`resnet-inspect list --json`."""
    return [{"name": s.name, "family": family(s), "convention": s.convention, "spec": spec_dict(s)} for s in specs]


# -- checkpoints and state-dict keys -------------------------------------------------------------


def stderr_console() -> Any:
    """A console on stderr (reports that must not mix with JSON on stdout)."""
    from rich.console import Console

    return Console(stderr=True)


def checkpoint_line(report: CheckpointReport) -> str:
    """'loaded 320 tensors from x.pth (under 'state_dict', prefix 'module.' stripped)'."""
    notes = []
    if report.wrapper:
        notes.append(f"under {report.wrapper!r}")
    if report.stripped:
        notes.append("prefix " + " then ".join(repr(p) for p in report.stripped) + " stripped")
    left = len(report.missing) + len(report.unexpected) + len(report.mismatched)
    if left:
        notes.append(f"{left} keys not loaded, see the table")
    return f"loaded {report.loaded} tensors from {report.path}" + (f" ({', '.join(notes)})" if notes else "")


def checkpoint_table(report: CheckpointReport, first: int = 10) -> Any:
    """Missing, unexpected and reshaped keys, the first few of each."""
    table = compact_table(
        f"{report.path}: {len(report.missing)} missing, {len(report.unexpected)} unexpected, "
        f"{len(report.mismatched)} with another shape"
        + (f" (prefix {', '.join(report.stripped)} stripped)" if report.stripped else ""),
        [("problem", True), ("key", True), ("model", True), ("file", True)],
    )
    for label, keys in (("missing from the file", report.missing), ("not in the model", report.unexpected)):
        for key in keys[:first]:
            table.add_row(label, key, "", "")
        if len(keys) > first:
            table.add_row(label, f"... {len(keys) - first} more", "", "")
    for key, model_shape, file_shape in report.mismatched[:first]:
        table.add_row("shape differs", key, "x".join(map(str, model_shape)), "x".join(map(str, file_shape)))
    if len(report.mismatched) > first:
        table.add_row("shape differs", f"... {len(report.mismatched) - first} more", "", "")
    return table


def keys_table(label: str, keys: Sequence[dict[str, Any]]) -> Any:
    """`export-keys`: one row per state-dict entry."""
    params = sum(1 for k in keys if k["kind"] == "parameter")
    table = compact_table(f"{label}: {len(keys)} entries ({params} parameters, {len(keys) - params} buffers)",
                   [("name", True), ("shape", True), ("kind", True), ("dtype", True)])  # fmt: skip
    for k in keys:
        table.add_row(k["name"], "x".join(map(str, k["shape"])) or "scalar", k["kind"], k["dtype"])
    return table
