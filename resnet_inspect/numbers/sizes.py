"""Input sizes and batches: parsing `224` / `512x1024` and the bounds every count checks first."""

from __future__ import annotations

import re

from ..errors import InspectError

MAX_SIDE = 2**20  # a million pixels a side: beyond any image, far inside int64 arithmetic
MAX_BATCH = 2**20


def check_input(height: int, width: int, batch: int = 1) -> None:
    """InspectError for a non-positive or absurd size or batch."""
    if height < 1 or width < 1:
        raise InspectError(f"must be positive, got {height}x{width}", "input")
    if height > MAX_SIDE or width > MAX_SIDE:
        raise InspectError(f"sides must be at most {MAX_SIDE}, got {height}x{width}", "input")
    if batch < 1:
        raise InspectError(f"must be at least 1, got {batch}", "batch")
    if batch > MAX_BATCH:
        raise InspectError(f"must be at most {MAX_BATCH}, got {batch}", "batch")


def parse_input(text: str) -> tuple[int, int]:
    """'224' -> (224, 224); '512x1024' -> (512, 1024) as height x width (ASCII digits only)."""
    match = re.fullmatch(r"\s*([0-9]{1,9})\s*(?:[xX]\s*([0-9]{1,9})\s*)?", text)
    if not match:
        raise InspectError(f"must be N or HxW with positive integers (e.g. 224, 512x1024), got {text!r}", "input")
    height = int(match.group(1))
    width = int(match.group(2) or height)
    check_input(height, width)
    return height, width


def input_size(value: int | tuple[int, int] | str) -> tuple[int, int]:
    """An API `input=` argument (N, (H, W) or 'HxW') as (height, width), checked."""
    if isinstance(value, str):
        return parse_input(value)
    if isinstance(value, bool) or not isinstance(value, (int, tuple, list)):
        raise InspectError(f"must be N, (H, W) or 'HxW', got {value!r}", "input")
    height, width = (value, value) if isinstance(value, int) else tuple(value)  # type: ignore[misc]
    if not (isinstance(height, int) and isinstance(width, int)):
        raise InspectError(f"must be N, (H, W) or 'HxW', got {value!r}", "input")
    check_input(height, width)
    return height, width
