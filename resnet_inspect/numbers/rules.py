"""The counting rules: one entry per layer kind, like fvcore's table of op handles, applied to
walked records instead of a traced graph. Pure integer functions; nothing here runs a tensor.

Convention (docs/conventions.md), the one torchvision's tables, fvcore and the ResNet papers use:
one multiply-accumulate (MAC) per multiply-add of a convolution or a linear layer; FLOPs = 2 x
MACs (torch.utils.flop_counter's convention); activations are the output elements of convolutions
and linear layers (fvcore's ActivationCountAnalysis). Norms, activations, pooling and the residual
additions cost no MACs.

A rule says, for one op and the per-sample shape it receives: the shape it hands on, its MACs and
activations per sample, how it moves a receptive field along one axis, and what autograd saves for
backward when it runs in training (`saved`; numbers/memory.py counts those storages once each).
Adding a layer kind is adding one `Rule` to `RULES` (and a reader for its module type in
records/readers.py); a rule without `saved` makes `memory` report that op as not counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..geometry import same_padding, window_out
from ..records.types import Op

Shape = tuple[int, ...]  # (C, H, W) per sample, or (features,) after a Linear
FLOPS_PER_MAC = 2


@dataclass(frozen=True)
class Field:
    """The receptive field of unit 0 along one axis, in input pixels (Araujo et al., Distill 2019):
    `size` pixels starting at `left` (negative = inside the padding); neighbours are `jump` apart."""

    size: int
    jump: int
    left: int

    @property
    def padding(self) -> int:
        """Effective padding: how far unit 0's field reaches before the first input pixel."""
        return -self.left

    @property
    def center(self) -> float:
        """Centre of unit 0's field in input coordinates (pixel centres are integers)."""
        return self.left + (self.size - 1) / 2

    @property
    def right(self) -> int:
        """Last input pixel of unit 0's field."""
        return self.left + self.size - 1

    def union(self, other: Field) -> Field:
        """What a sum of two branches sees: the span of both fields."""
        left = min(self.left, other.left)
        return Field(max(self.right, other.right) - left + 1, min(self.jump, other.jump), left)


class NeedsSize(ValueError):
    """A field step that depends on the input size, asked without one."""


# -- rule parts ----------------------------------------------------------------------------------


def _check_channels(op: Op, shape: Shape) -> str | None:
    if shape[0] != op.in_ch:
        return f"expects {op.in_ch} channels but receives {shape[0]}"
    return None


def _check_features(op: Op, shape: Shape) -> str | None:
    features = math.prod(shape)
    if features != op.in_ch:
        return f"expects {op.in_ch} features but receives {features}"
    return None


def _accept_any(op: Op, shape: Shape) -> str | None:
    return None


def _window_shape(channels_from_op: bool, ceil: bool) -> Callable[[Op, Shape], Shape]:
    def shape(op: Op, x: Shape) -> Shape:
        channels = op.out_ch if channels_from_op else x[0]
        sizes = (
            window_out(x[1 + a], op.kernel[a], op.stride[a], op.padding[a], op.dilation[a], ceil and op.ceil_mode)
            for a in (0, 1)
        )
        return (channels, *sizes)

    return shape


def _same_shape(op: Op, x: Shape) -> Shape:
    return (x[0], *(-(-x[1 + a] // op.stride[a]) for a in (0, 1)))


def _adaptive_shape(op: Op, x: Shape) -> Shape:
    assert op.output_size is not None
    return (x[0], *(x[1 + a] if op.output_size[a] is None else op.output_size[a] for a in (0, 1)))  # type: ignore[misc]


def _linear_shape(op: Op, x: Shape) -> Shape:
    return (op.out_ch,)


def _unchanged(op: Op, x: Shape) -> Shape:
    return x


def _conv_macs(op: Op, x: Shape, out: Shape) -> int:
    return math.prod(out) * (op.in_ch // op.groups) * op.kernel[0] * op.kernel[1]


def _linear_macs(op: Op, x: Shape, out: Shape) -> int:
    return op.in_ch * op.out_ch


def _no_macs(op: Op, x: Shape, out: Shape) -> int:
    return 0


def _output_elements(op: Op, out: Shape) -> int:
    return math.prod(out)


def _no_activations(op: Op, out: Shape) -> int:
    return 0


def _window_field(op: Op, field: Field, axis: int, size: int | None) -> Field:
    """r += (k_eff - 1) * jump, left -= pad * jump, jump *= stride."""
    k_eff = op.dilation[axis] * (op.kernel[axis] - 1) + 1
    return Field(
        field.size + (k_eff - 1) * field.jump,
        field.jump * op.stride[axis],
        field.left - op.padding[axis] * field.jump,
    )


def _same_window_field(op: Op, field: Field, axis: int, size: int | None) -> Field:
    """A window after TF-"same" padding, the smaller half before the first element."""
    if op.stride[axis] != 1 and size is None:
        raise NeedsSize("a strided 'same' pool's padding depends on the input size")
    before = same_padding(size or 1, op.kernel[axis], op.stride[axis], op.dilation[axis]) // 2
    k_eff = op.dilation[axis] * (op.kernel[axis] - 1) + 1
    return Field(field.size + (k_eff - 1) * field.jump, field.jump * op.stride[axis], field.left - before * field.jump)


def _field_unchanged(op: Op, field: Field, axis: int, size: int | None) -> Field:
    return field


# -- what autograd saves for backward ----------------------------------------------------------------


@dataclass(frozen=True)
class Saved:
    """One tensor an op's autograd node keeps for backward, as torch's derivative formula for its aten
    op lists it (measured per op in docs/conventions.md).

    `of`: whose storage it is: "input" (the tensor the op receives, a storage shared with the op that
    made it), "output" (the tensor it returns) or "own" (one only it holds: batch-norm statistics,
    max-pool indices, a padded copy, a weight cast by autocast), of `elements(op, input, output)`
    elements per sample, or in all when not `per_sample`.
    `dtype`: "same" (the dtype of the op's input), "float32", "int64", or "autocast" (a copy in
    autocast's dtype that exists only under autocast; otherwise it is a parameter, not counted).
    `when`: "node" (whenever the op records a backward node: its input needs a gradient or its
    parameters train), "weight" (only when its parameters train), "input" (only when its input needs a
    gradient). `cast`: autocast casts this input to its dtype first (a new copy if it is not in it)."""

    of: Literal["input", "output", "own"]
    elements: Callable[[Op, Shape, Shape], int] | None = None  # "own" only
    dtype: Literal["same", "float32", "int64", "autocast"] = "same"
    per_sample: bool = True
    when: Literal["node", "weight", "input"] = "node"
    cast: bool = False


Saves = Callable[[Op], tuple[Saved, ...]]


def _keeps(*items: Saved) -> Saves:
    def saves(op: Op) -> tuple[Saved, ...]:
        return items

    return saves


def _conv_weight(op: Op, x: Shape, out: Shape) -> int:
    return op.out_ch * (op.in_ch // op.groups) * op.kernel[0] * op.kernel[1]


def _linear_weight(op: Op, x: Shape, out: Shape) -> int:
    return op.out_ch * op.in_ch


def _two_per_channel(op: Op, x: Shape, out: Shape) -> int:
    return 2 * op.out_ch


def _output_size(op: Op, x: Shape, out: Shape) -> int:
    return math.prod(out)


def _padded_input(op: Op, x: Shape, out: Shape) -> int:
    return x[0] * math.prod(
        x[1 + a] + same_padding(x[1 + a], op.kernel[a], op.stride[a], op.dilation[a]) for a in (0, 1)
    )


def _adaptive_saves(op: Op) -> tuple[Saved, ...]:
    # a (1, 1) output is computed as a mean, which keeps nothing; other sizes keep their input
    return () if op.output_size == (1, 1) else (Saved("input"),)


# conv: ConvolutionBackward0 keeps input and weight; linear: AddmmBackward0 keeps the input only for
# the weight's gradient and the weight only for the input's; train-mode BN: input, save_mean and
# save_invstd (float32, one per channel); max-pool: input and int64 indices; avg-pool: its input;
# the same-padded pool: the padded copy (F.pad keeps nothing).
_CONV_SAVES = _keeps(Saved("input", cast=True), Saved("own", _conv_weight, "autocast", per_sample=False))
_LINEAR_SAVES = _keeps(
    Saved("input", when="weight", cast=True),
    Saved("own", _linear_weight, "autocast", per_sample=False, when="input"),
)
_BN_SAVES = _keeps(Saved("input"), Saved("own", _two_per_channel, "float32", per_sample=False))
_MAXPOOL_SAVES = _keeps(Saved("input"), Saved("own", _output_size, "int64"))


# -- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What one kind of layer does: the shape it hands on, its per-sample MACs and activations, and
    its step of the receptive field along one axis (given the input length there, when it matters)."""

    shape: Callable[[Op, Shape], Shape]
    macs: Callable[[Op, Shape, Shape], int] = _no_macs
    activations: Callable[[Op, Shape], int] = _no_activations
    field: Callable[[Op, Field, int, int | None], Field] = _field_unchanged
    accepts: Callable[[Op, Shape], str | None] = _accept_any  # None, or why this input cannot enter
    saved: Saves | None = None  # what autograd keeps for backward; None: not known (memory says so)


RULES: dict[str, Rule] = {
    "conv": Rule(
        _window_shape(True, False), _conv_macs, _output_elements, _window_field, _check_channels, saved=_CONV_SAVES
    ),
    "linear": Rule(_linear_shape, _linear_macs, _output_elements, accepts=_check_features, saved=_LINEAR_SAVES),
    "bn": Rule(_unchanged, accepts=_check_channels, saved=_BN_SAVES),
    "maxpool": Rule(_window_shape(False, True), field=_window_field, saved=_MAXPOOL_SAVES),
    "avgpool": Rule(_window_shape(False, True), field=_window_field, saved=_keeps(Saved("input"))),
    "avgpool_same": Rule(_same_shape, field=_same_window_field, saved=_keeps(Saved("own", _padded_input))),
    "adaptive_avgpool": Rule(_adaptive_shape, saved=_adaptive_saves),
}


def rule(op: Op) -> Rule:
    """The rule for an op's kind."""
    return RULES[op.kind]
