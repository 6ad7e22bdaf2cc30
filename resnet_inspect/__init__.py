"""resnet-inspect: build any ResNet / ResNeXt / Wide ResNet / ResNet-vd variant and tell the truth about it."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "CheckpointMismatch",
    "InspectError",
    "Model",
    "Report",
    "__version__",
    "build",
    "diff",
    "inspect",
    "load",
    "resolve",
    "walk",
]
_API = ("Model", "Report", "build", "diff", "inspect", "load", "resolve", "walk")

from .errors import CheckpointMismatch, InspectError


def __getattr__(name: str) -> Any:
    """Import the torch-backed API on first use, so `--help` and `list` start fast."""
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'resnet_inspect' has no attribute {name!r}")
