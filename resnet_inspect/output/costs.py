"""`flops`, `rf`, `bench` and the detection split as documents. Every number is labelled with its
convention: MACs are multiply-accumulates, FLOPs = 2 x MACs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .document import Column, Document, Heading, Share, Styled, Table, count, counted, note, plain
from .text import CONVENTION, giga, listed, shape_text, size_text

if TYPE_CHECKING:
    from ..measure.bench import BenchResult
    from ..numbers.costs import Costs, PartCost
    from ..numbers.detection import SplitCosts
    from ..numbers.fields import Coverage, FieldReport, FieldRow

PART_COLUMNS = (
    plain("name"),
    counted("params"),
    counted("MACs", "macs"),
    counted("FLOPs", "flops", optional="= 2 x MACs"),
    counted("activations", short="acts"),
    plain("output"),
    Column("stride"),
)


def _heading(costs: Costs) -> Heading:
    return Heading(
        costs.model,
        (
            f"at {size_text(costs.input)}, batch {costs.batch}, output stride {costs.output_stride}",
            (
                f"params {count(costs.params)}   MACs {count(costs.macs)} ({giga(costs.macs)})   "
                f"FLOPs {count(costs.flops)} ({giga(costs.flops)})"
            ),
            f"activations {count(costs.activations)} ({costs.activation_bytes / 2**20:,.1f} MiB as {costs.dtype})",
        ),
        style="",
    )


def empty_head(part: PartCost) -> bool:
    """A head with nothing to count: a global pool without a classifier (num_classes 0)."""
    return part.name == "head" and part.params == part.macs == part.activations == 0


def parts_of(costs: Costs, per: str) -> list[PartCost]:
    """The rows of a per-stage or per-block view: the stem and the head (when it counts anything)
    around the stages or blocks, so that the rows add up to the model."""
    if per == "stage" or not costs.blocks:
        parts = list(costs.stages)
    else:
        parts = [costs.stages[0], *costs.blocks, costs.stages[-1]]
    return [p for p in parts if not empty_head(p)]


def _unplaced(costs: Costs, parts: Sequence[Any]) -> int:
    """Parameters of the model that no row holds (modules between the parts), so that rows add up."""
    return costs.params - sum(p.params for p in parts)


OTHER = "other"  # the row of parameters no part holds


def _parts_table(costs: Costs, per: str) -> Table:
    parts = parts_of(costs, per)
    table = Table(f"per {per}", (*PART_COLUMNS, plain("MACs share", "macs_share", short="share")))
    for part in parts:
        table.add(
            part.name,
            part.params,
            part.macs,
            part.flops,
            part.activations,
            shape_text(part.output),
            part.stride,
            Share(part.macs, costs.macs),
        )
    other = _unplaced(costs, parts)
    if other:
        table.add(OTHER, other, 0, 0, 0, "", None, None)
    table.add("total", costs.params, costs.macs, costs.flops, costs.activations, "", None, None, style="bold")
    return table


def _layers_table(costs: Costs) -> Table:
    table = Table(
        "per layer",
        (
            plain("layer"),
            plain("kind"),
            plain("output"),
            counted("params"),
            counted("MACs", "macs"),
            counted("activations", short="acts"),
        ),
    )
    for row in costs.layers:
        table.add(row.name, row.kind, shape_text(row.output), row.params, row.macs, row.activations)
    other = _unplaced(costs, costs.layers)
    if other:
        table.add(OTHER, "", "", other, 0, 0)
    table.add("total", "", "", costs.params, costs.macs, costs.activations, style="bold")
    return table


def costs_document(costs: Costs, per: str = "stage", probed: Sequence[str] = ()) -> Document:
    """`flops` for one model: a header, then one row per stage, block or layer (stem and head
    included, then the total they add up to), and what was not counted by the rules."""
    table = _layers_table(costs) if per == "layer" else _parts_table(costs, per)
    doc = Document([_heading(costs), table], csv=table)
    head = costs.stages[-1]
    if per != "layer" and empty_head(head):
        doc.parts.append(note(f"no head row: no classifier, only a global pool to {shape_text(head.output)}"))
    doc.parts += [note(text, "yellow") for text in completeness(costs, probed)]
    doc.parts.append(note(CONVENTION))
    return doc


def completeness(costs: Costs, probed: Sequence[str] = ()) -> list[str]:
    """One line per way the numbers were obtained other than the rules, and what is missing."""
    lines = list(costs.notes)
    counted = [name for name in probed if name not in {u.module for u in costs.uncounted}]
    if counted:
        lines.append(f"counted from a meta-tensor forward of the module alone: {listed(counted)}")
    if costs.uncounted:
        modules = [f"{u.module} ({u.kind})" for u in costs.uncounted]
        lines.append(f"INCOMPLETE: not counted: {listed(modules)}; every total is a lower bound")
    return lines


def many_costs_csv(all_costs: Sequence[Costs], per: str) -> Table:
    """Several models' rows in one CSV table, with a `model` column first."""
    tables = [(c.model, (_layers_table(c) if per == "layer" else _parts_table(c, per))) for c in all_costs]
    first = tables[0][1]
    merged = Table(first.title, (plain("model"), *first.columns))
    for model, table in tables:
        for row, style in zip(table.rows, table.styles):
            merged.add(model, *row, style=style)
    return merged


# -- comparison (several models, or the zoo) -------------------------------------------------------

COMPARISON_LEGEND = (
    'GMACs = 10^9 multiply-accumulates of conv and linear layers (torchvision\'s "GFLOPS"); GFLOPs = 2 x GMACs; '
    "activations = output elements of conv and linear layers; receptive field = theoretical size, in input "
    "pixels, of what one unit of the last stage sees (whole input: a global pool or attention on the path)"
)


def _gigas(value: float) -> str:
    return f"{value:.3f}"


def _field_cell(field: FieldRow | None) -> Styled | int | None:
    if field is None:
        return None
    return Styled("whole input") if field.whole_input else field.size


def _map_text(costs: Costs) -> str:
    return shape_text(costs.trunk.output)


def comparison_document(rows: Sequence[tuple[Costs, FieldRow | None]]) -> Document:
    """`flops A B ...` and the zoo: one row per model (params, MACs, FLOPs, activations, output
    stride, final feature map, receptive field of the last stage); CSV with exact counts."""
    first = rows[0][0]
    table = Table(
        f"{len(rows)} model{'s' if len(rows) != 1 else ''} at {size_text(first.input)}, batch {first.batch}",
        (
            plain("model"),
            counted("params"),
            Column("GMACs", text=_gigas),
            Column("GFLOPs", text=_gigas, optional="= 2 x GMACs"),
            counted("activations", short="acts"),
            Column("output stride", short="OS"),
            Column("feature map", short="map"),
            Column("receptive field", text=count, short="RF"),
        ),
    )
    csv = Table(
        "",
        (
            plain("model"),
            counted("params"),
            Column("gmacs"),
            Column("gflops"),
            counted("macs"),
            Column("output_stride"),
            counted("flops"),
            counted("activations"),
            plain("feature_map"),
            Column("receptive_field"),
        ),
    )
    for costs, field in rows:
        table.add(
            costs.model,
            costs.params,
            costs.macs / 1e9,
            costs.flops / 1e9,
            costs.activations,
            costs.output_stride,
            _map_text(costs),
            _field_cell(field),
        )
        csv.add(
            costs.model,
            costs.params,
            round(costs.macs / 1e9, 6),
            round(costs.flops / 1e9, 6),
            costs.macs,
            costs.output_stride,
            costs.flops,
            costs.activations,
            _map_text(costs),
            _field_cell(field),
        )
    doc = Document([table], csv=csv)
    for costs, _ in rows:
        doc.parts += [note(f"{costs.model}: {text}", "yellow") for text in completeness(costs)]
    doc.parts.append(note(COMPARISON_LEGEND))
    return doc


def zoo_document(all_costs: Sequence[Costs]) -> Document:
    """The model-zoo table without receptive fields (the comparison view of costs alone)."""
    return comparison_document([(c, None) for c in all_costs])


def fvcore_document(costs: Costs, fvcore: dict[str, Any]) -> Document:
    """`flops --count fvcore`: fvcore's own total per stage beside our conv + linear MACs."""
    heading = Heading(
        costs.model,
        (
            (
                f"at {size_text(costs.input)}, batch {costs.batch}: fvcore FlopCountAnalysis total "
                f"{count(fvcore['total'])} ({giga(fvcore['total'])})"
            ),
        ),
        style="",
    )
    table = Table("per stage", (plain("name"), counted("fvcore"), counted("MACs (ours)", "macs")))
    for stage in costs.stages:
        table.add(stage.name, fvcore["stages"][stage.name], stage.macs)
    table.add("total", fvcore["total"], costs.macs, style="bold")
    ops = Table("fvcore by operator", (plain("operator"), counted("count")))
    for name, value in sorted(fvcore["by_operator"].items()):
        ops.add(name, value)
    explained = note(
        "fvcore counts one multiply-add as one flop for conv and linear (= our MACs) and adds "
        "batch-norm (2 per element) and adaptive pooling (1 per input element) work; "
        f"unsupported ops it skipped: {', '.join(fvcore['unsupported']) or 'none'}"
    )
    return Document([heading, table, ops, explained], csv=table)


# -- receptive fields -----------------------------------------------------------------------------

RF_COLUMNS = (
    plain("name"),
    Column("size"),
    Column("jump", key="stride"),
    Column("padding"),
    Column("center"),
    plain("aligned"),
    Column("main", key="main_size"),
    Column("shortcut", key="shortcut_size"),
    Column("sees", left=True, text=lambda whole: "whole input" if whole else "window", key="global"),
)
RF_LEGEND = (
    "size: pixels one unit sees; jump: pixels between neighbouring units; padding: how far unit 0's "
    "field starts before pixel 0; center: centre of unit 0's field; aligned: the residual branch and "
    "the shortcut have the same jump and centre (main/shortcut: each branch's own size)"
)


WHOLE_INPUT = (
    "sees whole input: a global pool (squeeze-excitation, ECA, split attention, selective kernel) or attention "
    "on the path makes every unit depend on every input pixel; the local field is that of the windows alone"
)


def _aligned(flag: bool) -> Styled:
    return Styled("yes", "green") if flag else Styled("no", "yellow")


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def _span(first: int, last: int) -> str:
    return f"{first}..{last}"


COVERAGE_LEGEND = (
    "unit: the centre unit (row, column) of the stage's map; field: the input rows x columns its theoretical "
    "field spans (past the borders: padding); covers: that box clipped to the image, in pixels; of image: "
    "its share of the image; on image: the share of the field that lies on real pixels"
)


def coverage_table(rows: Sequence[Coverage]) -> Table:
    """`rf --input`: per stage, the map size and what its centre unit's field covers of the image."""
    first = rows[0]
    table = Table(
        f"at {size_text(first.input)}: what the centre unit of each map sees",
        (
            plain("name"),
            plain("map"),
            plain("unit"),
            plain("field (rows x cols)", "field", short="field"),
            plain("covers"),
            Column("of image", text=_percent, key="image_fraction"),
            Column("on image", text=_percent, key="inside_fraction"),
        ),
    )
    for c in rows:
        top, left, bottom, right = c.box
        field = "whole input" if c.whole_input else f"{_span(top, bottom)} x {_span(left, right)}"
        table.add(
            c.name,
            size_text(c.feature),
            f"{c.unit[0]},{c.unit[1]}",
            field,
            size_text(c.covered),
            c.image_fraction,
            c.inside_fraction,
        )
    return table


def rf_document(report: FieldReport, per: str = "block", covered: Sequence[Coverage] = ()) -> Document:
    """`rf`: the stage table, then (per block) one row per block; with `covered` (an input size) what
    each stage's centre unit covers of the image."""
    heading = Heading(report.model, (f"output stride {report.output_stride}",), style="")
    stages = Table("per stage (theoretical receptive field of one unit, input pixels)", RF_COLUMNS)
    blocks = Table("per block", RF_COLUMNS)
    for table, rows in ((stages, (report.stem, *report.stages)), (blocks, report.blocks)):
        for row in rows:
            table.add(
                row.name,
                row.size,
                row.stride,
                row.padding,
                row.center,
                _aligned(row.aligned),
                row.main_size,
                row.shortcut_size,
                row.whole_input,
            )
    doc = Document([heading, stages], csv=stages)
    if covered:
        doc.parts += [coverage_table(covered), note(COVERAGE_LEGEND)]
    if per == "block":
        doc.parts.append(blocks)
        doc.csv = Table("per stage and block", RF_COLUMNS, stages.rows + blocks.rows, stages.styles + blocks.styles)
    if any(row.whole_input for row in report.blocks):
        doc.parts.append(note(WHOLE_INPUT, "cyan"))
    if not report.complete:
        doc.parts.append(
            note("INCOMPLETE: a module no rule describes lies on the path; fields after it may be larger", "yellow")
        )
    doc.parts.append(note(RF_LEGEND))
    return doc


# -- bench ----------------------------------------------------------------------------------------


def bench_document(r: BenchResult) -> Document:
    """`bench`: latency, throughput and memory of one configuration."""
    table = Table(
        f"{r.model} on {r.device} ({r.device_name}), {r.dtype}"
        f"{', channels_last' if r.channels_last else ''}, batch {r.batch}, {size_text(r.input)}, "
        f"{r.threads} threads: {r.iters} timed iterations after {r.warmup} warm-up",
        (plain("", "what"), Column("value")),
    )
    table.add("latency median", f"{r.latency_ms_median:.2f} ms")
    table.add("latency min - max", f"{r.latency_ms_min:.2f} - {r.latency_ms_max:.2f} ms")
    table.add("latency IQR", f"{r.latency_ms_iqr:.2f} ms")
    table.add("throughput", f"{r.images_per_s:,.1f} images/s")
    table.add(f"peak memory ({r.peak_memory_kind})", f"{r.peak_memory_bytes / 2**20:,.1f} MiB")
    table.add("estimated need (weights + live activations)", f"{r.estimated_bytes / 2**20:,.1f} MiB")
    predicted = "unknown" if r.predicted_bytes is None else f"{r.predicted_bytes / 2**20:,.1f} MiB"
    table.add("predicted peak (memory --inference: tensors only)", predicted)
    if r.checkpoint is not None:
        from .show import checkpoint_line

        table.add("weights", checkpoint_line(r.checkpoint))
    return Document([table], csv=table)


# -- detection ------------------------------------------------------------------------------------


SPLIT_COLUMNS = (
    plain("part"),
    counted("params"),
    counted("MACs", "macs"),
    counted("FLOPs", "flops", optional="= 2 x MACs"),
    counted("activations", short="acts"),
    plain("output"),
)


def _split_rows(title: str, parts: Sequence[PartCost], total: PartCost, label: str) -> Table:
    table = Table(title, SPLIT_COLUMNS)
    for part in parts:
        table.add(part.name, part.params, part.macs, part.flops, part.activations, shape_text(part.output))
    table.add(label, total.params, total.macs, total.flops, total.activations, shape_text(total.output), style="bold")
    return table


def split_document(sc: SplitCosts, per: str | None = None) -> Document:
    """`flops --split`: the base once per image, the head once per RoI, and their sum; with `per`
    (stage or block) each one's rows too, adding up to it."""
    base = sc.base

    def span(stages: Sequence[str]) -> str:
        return stages[0] if len(stages) == 1 else f"{stages[0]}..{stages[-1]}"

    lines = [
        f"split {sc.split.upper()} at {size_text(sc.input)}, batch {sc.batch}",
        f"base: stem + {span(sc.base_stages)} once per batch; output {shape_text(base.output)}, stride {base.stride}",
    ]
    if sc.head_per_roi:
        images = f"{sc.batch} image{'s' if sc.batch != 1 else ''}"
        lines.append(
            f"head: {span(sc.head_stages)} once per RoI on {sc.roi_size}x{sc.roi_size} RoI-pooled features, "
            f"{sc.rois} RoIs x {images}"
        )
    else:
        lines.append("no head: the whole trunk is the base")
    heading = Heading(sc.model, tuple(lines), style="")
    table = Table("", SPLIT_COLUMNS)
    table.add("base", base.params, base.macs, base.flops, base.activations, shape_text(base.output))
    if sc.head_per_roi:
        head = sc.head_per_roi
        table.add(
            f"head x {sc.head_runs}",
            head.params,
            sc.head_macs,
            sc.head_flops,
            sc.head_activations,
            f"{shape_text(head.output)} each",
        )
    table.add("total", sc.params, sc.macs, sc.flops, sc.activations, "", style="bold")
    doc = Document([heading, table], csv=table)
    if sc.head_per_roi:
        head = sc.head_per_roi
        doc.parts.append(
            note(
                f"one RoI through the head: {count(head.macs)} MACs, {count(head.activations)} activations, "
                f"output {shape_text(head.output)}; its parameters count once",
                None,
            )
        )
    if per in ("stage", "block"):
        base_rows = sc.base_parts if per == "stage" else (sc.base_parts[0], *sc.base_blocks)
        tables = [_split_rows(f"base per {per}, once per batch", base_rows, base, "base")]
        if sc.head_per_roi:
            head_rows = [sc.head_per_roi] if per == "stage" else sc.head_blocks
            tables.append(_split_rows(f"head per {per}, one RoI", head_rows, sc.head_per_roi, "head per RoI"))
        doc.parts += tables
        csv = Table("", (plain("section"), *SPLIT_COLUMNS))
        for section, t in (("total", table), *((t.title, t) for t in tables)):
            for row, style in zip(t.rows, t.styles):
                csv.add(section, *row, style=style)
        doc.csv = csv
    doc.parts.append(note(CONVENTION))
    return doc
