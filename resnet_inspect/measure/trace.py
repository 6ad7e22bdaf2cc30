"""Costs of a module the walker cannot read as a ResNet: one forward pass on meta tensors (no
memory, no data) with hooks on its leaf layers, the same arithmetic applied to what they saw.

The records-based path needs no forward pass at all; this one exists so that `flops` still gives
parameters, MACs and stage shapes for a module with another structure. Its stages are the module's
top-level children.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..errors import InspectError
from ..numbers.costs import Costs, LayerCost, PartCost, check_dtype
from ..numbers.rules import rule
from ..numbers.sizes import check_input
from ..records.readers import reader_for
from ..records.types import Op

NOTE = (
    "not a ResNet the walker recognises: costs from one forward pass on meta tensors with hooks on "
    "its layers; stages are its top-level children"
)


def traced_costs(
    module: nn.Module, label: str, height: int, width: int, batch: int = 1, dtype: str = "float32"
) -> tuple[Costs, tuple[str, ...]]:
    """Costs from a meta-tensor forward pass, and the leaves no rule covers (not counted)."""
    check_input(height, width, batch)
    check_dtype(dtype)
    if any(not t.is_meta for t in (*module.parameters(), *module.buffers())):
        module = copy.deepcopy(module).to("meta")
    first_conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    if first_conv is None:
        raise InspectError(f"{label} has no Conv2d: this tool counts convolutional networks")
    seen: list[tuple[Op, str, tuple[int, ...]]] = []
    unknown: list[str] = []
    outputs: dict[str, tuple[int, ...]] = {}
    hooks = []
    top = dict(module.named_children())
    for name, child in module.named_modules():
        if name and next(iter(child.children()), None) is None:
            reader = reader_for(child)
            if reader is None:
                unknown.append(f"{name} ({type(child).__name__})")
            elif reader != "ignore":
                op = reader(name, child)
                hooks.append(
                    child.register_forward_hook(
                        lambda m, i, o, op=op: seen.append((op, op.name.split(".")[0], tuple(o.shape[1:])))
                    )
                )
    for name, child in top.items():
        hooks.append(
            child.register_forward_hook(
                lambda m, i, o, name=name: outputs.__setitem__(name, tuple(o.shape[1:])) if torch.is_tensor(o) else None
            )
        )
    try:
        with torch.no_grad():
            module(torch.zeros(1, first_conv.in_channels, height, width, device="meta"))
    except Exception as error:  # noqa: BLE001 - the model's own forward refusing this input
        raise InspectError(
            f"{label} could not run at {height}x{width} (a forward pass on meta tensors): "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from None
    finally:
        for hook in hooks:
            hook.remove()
    rows = [
        LayerCost(
            op.name,
            op.kind,
            part,
            out,
            op.params,
            rule(op).macs(op, (), out) * batch,
            rule(op).activations(op, out) * batch,
        )
        for op, part, out in seen
    ]
    stages, stride = [], 1
    for name, child in top.items():
        part_rows = [r for r in rows if r.part == name]
        stride *= math.prod(op.stride[0] for op, part, _ in seen if part == name)
        total = sum(r.macs for r in part_rows)
        params = sum(p.numel() for p in child.parameters())
        stages.append(
            PartCost(name, params, total, sum(r.activations for r in part_rows), outputs.get(name, ()), stride)
        )
    total = sum(r.macs for r in rows)
    acts = sum(r.activations for r in rows)
    spatial = [s for s in stages if len(s.output) == 3]
    costs = Costs(
        model=label,
        input=(height, width),
        batch=batch,
        output_stride=spatial[-1].stride if spatial else stride,
        params=sum(p.numel() for p in module.parameters()),
        macs=total,
        activations=acts,
        dtype=dtype,
        stages=tuple(stages),
        blocks=(),
        layers=tuple(rows),
        channels=first_conv.in_channels,
    )
    return costs, tuple(unknown)
