"""resnet-inspect: build any ResNet / ResNeXt / Wide ResNet / ResNet-vd variant and tell the truth about it."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["InspectError", "__version__", "build", "resolve", "walk"]

from .errors import InspectError


def __getattr__(name: str) -> Any:
    """Import the torch-backed API on first use, so `--help` and `list` start fast."""
    if name in ("build", "walk", "resolve"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'resnet_inspect' has no attribute {name!r}")
