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


UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
MAX_BYTES = 2**60


def parse_bytes(text: str, param: str = "budget") -> int:
    """'24GiB' -> 25769803776, '80GB' -> 80000000000, '512MiB', '1.5 GiB', '4096' (bytes);
    KiB/MiB/GiB/TiB are powers of 1024, kB/MB/GB/TB powers of 1000 (a fraction of a byte is dropped)."""
    match = re.fullmatch(r"\s*([0-9]{1,19}(?:\.[0-9]{1,9})?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in ("", *UNITS):
        raise InspectError(
            f"must be a size like 24GiB, 80GB, 512MiB or a number of bytes (units: B, kB, MB, GB, TB, KiB, MiB, "
            f"GiB, TiB), got {text!r}",
            param,
        )
    whole, _, fraction = match.group(1).partition(".")
    scale = UNITS.get(unit, 1)
    value = int(whole) * scale + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)
    if value < 1:
        raise InspectError(f"must be at least one byte, got {text!r}", param)
    if value > MAX_BYTES:
        raise InspectError(f"must be at most 1 EiB, got {text!r}", param)
    return value
