"""Size arithmetic shared by the layers that pad themselves and the rules that predict them: torch's
own output-length formulas and TensorFlow's "same" padding. Integers in, integers out; no torch."""

from __future__ import annotations


def window_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a conv or pooling window along one axis, as torch computes it."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = (span + stride - 1) // stride + 1
    if (out - 1) * stride >= size + padding:  # the last window must start inside the input
        out -= 1
    return out


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> int:
    """Total padding that makes a window op give ceil(size / stride) outputs (TF "SAME");
    the smaller half goes before the first element."""
    return max((-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def whole(value: float) -> int | float:
    """An int when the value is whole (2.0 -> 2), the float otherwise (1.5)."""
    return int(value) if float(value).is_integer() else value
