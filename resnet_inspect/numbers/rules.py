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
from dataclasses import dataclass, replace
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
    whole_input: bool = False  # a global pool or attention lies on the path: every unit sees the whole input
    known: bool = True  # False after a module no rule describes (the field may be larger)

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
        return Field(
            max(self.right, other.right) - left + 1,
            min(self.jump, other.jump),
            left,
            self.whole_input or other.whole_input,
            self.known and other.known,
        )


class NeedsSize(ValueError):
    """A field step that depends on the input size, asked without one."""


# -- rule parts ----------------------------------------------------------------------------------


def _check_channels(op: Op, shape: Shape) -> str | None:
    if shape[0] != op.in_ch:
        return f"expects {op.in_ch} channels but receives {shape[0]}"
    return None


def _check_features(op: Op, shape: Shape) -> str | None:
    if math.prod(shape) != op.in_ch and shape[-1] != op.in_ch:
        return f"expects {op.in_ch} features but receives {'x'.join(map(str, shape))}"
    return None


def _check_spatial(op: Op, shape: Shape) -> str | None:
    if len(shape) != 3:
        return f"expects a C x H x W map but receives {'x'.join(map(str, shape))}"
    return _check_channels(op, shape) if op.in_ch else None


def _accept_any(op: Op, shape: Shape) -> str | None:
    return None


def _window_sizes(op: Op, x: Shape) -> tuple[int, int]:
    if op.same:  # TF "same": ceil(size / stride), whatever the kernel
        return (-(-x[1] // op.stride[0]), -(-x[2] // op.stride[1]))
    ceil = op.ceil_mode and op.kind in POOL_KINDS
    h, w = (window_out(x[1 + a], op.kernel[a], op.stride[a], op.padding[a], op.dilation[a], ceil) for a in (0, 1))
    return h, w


def _window_shape(op: Op, x: Shape) -> Shape:
    """Convolutions: the op's output channels; pools: the input's."""
    return (op.out_ch if op.out_ch else x[0], *_window_sizes(op, x))


def _adaptive_shape(op: Op, x: Shape) -> Shape:
    assert op.output_size is not None
    return (x[0], *(x[1 + a] if op.output_size[a] is None else op.output_size[a] for a in (0, 1)))  # type: ignore[misc]


def _linear_shape(op: Op, x: Shape) -> Shape:
    """On the flattened features (the classifier after a global pool), else on the last dimension."""
    return (op.out_ch,) if math.prod(x) == op.in_ch else (*x[:-1], op.out_ch)


def _pad_shape(op: Op, x: Shape) -> Shape:
    return (x[0], x[1] + 2 * op.padding[0], x[2] + 2 * op.padding[1])


def _tokens_shape(op: Op, x: Shape) -> Shape:
    return (op.out_ch,)


def _unchanged(op: Op, x: Shape) -> Shape:
    return x


def _conv_macs(op: Op, x: Shape, out: Shape) -> int:
    return math.prod(out) * (op.in_ch // op.groups) * op.kernel[0] * op.kernel[1]


def _linear_macs(op: Op, x: Shape, out: Shape) -> int:
    tokens = 1 if len(out) == 1 else math.prod(out[:-1])
    return tokens * op.in_ch * op.out_ch


def _se_macs(op: Op, x: Shape, out: Shape) -> int:
    """The squeeze (C -> hidden) and the excitation (hidden -> C), on the pooled 1 x 1 map."""
    return 2 * op.in_ch * op.hidden // op.groups


def _eca_macs(op: Op, x: Shape, out: Shape) -> int:
    """One 1-D conv of kernel k over the C pooled channels."""
    return x[0] * op.kernel[0]


def _split_attn_macs(op: Op, x: Shape, out: Shape) -> int:
    """The conv into radix x C channels, then fc1 (C -> hidden) and fc2 (hidden -> radix x C) on the
    pooled map, both grouped by the cardinality."""
    mid = op.out_ch * op.paths
    cardinality = op.groups // op.paths
    conv = out[1] * out[2] * mid * (op.in_ch // op.groups) * op.kernel[0] * op.kernel[1]
    return conv + (op.out_ch * op.hidden + op.hidden * mid) // cardinality


def _selective_kernel_macs(op: Op, x: Shape, out: Shape) -> int:
    """`paths` 3x3 convs (each on 1/paths of the input when split), then the attention's reduce
    (C -> hidden) and select (hidden -> paths x C) on the pooled map."""
    per_path = (op.in_ch // op.paths if op.split else op.in_ch) // op.groups
    convs = op.paths * out[1] * out[2] * op.out_ch * per_path * op.kernel[0] * op.kernel[1]
    return convs + op.out_ch * op.hidden + op.hidden * op.out_ch * op.paths


def _res2_macs(op: Op, x: Shape, out: Shape) -> int:
    """scale - 1 3x3 convs of width = C / scale channels each (the last split passes unconvolved)."""
    width = op.in_ch // op.paths
    return (op.paths - 1) * out[1] * out[2] * width * (width // op.groups) * op.kernel[0] * op.kernel[1]


def _attention_pool_macs(op: Op, x: Shape, out: Shape) -> int:
    """T = H*W + 1 tokens (the mean token first): q, k, v (C -> E) and the projection (E -> out) on
    every token, then q k^T and attention x v (T x T x E each)."""
    tokens = x[1] * x[2] + 1
    return tokens * (3 * op.in_ch * op.hidden + op.hidden * op.out_ch) + 2 * tokens * tokens * op.hidden


def _no_macs(op: Op, x: Shape, out: Shape) -> int:
    return 0


def _output_elements(op: Op, x: Shape, out: Shape) -> int:
    return math.prod(out)


def _gate_elements(op: Op, x: Shape, out: Shape) -> int:
    """The squeeze's and the excitation's outputs, on the pooled 1 x 1 map."""
    return op.hidden + op.out_ch


def _pooled_channels(op: Op, x: Shape, out: Shape) -> int:
    """The 1-D conv's output: one value per channel of the pooled map."""
    return x[0]


def _split_attn_elements(op: Op, x: Shape, out: Shape) -> int:
    return op.paths * math.prod(out) + op.hidden + op.paths * op.out_ch


def _selective_kernel_elements(op: Op, x: Shape, out: Shape) -> int:
    return op.paths * math.prod(out) + op.hidden + op.paths * op.out_ch


def _res2_elements(op: Op, x: Shape, out: Shape) -> int:
    return (op.paths - 1) * math.prod(out) // op.paths


def _attention_pool_elements(op: Op, x: Shape, out: Shape) -> int:
    """q, k, v and the projection on every token."""
    tokens = x[1] * x[2] + 1
    return tokens * (3 * op.hidden + op.out_ch)


def _no_activations(op: Op, x: Shape, out: Shape) -> int:
    return 0


def _window_step(op: Op, field: Field, axis: int, kernel: int, stride: int, dilation: int, pad: int) -> Field:
    """r += (k_eff - 1) * jump, left -= pad * jump, jump *= stride."""
    k_eff = dilation * (kernel - 1) + 1
    return replace(
        field,
        size=field.size + (k_eff - 1) * field.jump,
        jump=field.jump * stride,
        left=field.left - pad * field.jump,
    )


def _window_field(op: Op, field: Field, axis: int, size: int | None) -> Field:
    if op.same:
        if op.stride[axis] != 1 and size is None:
            raise NeedsSize("a strided 'same'-padded layer's padding depends on the input size")
        before = same_padding(size or 1, op.kernel[axis], op.stride[axis], op.dilation[axis]) // 2
        return _window_step(op, field, axis, op.kernel[axis], op.stride[axis], op.dilation[axis], before)
    return _window_step(op, field, axis, op.kernel[axis], op.stride[axis], op.dilation[axis], op.padding[axis])


def _global_window_field(op: Op, field: Field, axis: int, size: int | None) -> Field:
    """A window op followed by attention over a global pool of its output."""
    return replace(_window_field(op, field, axis, size), whole_input=True)


def _global_field(op: Op, field: Field, axis: int, size: int | None) -> Field:
    return replace(field, whole_input=True)


def _selective_kernel_field(op: Op, field: Field, axis: int, size: int | None) -> Field:
    """The widest path (dilation = paths, padding alike), then the global attention."""
    return replace(_window_field(op, field, axis, size), whole_input=True)


def _res2_field(op: Op, field: Field, axis: int, size: int | None) -> Field:
    """The stage's first block: one strided 3x3 per split. Later blocks: the last convolved split has
    gone through scale - 1 chained 3x3s."""
    steps = op.paths - 1 if op.chained else 1
    for _ in range(steps):
        field = _window_field(op, field, axis, size)
    return field


def _pad_field(op: Op, field: Field, axis: int, size: int | None) -> Field:
    return replace(field, left=field.left - op.padding[axis] * field.jump)


def _unknown_field(op: Op, field: Field, axis: int, size: int | None) -> Field:
    return replace(field, known=False)


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
    `dtype`: "same" (the dtype of the op's input), "float32", "int64", "autocast" (a copy in
    autocast's dtype that exists only under autocast; otherwise it is a parameter or buffer, not
    counted) or "compute" (a tensor the op computes in autocast's dtype under autocast, else in its
    input's dtype).
    `when`: "node" (whenever the op records a backward node: its input needs a gradient or its
    parameters train), "weight" (only when its parameters train), "input" (only when its input needs a
    gradient). `cast`: under autocast the op first casts this input to that dtype ("autocast", or
    "float32" for ops autocast runs in float32), and saves the cast: a new copy unless the input is
    already in it."""

    of: Literal["input", "output", "own"]
    elements: Callable[[Op, Shape, Shape], int] | None = None  # "own" only
    dtype: Literal["same", "float32", "int64", "autocast", "compute"] = "same"
    per_sample: bool = True
    when: Literal["node", "weight", "input"] = "node"
    cast: Literal["autocast", "float32"] | None = None


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


def same_padded_elements(op: Op, x: Shape, out: Shape) -> int:
    """Elements of one sample of the input padded to TF "same" at run time (F.pad's copy)."""
    return x[0] * math.prod(
        x[1 + a] + same_padding(x[1 + a], op.kernel[a], op.stride[a], op.dilation[a]) for a in (0, 1)
    )


def reflect_padded_elements(op: Op, x: Shape, out: Shape) -> int:
    """Elements of one sample of a blur pool's reflection-padded input."""
    return x[0] * (x[1] + 2 * op.padding[0]) * (x[2] + 2 * op.padding[1])


def _se_vectors(op: Op, x: Shape, out: Shape) -> int:
    """The pooled input (fc1's), the hidden ReLU output (fc2's) and the gate (the sigmoid's result)."""
    return 2 * op.in_ch + op.hidden


def _se_weights(op: Op, x: Shape, out: Shape) -> int:
    return 2 * op.in_ch * op.hidden


def _eca_vectors(op: Op, x: Shape, out: Shape) -> int:
    """The pooled input (the 1-D conv's) and the gate."""
    return 2 * x[0]


def _eca_weights(op: Op, x: Shape, out: Shape) -> int:
    return op.kernel[0]


def _blur_filter(op: Op, x: Shape, out: Shape) -> int:
    return op.out_ch * op.kernel[0] * op.kernel[1]


def _group_stats(op: Op, x: Shape, out: Shape) -> int:
    return 2 * op.groups


def _channels_count(op: Op, x: Shape, out: Shape) -> int:
    return op.out_ch


def _adaptive_saves(op: Op) -> tuple[Saved, ...]:
    # a (1, 1) output is computed as a mean, which keeps nothing; other sizes keep their input
    return () if op.output_size == (1, 1) else (Saved("input"),)


# conv: ConvolutionBackward0 keeps input and weight; linear: AddmmBackward0 keeps the input only for
# the weight's gradient and the weight only for the input's; train-mode BN: input, save_mean and
# save_invstd (float32, one per channel); max-pool: input and int64 indices; avg-pool: its input;
# the same-padded pool: the padded copy (F.pad keeps nothing).
_CONV_WEIGHT = Saved("own", _conv_weight, "autocast", per_sample=False)
# timm's Conv2dSame / MaxPool2dSame pad at run time, and F.pad returns a new tensor even when the
# padding is zero (it clones): the op keeps that copy (the conv: its autocast cast), not its input.
_PADDED_COPY = Saved("own", same_padded_elements, "compute")


def _input_or_padded_copy(plain: tuple[Saved, ...], padded: tuple[Saved, ...]) -> Saves:
    def saves(op: Op) -> tuple[Saved, ...]:
        return padded if op.same else plain

    return saves


_CONV_SAVES = _input_or_padded_copy((Saved("input", cast="autocast"), _CONV_WEIGHT), (_PADDED_COPY, _CONV_WEIGHT))
_LINEAR_SAVES = _keeps(
    Saved("input", when="weight", cast="autocast"),
    Saved("own", _linear_weight, "autocast", per_sample=False, when="input"),
)
_BN_SAVES = _keeps(Saved("input"), Saved("own", _two_per_channel, "float32", per_sample=False))
_INDICES = Saved("own", _output_size, "int64")
_MAXPOOL_SAVES = _input_or_padded_copy((Saved("input"), _INDICES), (replace(_PADDED_COPY, dtype="same"), _INDICES))
# GroupNorm (NativeGroupNormBackward0): its input and the mean and rstd of every sample's groups,
# float32 (autocast on the CPU runs it in the input's dtype).
_GN_SAVES = _keeps(Saved("input"), Saved("own", _group_stats, "float32"))
# FrozenBatchNorm2d, x * scale + shift: the product keeps `scale` (computed from float32 buffers, one
# per channel), not x; under autocast the float32 scale promotes the output to float32.
_FROZEN_BN_SAVES = _keeps(Saved("own", _channels_count, "float32", per_sample=False))
# blur pool, F.pad(reflect) then a depthwise conv with a fixed filter: reflection_pad2d keeps its input
# (autocast runs it in float32, so a float32 copy of a half input), the conv its padded input (the
# cast, under autocast) and its filter (a buffer; autocast's cast of it counts).
_BLUR_SAVES = _keeps(
    Saved("input", cast="float32"),
    Saved("own", reflect_padded_elements, "compute"),
    Saved("own", _blur_filter, "autocast", per_sample=False),
)
# squeeze-excitation, x * sigmoid(fc2(relu(fc1(mean(x))))): the mean keeps nothing; fc1 keeps the
# pooled vector (autocast: its cast, the mean being float32), the in-place ReLU its output (fc2's
# input), the sigmoid its result, which the product keeps with x; fc1's and fc2's weights (parameters;
# autocast: their casts). ECA alike with one 1-D conv of k weights.
_SE_SAVES = _keeps(
    Saved("input"),
    Saved("own", _se_vectors, "compute"),
    Saved("own", _se_weights, "autocast", per_sample=False),
)
_ECA_SAVES = _keeps(
    Saved("input"),
    Saved("own", _eca_vectors, "compute"),
    Saved("own", _eca_weights, "autocast", per_sample=False),
)


# -- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """What one kind of layer does: the shape it hands on, its per-sample MACs and activations, and
    its step of the receptive field along one axis (given the input length there, when it matters)."""

    shape: Callable[[Op, Shape], Shape]
    macs: Callable[[Op, Shape, Shape], int] = _no_macs
    activations: Callable[[Op, Shape, Shape], int] = _no_activations
    field: Callable[[Op, Field, int, int | None], Field] = _field_unchanged
    accepts: Callable[[Op, Shape], str | None] = _accept_any  # None, or why this input cannot enter
    saved: Saves | None = None  # what autograd keeps for backward; None: not known (memory says so)
    autocast_output: Literal["input", "autocast", "float32"] = "input"  # its output's dtype under autocast


POOL_KINDS = ("maxpool", "avgpool", "avgpool_same")
_CONV = Rule(
    _window_shape,
    _conv_macs,
    _output_elements,
    _window_field,
    _check_spatial,
    saved=_CONV_SAVES,
    autocast_output="autocast",
)
_NORM = Rule(_unchanged, accepts=_check_channels)
_POOL = Rule(_window_shape, field=_window_field, accepts=_check_spatial)
_ADAPTIVE = Rule(_adaptive_shape, accepts=_check_spatial)

RULES: dict[str, Rule] = {
    "conv": _CONV,
    "blur": replace(_CONV, saved=_BLUR_SAVES),  # a functional conv with a fixed filter
    "linear": Rule(
        _linear_shape,
        _linear_macs,
        _output_elements,
        accepts=_check_features,
        saved=_LINEAR_SAVES,
        autocast_output="autocast",
    ),
    "bn": replace(_NORM, saved=_BN_SAVES),
    "frozen_bn": replace(_NORM, saved=_FROZEN_BN_SAVES, autocast_output="float32"),
    "gn": replace(_NORM, saved=_GN_SAVES),
    "norm": _NORM,
    "pad": Rule(_pad_shape, field=_pad_field, accepts=_check_spatial),
    "maxpool": replace(_POOL, saved=_MAXPOOL_SAVES),
    "avgpool": replace(_POOL, saved=_keeps(Saved("input"))),
    "avgpool_same": Rule(
        _window_shape, field=_window_field, accepts=_check_spatial, saved=_keeps(Saved("own", same_padded_elements))
    ),
    "adaptive_avgpool": replace(_ADAPTIVE, saved=_adaptive_saves),
    "se": Rule(_unchanged, _se_macs, _gate_elements, _global_field, _check_channels, saved=_SE_SAVES),
    "eca": Rule(_unchanged, _eca_macs, _pooled_channels, _global_field, saved=_ECA_SAVES),
    "split_attn": Rule(_window_shape, _split_attn_macs, _split_attn_elements, _global_window_field, _check_spatial),
    "selective_kernel": Rule(
        _window_shape, _selective_kernel_macs, _selective_kernel_elements, _selective_kernel_field, _check_spatial
    ),
    "res2": Rule(_window_shape, _res2_macs, _res2_elements, _res2_field, _check_spatial),
    "attention_pool": Rule(
        _tokens_shape, _attention_pool_macs, _attention_pool_elements, _global_field, _check_spatial
    ),
    "probed": Rule(_unchanged, field=_unknown_field),  # counted by a probe; numbers.costs asks for one
}


def rule(op: Op) -> Rule:
    """The rule for an op's kind."""
    return RULES[op.kind]
