"""The Python API the command line is a thin layer over."""

from __future__ import annotations

from typing import Any

from torch import nn

from . import builder
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


def walk(module: nn.Module, label: str = "") -> NetRecord:
    """Block records read off any ResNet-like module."""
    return _walk(module, label)


def inspect_name(
    name: str, device: str = "meta", init: bool = False, **overrides: Any
) -> tuple[NetSpec, nn.Module, NetRecord]:
    """Resolve, build and walk a variant: its spec, its module and its records."""
    spec = resolve(name, **overrides)
    module = builder.build(spec, device=device, init=init)
    return spec, module, _walk(module, spec.name)
