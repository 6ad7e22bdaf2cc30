"""Memory of training and inference, from the walked records alone (no tensors): parameters,
gradients, optimizer state, the activations autograd saves for backward per stage and block, and the
inference forward peak. Conventions: docs/conventions.md ("Memory").

What each op saves comes from its kind's rule (`Rule.saved` in rules.py). This module adds what the
rules cannot see: which tensors share a storage, so that each is counted once.

* A conv, pool or batch norm keeps its *input*: the storage the previous op made (a block's input is
  the previous block's output).
* The ReLUs are in place and are not ops (the walker skips activations): a ReLU's saved output *is*
  the storage of what it follows. Where they are is read off the order of the ops (norm kinds:
  batch, frozen batch and group norms):
  - the stem and the head: a ReLU after every norm;
  - a post-activation block (torchvision's, timm's ResNet, ours): conv + norm pairs, an anti-aliasing
    pool (avg or blur) after a pair's ReLU, a gate (SE, ECA) after the last norm; a ReLU after every
    norm of the main path but the last, and after the residual sum; the shortcut is [pool] conv norm,
    without a ReLU;
  - a pre-activation block (He et al. 2016b; timm's ResNetV2, ours): norm + conv pairs; a ReLU after
    every norm, none after the sum; a projecting shortcut ([pool] conv) sees the first norm's output;
    the head opens with the final norm.
  A part laid out otherwise is reported, never guessed.
* The sum of a block's branches is a new storage, saved by the ReLU after it (or, pre-activated, by
  the next norm); the sum itself keeps nothing. The output of the last norm (or conv) of each branch
  is therefore saved by nobody, unless a gate's product keeps it.
* A storage is charged to the part (stem, block, head) that saves it first, as the hooks see it: the
  stem's max-pool output is charged to layer1.0, whose convolutions save it.
* An op records a backward node only when its input needs a gradient or its parameters train:
  frozen parts at the start of the network (detectron2's freeze_at) save nothing.

Under autocast (`dtype` float16 or bfloat16 when training) convolutions and linear layers cast their
input and weight to that dtype and save the casts: activations are saved in that dtype, the float32
image is saved as a cast copy, and every conv and linear weight has a saved copy in that dtype.
Batch-norm statistics stay float32 and max-pool indices int64; a frozen batch norm's float32 scale
makes its output float32; a blur pool's reflection pad runs in float32 (rules.py says each).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..errors import InspectError
from ..records.types import NORM_KINDS, BlockRecord, NetRecord, Op
from .costs import costs
from .detection import freeze
from .rules import Shape, reflect_padded_elements, rule, same_padded_elements

BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int64": 8}
DTYPES = ("float32", "float16", "bfloat16")
OPTIMIZER_COPIES = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}  # float32 copies of the trainable parameters
PARAM_BYTES = 4  # parameters, gradients and optimizer state are float32 when training (autocast keeps them so)
BN_COUNTER_BYTES = 8  # num_batches_tracked, int64
Style = Literal["nested", "sequential"]
STYLES: tuple[Style, ...] = ("nested", "sequential")


@dataclass(frozen=True)
class PartMemory:
    """One part (stem, a stage or a block, head): its weights, their gradients and optimizer state,
    what it saves for backward when training, and the most activation bytes alive while it runs when
    inferring. Training rows add up to the total."""

    name: str
    params: int
    trainable_params: int
    params_bytes: int
    buffers_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    activations_saved_bytes: int  # charged to this part (0 when inferring)
    weight_copies_bytes: int  # of which autocast's saved casts of conv and linear weights
    forward_peak_bytes: int | None  # inferring: activations alive at most while it runs (None: unknown)
    forward_peak_at: str | None  # the op whose output makes that peak

    @property
    def weights_bytes(self) -> int:
        """Parameters and buffers."""
        return self.params_bytes + self.buffers_bytes

    @property
    def total_bytes(self) -> int:
        """Training: weights, gradients, optimizer state and saved activations of this part."""
        return self.weights_bytes + self.grads_bytes + self.optimizer_bytes + self.activations_saved_bytes


@dataclass(frozen=True)
class Memory:
    """Every number of `memory` for one model, input, batch, dtype and optimizer."""

    model: str
    mode: Literal["training", "inference"]
    input: tuple[int, int]
    batch: int
    dtype: str
    optimizer: str | None  # None when inferring
    freeze_at: int
    frozen_parts: tuple[str, ...]
    style: Style | None  # how the model's forward() holds its tensors (None: not known)
    params: int
    trainable_params: int
    params_bytes: int
    buffers_bytes: int  # batch-norm running statistics and counters, frozen norms' buffers, blur filters
    grads_bytes: int
    optimizer_bytes: int
    activations_saved_bytes: int
    weight_copies_bytes: int  # part of activations_saved_bytes: autocast's saved weight casts
    forward_peak_bytes: int | None  # inferring: activations alive at most (image included)
    forward_peak_at: str | None
    per_sample_bytes: int  # what one more image adds to the total
    stages: tuple[PartMemory, ...]  # stem, the stages, head
    blocks: tuple[PartMemory, ...]
    uncounted: tuple[str, ...] = ()  # layers whose saved tensors no rule describes
    budget_bytes: int | None = None

    @property
    def complete(self) -> bool:
        """Every layer understood (and, inferring, the forward's style known)."""
        return not self.uncounted and (self.mode == "training" or self.forward_peak_bytes is not None)

    @property
    def weights_bytes(self) -> int:
        """Parameters and buffers."""
        return self.params_bytes + self.buffers_bytes

    @property
    def total_bytes(self) -> int | None:
        """Training: parameters + buffers + gradients + optimizer state + saved activations.
        Inferring: parameters + buffers + the forward peak (None when the peak is not known)."""
        if self.mode == "inference":
            return None if self.forward_peak_bytes is None else self.weights_bytes + self.forward_peak_bytes
        return self.weights_bytes + self.grads_bytes + self.optimizer_bytes + self.activations_saved_bytes

    @property
    def fixed_bytes(self) -> int | None:
        """The part of the total that does not grow with the batch."""
        total = self.total_bytes
        return None if total is None else total - self.per_sample_bytes * self.batch

    @property
    def largest_stage(self) -> PartMemory:
        """The part that saves the most (training) or peaks highest (inferring)."""
        if self.mode == "inference":
            return max(self.stages, key=lambda p: p.forward_peak_bytes or 0)
        return max(self.stages, key=lambda p: p.activations_saved_bytes)

    @property
    def max_batch(self) -> int | None:
        """The biggest batch whose total fits in the budget (0: not even one; None: no budget, or a
        total that is not known or does not grow with the batch)."""
        fixed = self.fixed_bytes
        if self.budget_bytes is None or fixed is None or self.per_sample_bytes == 0:
            return None
        return max(0, (self.budget_bytes - fixed) // self.per_sample_bytes)


# -- training: what autograd saves --------------------------------------------------------------


@dataclass(eq=False)
class _Storage:
    """A tensor's storage, per sample: its shape, dtype, whether it needs a gradient, whether saved."""

    shape: Shape
    dtype: str
    grad: bool
    saved: bool = False


class _Ledger:
    """Saved bytes per part: per sample, fixed (statistics, weight casts) and weight casts alone."""

    def __init__(self) -> None:
        self.per_sample: dict[str, int] = {}
        self.fixed: dict[str, int] = {}
        self.copies: dict[str, int] = {}

    def charge(self, part: str, nbytes: int, per_sample: bool, copy: bool = False) -> None:
        """Add `nbytes` to `part`."""
        book = self.per_sample if per_sample else self.fixed
        book[part] = book.get(part, 0) + nbytes
        if copy:
            self.copies[part] = self.copies.get(part, 0) + nbytes

    def save(self, part: str, storage: _Storage) -> None:
        """Charge a storage to `part` unless something saved it already."""
        if not storage.saved:
            storage.saved = True
            self.charge(part, math.prod(storage.shape) * BYTES[storage.dtype], True)

    def bytes(self, part: str, batch: int) -> int:
        """What `part` saves at `batch`."""
        return self.per_sample.get(part, 0) * batch + self.fixed.get(part, 0)


@dataclass
class _Training:
    """One training forward pass, op by op."""

    autocast: str | None  # the autocast dtype, or None for float32
    frozen: frozenset[str]
    ledger: _Ledger = field(default_factory=_Ledger)
    uncounted: list[str] = field(default_factory=list)

    def op(self, op: Op, x: _Storage, part: str, trains_part: str) -> _Storage:
        """Run one op on `x`: charge what it saves to `part`, return its output."""
        step = rule(op)
        shape = step.shape(op, x.shape)
        trains = op.params > 0 and trains_part not in self.frozen
        node = x.grad or trains
        saves = step.saved(op) if step.saved is not None else None
        dtype = x.dtype
        if self.autocast:
            dtype = {"input": x.dtype, "autocast": self.autocast, "float32": "float32"}[step.autocast_output]
        out = _Storage(shape, dtype, node)
        if saves is None:
            if node:
                self.uncounted.append(f"{op.name} ({op.kind}: what it saves is not known)")
            return out
        if not node:
            return out
        for s in saves:
            if (s.when == "weight" and not trains) or (s.when == "input" and not x.grad):
                continue
            if s.of == "input":
                cast = {"autocast": self.autocast, "float32": "float32"}.get(s.cast or "") if self.autocast else None
                if cast is not None and x.dtype != cast:
                    self.ledger.charge(part, math.prod(x.shape) * BYTES[cast], True)  # the cast copy
                else:
                    self.ledger.save(part, x)
            elif s.of == "output":
                self.ledger.save(part, out)
            else:
                if s.dtype == "autocast" and not self.autocast:
                    continue  # the parameter (or buffer) itself
                kept = {"same": x.dtype, "autocast": self.autocast, "compute": self.autocast or x.dtype}.get(
                    s.dtype, s.dtype
                )
                assert s.elements is not None and kept is not None, op.kind
                nbytes = s.elements(op, x.shape, shape) * BYTES[kept]
                self.ledger.charge(part, nbytes, s.per_sample, copy=s.dtype == "autocast")
        return out

    def relu(self, x: _Storage, part: str) -> None:
        """An in-place ReLU: it saves its output, which is `x`'s storage."""
        if x.grad:
            self.ledger.save(part, x)

    def chain(self, ops: Sequence[Op], x: _Storage, part: str, trains_part: str) -> _Storage:
        """Layers one after another, a ReLU after every norm (the stem, the head)."""
        for op in ops:
            x = self.op(op, x, part, trains_part)
            if op.kind in NORM_KINDS:
                self.relu(x, part)
        return x

    def block(self, block: BlockRecord, x: _Storage) -> _Storage:
        """A residual block: shortcut, main path, the sum; the ReLUs where its activation order puts them."""
        name, stage = block.name, block.stage
        pre = preactivated(block)
        main, short = x, x
        ops = list(block.main)
        if pre:  # norm1 + ReLU first; a projecting shortcut sees its output
            main = self.op(ops.pop(0), x, name, stage)
            self.relu(main, name)
            short = main if block.shortcut else x
        last_norm = max((i for i, op in enumerate(ops) if op.kind in NORM_KINDS), default=-1)
        for op in block.shortcut:
            short = self.op(op, short, name, stage)
        for i, op in enumerate(ops):
            main = self.op(op, main, name, stage)
            if op.kind in NORM_KINDS and (pre or i < last_norm):
                self.relu(main, name)
        dtype = main.dtype if main.dtype == short.dtype else "float32"  # float32 wins a mixed sum
        total = _Storage(main.shape, dtype, main.grad or short.grad)
        if not pre:
            self.relu(total, name)
        return total


# -- inference: the forward peak ------------------------------------------------------------------


def _transient(op: Op, x: Shape, out: Shape, itemsize: int, style: Style) -> tuple[int, int]:
    """Bytes (per sample, and in all) an op holds beside its output only while it runs: max-pool's
    int64 indices (torch computes them even under no_grad), the padded copy of a same-padded conv or
    pool or a blur pool, a gate's vectors (ours: the gate; timm's SE: the excitation and the gate), group
    norm's per-group mean and rstd, a frozen batch norm's product x * scale (and its scale and shift)."""
    # padded at run time (a same-padded conv or pool): F.pad's copy, even of zero padding
    padded = same_padded_elements(op, x, out) * itemsize if op.same else 0
    if op.kind == "maxpool":
        return padded + math.prod(out) * BYTES["int64"], 0
    if op.kind in ("avgpool_same", "conv"):
        return padded, 0
    if op.kind == "blur":
        return reflect_padded_elements(op, x, out) * itemsize, 0
    if op.kind in ("se", "eca"):
        vectors = 2 if op.kind == "se" and style == "sequential" else 1
        return vectors * x[0] * itemsize, 0
    if op.kind == "gn":
        return 2 * op.groups * itemsize, 0
    if op.kind == "frozen_bn":
        return math.prod(x) * itemsize, 2 * op.out_ch * itemsize
    return 0, 0


class _Live:
    """Activation storages alive during an inference pass of `batch` samples, and the peak per part:
    (bytes, the op whose output makes it, the per-sample part of those bytes)."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.sizes: dict[int, tuple[int, int]] = {}
        self.per_sample = 0
        self.fixed = 0
        self.keys = itertools.count()
        self.part = ""
        self.peaks: dict[str, tuple[int, str, int]] = {}

    def alloc(self, per_sample: int, at: str, fixed: int = 0) -> int:
        """A new storage of `per_sample` bytes a sample (plus `fixed` bytes); returns its key."""
        key = next(self.keys)
        self.sizes[key] = (per_sample, fixed)
        self.per_sample += per_sample
        self.fixed += fixed
        now = self.per_sample * self.batch + self.fixed
        if now > self.peaks.get(self.part, (-1, "", 0))[0]:
            self.peaks[self.part] = (now, at, self.per_sample)
        return key

    def free(self, key: int) -> None:
        """The last reference to a storage is gone."""
        per_sample, fixed = self.sizes.pop(key, (0, 0))
        self.per_sample -= per_sample
        self.fixed -= fixed


@dataclass
class _Inference:
    """One inference pass (eval mode, no_grad, the model in `itemsize`-byte floats), following the
    reference lifetimes of a forward() `style`:

    * both: the image lives throughout (the caller holds it); a stage's input lives while the whole
      stage runs (the trunk's `x = layer(x)` holds it); a chain of layers frees each input once the
      next layer has returned; in-place ReLUs allocate nothing.
    * nested (this project's blocks): the shortcut runs first and its output lives through the main
      path; `out = relu(bn(conv(out)))` keeps the old `out` until the whole line returns (an
      anti-aliasing pool and a gate are lines of their own); the sum is a new tensor. Pre-activated:
      `pre = norm1(x)` lives through the block, the shortcut (on `pre`) next, then
      `out = conv2(norm2(conv1(pre)))` and `out = conv3(norm3(out))`.
    * sequential (torchvision's and timm's blocks): one statement per layer, the shortcut after the
      main path while its output lives, and an in-place sum. Pre-activated (timm's ResNetV2):
      `x_preact = norm1(x)`, the shortcut, `x = conv1(x_preact)`, then `x = conv2(norm2(x))` and
      `x = conv3(norm3(x))`; a new sum.
    * pre-activated trunks (both): the stem's output lives through every stage (`stages(stem(x))`),
      and the final norm's output through the whole head.
    """

    style: Style
    itemsize: int
    live: _Live

    def nbytes(self, shape: Shape) -> int:
        """Bytes of one sample of an activation."""
        return math.prod(shape) * self.itemsize

    def op(self, op: Op, x: int, shape: Shape) -> tuple[int, Shape]:
        """Run one op on storage `x`: its transient bytes and output are alive at once."""
        out_shape = rule(op).shape(op, shape)
        per_sample, fixed = _transient(op, shape, out_shape, self.itemsize, self.style)
        scratch = self.live.alloc(per_sample, op.name, fixed) if per_sample or fixed else None
        out = self.live.alloc(self.nbytes(out_shape), op.name)
        if scratch is not None:
            self.live.free(scratch)
        return out, out_shape

    def chain(self, ops: Sequence[Op], x: int, shape: Shape, keep: set[int]) -> tuple[int, Shape]:
        """Layers one after another; each input is freed after its layer unless kept."""
        for op in ops:
            out, shape = self.op(op, x, shape)
            if x not in keep:
                self.live.free(x)
            x = out
        return x, shape

    def lines(self, lines: Sequence[Sequence[Op]], x: int, shape: Shape, keep: set[int]) -> tuple[int, Shape]:
        """Statements `out = f(g(out))`: each line's input lives until the line returns."""
        out = x
        for line in lines:
            start = out
            out, shape = self.chain(line, start, shape, keep | {start})
            if start not in keep:
                self.live.free(start)
        return out, shape

    def block(self, block: BlockRecord, x: int, shape: Shape, keep: set[int]) -> tuple[int, Shape]:
        """One residual block from input `x` (kept by the caller while it runs)."""
        keep = keep | {x}
        if preactivated(block):
            return self.preactivated(block, x, shape, keep)
        if self.style == "sequential":
            out, out_shape = self.chain(block.main, x, shape, keep)
            short, _ = self.chain(block.shortcut, x, shape, keep | {out})
            if short not in keep:
                self.live.free(short)  # `out += identity` is in place
            return out, out_shape
        short, _ = self.chain(block.shortcut, x, shape, keep)
        lines: list[list[Op]] = [[]]
        for op in block.main:
            if op.kind in ("avgpool", "blur", "se", "eca") and lines[-1]:
                lines.append([])
            lines[-1].append(op)
            if op.kind in (*NORM_KINDS, "avgpool", "blur", "se", "eca"):
                lines.append([])
        out, out_shape = self.lines([line for line in lines if line], x, shape, keep | {short})
        return self.sum(block, out, short, out_shape, keep)

    def preactivated(self, block: BlockRecord, x: int, shape: Shape, keep: set[int]) -> tuple[int, Shape]:
        """A pre-activation block: norm1, the shortcut on its output, the convs, a new sum."""
        pre, pre_shape = self.op(block.main[0], x, shape)
        short = x
        if block.shortcut:
            short, _ = self.chain(block.shortcut, pre, pre_shape, keep | {pre})
        lines: list[list[Op]] = []
        for op in block.main[1:]:
            if op.kind in NORM_KINDS or not lines:
                lines.append([])
            lines[-1].append(op)
        if self.style == "nested" and len(lines) > 1:
            lines[:2] = [lines[0] + lines[1]]  # out = conv2(norm2(conv1(pre)))
        out, out_shape = self.lines(lines, pre, pre_shape, keep | {pre, short})
        total, _ = self.sum(block, out, short, out_shape, keep)
        self.live.free(pre)
        return total, out_shape

    def sum(self, block: BlockRecord, out: int, short: int, shape: Shape, keep: set[int]) -> tuple[int, Shape]:
        """`out + shortcut` as a new tensor; then both go."""
        total = self.live.alloc(self.nbytes(shape), f"{block.name} sum")
        for key in (out, short):
            if key not in keep:
                self.live.free(key)
        return total, shape

    def run(self, record: NetRecord, height: int, width: int) -> None:
        """The whole pass: stem, stages, head."""
        live = self.live
        live.part = "stem"
        image_shape: Shape = (record.stem.in_ch, height, width)
        image = live.alloc(self.nbytes(image_shape), "input")
        x, shape = self.chain(record.stem.ops, image, image_shape, {image})
        held = {image}
        preact = bool(record.blocks) and preactivated(record.blocks[0])
        if preact:
            held.add(x)  # `stages(stem(x))`: the stem's output lives through every stage
        for blocks in record.stage_blocks().values():
            stage_input = x
            for block in blocks:
                live.part = block.name
                out, shape = self.block(block, x, shape, held | {stage_input})
                if x != stage_input:
                    live.free(x)
                x = out
            if stage_input not in held:
                live.free(stage_input)
        for key in held - {image}:
            live.free(key)
        live.part = "head"
        norms = 0
        while preact and norms < len(record.head) and record.head[norms].kind in NORM_KINDS:
            norms += 1
        x, shape = self.chain(record.head[:norms], x, shape, {image})  # the final norm, pre-activated
        self.chain(record.head[norms:], x, shape, {image, x} if norms else {image})


# -- the whole account ------------------------------------------------------------------------------


def _part_of(name: str, record: NetRecord) -> str:
    """The part (stem, a block, head) a leaf module's name lies in; "" when no op tells."""
    for block in record.blocks:
        if name.startswith(block.name + "."):
            return block.name
    top = name.split(".")[0]
    if any(op.name.split(".")[0] == top for op in record.stem.ops):
        return "stem"
    if any(op.name.split(".")[0] == top for op in record.head):
        return "head"
    return ""


def preactivated(block: BlockRecord) -> bool:
    """A pre-activation block: its main path opens with a norm (He et al. 2016b)."""
    return bool(block.main) and block.main[0].kind in NORM_KINDS


def _letters(ops: Sequence[Op], letters: dict[str, str]) -> str:
    return "".join(letters.get(op.kind, "x") for op in ops)


_NORM_LETTERS = dict.fromkeys(NORM_KINDS, "n")
_STEM = (
    {"conv": "c", "blur": "b", "maxpool": "p", "avgpool": "p", **_NORM_LETTERS},
    re.compile(r"(?:[cbp]|(?<=[cb])n)*"),
)
_MAIN = {"conv": "c", "avgpool": "p", "blur": "p", "se": "g", "eca": "g", **_NORM_LETTERS}
_SHORTCUT = {"conv": "c", "avgpool": "p", "avgpool_same": "p", **_NORM_LETTERS}
# post-activation: conv + norm pairs, an anti-aliasing pool after a pair, a gate after the last norm;
# pre-activation: norm + conv pairs. Shortcuts: [pool] conv norm, or [pool] conv.
_LAYOUTS = {
    False: (re.compile(r"(?:cnp?)*cng?"), re.compile(r"p?cn")),
    True: (re.compile(r"(?:nc)+"), re.compile(r"p?c")),
}


def _layout_problems(record: NetRecord) -> list[str]:
    """Parts whose layers are not laid out as the ReLU placement assumes (module docstring)."""
    problems = []
    letters, pattern = _STEM
    if not pattern.fullmatch(_letters(record.stem.ops, letters)):
        problems.append(
            "stem (layers other than convs, norms and pools, or a norm after no conv: ReLU placement unknown)"
        )
    preact = bool(record.blocks) and preactivated(record.blocks[0])
    main, shortcut = _LAYOUTS[preact]
    for block in record.blocks:
        if not main.fullmatch(_letters(block.main, _MAIN)) or (
            block.shortcut and not shortcut.fullmatch(_letters(block.shortcut, _SHORTCUT))
        ):
            order = "norm + conv pairs" if preact else "conv + norm pairs"
            problems.append(f"{block.name} (layers not laid out in {order}: ReLU placement unknown)")
    head = _letters(record.head, _NORM_LETTERS)
    if head.count("n") > (1 if preact else 0) or (preact and head.count("n") == 1 and not head.startswith("n")):
        problems.append("head (a norm other than a pre-activation network's final one: ReLU placement unknown)")
    return problems


def _buffer_bytes(op: Op, itemsize: int) -> int:
    """A norm's or blur pool's buffers: running mean and variance and the counter; a frozen batch
    norm's four per-channel buffers; a blur pool's filter."""
    if op.kind == "bn":
        return 2 * op.out_ch * itemsize + BN_COUNTER_BYTES
    if op.kind == "frozen_bn":
        return 4 * op.out_ch * itemsize
    if op.kind == "blur":
        return op.out_ch * op.kernel[0] * op.kernel[1] * itemsize
    return 0


def check_options(dtype: str, optimizer: str | None) -> None:
    """InspectError for a dtype or optimizer this view does not know."""
    if dtype not in DTYPES:
        raise InspectError(f"must be one of {', '.join(DTYPES)}, not {dtype!r}", "dtype")
    if optimizer is not None and optimizer not in OPTIMIZER_COPIES:
        raise InspectError(f"must be one of {', '.join(OPTIMIZER_COPIES)}, not {optimizer!r}", "optimizer")


def memory(
    record: NetRecord,
    height: int,
    width: int,
    batch: int = 1,
    dtype: str = "float32",
    optimizer: str = "momentum",
    freeze_at: int = 0,
    inference: bool = False,
    style: Style | None = "nested",
    foreign: Sequence[str] = (),
    budget: int | None = None,
) -> Memory:
    """Training memory (parameters, gradients, optimizer state, saved activations per part) or, with
    `inference`, the weights and the forward peak, of `record` at `height` x `width` and `batch`.

    `style`: how the model's forward() holds its tensors ("nested": this project's; "sequential":
    torchvision's and timm's; None: unknown, so no inference peak). `foreign`: leaves ("name (Type)")
    whose saved tensors no rule describes (reported where they run with gradients). `budget`: bytes
    the biggest batch must fit in."""
    check_options(dtype, None if inference else optimizer)
    if budget is not None and budget < 1:
        raise InspectError(f"must be positive, got {budget}", "budget")
    costs(record, height, width, batch)  # every size check, with its message
    frozen = freeze(record, freeze_at)
    frozen_parts = frozenset(frozen.frozen_parts)

    train = _Training(None if inference or dtype == "float32" else dtype, frozen_parts)
    if not inference:
        image = _Storage((record.stem.in_ch, height, width), "float32", False)
        x = train.chain(record.stem.ops, image, "stem", "stem")
        for block in record.blocks:
            x = train.block(block, x)
        train.chain(record.head, x, "head", "head")
    peaks: dict[str, tuple[int, str, int]] = {}
    if inference and style is not None:
        sim = _Inference(style, BYTES[dtype], _Live(batch))
        sim.run(record, height, width)
        peaks = sim.live.peaks

    uncounted = [*record.unrecognised, *_layout_problems(record), *train.uncounted]
    for leaf in foreign:
        part = _part_of(leaf.split(" (")[0], record)
        stage = next((b.stage for b in record.blocks if b.name == part), part)
        if inference or stage not in frozen_parts:  # a frozen part at the start runs without a graph
            uncounted.append(leaf)

    itemsize = BYTES[dtype] if inference else PARAM_BYTES  # inferring: the model cast to `dtype`
    copies = 0 if inference else OPTIMIZER_COPIES[optimizer]
    ledger = train.ledger

    def part(name: str, ops: Sequence[Op], params: int, frozen_part: bool, charged: Sequence[str]) -> PartMemory:
        trainable = 0 if (inference or frozen_part) else params
        peak = max((peaks[p] for p in charged if p in peaks), default=None)
        return PartMemory(
            name=name,
            params=params,
            trainable_params=trainable,
            params_bytes=params * itemsize,
            buffers_bytes=sum(_buffer_bytes(op, itemsize) for op in ops),
            grads_bytes=trainable * PARAM_BYTES,
            optimizer_bytes=trainable * PARAM_BYTES * copies,
            activations_saved_bytes=sum(ledger.bytes(p, batch) for p in charged),
            weight_copies_bytes=sum(ledger.copies.get(p, 0) for p in charged),
            forward_peak_bytes=peak[0] if peak else None,
            forward_peak_at=peak[1] if peak else None,
        )

    def block_ops(blocks: Sequence[BlockRecord]) -> list[Op]:
        return [op for b in blocks for op in (*b.main, *b.shortcut)]

    blocks = tuple(part(b.name, block_ops([b]), b.params, b.stage in frozen_parts, (b.name,)) for b in record.blocks)
    stages = [part("stem", record.stem.ops, record.stem.params, "stem" in frozen_parts, ("stem",))]
    for stage, stage_blocks in record.stage_blocks().items():
        params = sum(b.params for b in stage_blocks)
        charged = [b.name for b in stage_blocks]
        stages.append(part(stage, block_ops(stage_blocks), params, stage in frozen_parts, charged))
    stages.append(part("head", record.head, record.head_params, False, ("head",)))

    peak = max(peaks.values()) if peaks else None
    return Memory(
        model=record.model,
        mode="inference" if inference else "training",
        input=(height, width),
        batch=batch,
        dtype=dtype,
        optimizer=None if inference else optimizer,
        freeze_at=freeze_at,
        frozen_parts=tuple(frozen.frozen_parts),
        style=style,
        params=record.params,
        trainable_params=sum(p.trainable_params for p in stages),
        params_bytes=record.params * itemsize,
        buffers_bytes=sum(p.buffers_bytes for p in stages),
        grads_bytes=sum(p.grads_bytes for p in stages),
        optimizer_bytes=sum(p.optimizer_bytes for p in stages),
        activations_saved_bytes=sum(p.activations_saved_bytes for p in stages),
        weight_copies_bytes=sum(p.weight_copies_bytes for p in stages),
        forward_peak_bytes=peak[0] if peak else None,
        forward_peak_at=peak[1] if peak else None,
        per_sample_bytes=(peak[2] if peak else 0) if inference else sum(ledger.per_sample.values()),
        stages=tuple(stages),
        blocks=blocks,
        uncounted=tuple(uncounted),
        budget_bytes=budget,
    )
