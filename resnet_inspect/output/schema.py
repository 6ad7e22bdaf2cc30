"""Every JSON document the tool writes, in one place (docs/cli.md describes each). Field names are
public API: fields are only ever added, never renamed or removed. Units are in the names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from typing import TYPE_CHECKING, Any

from ..records.types import BLOCK_FIELDS, STEM_FIELDS
from .text import family

if TYPE_CHECKING:
    from ..measure.bench import BenchResult
    from ..model.checkpoint import CheckpointReport
    from ..model.spec import NetSpec
    from ..numbers.costs import Costs, PartCost
    from ..numbers.detection import Freeze, SplitCosts
    from ..numbers.diff import Diff, Metric
    from ..numbers.fields import Coverage, FieldReport, FieldRow
    from ..numbers.memory import Memory, PartMemory
    from ..records.types import NetRecord

SHOW = "resnet-inspect/show/1"
FLOPS = "resnet-inspect/flops/1"
RF = "resnet-inspect/rf/1"
SPLIT = "resnet-inspect/split/1"
DIFF = "resnet-inspect/diff/1"
BENCH = "resnet-inspect/bench/1"
REPORT = "resnet-inspect/report/1"
MEMORY = "resnet-inspect/memory/1"

CONVENTION = {
    "macs": "conv + linear multiply-accumulates",
    "flops": "2 x macs",
    "activations": "conv + linear output elements",
}


def jsonable(value: Any) -> Any:
    """Dataclasses become dicts and tuples lists, all the way down."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def _pick(value: Any, names: Sequence[str]) -> dict[str, Any]:
    return {name: jsonable(getattr(value, name)) for name in names}


def spec_data(spec: NetSpec | None) -> dict[str, Any] | None:
    """A spec with its depth."""
    if spec is None:
        return None
    return {**jsonable(spec), "depth": spec.depth}


# -- show -------------------------------------------------------------------------------------------


def show(
    record: NetRecord, spec: NetSpec | None, costs: Costs | None = None, frozen: Freeze | None = None
) -> dict[str, Any]:
    """`show --format json`."""
    blocks = []
    outputs = {part.name: part for part in costs.blocks} if costs else {}
    cumulative = record.stem.stride
    for block in record.blocks:
        cumulative *= block.stride
        data = {**_pick(block, BLOCK_FIELDS), "cumulative_stride": cumulative}
        if costs is not None:
            data["output"] = list(outputs[block.name].output)
        blocks.append(data)
    data = {
        "schema": SHOW,
        "model": record.model,
        "spec": spec_data(spec),
        "params": record.params,
        "input": list(costs.input) if costs else None,
        "stem": _pick(record.stem, STEM_FIELDS),
        "blocks": blocks,
        "unrecognised": list(record.unrecognised),
        "complete": not (record.probed or record.unrecognised),
        "uncounted": [{"module": op.name, "kind": op.module, "reason": "no rule describes it"} for op in record.probed]
        + [{"module": item.split(" ")[0], "kind": item, "reason": "between stages"} for item in record.unrecognised],
    }
    if frozen:
        data["freeze"] = freeze(frozen)
    return data


def freeze(f: Freeze) -> dict[str, Any]:
    """--freeze-at."""
    return {**jsonable(f), "trainable_with_frozen_bn": f.trainable_with_frozen_bn}


# -- flops ------------------------------------------------------------------------------------------


def part(p: PartCost) -> dict[str, Any]:
    """A stage or a block."""
    return {
        "name": p.name,
        "params": p.params,
        "macs": p.macs,
        "flops": p.flops,
        "activations": p.activations,
        "output": list(p.output),
        "stride": p.stride,
    }


def receptive_field(row: FieldRow | None) -> dict[str, Any] | None:
    """The last stage's theoretical receptive field in `flops` JSON (None: not read as a ResNet)."""
    if row is None:
        return None
    return {"stage": row.name, "size": row.size, "stride": row.stride, "global": row.whole_input}


def flops(costs: Costs, per: str = "stage", field: FieldRow | None = None, **extra: Any) -> dict[str, Any]:
    """`flops --json` for one model (`field`: its last stage's receptive field); `extra` adds
    sections (fvcore, freeze)."""
    data: dict[str, Any] = {
        "schema": FLOPS,
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
        "convention": CONVENTION,
        "stages": [part(p) for p in costs.stages],
        "complete": costs.complete,
        "uncounted": [{"module": u.module, "kind": u.kind, "reason": u.reason} for u in costs.uncounted],
        "notes": list(costs.notes),
        "feature_map": list(costs.trunk.output),
        "receptive_field": receptive_field(field),
    }
    if per == "block":
        data["blocks"] = [part(p) for p in costs.blocks]
    if per == "layer":
        data["layers"] = jsonable(costs.layers)
    data.update({key: value for key, value in extra.items() if value is not None})
    return data


def split(sc: SplitCosts, frozen: Freeze | None = None, per: str = "stage") -> dict[str, Any]:
    """`flops --split --json`: base and head with their stages (blocks with `per` block)."""
    head = None
    if sc.head_per_roi:
        per_roi = sc.head_per_roi
        head = {
            "stages": list(sc.head_stages),
            "roi_size": sc.roi_size,
            "rois": sc.rois,
            "params": per_roi.params,
            "macs_per_roi": per_roi.macs,
            "flops_per_roi": per_roi.flops,
            "activations_per_roi": per_roi.activations,
            "output": list(per_roi.output),
            "macs": sc.head_macs,
            "flops": sc.head_flops,
            "activations": sc.head_activations,
        }
        if per == "block":
            head["blocks_per_roi"] = [part(p) for p in sc.head_blocks]
    base = {**part(sc.base), "stages": ["stem", *sc.base_stages], "parts": [part(p) for p in sc.base_parts]}
    if per == "block":
        base["blocks"] = [part(p) for p in sc.base_blocks]
    data = {
        "schema": SPLIT,
        "model": sc.model,
        "split": sc.split,
        "input": list(sc.input),
        "batch": sc.batch,
        "base": base,
        "head": head,
        "macs": sc.macs,
        "flops": sc.flops,
        "params": sc.params,
        "activations": sc.activations,
    }
    if frozen:
        data["freeze"] = freeze(frozen)
    return data


def field_row(row: Any) -> dict[str, Any]:
    """One receptive-field row; `global` when a global pool or attention makes it the whole input."""
    data = jsonable(row)
    data["global"] = data.pop("whole_input")
    return data


def coverage(c: Coverage) -> dict[str, Any]:
    """One stage's centre unit at an input (`rf --input`)."""
    return {
        "name": c.name,
        "map": list(c.feature),
        "unit": list(c.unit),
        "box": list(c.box),
        "clipped": list(c.clipped),
        "covered": list(c.covered),
        "image_fraction": c.image_fraction,
        "inside_fraction": c.inside_fraction,
        "global": c.whole_input,
    }


def rf(report: FieldReport, covered: Sequence[Coverage] = ()) -> dict[str, Any]:
    """`rf --json` (with `input` and `coverage` when an input size was given)."""
    data = {
        "schema": RF,
        "model": report.model,
        "output_stride": report.output_stride,
        "stem": field_row(report.stem),
        "blocks": [field_row(row) for row in report.blocks],
        "stages": [field_row(row) for row in report.stages],
        "complete": report.complete,
    }
    if covered:
        data["input"] = list(covered[0].input)
        data["coverage"] = [coverage(c) for c in covered]
    return data


def bench(r: BenchResult) -> dict[str, Any]:
    """`bench --json`."""
    return {"schema": BENCH, **jsonable(r)}


# -- memory -----------------------------------------------------------------------------------------

MEMORY_CONVENTION = {
    "activations_saved_bytes": "unique storages autograd saves for backward, parameters excluded, "
    "charged to the part that saves them first",
    "forward_peak_bytes": "activation storages alive at once in an eval, no_grad forward, input included",
    "total_bytes": "training: params + buffers + grads + optimizer + activations saved; "
    "inference: params + buffers + forward peak",
    "not_included": "CUDA context, cuDNN workspaces, allocator caching and fragmentation, backward temporaries",
}


def memory_part(p: PartMemory) -> dict[str, Any]:
    """A stage or a block of `memory`."""
    return {**jsonable(p), "weights_bytes": p.weights_bytes, "total_bytes": p.total_bytes}


def memory(m: Memory) -> dict[str, Any]:
    """`memory --json`."""
    total = m.total_bytes
    largest = m.largest_stage
    return {
        "schema": MEMORY,
        "model": m.model,
        "mode": m.mode,
        "input": list(m.input),
        "batch": m.batch,
        "dtype": m.dtype,
        "autocast": m.mode == "training" and m.dtype != "float32",
        "optimizer": m.optimizer,
        "freeze_at": m.freeze_at,
        "frozen_parts": list(m.frozen_parts),
        "forward_style": m.style,
        "params": m.params,
        "trainable_params": m.trainable_params,
        "params_bytes": m.params_bytes,
        "buffers_bytes": m.buffers_bytes,
        "grads_bytes": m.grads_bytes,
        "optimizer_bytes": m.optimizer_bytes,
        "activations_saved_bytes": m.activations_saved_bytes,
        "weight_copies_bytes": m.weight_copies_bytes,
        "forward_peak_bytes": m.forward_peak_bytes,
        "forward_peak_at": m.forward_peak_at,
        "total_bytes": total,
        "per_sample_bytes": m.per_sample_bytes,
        "fixed_bytes": m.fixed_bytes,
        "largest_stage": {
            "name": largest.name,
            "activations_saved_bytes": largest.activations_saved_bytes,
            "forward_peak_bytes": largest.forward_peak_bytes,
            "share_of_total": (largest.activations_saved_bytes / total) if (total and m.mode == "training") else None,
        },
        "budget_bytes": m.budget_bytes,
        "max_batch": m.max_batch,
        "complete": m.complete,
        "uncounted": list(m.uncounted),
        "convention": MEMORY_CONVENTION,
        "stages": [memory_part(p) for p in m.stages],
        "blocks": [memory_part(p) for p in m.blocks],
    }


# -- diff -------------------------------------------------------------------------------------------


def _metric(m: Metric) -> dict[str, Any]:
    data = {"a": jsonable(m.a), "b": jsonable(m.b)}
    if m.delta is not None:
        data["delta"] = m.delta
        data["ratio"] = m.ratio
    return data


def diff(d: Diff, show_all: bool = False) -> dict[str, Any]:
    """`diff --json`; equal fields only with `show_all`."""

    def changed(metrics: Sequence[Metric]) -> dict[str, Any]:
        return {m.name: _metric(m) for m in metrics if m.changed or show_all}

    stages = [
        {
            "name": stage.name,
            "params": _metric(stage.params),
            "macs": _metric(stage.macs),
            "output": _metric(stage.output),
            "blocks": [
                {
                    "name": b.name,
                    "status": b.status,
                    "fields": changed(b.fields) if b.status != "same" or show_all else {},
                }
                for b in stage.blocks
                if b.status != "same" or show_all
            ],
        }
        for stage in d.stages
        if stage.changed or show_all
    ]
    state = jsonable(d.state)
    state["reshaped"] = [{"name": n, "a": list(a), "b": list(b)} for n, a, b in d.state.reshaped]
    return {
        "schema": DIFF,
        "a": d.a,
        "b": d.b,
        "input": list(d.input),
        "identical": d.identical,
        "summary": {m.name: _metric(m) for m in d.summary},
        "stem": changed(d.stem),
        "stages": stages,
        "state_dict": state,
    }


# -- list, keys, checkpoints, the whole report -----------------------------------------------------


def names(specs: Sequence[NetSpec]) -> list[dict[str, Any]]:
    """`list --json`."""
    return [{"name": s.name, "family": family(s), "convention": s.convention, "spec": spec_data(s)} for s in specs]


def checkpoint(report: CheckpointReport | None) -> dict[str, Any] | None:
    """How a checkpoint's keys met the model's."""
    return jsonable(report) if report else None


def report(
    model: str,
    record: NetRecord | None,
    spec: NetSpec | None,
    costs: Costs,
    fields_: FieldReport | None,
    loaded: CheckpointReport | None,
    unrecognised: Sequence[str],
) -> dict[str, Any]:
    """`Report.to_dict()`: show, flops and rf together."""
    return {
        "schema": REPORT,
        "model": model,
        "show": show(record, spec, costs) if record else None,
        "flops": flops(costs, field=fields_.stages[-1] if fields_ and fields_.stages else None),
        "rf": rf(fields_) if fields_ else None,
        "checkpoint": checkpoint(loaded),
        "unrecognised": list(unrecognised),
    }
