"""The Python API; the command line is a thin layer over it (docs/api.md).

    import resnet_inspect as ri
    model = ri.build("resnet50_vd", output_stride=8)              # an nn.Module (meta by default)
    report = ri.inspect("resnet101@os8", input=(1024, 2048))     # records, costs, receptive fields
    print(report.macs, report.blocks[0].downsample, report.to_json())
    d = ri.diff("resnet50", "resnet50_vd")                        # a Diff
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from . import analysis, builder, checkpoint, sources
from .analysis import Costs, FieldReport, PartCost
from .compare import Diff
from .compare import diff as compare
from .errors import InspectError
from .names import resolve
from .sources import Model
from .spec import NetSpec
from .walker import BlockRecord, NetRecord, StemRecord
from .walker import walk as _walk

__all__ = ["Model", "Report", "build", "diff", "inspect", "load", "resolve", "walk"]


def load(name: str, device: str = "meta", init: bool = False, weights: str | None = None,
         strict: bool = True, **overrides: Any) -> Model:  # fmt: skip
    """Build what `name` names (our names, `torchvision:`, `timm:`, `file.py:factory`,
    `package.module:factory`) and load `weights` into it when given."""
    model = sources.load(name, device=device, init=init, **overrides)
    if weights:
        model = replace(model, checkpoint=checkpoint.load_into(model.module, weights, strict=strict))
    return model


def build(name: str, device: str = "meta", init: bool = False, weights: str | None = None,
          strict: bool = True, **overrides: Any) -> nn.Module:  # fmt: skip
    """The nn.Module for a name, e.g. `build("resnet50_vd", output_stride=8)`; on the meta device
    unless told (no memory, no initialisation), torchvision-style random weights when `init`."""
    return load(name, device, init, weights, strict, **overrides).module


def walk(module: nn.Module, label: str = "", state: bool = False) -> NetRecord:
    """Block records read off any ResNet-like module (with state-dict names when `state`)."""
    return _walk(module, label, state)


@dataclass(frozen=True)
class Report:
    """Everything the tool knows about one model at one input; fields mirror the JSON outputs."""

    model: str
    spec: NetSpec | None
    params: int
    input: tuple[int, int]
    batch: int
    output_stride: int
    macs: int
    flops: int
    activations: int
    stem: StemRecord | None
    blocks: tuple[BlockRecord, ...]
    stages: tuple[PartCost, ...]
    receptive_fields: FieldReport | None
    checkpoint: checkpoint.CheckpointReport | None = None
    unrecognised: tuple[str, ...] = ()
    record: NetRecord | None = field(default=None, repr=False)  # None: not read as a ResNet
    costs: Costs | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """`show`, `flops` and `rf` JSON together (schema resnet-inspect/report/1)."""
        from dataclasses import asdict

        from . import render, render_costs

        assert self.costs is not None
        return {
            "schema": "resnet-inspect/report/1",
            "model": self.model,
            "show": render.show_data(self.record, self.spec, self.costs) if self.record else None,
            "flops": render_costs.costs_data(self.costs),
            "rf": render_costs.rf_data(self.receptive_fields) if self.receptive_fields else None,
            "checkpoint": asdict(self.checkpoint) if self.checkpoint else None,
            "unrecognised": list(self.unrecognised),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """to_dict() as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)


def _size(value: int | tuple[int, int] | str) -> tuple[int, int]:
    if isinstance(value, str):
        return analysis.parse_input(value)
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def inspect(model: str | nn.Module, input: int | tuple[int, int] | str = 224, batch: int = 1,
            device: str = "meta", weights: str | None = None, strict: bool = True,
            **overrides: Any) -> Report:  # fmt: skip
    """Records, costs and receptive fields of a name or an nn.Module at `input` (N, (H, W) or
    'HxW'); overrides such as output_stride=8 apply to names. A module the walker cannot read as a
    ResNet still gets parameters, MACs and stage shapes (from a meta-tensor forward pass)."""
    height, width = _size(input)
    analysis.check_input(height, width, batch)
    if isinstance(model, nn.Module):
        if overrides:
            raise InspectError("overrides apply to names; build the module with them instead")
        loaded = Model(type(model).__name__, model, None,
                       checkpoint.load_into(model, weights, strict) if weights else None)  # fmt: skip
    else:
        loaded = load(model, device=device, weights=weights, strict=strict, **overrides)
    try:
        record = _walk(loaded.module, loaded.label)
    except InspectError:
        from . import trace

        costs, unknown = trace.traced_costs(loaded.module, loaded.label, height, width, batch)
        return Report(loaded.label, loaded.spec, costs.params, (height, width), batch, costs.output_stride,
                      costs.macs, costs.flops, costs.activations, None, (), costs.stages, None,
                      loaded.checkpoint, unknown, None, costs)  # fmt: skip
    costs = analysis.costs(record, height, width, batch)
    return Report(
        model=loaded.label, spec=loaded.spec, params=record.params, input=(height, width), batch=batch,
        output_stride=costs.output_stride, macs=costs.macs, flops=costs.flops, activations=costs.activations,
        stem=record.stem, blocks=record.blocks, stages=costs.stages,
        receptive_fields=analysis.receptive_fields(record), checkpoint=loaded.checkpoint,
        unrecognised=record.unrecognised, record=record, costs=costs,
    )  # fmt: skip


def state_keys(module: nn.Module) -> list[dict[str, Any]]:
    """Every state-dict entry in order: name, shape, kind (parameter or buffer), dtype."""
    parameters = {name for name, _ in module.named_parameters()}
    return [
        {"name": name, "shape": list(t.shape), "kind": "parameter" if name in parameters else "buffer",
         "dtype": str(t.dtype).removeprefix("torch.")}
        for name, t in module.state_dict().items()
    ]  # fmt: skip


def records(name: str, device: str = "meta", weights: str | None = None, strict: bool = True,
            state: bool = False, init: bool = False, **overrides: Any) -> tuple[Model, NetRecord]:  # fmt: skip
    """A model and its records; InspectError explaining the expected structure when it is not a ResNet."""
    loaded = load(name, device=device, init=init, weights=weights, strict=strict, **overrides)
    return loaded, _walk(loaded.module, loaded.label, state)


def diff(a: str, b: str, input: int | tuple[int, int] | str = 224, device: str = "meta",
         **overrides: Any) -> Diff:  # fmt: skip
    """A against B (names with their own @overrides; keyword overrides apply to both)."""
    height, width = _size(input)
    sides = []
    for label, text in (("A", a), ("B", b)):
        try:
            _, record = records(text, device=device, state=True, **overrides)
            sides.append((record, analysis.costs(record, height, width), analysis.receptive_fields(record)))
        except InspectError as error:
            raise InspectError(f"{label} ({text.strip()}): {error}") from None
    return compare(*sides[0], *sides[1])


def fvcore_costs(name: str, input: int | tuple[int, int] | str = 224, batch: int = 1, device: str = "cpu",
                 weights: str | None = None, strict: bool = True,
                 **overrides: Any) -> tuple[Costs, dict[str, Any]]:  # fmt: skip
    """Our costs beside fvcore's own count on a real input (the cross-check engine)."""
    from . import crosscheck

    height, width = _size(input)
    analysis.check_input(height, width, batch)
    loaded, record = records(name, device=device, weights=weights, strict=strict, init=True, **overrides)
    costs = analysis.costs(record, height, width, batch)
    return costs, crosscheck.fvcore_count(loaded.module, record, height, width, batch)


def bench(name: str, device: str = "cpu", input: int | tuple[int, int] | str = 224, batch: int = 1,
          dtype: str = "float32", channels_last: bool = False, warmup: int = 5, iters: int = 20,
          weights: str | None = None, strict: bool = True, progress: Any = None,
          **overrides: Any) -> Any:  # fmt: skip
    """Real forward latency and throughput of a name (see resnet_inspect.bench.run)."""
    from . import bench as benchmark

    model, costs = prepare_bench(name, device, input, batch, dtype, warmup, iters, **overrides)
    return benchmark.run(model, costs, device, dtype, channels_last, warmup, iters, progress, weights, strict)


def prepare_bench(name: str, device: str, input: int | tuple[int, int] | str, batch: int, dtype: str,
                  warmup: int, iters: int, **overrides: Any) -> tuple[nn.Module, Costs]:  # fmt: skip
    """The meta model and its costs, after every check `bench` makes before allocating."""
    from . import bench as benchmark

    height, width = _size(input)
    analysis.check_input(height, width, batch)
    loaded, record = records(name, device="meta", **overrides)
    costs = analysis.costs(record, height, width, batch, dtype=dtype)
    benchmark.preflight(loaded.module, costs, device, dtype, warmup, iters)
    return loaded.module, costs


def costs_of_names(
    names: list[str], height: int, width: int, batch: int = 1, device: str = "meta", **overrides: Any
) -> list[Costs]:
    """Costs of many variants at one input, in the order given (the model-zoo table); names that
    build the same layers (resnet50d and resnet50_vd at output stride 32, say) are walked once."""
    records_by_layers: dict[object, NetRecord] = {}
    results = []
    for name in names:
        if sources.parse_source(name).kind != "name":
            _, record = records(name, device=device, **overrides)
        else:
            spec = resolve(name, **overrides)
            key = (spec.stem_spec(), spec.blocks(), spec.num_classes)
            if key not in records_by_layers:
                records_by_layers[key] = _walk(builder.build(spec, device=device), spec.name)
            record = replace(records_by_layers[key], model=spec.name)
        results.append(analysis.costs(record, height, width, batch))
    return results
