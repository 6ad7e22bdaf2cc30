"""`memory` as a document: the totals, then one row per stage (or block) that adds up to them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..numbers.memory import OPTIMIZER_COPIES
from .document import Column, Document, Heading, Share, Table, count, note, plain
from .text import listed, size_text

if TYPE_CHECKING:
    from ..numbers.memory import Memory, PartMemory

MEMORY_CONVENTION = (
    "saved activations = every storage autograd keeps for backward, counted once (parameters excluded), "
    "charged to the part that saves it first; not included: the CUDA context, cuDNN workspaces, allocator "
    "caching and fragmentation, temporaries of the backward pass (docs/conventions.md)"
)
INFERENCE_CONVENTION = (
    "forward peak = activation tensors alive at once in eval mode under no_grad, the input image included, "
    "following how forward() holds them; not included: the CUDA context, cuDNN workspaces, allocator caching "
    "and fragmentation (docs/conventions.md)"
)
FORWARD_STYLES = {
    "nested": "this project's blocks (shortcut first, nested calls)",
    "sequential": "torchvision's and timm's blocks (one statement per layer)",
}


def mib(n: int) -> str:
    """Bytes as MiB with one decimal: 1572864 -> '1.5'."""
    return f"{n / 2**20:,.1f}"


def human(n: int) -> str:
    """Bytes in the largest binary unit that keeps a leading digit: '31.60 GiB', '97.5 MiB'."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}" if scale >= 2**30 else f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def _mib(header: str, key: str) -> Column:
    return Column(header, text=mib, key=key)


TRAINING_COLUMNS = (
    plain("name"),
    _mib("saved MiB", "activations_saved_bytes"),
    plain("of total", "saved_share"),
    _mib("weights", "weights_bytes"),
    _mib("grads", "grads_bytes"),
    _mib("optimizer", "optimizer_bytes"),
    _mib("total MiB", "total_bytes"),
)
INFERENCE_COLUMNS = (
    plain("name"),
    _mib("peak MiB", "forward_peak_bytes"),
    plain("at (op)", "forward_peak_at"),
    _mib("weights MiB", "weights_bytes"),
)


def _heading(m: Memory) -> Heading:
    at = f"at {size_text(m.input)}, batch {m.batch}"
    if m.mode == "inference":
        style = FORWARD_STYLES.get(m.style or "", "a forward() whose tensor lifetimes are not known")
        lines = (f"inference {at}, the model in {m.dtype}, under no_grad; forward() as in {style}",)
    else:
        precision = "float32" if m.dtype == "float32" else f"autocast {m.dtype} (float32 parameters)"
        frozen = f"; freeze_at {m.freeze_at}: {' + '.join(m.frozen_parts)} frozen" if m.frozen_parts else ""
        copies = OPTIMIZER_COPIES[m.optimizer or "sgd"]
        state = (
            f"{copies} float32 cop{'y' if copies == 1 else 'ies'} of each trainable parameter" if copies else "no state"
        )
        lines = (f"training {at}, {precision}; optimizer {m.optimizer} ({state}){frozen}",)
    return Heading(m.model, lines, style="")


def _totals(m: Memory) -> Table:
    table = Table("", (plain("", "what"), Column("bytes", text=count), plain("size")))
    table.add(
        f"parameters ({count(m.params)}, {'float32' if m.mode == 'training' else m.dtype})",
        m.params_bytes,
        human(m.params_bytes),
    )
    table.add("buffers (norm statistics, filters)", m.buffers_bytes, human(m.buffers_bytes))
    if m.mode == "training":
        table.add(f"gradients ({count(m.trainable_params)} trainable)", m.grads_bytes, human(m.grads_bytes))
        table.add(f"optimizer state ({m.optimizer})", m.optimizer_bytes, human(m.optimizer_bytes))
        table.add("activations saved for backward", m.activations_saved_bytes, human(m.activations_saved_bytes))
    elif m.forward_peak_bytes is not None:
        table.add(f"forward peak (at {m.forward_peak_at})", m.forward_peak_bytes, human(m.forward_peak_bytes))
    else:
        table.add("forward peak (forward() not known)", None, "unknown")
    total = m.total_bytes
    table.add("total", total, human(total) if total is not None else "unknown", style="bold")
    return table


def _findings(m: Memory) -> list[str]:
    lines = []
    if m.weight_copies_bytes:
        lines.append(
            f"of the saved activations, {human(m.weight_copies_bytes)} are autocast's {m.dtype} casts of the "
            "trained conv and linear weights"
        )
    total = m.total_bytes
    largest = m.largest_stage
    if m.mode == "training" and total:
        lines.append(
            f"largest stage: {largest.name}, {human(largest.activations_saved_bytes)} saved "
            f"({100 * largest.activations_saved_bytes / total:.1f}% of the total)"
        )
    elif m.mode == "inference" and largest.forward_peak_bytes is not None:
        lines.append(f"the peak falls in {largest.name}, at {largest.forward_peak_at}")
    if m.budget_bytes is not None:
        fits = m.max_batch
        if fits is None:
            lines.append(f"within {human(m.budget_bytes)}: unknown (the total is not known)")
        else:
            assert m.fixed_bytes is not None
            what = f"batch {fits}" if fits else "not even batch 1"
            lines.append(
                f"within {human(m.budget_bytes)}: {what} (each image adds {human(m.per_sample_bytes)} "
                f"to {human(m.fixed_bytes)} that do not grow with the batch)"
            )
    return lines


def _parts_table(m: Memory, parts: Sequence[PartMemory], title: str) -> Table:
    if m.mode == "inference":
        table = Table(title, INFERENCE_COLUMNS)
        for p in parts:
            table.add(p.name, p.forward_peak_bytes, p.forward_peak_at, p.weights_bytes)
        table.add("total", m.forward_peak_bytes, "(the highest)", m.weights_bytes, style="bold")
        return table
    table = Table(title, TRAINING_COLUMNS)
    total = m.total_bytes or 0
    for p in parts:
        table.add(
            p.name,
            p.activations_saved_bytes,
            Share(p.activations_saved_bytes, total),
            p.weights_bytes,
            p.grads_bytes,
            p.optimizer_bytes,
            p.total_bytes,
        )
    table.add(
        "total",
        m.activations_saved_bytes,
        Share(m.activations_saved_bytes, total),
        m.weights_bytes,
        m.grads_bytes,
        m.optimizer_bytes,
        total,
        style="bold",
    )
    return table


def memory_document(m: Memory, per: str = "stage") -> Document:
    """`memory` for one model: the totals, what they imply, one row per stage (or per block, with the
    stem and head rows so that the rows add up)."""
    parts = m.stages if per == "stage" else (m.stages[0], *m.blocks, m.stages[-1])
    table = _parts_table(m, parts, f"per {per} (MiB)")
    doc = Document([_heading(m), _totals(m)], csv=table)
    doc.parts += [note(line, None) for line in _findings(m)]
    doc.parts.append(table)
    if m.uncounted:
        doc.parts.append(note(f"INCOMPLETE: not counted: {listed(m.uncounted)}; the totals are lower bounds", "yellow"))
    doc.parts.append(note(INFERENCE_CONVENTION if m.mode == "inference" else MEMORY_CONVENTION))
    return doc


def many_memory_csv(results: Sequence[Memory], per: str) -> Table:
    """Several models' rows in one CSV table, with a `model` column first."""
    tables = [(m.model, memory_document(m, per).csv) for m in results]
    first = tables[0][1]
    assert first is not None
    merged = Table(first.title, (plain("model"), *first.columns))
    for model, table in tables:
        assert table is not None
        for row, style in zip(table.rows, table.styles):
            merged.add(model, *row, style=style)
    return merged
