"""The Python API: every view the command line offers is one function here, returning data (docs/api.md).

    import resnet_inspect as ri
    model = ri.build("resnet50_vd", output_stride=8)              # an nn.Module (meta by default)
    report = ri.inspect("resnet101@os8", input=(1024, 2048))     # records, costs, receptive fields
    print(report.macs, report.blocks[0].downsample, report.to_json())
    d = ri.diff("resnet50", "resnet50_vd")                        # a Diff

Importing this module does not import torch (so `list` and `--help` start fast); the functions that
build modules import it on first use.
"""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .errors import InspectError
from .model.names import REGISTRY, is_pattern, matching, natural_key, parse_int_list, resolve
from .model.spec import NetSpec
from .numbers import detection
from .numbers.costs import Costs, PartCost, costs
from .numbers.detection import Freeze, SplitCosts
from .numbers.diff import Diff
from .numbers.diff import diff as compare
from .numbers.fields import Coverage, FieldReport, FieldRow, receptive_fields
from .numbers.fields import coverage as field_coverage
from .numbers.memory import Memory
from .numbers.memory import memory as memory_of
from .numbers.sizes import check_input, input_size, parse_bytes, parse_input
from .output import schema
from .records.types import BlockRecord, NetRecord, StemRecord

if TYPE_CHECKING:
    from torch import nn

    from .measure.erf import UnitField
    from .model.checkpoint import CheckpointReport
    from .model.sources import Model

__all__ = [
    "Model",
    "Report",
    "build",
    "diff",
    "inspect",
    "is_pattern",
    "load",
    "parse_input",
    "parse_int_list",
    "resolve",
    "walk",
]

Size = int | tuple[int, int] | str


def __getattr__(name: str) -> Any:
    if name == "Model":
        from .model.sources import Model

        return Model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load(
    name: str,
    device: str = "meta",
    init: bool = False,
    weights: str | None = None,
    strict: bool = True,
    trust_code: bool = False,
    seed: int | None = None,
    **overrides: Any,
) -> Model:
    """Build what `name` names (our names, `torchvision:`, `timm:`, and, only with `trust_code`,
    `file.py:factory` or `package.module:factory`, which run that code) and load `weights` into it
    when given; with `seed`, the random weights are decided by it alone."""
    from .model import checkpoint, sources

    if seed is None:
        model = sources.load(name, device=device, init=init, trust_code=trust_code, **overrides)
    else:
        model = _seeded(name, device, init, trust_code, seed, overrides)
    if weights:
        model = replace(model, checkpoint=checkpoint.load_into(model.module, weights, strict=strict))
    return model


def build(
    name: str,
    device: str = "meta",
    init: bool = False,
    weights: str | None = None,
    strict: bool = True,
    trust_code: bool = False,
    seed: int | None = None,
    **overrides: Any,
) -> nn.Module:
    """The nn.Module for a name, e.g. `build("resnet50_vd", output_stride=8)`; on the meta device
    unless told (no memory, no initialisation), torchvision-style random weights when `init`
    (decided by `seed` alone when given)."""
    return load(name, device, init, weights, strict, trust_code, seed, **overrides).module


def walk(module: nn.Module, label: str = "", state: bool = False) -> NetRecord:
    """Block records read off any ResNet-like module (with state-dict names when `state`)."""
    from .records.walker import walk as walk_module

    return walk_module(module, label, state)


def records(
    name: str,
    device: str = "meta",
    weights: str | None = None,
    strict: bool = True,
    state: bool = False,
    init: bool = False,
    trust_code: bool = False,
    seed: int | None = None,
    **overrides: Any,
) -> tuple[Model, NetRecord]:
    """A model and its records; InspectError explaining the expected structure when it is not a ResNet."""
    loaded = load(name, device, init, weights, strict, trust_code, seed, **overrides)
    return loaded, walk(loaded.module, loaded.label, state)


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
    checkpoint: CheckpointReport | None = None
    unrecognised: tuple[str, ...] = ()
    record: NetRecord | None = field(default=None, repr=False)  # None: not read as a ResNet
    costs: Costs | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """`show`, `flops` and `rf` JSON together (schema resnet-inspect/report/1)."""
        assert self.costs is not None
        return schema.report(
            self.model,
            self.record,
            self.spec,
            self.costs,
            self.receptive_fields,
            self.checkpoint,
            self.unrecognised,
        )

    def to_json(self, indent: int | None = 2) -> str:
        """to_dict() as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)


def inspect(
    model: str | nn.Module,
    input: Size = 224,
    batch: int = 1,
    device: str = "meta",
    weights: str | None = None,
    strict: bool = True,
    **overrides: Any,
) -> Report:
    """Records, costs and receptive fields of a name or an nn.Module at `input` (N, (H, W) or
    'HxW'); overrides such as output_stride=8 apply to names. A module the walker cannot read as a
    ResNet still gets parameters, MACs and stage shapes (from a meta-tensor forward pass)."""
    from .model import checkpoint
    from .model.sources import Model
    from .records.walker import walk as walk_module

    height, width = input_size(input)
    check_input(height, width, batch)
    if isinstance(model, str):
        loaded = load(model, device=device, weights=weights, strict=strict, **overrides)
    else:
        if overrides:
            raise InspectError("apply to names; build the module with them instead", tuple(sorted(overrides)))
        report = checkpoint.load_into(model, weights, strict) if weights else None
        loaded = Model(type(model).__name__, model, None, report)
    try:
        record = walk_module(loaded.module, loaded.label)
    except InspectError:
        record = None
    counted = _costs_of(loaded, record, height, width, batch)
    if counted.blocks == () and record is not None and record.blocks:
        record = None  # the forward pass disagreed with the reading: the records are not shown
    if record is None:
        return Report(
            loaded.label,
            loaded.spec,
            counted.params,
            (height, width),
            batch,
            counted.output_stride,
            counted.macs,
            counted.flops,
            counted.activations,
            None,
            (),
            counted.stages,
            None,
            loaded.checkpoint,
            (),
            None,
            counted,
        )
    return Report(
        model=loaded.label,
        spec=loaded.spec,
        params=record.params,
        input=(height, width),
        batch=batch,
        output_stride=counted.output_stride,
        macs=counted.macs,
        flops=counted.flops,
        activations=counted.activations,
        stem=record.stem,
        blocks=record.blocks,
        stages=counted.stages,
        receptive_fields=receptive_fields(record),
        checkpoint=loaded.checkpoint,
        unrecognised=record.unrecognised,
        record=record,
        costs=counted,
    )


def _costs_of(
    model: Model, record: NetRecord | None, height: int, width: int, batch: int = 1, dtype: str = "float32"
) -> Costs:
    """Costs of a loaded model at an input. Our own names: the rules alone. Any other module: its
    probed ops counted by a meta forward of each alone, the whole checked against one meta forward
    (and counted by it instead, said in `notes`, when the two disagree or the walker cannot read it)."""
    if model.spec is not None and record is not None:
        return costs(record, height, width, batch, dtype)
    from .measure.meta import probe_for
    from .measure.trace import disagreement, traced_costs

    if record is not None:
        counted = costs(record, height, width, batch, dtype, probe_for(model.module) if record.probed else None)
        problem = disagreement(model.module, record, counted)
        if problem is None:
            return counted
    traced = traced_costs(model.module, model.label, height, width, batch, dtype)
    if record is None:
        return traced
    return replace(traced, notes=(*traced.notes, f"the walker's reading of {model.label} was not used: {problem}"))


# -- the views ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShowView:
    """`show`: a model's records, with costs at an input and a freeze_at count when asked for."""

    model: Model
    record: NetRecord
    costs: Costs | None
    frozen: Freeze | None


def show(name: str, input: Size | None = None, freeze_at: int | None = None, **options: Any) -> ShowView:
    """Records of a name (with each block's output at `input`, and detectron2's freeze_at count)."""
    model, record = records(name, **options)
    at = _costs_of(model, record, *input_size(input)) if input is not None else None
    frozen = detection.freeze(record, freeze_at) if freeze_at is not None else None
    return ShowView(model, record, at, frozen)


def freeze(report: Report, freeze_at: int) -> Freeze:
    """detectron2's freeze_at on an inspected model: frozen and trainable parameters, batch norms."""
    if report.record is None:
        raise InspectError(f"needs the stages of a ResNet; {report.model} does not read as one", "freeze_at")
    return detection.freeze(report.record, freeze_at)


def split(
    name: str,
    input: Size = 224,
    split: str = "c4",
    rois: int = 300,
    roi_size: int = 7,
    batch: int = 1,
    freeze_at: int | None = None,
    **options: Any,
) -> tuple[Model, SplitCosts, Freeze | None]:
    """Faster R-CNN's view of a backbone: the base once per image, the last stage once per RoI (C4)."""
    model, record = records(name, **options)
    height, width = input_size(input)
    probe = None
    if model.spec is None and record.probed:
        from .measure.meta import probe_for

        probe = probe_for(model.module)
    result = detection.split_costs(record, height, width, split, rois, roi_size, batch, probe)
    return model, result, detection.freeze(record, freeze_at) if freeze_at is not None else None


def fields(name: str, **options: Any) -> tuple[Model, FieldReport]:
    """Theoretical receptive fields of a name, per block and stage."""
    model, record = records(name, **options)
    return model, receptive_fields(record)


def coverage(name: str, input: Size = 224, **options: Any) -> tuple[Model, FieldReport, tuple[Coverage, ...]]:
    """Theoretical receptive fields of a name, and for the centre unit of each stage at `input` how
    much of the image its field covers (clipped at the borders; docs/conventions.md)."""
    model, record = records(name, **options)
    height, width = input_size(input)
    counted = _costs_of(model, record, height, width)
    maps = {p.name: (p.output[1], p.output[2]) for p in counted.stages if len(p.output) == 3}
    return model, receptive_fields(record), field_coverage(record, maps, height, width)


def effective_field(
    name: str,
    stage: str | None = None,
    input: Size = 224,
    samples: int = 4,
    seed: int = 0,
    device: str = "cpu",
    progress: Any = None,
    **options: Any,
) -> tuple[Model, FieldReport, UnitField]:
    """One unit's theoretical and effective receptive field (a real forward and backward pass with
    random weights seeded by `seed`, or the loaded `weights`)."""

    from .measure.erf import effective_field as measure

    height, width = input_size(input)
    if device == "meta":
        raise InspectError("must be cpu or cuda, not meta: the effective field needs a real backward pass", "device")
    planned, record = records(name, **options)
    chosen = stage or record.stages[-1]
    receptive_fields(record).stage(chosen)  # a stage that exists, before any work
    _preflight(planned, record, height, width, 1, device, "the effective field (a forward and backward pass)")
    model, record = records(name, device=device, init=True, seed=seed, **options)
    return (
        model,
        receptive_fields(record),
        measure(model.module, record, chosen, height, width, samples, seed, progress),
    )


def _seeded(name: str, device: str, init: bool, trust_code: bool, seed: int, overrides: dict[str, Any]) -> Model:
    """A model whose random weights `seed` alone decides, with torch's global generator left as it
    was: ours draw from a private generator; other code's constructors draw from the global one, so
    its state is forked around them (a thread drawing meanwhile would share the seeded stream)."""
    import torch

    from .model import sources
    from .model.build import init_weights

    if sources.parse_source(name).kind != "name":
        cuda = torch.device(device).index or 0 if device.startswith("cuda") else None
        with torch.random.fork_rng(devices=[] if cuda is None else [cuda]):
            torch.random.default_generator.manual_seed(seed)
            if cuda is not None:
                with torch.cuda.device(cuda):
                    torch.cuda.manual_seed(seed)
            return sources.load(name, device=device, trust_code=trust_code, **overrides)
    model = sources.load(name, device=device, trust_code=trust_code, **overrides)
    if init and device != "meta":
        init_weights(model.module, torch.Generator(device=device).manual_seed(seed))
    return model


def memory(
    name: str,
    input: Size = 224,
    batch: int = 1,
    dtype: str = "float32",
    optimizer: str = "momentum",
    freeze_at: int = 0,
    inference: bool = False,
    budget: int | str | None = None,
    **options: Any,
) -> tuple[Model, Memory]:
    """Training memory of a name (parameters, gradients, `optimizer` state, the activations autograd
    saves per stage and block, with detectron2's `freeze_at`; float16/bfloat16 `dtype` = autocast) or,
    with `inference`, its weights and forward peak (the model cast to `dtype`); the biggest batch
    within `budget` (bytes, or a size like '24GiB')."""
    from .records.behaviour import foreign_leaves, forward_style

    height, width = input_size(input)
    check_input(height, width, batch)
    budget_bytes = parse_bytes(budget) if isinstance(budget, str) else budget
    if isinstance(budget_bytes, bool) or not (budget_bytes is None or isinstance(budget_bytes, int)):
        raise InspectError(f"must be a number of bytes or a size like '24GiB', got {budget!r}", "budget")
    model, record = records(name, **options)
    result = memory_of(
        record,
        height,
        width,
        batch,
        dtype,
        optimizer,
        freeze_at,
        inference,
        style=forward_style(model.module, record),
        foreign=foreign_leaves(model.module),
        budget=budget_bytes,
    )
    return model, result


@dataclass(frozen=True)
class Compared:
    """One row of the comparison view: a model's costs, the receptive field of its last stage (None
    when it does not read as a ResNet), and the checkpoint loaded into it."""

    costs: Costs
    field: FieldRow | None
    checkpoint: CheckpointReport | None = None


SORT_KEYS = ("name", "params", "macs", "flops", "activations", "output_stride", "feature_map", "receptive_field")


def _sort_key(sort: str) -> Any:
    def key(row: Compared) -> Any:
        c, f = row.costs, row.field
        values = {
            "name": 0,
            "params": c.params,
            "macs": c.macs,
            "flops": c.flops,
            "activations": c.activations,
            "output_stride": c.output_stride,
            "feature_map": (math.prod(c.trunk.output[1:]), c.trunk.output[0]) if len(c.trunk.output) == 3 else (0, 0),
            # a field that sees the whole input is the largest; an unknown one sorts last
            "receptive_field": (f is None, bool(f and f.whole_input), f.size if f else 0),
        }
        return (values[sort], natural_key(c.model))

    return key


def comparison(
    names: list[str] | tuple[str, ...] | None = None,
    input: Size = 224,
    batch: int = 1,
    sort: str | None = None,
    device: str = "meta",
    weights: str | None = None,
    strict: bool = True,
    trust_code: bool = False,
    **overrides: Any,
) -> list[Compared]:
    """`flops A B ...` and the zoo: costs and last-stage receptive field of each model at one input.
    `names` may hold shell-style patterns over the registered names (`resnet*d`); None: every
    registered name. In the order given, or ascending by `sort` (one of SORT_KEYS). Names that build
    the same layers (resnet50d and resnet50_vd at output stride 32, say) are walked once."""
    from .model.build import build as build_spec
    from .model.sources import parse_source
    from .records.walker import walk as walk_module

    if sort is not None and sort not in SORT_KEYS:
        raise InspectError(f"must be one of {', '.join(SORT_KEYS)}, not {sort!r}", "sort")
    height, width = input_size(input)
    check_input(height, width, batch)
    walked: dict[object, tuple[NetRecord, FieldRow]] = {}
    rows = []
    for name in expand(names):
        if weights or parse_source(name).kind != "name":
            report = inspect(name, (height, width), batch, device, weights, strict, trust_code=trust_code, **overrides)
            assert report.costs is not None
            field = report.receptive_fields.stages[-1] if report.receptive_fields else None
            rows.append(Compared(report.costs, field, report.checkpoint))
            continue
        spec = resolve(name, **overrides)
        key = (spec.stem_spec(), spec.blocks(), spec.num_classes, spec.norm, spec.preact)
        if key not in walked:
            record = walk_module(build_spec(spec, device=device), spec.name)
            walked[key] = (record, receptive_fields(record).stages[-1])
        record, field = walked[key]
        rows.append(Compared(costs(replace(record, model=spec.name), height, width, batch), field))
    if sort is not None:
        rows.sort(key=_sort_key(sort))
    return rows


def zoo(
    names: list[str] | None = None,
    input: Size = 224,
    batch: int = 1,
    device: str = "meta",
    trust_code: bool = False,
    **overrides: Any,
) -> list[Costs]:
    """Costs of many variants at one input, in the order given (every registered name by default);
    the comparison view without its receptive fields."""
    return [row.costs for row in comparison(names, input, batch, device=device, trust_code=trust_code, **overrides)]


def list_names(patterns: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Every registered name, in natural order (resnet18 before resnet101); with `patterns`, those
    matching any of them (shell-style: `resnet*d`, `wide_*`)."""
    everything = sorted(REGISTRY, key=natural_key)
    if not patterns:
        return everything
    chosen = set()
    for pattern in patterns:
        found = [n for n in everything if fnmatch.fnmatchcase(n, pattern.strip().lower())]
        if not found:
            raise InspectError(f"{pattern.strip()!r} matches no registered name")
        chosen.update(found)
    return [n for n in everything if n in chosen]


def expand(names: list[str] | tuple[str, ...] | None) -> list[str]:
    """Names with their shell-style patterns (`resnet*d`) expanded over the registered names, each
    once, in the order given; every registered name when there are none."""
    return matching(list(names)) if names else list_names()


def list_specs(patterns: list[str] | tuple[str, ...] | None = None) -> list[NetSpec]:
    """The spec of every registered name (matching `patterns`), in natural order."""
    return [REGISTRY[name]() for name in list_names(patterns)]


def diff(a: str, b: str, input: Size = 224, device: str = "meta", **overrides: Any) -> Diff:
    """A against B (names with their own @overrides; keyword overrides apply to both)."""
    height, width = input_size(input)
    sides = []
    for label, text in (("A", a), ("B", b)):
        try:
            model, record = records(text, device=device, state=True, **overrides)
            sides.append((record, _costs_of(model, record, height, width), receptive_fields(record)))
        except InspectError as error:
            raise error.within(f"{label} ({text.strip()}): ") from None
    return compare(*sides[0], *sides[1])


def fvcore_costs(
    name: str,
    input: Size = 224,
    batch: int = 1,
    device: str = "cpu",
    weights: str | None = None,
    strict: bool = True,
    **overrides: Any,
) -> tuple[Costs, dict[str, Any]]:
    """Our costs beside fvcore's own count on a real input (the cross-check engine)."""
    height, width = input_size(input)
    check_input(height, width, batch)
    planned, record = records(name, **overrides)
    _preflight(planned, record, height, width, batch, device, "fvcore's count (a real forward pass)", inference=True)
    from .measure.fvcore import fvcore_count

    loaded, record = records(name, device=device, weights=weights, strict=strict, init=True, **overrides)
    counted = _costs_of(loaded, record, height, width, batch)
    return counted, fvcore_count(loaded.module, record, height, width, batch)


def _preflight(
    model: Model,
    record: NetRecord,
    height: int,
    width: int,
    batch: int,
    device: str,
    what: str,
    inference: bool = False,
) -> None:
    """Refuse, with the estimate, a real-tensor run that would not fit in the device's free memory:
    weights and gradients plus what autograd saves (a backward pass) or the forward peak (inference),
    from the analytic memory model; where that model does not know a layer, a bound: every op's
    output alive at once, three times over (an input, an output, a saved copy)."""
    import math

    from .machine import available_bytes
    from .model.build import check_device
    from .records.behaviour import forward_style

    target = check_device(device)
    if target.type == "meta":
        raise InspectError(f"must be cpu or cuda, not meta: {what} runs real tensors", "device")
    style = forward_style(model.module, record) if model.spec is None else "nested"
    planned = memory_of(record, height, width, batch, optimizer="sgd", inference=inference, style=style)
    need = planned.total_bytes
    if need is None or not planned.complete:
        counted = costs(record, height, width, batch)
        outputs = sum(math.prod(row.output) for row in counted.layers) * batch
        need = planned.weights_bytes * (1 if inference else 2) + 3 * 4 * outputs
    free = available_bytes(target)
    if need > free:
        raise InspectError(
            f"{what} of {record.model} at {height}x{width}, batch {batch}, needs about {need / 2**30:.2f} GiB "
            f"but {target} has {free / 2**30:.2f} GiB free"
        )


def prepare_bench(
    name: str, device: str, input: Size, batch: int, dtype: str, warmup: int, iters: int, **overrides: Any
) -> tuple[nn.Module, Costs, Memory]:
    """The meta model, its costs and its predicted inference memory, after every check `bench` makes
    before allocating."""
    from .measure.bench import preflight
    from .records.behaviour import foreign_leaves, forward_style

    height, width = input_size(input)
    check_input(height, width, batch)
    loaded, record = records(name, device="meta", **overrides)
    counted = _costs_of(loaded, record, height, width, batch, dtype)
    preflight(loaded.module, counted, device, dtype, warmup, iters)
    style, foreign = forward_style(loaded.module, record), foreign_leaves(loaded.module)
    predicted = memory_of(record, height, width, batch, dtype, inference=True, style=style, foreign=foreign)
    return loaded.module, counted, predicted


def bench(
    name: str,
    device: str = "cpu",
    input: Size = 224,
    batch: int = 1,
    dtype: str = "float32",
    channels_last: bool = False,
    warmup: int = 5,
    iters: int = 20,
    weights: str | None = None,
    strict: bool = True,
    progress: Any = None,
    **overrides: Any,
) -> Any:
    """Real forward latency and throughput of a name (see resnet_inspect.measure.bench.run)."""
    from .measure.bench import run

    model, counted, predicted = prepare_bench(name, device, input, batch, dtype, warmup, iters, **overrides)
    total = predicted.total_bytes if predicted.complete else None
    return run(model, counted, device, dtype, channels_last, warmup, iters, progress, weights, strict, total)


def state_keys(module: nn.Module) -> list[dict[str, Any]]:
    """Every state-dict entry in order: name, shape, kind (parameter or buffer), dtype."""
    parameters = {name for name, _ in module.named_parameters()}
    return [
        {
            "name": name,
            "shape": list(t.shape),
            "kind": "parameter" if name in parameters else "buffer",
            "dtype": str(t.dtype).removeprefix("torch."),
        }
        for name, t in module.state_dict().items()
    ]
