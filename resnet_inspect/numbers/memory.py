"""Memory of training and inference, from the walked records alone (no tensors): parameters,
gradients, optimizer state, the activations autograd saves for backward per stage and block, and the
inference forward peak. Conventions: docs/conventions.md ("Memory").

What each op saves comes from its kind's rule (`Rule.saved` in rules.py). This module adds what the
rules cannot see: which tensors share a storage, so that each is counted once.

* A conv, pool or batch norm keeps its *input*: the storage the previous op made (a block's input is
  the previous block's output).
* The ReLUs are in place and are not ops (the walker skips activations, and a pre-activation norm
  holds its ReLU inside): a ReLU's saved output *is* the storage of what it follows. Structure
  assumed (torchvision's, timm's and our ResNets, pre-activation ones too): a ReLU follows every norm
  of the stem, every norm of a block's main path that a later convolution reads (not the last one
  of a post-activation block), and the residual sum unless the block is pre-activated (its main path
  starts with a norm, whose output the shortcut reads); none follows a shortcut's norm. A part laid
  out otherwise is reported.
* The sum of a block's branches is a new storage, saved by the ReLU after it; the sum itself keeps
  nothing. The output of the last batch norm of each branch is therefore saved by nobody.
* A storage is charged to the part (stem, block, head) that saves it first, as the hooks see it: the
  stem's max-pool output is charged to layer1.0, whose convolutions save it.
* An op records a backward node only when its input needs a gradient or its parameters train:
  frozen parts at the start of the network (detectron2's freeze_at) save nothing.

Under autocast (`dtype` float16 or bfloat16 when training) convolutions and linear layers cast their
input and weight to that dtype and save the casts: activations are saved in that dtype, the float32
image is saved as a cast copy, and every conv and linear weight has a saved copy in that dtype.
Batch-norm statistics stay float32 and max-pool indices int64.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..errors import InspectError
from ..geometry import same_padding
from ..records.types import CONV_KINDS, BlockRecord, NetRecord, Op
from .costs import costs
from .detection import freeze
from .rules import Shape, rule

BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int64": 8}
DTYPES = ("float32", "float16", "bfloat16")
OPTIMIZER_COPIES = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}  # float32 copies of the trainable parameters
PARAM_BYTES = 4  # parameters, gradients and optimizer state are float32 when training (autocast keeps them so)
BN_COUNTER_BYTES = 8  # num_batches_tracked, int64
Style = Literal["nested", "sequential"]
STYLES: tuple[Style, ...] = ("nested", "sequential")
NORMS = ("bn", "gn")
# Kinds whose saves were measured in float32 only: under autocast they are reported, not guessed.
FLOAT32_ONLY = ("se", "eca", "blur", "gn")


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
    buffers_bytes: int  # batch-norm running statistics and counters
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
        if self.autocast and op.kind in FLOAT32_ONLY:
            saves = None
        casts = saves is not None and any(s.cast for s in saves)
        out = _Storage(shape, self.autocast if (casts and self.autocast) else x.dtype, node)
        if saves is None:
            if node:
                self.uncounted.append(f"{op.name} ({op.kind}: what it saves is not known)")
            return out
        if not node:
            return out
        for s in saves:
            if (s.when == "weight" and not trains) or (s.when == "input" and not x.grad):
                continue
            if s.of == "input" and s.cast and self.autocast and x.dtype != self.autocast:
                self.ledger.charge(part, math.prod(x.shape) * BYTES[self.autocast], True)  # the cast copy
            elif s.of == "input":
                self.ledger.save(part, x)
            elif s.of == "output":
                self.ledger.save(part, out)
            else:
                if s.dtype == "autocast" and not self.autocast:
                    continue  # the parameter itself
                dtype = {"same": x.dtype, "autocast": self.autocast}.get(s.dtype, s.dtype)
                assert s.elements is not None and dtype is not None, op.kind
                nbytes = s.elements(op, x.shape, shape) * BYTES[dtype]
                self.ledger.charge(part, nbytes, s.per_sample, copy=s.dtype == "autocast")
        return out

    def relu(self, x: _Storage, part: str) -> None:
        """An in-place ReLU: it saves its output, which is `x`'s storage."""
        if x.grad:
            self.ledger.save(part, x)

    def stem(self, ops: Sequence[Op], x: _Storage) -> _Storage:
        """The stem: a ReLU after every norm."""
        for op in ops:
            x = self.op(op, x, "stem", "stem")
            if op.kind in NORMS:
                self.relu(x, "stem")
        return x

    def block(self, block: BlockRecord, x: _Storage) -> _Storage:
        """A residual block: the main path (a ReLU after every norm a later conv reads), the shortcut
        (on the block's input, or a pre-activated block's first norm), the sum and, after a
        post-activation block, the ReLU after it."""
        preact = bool(block.main) and block.main[0].kind in NORMS
        last_conv = max(i for i, op in enumerate(block.main) if op.kind in CONV_KINDS)
        main, into_shortcut = x, x
        for i, op in enumerate(block.main):
            main = self.op(op, main, block.name, block.stage)
            if op.kind in NORMS and i < last_conv:
                self.relu(main, block.name)
            if preact and i == 0:
                into_shortcut = main
        short = into_shortcut
        for op in block.shortcut:
            short = self.op(op, short, block.name, block.stage)
        dtype = main.dtype if main.dtype == short.dtype else "float32"  # float32 wins a mixed sum
        total = _Storage(main.shape, dtype, main.grad or short.grad)
        if not preact:
            self.relu(total, block.name)
        return total

    def head(self, ops: Sequence[Op], x: _Storage) -> _Storage:
        """A pre-activation network's final norm (with its ReLU), global pooling and the classifier."""
        pooled = False
        for op in ops:
            x = self.op(op, x, "head", "head")
            pooled |= op.kind == "adaptive_avgpool"
            if op.kind in NORMS and not pooled:
                self.relu(x, "head")
        return x


# -- inference: the forward peak ------------------------------------------------------------------


def _transient(op: Op, x: Shape, out: Shape, itemsize: int) -> int:
    """Bytes an op holds only while it runs: max-pool's int64 indices (torch computes them even
    under no_grad), the padded copy of a same-padded pool."""
    if op.kind == "maxpool":
        return math.prod(out) * BYTES["int64"]
    if op.kind == "avgpool_same":
        sides = (x[1 + a] + same_padding(x[1 + a], op.kernel[a], op.stride[a], op.dilation[a]) for a in (0, 1))
        return x[0] * math.prod(sides) * itemsize
    return 0


class _Live:
    """Activation storages alive during an inference pass (per sample), and the peak per part."""

    def __init__(self) -> None:
        self.sizes: dict[int, int] = {}
        self.now = 0
        self.keys = itertools.count()
        self.part = ""
        self.peaks: dict[str, tuple[int, str]] = {}

    def alloc(self, nbytes: int, at: str) -> int:
        """A new storage of `nbytes`; returns its key."""
        key = next(self.keys)
        self.sizes[key] = nbytes
        self.now += nbytes
        if self.now > self.peaks.get(self.part, (-1, ""))[0]:
            self.peaks[self.part] = (self.now, at)
        return key

    def free(self, key: int) -> None:
        """The last reference to a storage is gone."""
        self.now -= self.sizes.pop(key, 0)


@dataclass
class _Inference:
    """One inference pass (eval mode, no_grad, the model in `itemsize`-byte floats), following the
    reference lifetimes of a forward() `style`:

    * both: the image lives throughout (the caller holds it); a stage's input lives while the whole
      stage runs (the trunk's `x = layer(x)` holds it); a chain of layers frees each input once the
      next layer has returned; in-place ReLUs allocate nothing.
    * nested (this project's blocks): the shortcut runs first and its output lives through the main
      path; `out = relu(bn(conv(out)))` keeps the old `out` until the whole line returns; the sum is a
      new tensor.
    * sequential (torchvision's and timm's blocks): one statement per layer, the shortcut after the
      main path while its output lives, and an in-place sum.
    """

    style: Style
    itemsize: int
    live: _Live = field(default_factory=_Live)

    def nbytes(self, shape: Shape) -> int:
        """Bytes of one sample of an activation."""
        return math.prod(shape) * self.itemsize

    def op(self, op: Op, x: int, shape: Shape) -> tuple[int, Shape]:
        """Run one op on storage `x`: its transient bytes and output are alive at once."""
        out_shape = rule(op).shape(op, shape)
        extra = _transient(op, shape, out_shape, self.itemsize)
        scratch = self.live.alloc(extra, op.name) if extra else None
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

    def block(self, block: BlockRecord, x: int, shape: Shape, keep: set[int]) -> tuple[int, Shape]:
        """One residual block from input `x` (kept by the caller while it runs)."""
        keep = keep | {x}
        if self.style == "sequential":
            out, out_shape = self.chain(block.main, x, shape, keep)
            short, _ = self.chain(block.shortcut, x, shape, keep | {out})
            if short not in keep:
                self.live.free(short)  # `out += identity` is in place
            return out, out_shape
        short, _ = self.chain(block.shortcut, x, shape, keep)
        out, out_shape, line = x, shape, []
        for i, op in enumerate(block.main):
            line.append(op)
            if op.kind == "bn" or i == len(block.main) - 1:
                start = out
                out, out_shape = self.chain(line, out, out_shape, keep | {start})
                if start not in keep:
                    self.live.free(start)  # the line returned: the old `out` goes
                line = []
        total = self.live.alloc(self.nbytes(out_shape), f"{block.name} sum")
        for key in (out, short):
            if key not in keep:
                self.live.free(key)
        return total, out_shape

    def run(self, record: NetRecord, height: int, width: int) -> None:
        """The whole pass: stem, stages, head."""
        live = self.live
        live.part = "stem"
        image_shape: Shape = (record.stem.in_ch, height, width)
        image = live.alloc(self.nbytes(image_shape), "input")
        x, shape = self.chain(record.stem.ops, image, image_shape, {image})
        for blocks in record.stage_blocks().values():
            stage_input = x
            for block in blocks:
                live.part = block.name
                out, shape = self.block(block, x, shape, {image, stage_input})
                if x != stage_input:
                    live.free(x)
                x = out
            live.free(stage_input)
        live.part = "head"
        self.chain(record.head, x, shape, {image})


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


# Each op as a letter: C a conv (any conv-like kind), N a norm, A an attention gate, P a pool.
_LETTERS = {**dict.fromkeys(CONV_KINDS, "C"), "bn": "N", "gn": "N", "se": "A", "eca": "A"}
_LETTERS.update(dict.fromkeys(("blur", "avgpool", "avgpool_same", "maxpool"), "P"))
# The layouts the ReLU placement knows: post-activation blocks (conv, norm, an optional anti-aliasing
# pool after it, an attention gate at the end), pre-activation ones (norm, conv), shortcuts (a pool,
# a conv, a norm), stems (convs and norms, then pools).
LAYOUTS = {
    "main": re.compile(r"(CNP?)+A?|(NC)+"),
    "shortcut": re.compile(r"(P?CN?)?"),
    "stem": re.compile(r"(CN)*C?N?P*"),
}


def _letters(ops: Sequence[Op]) -> str:
    return "".join(_LETTERS.get(op.kind, "?") for op in ops)


def _layout_problems(record: NetRecord) -> list[str]:
    """Parts whose layers are not laid out as the ReLU placement assumes."""
    problems = []
    if not LAYOUTS["stem"].fullmatch(_letters(record.stem.ops)):
        problems.append("stem (a layout of convs and norms the ReLU placement does not know)")
    for block in record.blocks:
        if not (
            LAYOUTS["main"].fullmatch(_letters(block.main)) and LAYOUTS["shortcut"].fullmatch(_letters(block.shortcut))
        ):
            problems.append(f"{block.name} (a layout of convs and norms the ReLU placement does not know)")
    return problems


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
        x = train.stem(record.stem.ops, _Storage((record.stem.in_ch, height, width), "float32", False))
        for block in record.blocks:
            x = train.block(block, x)
        train.head(record.head, x)
    peaks: dict[str, tuple[int, str]] = {}
    if inference and style is not None:
        sim = _Inference(style, BYTES[dtype])
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
        norms = [op for op in ops if op.kind == "bn"]
        peak = max((peaks[p] for p in charged if p in peaks), default=None)
        return PartMemory(
            name=name,
            params=params,
            trainable_params=trainable,
            params_bytes=params * itemsize,
            buffers_bytes=sum(2 * op.out_ch * itemsize + BN_COUNTER_BYTES for op in norms),
            grads_bytes=trainable * PARAM_BYTES,
            optimizer_bytes=trainable * PARAM_BYTES * copies,
            activations_saved_bytes=sum(ledger.bytes(p, batch) for p in charged),
            weight_copies_bytes=sum(ledger.copies.get(p, 0) for p in charged),
            forward_peak_bytes=peak[0] * batch if peak else None,
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
        forward_peak_bytes=peak[0] * batch if peak else None,
        forward_peak_at=peak[1] if peak else None,
        per_sample_bytes=(peak[0] if peak else 0) if inference else sum(ledger.per_sample.values()),
        stages=tuple(stages),
        blocks=blocks,
        uncounted=tuple(uncounted),
        budget_bytes=budget,
    )
