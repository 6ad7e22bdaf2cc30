"""Costs and receptive fields -> rich tables and JSON (flops, rf). Every number is labelled with its
convention: MACs are multiply-accumulates, FLOPs = 2 x MACs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from typing import TYPE_CHECKING

from .render import compact_table, count

if TYPE_CHECKING:
    from .analysis import Costs, FieldReport, Freeze, PartCost, SplitCosts
    from .bench import BenchResult

FLOPS_SCHEMA = "resnet-inspect/flops/1"
RF_SCHEMA = "resnet-inspect/rf/1"
CONVENTION = (
    "MACs = multiply-accumulates of conv and linear layers (what torchvision, fvcore and the papers "
    "call FLOPs); FLOPs = 2 x MACs; activations = output elements of conv and linear layers"
)


def giga(n: int) -> str:
    """4089184256 -> '4.089 G'."""
    return f"{n / 1e9:.3f} G"


def shape_text(shape: Sequence[int]) -> str:
    """(256, 56, 56) -> '256x56x56'."""
    return "x".join(map(str, shape))


def _share_bar(part: int, total: int) -> Any:
    from rich.bar import Bar

    return Bar(size=1.0, begin=0.0, end=part / total if total else 0.0, width=12)


def costs_tables(costs: Costs, per: str = "stage", traced: bool = False,
                 unrecognised: Sequence[str] = ()) -> list[Any]:  # fmt: skip
    """`flops` for one model: a header, then one row per stage, block or layer."""
    from rich.text import Text

    header = Text()
    header.append(costs.model, style="bold")
    header.append(
        f" at {costs.input[0]}x{costs.input[1]}, batch {costs.batch}, output stride {costs.output_stride}\n"
        f"params {count(costs.params)}   MACs {count(costs.macs)} ({giga(costs.macs)})   "
        f"FLOPs {count(costs.flops)} ({giga(costs.flops)})\n"
        f"activations {count(costs.activations)} ({costs.activation_bytes / 2**20:,.1f} MiB as {costs.dtype})"
    )
    out: list[Any] = [header]
    if per == "layer":
        table = compact_table("per layer", [("layer", True), ("kind", True), ("output", True), ("params", False),
                                     ("MACs", False), ("activations", False)])  # fmt: skip
        for row in costs.layers:
            table.add_row(row.name, row.kind, shape_text(row.output), count(row.params), count(row.macs),
                          count(row.activations))  # fmt: skip
        out.append(table)
    else:
        parts = costs.stages if per == "stage" or not costs.blocks else costs.blocks
        table = compact_table(f"per {per}", [("name", True), ("params", False), ("MACs", False), ("FLOPs", False),
                                      ("activations", False), ("output", True), ("stride", False),
                                      ("MACs share", True)])  # fmt: skip
        for part in parts:
            table.add_row(part.name, count(part.params), count(part.macs), count(part.flops),
                          count(part.activations), shape_text(part.output), str(part.stride),
                          _share_bar(part.macs, costs.macs))  # fmt: skip
        table.add_row("total", count(costs.params), count(costs.macs), count(costs.flops),
                      count(costs.activations), "", "", "", style="bold")  # fmt: skip
        out.append(table)
    if traced:
        from .trace import NOTE

        out.append(Text(NOTE, style="yellow"))
    if unrecognised:
        from .render import unrecognised_text

        out.append(Text(unrecognised_text(unrecognised), style="yellow"))
    out.append(Text(CONVENTION, style="dim"))
    return out


def zoo_costs_table(all_costs: Sequence[Costs]) -> Any:
    """The model-zoo table: one row per model at one input."""
    first = all_costs[0]
    table = compact_table(
        f"{len(all_costs)} models at {first.input[0]}x{first.input[1]}, batch {first.batch} "
        "(MACs = multiply-accumulates, FLOPs = 2 x MACs)",
        [("name", True), ("params", False), ("GMACs", False), ("GFLOPs", False), ("MACs", False),
         ("output stride", False)],
    )  # fmt: skip
    for c in all_costs:
        table.add_row(c.model, count(c.params), f"{c.macs / 1e9:.3f}", f"{c.flops / 1e9:.3f}", count(c.macs),
                      str(c.output_stride))  # fmt: skip
    return table


def _part_dict(part: PartCost) -> dict[str, Any]:
    data = asdict(part)
    data["output"] = list(part.output)
    return data


def costs_data(costs: Costs, per: str = "stage") -> dict[str, Any]:
    """`flops --json` for one model (schema resnet-inspect/flops/1, docs/cli.md)."""
    data: dict[str, Any] = {
        "schema": FLOPS_SCHEMA,
        "model": costs.model,
        "input": list(costs.input),
        "batch": costs.batch,
        "output_stride": costs.output_stride,
        "params": costs.params,
        "macs": costs.macs,
        "flops": costs.flops,
        "activations": costs.activations,
        "activation_bytes": costs.activation_bytes,
        "dtype": costs.dtype,
        "convention": {"macs": "conv + linear multiply-accumulates", "flops": "2 x macs",
                       "activations": "conv + linear output elements"},  # fmt: skip
        "stages": [_part_dict(p) for p in costs.stages],
    }
    if per == "block":
        data["blocks"] = [_part_dict(p) for p in costs.blocks]
    if per == "layer":
        data["layers"] = [{**asdict(row), "output": list(row.output)} for row in costs.layers]
    return data


# -- fvcore ---------------------------------------------------------------------------------------


def fvcore_tables(costs: Costs, fvcore: dict[str, Any]) -> list[Any]:
    """`flops --count fvcore`: fvcore's own total per stage beside our conv + linear MACs."""
    from rich.text import Text

    header = Text()
    header.append(costs.model, style="bold")
    header.append(
        f" at {costs.input[0]}x{costs.input[1]}, batch {costs.batch}: fvcore FlopCountAnalysis total "
        f"{count(fvcore['total'])} ({giga(fvcore['total'])})"
    )
    table = compact_table("per stage", [("name", True), ("fvcore", False), ("MACs (ours)", False)])
    for stage in costs.stages:
        table.add_row(stage.name, count(fvcore["stages"][stage.name]), count(stage.macs))
    table.add_row("total", count(fvcore["total"]), count(costs.macs), style="bold")
    ops = compact_table("fvcore by operator", [("operator", True), ("count", False)])
    for name, value in sorted(fvcore["by_operator"].items()):
        ops.add_row(name, count(value))
    note = Text(
        "fvcore counts one multiply-add as one flop for conv and linear (= our MACs) and adds "
        "batch-norm (2 per element) and adaptive pooling (1 per input element) work; "
        f"unsupported ops it skipped: {', '.join(fvcore['unsupported']) or 'none'}",
        style="dim",
    )
    return [header, table, ops, note]


# -- receptive fields -----------------------------------------------------------------------------


def _aligned(flag: bool) -> Any:
    from rich.text import Text

    return Text("yes", style="green") if flag else Text("no", style="yellow")


def rf_tables(report: FieldReport, per: str = "block") -> list[Any]:
    """`rf`: the stage table, then (per block) one row per block."""
    from rich.text import Text

    header = Text()
    header.append(report.model, style="bold")
    header.append(f"  output stride {report.output_stride}")
    columns = [("name", True), ("size", False), ("jump", False), ("padding", False), ("center", False),
               ("aligned", True), ("main", False), ("shortcut", False)]  # fmt: skip
    out: list[Any] = [header]
    stage_table = compact_table("per stage (theoretical receptive field of one unit, input pixels)", columns)
    for row in (report.stem, *report.stages):
        stage_table.add_row(row.name, str(row.size), str(row.stride), str(row.padding), str(row.center),
                            _aligned(row.aligned), str(row.main_size), str(row.shortcut_size))  # fmt: skip
    out.append(stage_table)
    if per == "block":
        block_table = compact_table("per block", columns)
        for row in report.blocks:
            block_table.add_row(row.name, str(row.size), str(row.stride), str(row.padding), str(row.center),
                                _aligned(row.aligned), str(row.main_size), str(row.shortcut_size))  # fmt: skip
        out.append(block_table)
    out.append(Text(
        "size: pixels one unit sees; jump: pixels between neighbouring units; padding: how far unit 0's "
        "field starts before pixel 0; center: centre of unit 0's field; aligned: the residual branch and "
        "the shortcut have the same jump and centre (main/shortcut: each branch's own size)",
        style="dim",
    ))  # fmt: skip
    return out


def rf_data(report: FieldReport) -> dict[str, Any]:
    """`rf --json` (schema resnet-inspect/rf/1, docs/cli.md)."""
    return {
        "schema": RF_SCHEMA,
        "model": report.model,
        "output_stride": report.output_stride,
        "stem": asdict(report.stem),
        "blocks": [asdict(row) for row in report.blocks],
        "stages": [asdict(row) for row in report.stages],
    }


# -- bench ----------------------------------------------------------------------------------------


def bench_table(r: BenchResult) -> Any:
    """`bench`: latency, throughput and memory of one configuration."""
    table = compact_table(
        f"{r.model} on {r.device} ({r.device_name}), {r.dtype}"
        f"{', channels_last' if r.channels_last else ''}, batch {r.batch}, {r.input[0]}x{r.input[1]}, "
        f"{r.threads} threads: {r.iters} timed iterations after {r.warmup} warm-up",
        [("", True), ("value", False)],
    )
    table.add_row("latency median", f"{r.latency_ms_median:.2f} ms")
    table.add_row("latency min - max", f"{r.latency_ms_min:.2f} - {r.latency_ms_max:.2f} ms")
    table.add_row("latency IQR", f"{r.latency_ms_iqr:.2f} ms")
    table.add_row("throughput", f"{r.images_per_s:,.1f} images/s")
    table.add_row(f"peak memory ({r.peak_memory_kind})", f"{r.peak_memory_bytes / 2**20:,.1f} MiB")
    table.add_row("estimated need (weights + live activations)", f"{r.estimated_bytes / 2**20:,.1f} MiB")
    return table


def bench_data(r: BenchResult) -> dict[str, Any]:
    """`bench --json` (schema resnet-inspect/bench/1, docs/cli.md)."""
    data = asdict(r)
    data["input"] = list(r.input)
    data["latencies_ms"] = list(r.latencies_ms)
    return {"schema": "resnet-inspect/bench/1", **data}


# -- detection ------------------------------------------------------------------------------------


def split_tables(sc: SplitCosts) -> list[Any]:
    """`flops --split`: the base once per image, the head once per RoI."""
    from rich.text import Text

    header = Text()
    header.append(sc.model, style="bold")
    header.append(
        f" split {sc.split.upper()} at {sc.input[0]}x{sc.input[1]}, batch {sc.batch}: base = stem + "
        f"{', '.join(sc.base_stages)} (output {shape_text(sc.base.output)}, stride {sc.base.stride})"
        + (f"; head = {', '.join(sc.head_stages)} on {sc.roi_size}x{sc.roi_size} RoI features" if sc.head_per_roi
           else "; no head (the whole trunk is the base)")  # fmt: skip
    )
    table = compact_table("", [("part", True), ("params", False), ("MACs", False), ("FLOPs", False), ("output", True)])
    table.add_row("base (per batch)", count(sc.base.params), count(sc.base.macs), count(sc.base.flops),
                  shape_text(sc.base.output))  # fmt: skip
    if sc.head_per_roi:
        head = sc.head_per_roi
        table.add_row("head per RoI", count(head.params), count(head.macs), count(head.flops), shape_text(head.output))
        table.add_row(f"head x {sc.rois} RoIs x {sc.batch}", "", count(sc.head_macs), count(2 * sc.head_macs), "")
    table.add_row("total", count(sc.base.params + (sc.head_per_roi.params if sc.head_per_roi else 0)),
                  count(sc.macs), count(2 * sc.macs), "", style="bold")  # fmt: skip
    return [header, table, Text(CONVENTION, style="dim")]


def split_data(sc: SplitCosts) -> dict[str, Any]:
    """`flops --split --json` (schema resnet-inspect/split/1, docs/cli.md)."""
    base = _part_dict(sc.base)
    base["stages"] = ["stem", *sc.base_stages]
    head = None
    if sc.head_per_roi:
        per_roi = sc.head_per_roi
        head = {
            "stages": list(sc.head_stages), "roi_size": sc.roi_size, "rois": sc.rois, "params": per_roi.params,
            "macs_per_roi": per_roi.macs, "flops_per_roi": per_roi.flops, "output": list(per_roi.output),
            "macs": sc.head_macs, "flops": 2 * sc.head_macs,
        }  # fmt: skip
    return {
        "schema": "resnet-inspect/split/1", "model": sc.model, "split": sc.split, "input": list(sc.input),
        "batch": sc.batch, "base": base, "head": head, "macs": sc.macs, "flops": 2 * sc.macs,
    }  # fmt: skip


def freeze_text(f: Freeze) -> Any:
    """One paragraph for --freeze-at."""
    from rich.text import Text

    frozen = " + ".join(f.frozen_parts) or "nothing"
    return Text(
        f"freeze-at {f.freeze_at} (detectron2): frozen {frozen}: {count(f.frozen_params)} parameters; trainable "
        f"{count(f.trainable_params)}; batch norms: {f.bn_layers} layers, {count(f.bn_params)} parameters, "
        f"{count(f.bn_params_trainable)} of them outside the frozen part (frozen too when BN is frozen, the "
        f"usual detection setting: then {count(f.trainable_params - f.bn_params_trainable)} trainable)"
    )


def freeze_data(f: Freeze) -> dict[str, Any]:
    """--freeze-at as JSON."""
    data = asdict(f)
    data["frozen_parts"] = list(f.frozen_parts)
    return data
