"""`flops`, `rf`, `bench` and the detection split as documents. Every number is labelled with its
convention: MACs are multiply-accumulates, FLOPs = 2 x MACs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .document import Column, Document, Heading, Share, Styled, Table, count, counted, note, plain
from .text import CONVENTION, giga, listed, shape_text, size_text

if TYPE_CHECKING:
    from ..measure.bench import BenchResult
    from ..numbers.costs import Costs
    from ..numbers.detection import SplitCosts
    from ..numbers.fields import FieldReport

PART_COLUMNS = (
    plain("name"),
    counted("params"),
    counted("MACs", "macs"),
    counted("FLOPs", "flops"),
    counted("activations"),
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


def _parts_table(costs: Costs, per: str) -> Table:
    parts = costs.stages if per == "stage" or not costs.blocks else costs.blocks
    table = Table(f"per {per}", (*PART_COLUMNS, plain("MACs share", "macs_share")))
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
            counted("activations"),
        ),
    )
    for row in costs.layers:
        table.add(row.name, row.kind, shape_text(row.output), row.params, row.macs, row.activations)
    return table


def costs_document(costs: Costs, per: str = "stage", probed: Sequence[str] = ()) -> Document:
    """`flops` for one model: a header, then one row per stage, block or layer, and what was not
    counted by the rules (counted from a forward pass, or not at all)."""
    table = _layers_table(costs) if per == "layer" else _parts_table(costs, per)
    doc = Document([_heading(costs), table], csv=table)
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


def zoo_document(all_costs: Sequence[Costs]) -> Document:
    """The model-zoo table: one row per model at one input."""
    first = all_costs[0]
    table = Table(
        f"{len(all_costs)} models at {size_text(first.input)}, batch {first.batch} "
        "(MACs = multiply-accumulates, FLOPs = 2 x MACs)",
        (
            plain("name", "model"),
            counted("params"),
            Column("GMACs", text=lambda v: f"{v:.3f}", key="gmacs"),
            Column("GFLOPs", text=lambda v: f"{v:.3f}", key="gflops"),
            counted("MACs", "macs"),
            Column("output stride", key="output_stride"),
        ),
    )
    for c in all_costs:
        table.add(c.model, c.params, c.macs / 1e9, c.flops / 1e9, c.macs, c.output_stride)
    return Document([table], csv=table)


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


def rf_document(report: FieldReport, per: str = "block") -> Document:
    """`rf`: the stage table, then (per block) one row per block."""
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
    return Document([table], csv=table)


# -- detection ------------------------------------------------------------------------------------


def split_document(sc: SplitCosts) -> Document:
    """`flops --split`: the base once per image, the head once per RoI."""
    base = sc.base
    head_text = (
        f"head = {', '.join(sc.head_stages)} on {sc.roi_size}x{sc.roi_size} RoI features"
        if sc.head_per_roi
        else "no head (the whole trunk is the base)"
    )
    heading = Heading(
        sc.model,
        (
            (
                f"split {sc.split.upper()} at {size_text(sc.input)}, batch {sc.batch}: base = stem + "
                f"{', '.join(sc.base_stages)} (output {shape_text(base.output)}, stride {base.stride}); {head_text}"
            ),
        ),
        style="",
    )
    table = Table(
        "",
        (
            plain("part"),
            counted("params"),
            counted("MACs", "macs"),
            counted("FLOPs", "flops"),
            plain("output"),
        ),
    )
    table.add("base (per batch)", base.params, base.macs, base.flops, shape_text(base.output))
    if sc.head_per_roi:
        head = sc.head_per_roi
        table.add("head per RoI", head.params, head.macs, head.flops, shape_text(head.output))
        table.add(f"head x {sc.rois} RoIs x {sc.batch}", None, sc.head_macs, sc.head_flops, "")
    table.add("total", sc.params, sc.macs, sc.flops, "", style="bold")
    return Document([heading, table, note(CONVENTION)], csv=table)
