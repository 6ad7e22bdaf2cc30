"""Costs of a module from one forward pass on meta tensors (no memory, no data), for modules the walker
cannot read as a ResNet, and the check that a module the walker did read behaves as read.

The records path needs no forward pass at all; this one exists so that `flops` still gives
parameters, MACs and stage shapes for a module with another structure (an FPN, a plain CNN). Its
stages are the module's top-level children; their strides come from the sizes they hand on, and
MACs from torch's FlopCounterMode, attributed to the modules that ran them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import InspectError
from ..numbers.costs import Costs, LayerCost, PartCost, check_dtype
from ..numbers.rules import Shape
from ..numbers.sizes import check_input
from ..records.readers import read
from ..records.types import NetRecord
from .meta import counting, evaluating, first_tensor, input_dtype, on_meta

NOTE = (
    "not a ResNet the walker recognises: costs from one forward pass on meta tensors (torch's "
    "FlopCounterMode); stages are its top-level children"
)
ACTIVATION_KINDS = ("conv", "blur", "linear")


def stride_between(size: int, out: int) -> int:
    """The stride that takes `size` pixels to `out`: the power of two whose floor or ceiling division
    gives `out` (a conv, pool or 'same' layer rounds one way or the other), else the nearest ratio."""
    for exponent in range(31):
        stride = 2**exponent
        if out in (size // stride, -(-size // stride)):
            return stride
    return max(1, round(size / out))


def _input_channels(module: nn.Module, label: str) -> int:
    first = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise InspectError(f"{label} has no Conv2d: this tool counts convolutional networks")
    return first.in_channels


def _forward(meta: nn.Module, channels: int, height: int, width: int, label: str, hooked: dict[str, nn.Module]):
    """One batch-1 forward: each hooked module's output shape, FlopCounterMode's per-module counts."""
    shapes: dict[str, Shape] = {}
    hooks = []
    for name, child in hooked.items():

        def record(m: nn.Module, inputs: object, output: object, name: str = name) -> None:
            tensor = first_tensor(output)
            if tensor is not None:
                shapes[name] = tuple(tensor.shape[1:])

        hooks.append(child.register_forward_hook(record))
    try:
        with evaluating(meta), counting() as (flops, _):
            meta(torch.empty(1, channels, height, width, device="meta", dtype=input_dtype(meta)))
    except Exception as error:  # noqa: BLE001 - the model's own forward refusing this input
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InspectError(
            f"{label} could not run at {height}x{width} (a forward pass on meta tensors): {type(error).__name__}: {text}",
            "input",
        ) from None
    finally:
        for hook in hooks:
            hook.remove()
    root = type(meta).__name__
    counts = {
        key.removeprefix(root).removeprefix("."): sum(per_op.values()) // 2
        for key, per_op in flops.get_flop_counts().items()
        if key != "Global"
    }
    return shapes, counts, flops.get_total_flops() // 2


def traced_costs(
    module: nn.Module, label: str, height: int, width: int, batch: int = 1, dtype: str = "float32"
) -> Costs:
    """Costs from a meta-tensor forward pass: the top-level children as stages, every leaf as a layer."""
    check_input(height, width, batch)
    check_dtype(dtype)
    meta = on_meta(module)
    channels = _input_channels(meta, label)
    top = dict(meta.named_children())
    leaves = {name: m for name, m in meta.named_modules() if name and next(iter(m.children()), None) is None}
    shapes, counts, total = _forward(meta, channels, height, width, label, {**top, **leaves})
    layers = []
    for name, leaf in leaves.items():
        if name not in shapes:
            continue  # not called (or no tensor out)
        op = read(name, leaf)
        kind = op.kind if op not in (None, "ignore") else ("ignored" if op == "ignore" else "probed")  # type: ignore[union-attr]
        acts = math.prod(shapes[name]) if kind in ACTIVATION_KINDS else 0
        params = sum(p.numel() for p in leaf.parameters())
        part = name.split(".")[0]
        layers.append(LayerCost(name, kind, part, shapes[name], params, counts.get(name, 0) * batch, acts * batch))
    stages, stride = [], 1
    for name, child in top.items():
        output = shapes.get(name, ())
        if len(output) == 3 and (output[1] > 1 or stride == 1):  # a global pool's 1 x 1 tells no stride
            stride = stride_between(height, output[1])
        acts = sum(r.activations for r in layers if r.part == name)
        params = sum(p.numel() for p in child.parameters())
        stages.append(PartCost(name, params, counts.get(name, 0) * batch, acts, output, stride))
    spatial = [s for s in stages if len(s.output) == 3]
    return Costs(
        model=label,
        input=(height, width),
        batch=batch,
        output_stride=spatial[-1].stride if spatial else 1,
        params=sum(p.numel() for p in meta.parameters()),
        macs=total * batch,
        activations=sum(r.activations for r in layers),
        dtype=dtype,
        stages=tuple(stages),
        blocks=(),
        layers=tuple(layers),
        channels=channels,
        notes=(NOTE,),
    )


def disagreement(module: nn.Module, record: NetRecord, costs: Costs) -> str | None:
    """Where a forward pass on meta tensors (batch 1) disagrees with the records' costs: a block's
    output shape, the model's output, or the MACs FlopCounterMode counts; None when it agrees."""
    meta = on_meta(module)
    hooked = {part.name: meta.get_submodule(part.name) for part in costs.blocks}
    height, width = costs.input
    shapes, _, total = _forward(meta, costs.channels, height, width, record.model, hooked)
    for part in costs.blocks:
        if shapes.get(part.name) != part.output:
            seen = "x".join(map(str, shapes.get(part.name, ()))) or "nothing"
            return f"{part.name} outputs {seen} in a forward pass, {'x'.join(map(str, part.output))} as read"
    if costs.complete and total * costs.batch != costs.macs:
        return f"a forward pass counts {total * costs.batch:,} MACs, the records {costs.macs:,}"
    return None
