"""The Python API the command line is a thin layer over."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import Any

from torch import nn

from . import analysis, builder
from .names import resolve
from .spec import NetSpec
from .walker import NetRecord
from .walker import walk as _walk
from .diff import diff as compare

__all__ = ["build", "compare", "resolve", "walk", "inspect_name"]


def build(name: str, device: str = "meta", init: bool = False, **overrides: Any) -> nn.Module:
    """The module for a variant name (with `@` overrides or keyword overrides), e.g.
    `build("resnet50_vd", output_stride=8)`; random torchvision-style weights when `init`."""
    return builder.build(resolve(name, **overrides), device=device, init=init)


def walk(module: nn.Module, label: str = "", state: bool = False) -> NetRecord:
    """Block records read off any ResNet-like module (with state-dict names when `state`)."""
    return _walk(module, label, state)


def inspect_name(
    name: str, device: str = "meta", init: bool = False, state: bool = False, **overrides: Any
) -> tuple[NetSpec, nn.Module, NetRecord]:
    """Resolve, build and walk a variant: its spec, its module and its records."""
    spec = resolve(name, **overrides)
    module = builder.build(spec, device=device, init=init)
    return spec, module, _walk(module, spec.name, state)


def costs_of_names(
    names: list[str], height: int, width: int, batch: int = 1, device: str = "meta", **overrides: Any
) -> list[analysis.Costs]:
    """Costs of many variants at one input, in the order given (the model-zoo table).

    Building modules is pure-Python work bound by the GIL, so on Linux with two or more cores a
    forked child builds every other variant while this process builds the rest; the child only
    creates meta tensors, never running a kernel, so forking after `import torch` is safe here.
    """
    job = (height, width, batch, device, overrides)
    if len(names) < 8 or (os.cpu_count() or 1) < 2 or sys.platform != "linux" or device != "meta":
        return _costs(names, *job)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        odd = pool.submit(_costs, names[1::2], *job)
        even = _costs(names[0::2], *job)
        merged = [None] * len(names)
        merged[0::2], merged[1::2] = even, odd.result()
    return merged  # type: ignore[return-value]


def _costs(
    names: list[str], height: int, width: int, batch: int, device: str, overrides: dict[str, Any]
) -> list[analysis.Costs]:
    records: dict[object, NetRecord] = {}  # names that build the same layers walk alike
    results = []
    for name in names:
        spec = resolve(name, **overrides)
        key = (spec.stem_spec(), spec.blocks(), spec.num_classes)
        if key not in records:
            records[key] = _walk(builder.build(spec, device=device), spec.name)
        record = replace(records[key], model=spec.name)
        results.append(analysis.costs(record, height, width, batch))
    return results
