"""`show`, `list` and `export-keys` as documents, the layer-notes text, and the checkpoint reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..records.types import BLOCK_FIELDS, CONV_KINDS
from .document import Column, Document, Heading, Table, count, counted, note, plain
from .text import describe_spec, family, listed, shape_text

if TYPE_CHECKING:
    from ..model.checkpoint import CheckpointReport
    from ..model.spec import NetSpec
    from ..numbers.costs import Costs
    from ..numbers.detection import Freeze
    from ..records.types import BlockRecord, NetRecord


def _downsample(block: BlockRecord) -> str:
    d = block.downsample
    if d is None:
        return "-"
    return f"{d.kind}/{d.stride}" if d.stride != 1 else d.kind


def _stride(block: BlockRecord) -> str:
    return f"{block.stride}@{block.stride_at}" if block.stride_at else str(block.stride)


def _dilation(block: BlockRecord) -> str:
    return "/".join(map(str, block.dilations)) if len(set(block.dilations)) > 1 else str(block.dilation)


STEM_COLUMNS = (
    plain("kind"),
    plain("convs"),
    plain("widths"),
    plain("pool"),
    Column("in"),
    Column("out"),
    Column("stride"),
    counted("params"),
)
# "in"/"out" are inplanes/outplanes, "dil" the 3x3 dilation(s) (SHOW_LEGEND says so under the tables).
BLOCK_COLUMNS = (
    Column("#"),
    Column("in"),
    Column("planes"),
    Column("width"),
    Column("out"),
    plain("stride"),
    Column("dil"),
    Column("groups", short="g"),
    Column("base_width", short="bw", optional="= width x 64 / (groups x planes)"),
    plain("shortcut"),
    counted("params"),
)
SHAPE_COLUMNS = (Column("output"), Column("cum"))
SHOW_LEGEND = (
    "in/out: a block's input/output channels; width: its 3x3's channels; stride 2@3x3: stride 2 on the "
    "3x3 (2@1x1: on the first 1x1); dil: the 3x3's dilation; base_width: width x 64 / (groups x planes); "
    "shortcut conv/2: 1x1 conv with stride 2, avgpool+conv: 2x2 average pool then 1x1 conv, -: identity"
)
ATTENTION_WORDS = {
    "se": "squeeze-excitation",
    "eca": "efficient channel attention",
    "split_attn": "split attention",
    "selective_kernel": "selective kernel",
    "blur": "a blur pool after the 3x3 carries the stride (2@blur)",
    "avgpool": "a 2x2 average pool after the 3x3 carries the stride (2@avgpool)",
}
HEAD_WORDS = {"adaptive_avgpool": "global avg pool", "linear": "fc", "avgpool": "avg pool"}
EXTRA_COLUMN = plain("attn/aa")  # shown when some block has attention or anti-aliasing


def extra_text(block: BlockRecord) -> str:
    """'se', 'blur', 'eca+avgpool', or '-'."""
    return "+".join(filter(None, (block.attention, block.anti_alias))) or "-"


def show_document(
    record: NetRecord, spec: NetSpec | None, costs: Costs | None = None, frozen: Freeze | None = None
) -> Document:
    """`show`: a header, the stem, then one table per stage; with `costs` (an input size) each
    block's output shape and cumulative stride too; with `frozen` the freeze_at paragraph."""
    lines = []
    if spec is not None:
        lines += [f"({spec.convention}) {describe_spec(spec)}"]
    if costs is not None:
        lines.append(f"input {costs.input[0]}x{costs.input[1]}: output C x H x W and cumulative stride per block")
    doc = Document([Heading(f"{record.model}  {count(record.params)} parameters", tuple(lines))])
    stem = record.stem
    stem_table = Table("stem", STEM_COLUMNS)
    stem_table.add(
        stem.kind,
        ",".join(stem.convs),
        ",".join(map(str, stem.widths)),
        stem.pool or "-",
        stem.in_ch,
        stem.out_ch,
        stem.stride,
        stem.params,
    )
    doc.parts.append(stem_table)
    outputs = {b.name: b for b in costs.blocks} if costs else {}
    for stage, blocks in record.stage_blocks().items():
        kinds = "/".join(dict.fromkeys(b.type for b in blocks))
        params = sum(b.params for b in blocks)
        extras = any(b.attention or b.anti_alias for b in record.blocks)
        table = Table(
            f"{stage}: {len(blocks)} {kinds} blocks, {count(params)} parameters",
            BLOCK_COLUMNS + ((EXTRA_COLUMN,) if extras else ()) + (SHAPE_COLUMNS if costs else ()),
        )
        for b in blocks:
            shape = (shape_text(outputs[b.name].output), outputs[b.name].stride) if costs else ()
            shape = ((extra_text(b),) if extras else ()) + shape
            table.add(
                b.index,
                b.inplanes,
                b.planes,
                b.width,
                b.outplanes,
                _stride(b),
                _dilation(b),
                b.groups,
                b.base_width,
                _downsample(b),
                b.params,
                *shape,
            )
        doc.parts.append(table)
    doc.parts += _head_parts(record, costs)
    if record.probed:
        modules = [f"{op.name} ({op.module})" for op in record.probed]
        doc.parts.append(
            note(f"read by no rule (flops counts them from a forward pass of each alone): {listed(modules)}", "yellow")
        )
    if record.unrecognised:
        doc.parts.append(note(f"INCOMPLETE: left out: {listed(record.unrecognised)}", "yellow"))
    doc.parts.append(note(show_legend(record, costs is not None)))
    if frozen:
        doc.extend(freeze_document(frozen))
    doc.csv = blocks_csv(record, costs)
    return doc


def show_legend(record: NetRecord, shapes: bool = False) -> str:
    """SHOW_LEGEND, and what the columns shown only for some networks mean: attn/aa, output, cum."""
    extra = []
    kinds = [k for b in record.blocks for k in (b.attention, b.anti_alias) if k]
    if kinds:
        extra.append("attn/aa: the block's attention and anti-aliasing")
        extra += [f"{k}: {ATTENTION_WORDS.get(k, k)}" for k in dict.fromkeys(kinds)]
    if shapes:
        extra.append("output: the block's output C x H x W; cum: its cumulative stride")
    return "; ".join([SHOW_LEGEND, *extra])


def _head_parts(record: NetRecord, costs: Costs | None) -> list[Any]:
    """The head's table (what follows the last stage) and the sum the header's count is made of."""
    parts: list[Any] = []
    classifier = [op for op in record.head if op.kind == "linear"]
    stages = sum(b.params for b in record.blocks)
    if record.head_params or classifier:
        layers = " + ".join(HEAD_WORDS.get(op.kind, op.kind) for op in record.head)
        head = Table(f"head: {count(record.head_params)} parameters", (plain("layers"), Column("in"), Column("out")))
        inputs = record.blocks[-1].outplanes if record.blocks else None
        head.add(layers, inputs, classifier[-1].out_ch if classifier else None)
        parts.append(head)
    elif record.head:
        last = costs.stages[-1].output if costs else None
        shape = f" to {shape_text(last)}" if last else ""
        parts.append(note(f"no head: no classifier, only a global pool{shape} (num_classes 0)"))
    other = record.params - record.stem.params - stages - record.head_params
    terms = [("stem", record.stem.params), ("stages", stages), ("head", record.head_params), ("other modules", other)]
    shown = [(label, n) for label, n in terms if n or label in ("stem", "stages")]
    parts.append(
        note(
            " + ".join(label for label, _ in shown)
            + " = "
            + " + ".join(count(n) for _, n in shown)
            + f" = {count(record.params)} parameters",
            None,
        )
    )
    return parts


def blocks_csv(record: NetRecord, costs: Costs | None) -> Table:
    """One row per block, every field (the CSV form of `show`)."""
    columns = [plain(k) for k in BLOCK_FIELDS]
    if costs:
        columns += [plain("output"), plain("cumulative_stride")]
    table = Table("blocks", columns)
    outputs = {b.name: b for b in costs.blocks} if costs else {}
    for b in record.blocks:
        extra = (shape_text(outputs[b.name].output), outputs[b.name].stride) if costs else ()
        values = {k: getattr(b, k) for k in BLOCK_FIELDS}
        values.update(dilations="-".join(map(str, b.dilations)), downsample=b.shortcut_layers)
        table.add(*values.values(), *extra)
    return table


def freeze_document(f: Freeze) -> Document:
    """--freeze-at as a table: frozen and trainable backbone parameters (they add up to the backbone),
    then the batch norms."""
    frozen = " + ".join(f.frozen_parts) or "nothing"
    table = Table(
        f"freeze_at {f.freeze_at} (detectron2): the backbone (stem + stages), not the classifier",
        (plain("", "what"), counted("parameters", "params")),
    )
    table.add(f"frozen: {frozen}", f.frozen_params)
    table.add("trainable", f.trainable_params)
    table.add("backbone", f.backbone_params, style="bold")
    lines = [
        (
            f"batch norms: {f.bn_layers} layers, {count(f.bn_params)} parameters, {count(f.bn_params_trainable)} "
            "of them in the trainable part; with every batch norm frozen (FrozenBatchNorm2d, as detection usually "
            f"does), {count(f.trainable_with_frozen_bn)} parameters train"
        )
    ]
    if f.head_params:
        lines.append(f"the classifier's {count(f.head_params)} parameters are in neither count")
    return Document([table, *(note(line, None) for line in lines)])


# -- notes (seed 000's layer-notes format) ------------------------------------------------------


def _block_label(block: BlockRecord) -> str:
    return ("Bottleneck" if block.type == "bottleneck" else "BasicBlock") + str(block.index + 1)


def _downsample_line(block: BlockRecord) -> str:
    if block.downsample is None:
        return "(No Downsample)"
    parts = []
    for op in block.shortcut:
        if op.kind in ("avgpool", "avgpool_same"):
            same = ", same padding" if op.kind == "avgpool_same" else ""
            parts.append(f"avgpool{op.kernel[0]}x{op.kernel[1]}(stride={op.stride[0]}{same})")
        elif op.kind == "conv":
            parts.append(
                f"conv{op.kernel[0]}x{op.kernel[1]}(inplanes={op.in_ch}, outplanes={op.out_ch}, stride={op.stride[0]})"
            )
    return f"-> Downsample({', '.join(parts)})"


def _stride_text(block: BlockRecord) -> str:
    """'stride=1', or where the stride sits: 'stride=2 (on conv2, the 3x3)', '(on conv1, the 1x1)'."""
    if block.stride == 1:
        return "stride=1"
    op = next((op for op in block.main if op.stride[0] > 1), None)
    if op is None:
        return f"stride={block.stride}"
    where = op.name.removeprefix(block.name + ".")
    if op.kind in CONV_KINDS:
        what = f"the {op.kernel[0]}x{op.kernel[1]}"
    else:
        what = {"blur": "a blur pool", "avgpool": "an average pool"}.get(op.kind, f"a {op.kind}")
    return f"stride={block.stride} (on {where}, {what})"


def notes(record: NetRecord) -> str:
    """The hand-written layer notes format, one `BottleneckN(...)` line per block, generated."""
    first = record.blocks[0]
    expansion = first.outplanes // first.planes if first.planes else 1
    stem = record.stem
    lines = [
        f"# {record.model}",
        "",
        f"output of a {first.type} block is always planes * expansion ({expansion})",
        "width = channels of the 3x3 conv(s) = planes x base_width / 64 x groups",
        "generated from the built network: its strides and block counts (hand-written notes may differ,",
        "see docs/variants.md, 'Layer notes by hand')",
        "",
        "## Stem",
        "",
        f"{', '.join(f'conv{c}' for c in stem.convs)} (widths {', '.join(map(str, stem.widths))})"
        + (f", {stem.pool} pool" if stem.pool else ""),
        f"\tIN: {stem.in_ch}, OUT: {stem.out_ch}",
    ]
    for number, blocks in enumerate(record.stage_blocks().values(), start=1):
        lines += ["", f"## Layer {number}", ""]
        for b in blocks:
            args = [f"inplanes={b.inplanes}", f"planes={b.planes}", f"width={b.width}", _stride_text(b)]
            if b.downsample:
                args.append("downsample")
            args += [f"groups={b.groups}", f"base_width={b.base_width}", f"dilation={b.dilation}"]
            args += [f"attention={b.attention}"] if b.attention else []
            args += [f"anti_alias={b.anti_alias}"] if b.anti_alias else []
            lines.append(f"{_block_label(b)}({', '.join(args)})")
            lines.append("\t" + _downsample_line(b))
            lines.append(f"\tIN: {b.inplanes}, OUT: {b.outplanes}")
    return "\n".join(lines) + "\n"


# -- list -----------------------------------------------------------------------------------------


def list_document(specs: Sequence[NetSpec]) -> Document:
    """`resnet-inspect list`: one row per registered name."""
    table = Table(
        f"{len(specs)} registered variants",
        (
            plain("name"),
            Column("family", left=True, optional="ResNet-B/C/D..., from the knobs"),
            Column("convention", left=True, optional="whose definition it follows"),
            plain("block"),
            plain("layers"),
            plain("GxW"),
            plain("stem"),
            plain("shortcut"),
        ),
    )
    for spec in specs:
        table.add(
            spec.name,
            family(spec),
            spec.convention,
            spec.block,
            "-".join(map(str, spec.layers)),
            f"{spec.groups}x{spec.width_per_group}d" if spec.groups > 1 or spec.width_per_group != 64 else "-",
            "7x7" if spec.stem == "classic" else "deep " + ",".join(map(str, spec.stem_spec().widths)),
            spec.shortcut,
        )
    return Document([table], csv=table)


# -- checkpoints and state-dict keys -------------------------------------------------------------


def checkpoint_line(report: CheckpointReport) -> str:
    """'loaded 320 tensors from x.pth (under 'state_dict', prefix 'module.' stripped)'."""
    notes = []
    if report.wrapper:
        notes.append(f"under {report.wrapper!r}")
    if report.stripped:
        notes.append("prefix " + " then ".join(repr(p) for p in report.stripped) + " stripped")
    left = len(report.missing) + len(report.unexpected) + len(report.mismatched)
    if left:
        notes.append(f"{left} keys not loaded, see the table")
    return f"loaded {report.loaded} tensors from {report.path}" + (f" ({', '.join(notes)})" if notes else "")


def checkpoint_document(report: CheckpointReport, first: int = 10) -> Document:
    """Missing, unexpected and reshaped keys, the first few of each."""
    table = Table(
        f"{report.path}: {len(report.missing)} missing, {len(report.unexpected)} unexpected, "
        f"{len(report.mismatched)} with another shape"
        + (f" (prefix {', '.join(report.stripped)} stripped)" if report.stripped else ""),
        (plain("problem"), plain("key"), plain("model"), plain("file")),
    )
    for label, keys in (("missing from the file", report.missing), ("not in the model", report.unexpected)):
        for key in keys[:first]:
            table.add(label, key, "", "")
        if len(keys) > first:
            table.add(label, f"... {len(keys) - first} more", "", "")
    for key, model_shape, file_shape in report.mismatched[:first]:
        table.add("shape differs", key, shape_text(model_shape), shape_text(file_shape))
    if len(report.mismatched) > first:
        table.add("shape differs", f"... {len(report.mismatched) - first} more", "", "")
    return Document([table])


def keys_document(label: str, keys: Sequence[dict[str, Any]]) -> Document:
    """`export-keys`: one row per state-dict entry."""
    params = sum(1 for k in keys if k["kind"] == "parameter")
    table = Table(
        f"{label}: {len(keys)} entries ({params} parameters, {len(keys) - params} buffers)",
        (plain("name"), plain("shape"), plain("kind"), plain("dtype")),
    )
    for k in keys:
        table.add(k["name"], shape_text(k["shape"]) or "scalar", k["kind"], k["dtype"])
    return Document([table], csv=table)
