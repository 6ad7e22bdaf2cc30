"""Forward passes on meta tensors: sizes and counts with no memory and no data, for modules (or parts
of them) that no rule describes. Every pass runs in eval mode (batch norms in training mode refuse a
1 x 1 map of one sample) and gives the modules their modes back afterwards.

MACs come from torch's own `FlopCounterMode` (one multiply-accumulate = 2 of its FLOPs); activations
are the output elements of convolutions and matrix products of linear layers, as in the rules.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ..numbers.costs import Probe, Probed
from ..numbers.rules import Shape
from ..records.types import Op

aten = torch.ops.aten
ACTIVATION_OPS = {aten.convolution, aten.mm, aten.addmm}  # conv and linear outputs (fvcore's convention)


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """The module in eval mode for the duration, every submodule's own mode restored after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, mode in modes:
            m.training = mode


def on_meta(module: nn.Module) -> nn.Module:
    """The module itself when its tensors are all on the meta device, else a copy whose tensors are
    meta tensors of the same shapes (nothing is copied but the structure)."""
    tensors = [*module.parameters(), *module.buffers()]
    if all(t.is_meta for t in tensors):
        return module
    memo: dict[int, Any] = {}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in module.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(module, memo)


class _OutputElements(TorchDispatchMode):
    """Counts the output elements of convolutions and linear layers' matrix products."""

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in ACTIVATION_OPS and isinstance(out, torch.Tensor):
            self.elements += out.numel()
        return out


@contextlib.contextmanager
def counting() -> Iterator[tuple[FlopCounterMode, _OutputElements]]:
    """FlopCounterMode and the activation counter, both active, gradients off."""
    with torch.no_grad(), FlopCounterMode(display=False) as flops, _OutputElements() as elements:
        yield flops, elements


def input_dtype(module: nn.Module) -> torch.dtype:
    """The dtype the module's weights expect of an input (its first floating parameter's)."""
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.get_default_dtype())


def first_tensor(value: Any) -> torch.Tensor | None:
    """A module's output as one tensor: itself, the last of a dict or the first of a tuple/list."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict) and value:
        return first_tensor(list(value.values())[-1])
    if isinstance(value, (tuple, list)) and value:
        return first_tensor(value[0])
    return None


def probe_for(model: nn.Module) -> Probe:
    """A Probe for the ops of `model`'s records that no rule describes: each named module is run
    alone on a meta tensor of the shape it receives (batch 1)."""
    meta = on_meta(model)
    cache: dict[tuple[str, Shape], Probed | None] = {}

    def probe(op: Op, shape: Shape) -> Probed | None:
        key = (op.name, shape)
        if key not in cache:
            cache[key] = _run(meta, op.name, shape)
        return cache[key]

    return probe


def _run(model: nn.Module, name: str, shape: Shape) -> Probed | None:
    try:
        module = model.get_submodule(name)
        with evaluating(module), counting() as (flops, elements):
            out = first_tensor(module(torch.empty((1, *shape), device="meta", dtype=input_dtype(module))))
    except Exception:  # noqa: BLE001 - a module that cannot run alone is reported as not counted
        return None
    if out is None:
        return None
    return Probed(tuple(out.shape[1:]), flops.get_total_flops() // 2, elements.elements)
