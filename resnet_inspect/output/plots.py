"""Pictures (matplotlib, the optional `plot` extra): the receptive field of one unit over its
effective receptive field, and where the cost goes per stage.

The effective receptive field follows Luo et al., "Understanding the Effective Receptive Field in
Deep Convolutional Neural Networks" (NeurIPS 2016): the magnitude of the gradient of one output unit
with respect to the input, averaged over a few random inputs, for the randomly initialised network.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InspectError

if TYPE_CHECKING:
    from ..measure.erf import UnitField
    from ..numbers.costs import Costs
    from ..numbers.memory import Memory

FIGURE_DPI = 100
RF_FIGURE_INCHES = (6.0, 6.0)  # 600 x 600 pixels for a square input; less high for a wide one
COST_FIGURE_INCHES = (12.0, 5.0)  # 1200 x 500 pixels
FORMATS = (".png", ".svg", ".pdf")  # matplotlib picks the writer from the suffix
MAX_MODELS = 8  # bars per stage that still read (and tab10's colours, one per model)
MEMORY_FIGURE_INCHES = (10.0, 5.0)  # 1000 x 500 pixels


def check_output(path: str) -> None:
    """InspectError when matplotlib is missing (naming the extra) or `path` cannot be written,
    before any work is done."""
    _matplotlib()
    target = Path(path)
    if target.name.lower() in FORMATS:  # "dir/.png": an extension and no name
        raise InspectError(f"needs a file name before the extension, got {path!r}", "plot")
    if target.suffix.lower() not in FORMATS:
        raise InspectError(f"writes PNG, SVG or PDF: {path!r} should end in .png, .svg or .pdf", "plot")
    if target.is_dir():
        raise InspectError(f"{path!r} is a directory", "plot")
    if not target.parent.is_dir():
        raise InspectError(f"cannot write {path!r}: no directory {str(target.parent)!r}", "plot")
    if not os.access(target.parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise InspectError(f"cannot write {path!r}: permission denied", "plot")


def check_models(count: int) -> None:
    """InspectError when a picture would hold more models than it can show apart."""
    if count > MAX_MODELS:
        raise InspectError(f"draws at most {MAX_MODELS} models, got {count}: name fewer or narrow the pattern", "plot")


def _save(fig: Any, path: str) -> None:
    try:
        fig.savefig(path, dpi=FIGURE_DPI)
    except OSError as error:
        raise InspectError(f"cannot write {path}: {error.strerror or error}") from None


def _matplotlib() -> Any:
    """matplotlib, or InspectError naming the extra. Figures are made without pyplot: no backend is
    chosen for the process and no figure is registered anywhere (the caller's own plots are untouched)."""
    try:
        import matplotlib
        import matplotlib.figure
    except ImportError:
        raise InspectError("plotting needs matplotlib: pip install 'resnet-inspect[plot]'") from None
    return matplotlib


def _figure(inches: tuple[float, float]) -> Any:
    """A figure of its own, laid out by matplotlib's constrained layout."""
    return _matplotlib().figure.Figure(figsize=inches, dpi=FIGURE_DPI, layout="constrained")


def plot_receptive_field(result: UnitField, model_label: str, path: str) -> None:
    """The input frame, the effective field as a heat map and the theoretical field as a box."""
    from matplotlib.patches import Rectangle

    height, width = result.erf.shape
    top, left, bottom, right = result.box
    x_span = (min(-0.5, left - 0.5) - 4, max(width - 0.5, right + 0.5) + 4)
    y_span = (max(height - 0.5, bottom + 0.5) + 4, min(-0.5, top - 0.5) - 4)
    aspect = (y_span[0] - y_span[1]) / (x_span[1] - x_span[0])
    # square for a square (or tall) picture; shorter for a wide one, rather than a band of white
    inches = (RF_FIGURE_INCHES[0], RF_FIGURE_INCHES[1] * (0.25 + 0.75 * min(1.0, aspect)))
    fig = _figure(inches)
    ax = fig.subplots()
    image = ax.imshow(result.erf, cmap="magma", extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    ax.add_patch(Rectangle((-0.5, -0.5), width, height, fill=False, edgecolor="white", linewidth=1.0))
    ax.add_patch(
        Rectangle(
            (left - 0.5, top - 0.5),
            right - left + 1,
            bottom - top + 1,
            fill=False,
            edgecolor="cyan",
            linewidth=1.5,
            linestyle="--",
        )
    )
    ax.plot([result.center[1]], [result.center[0]], marker="+", color="cyan", markersize=10)
    ax.plot([result.peak[1]], [result.peak[0]], marker="x", color="white", markersize=6)
    ax.set_xlim(*x_span)
    ax.set_ylim(*y_span)
    bar = ax.inset_axes((1.03, 0.0, 0.04, 1.0))  # beside the picture, exactly as high
    fig.colorbar(image, cax=bar, label="|d unit / d input| (mean of samples)")
    ax.set_title(
        f"{model_label} {result.stage}, unit {result.unit} of {result.feature_size[0]}x{result.feature_size[1]}\n"
        f"theoretical field {bottom - top + 1}x{right - left + 1} (dashed; + its centre)\n"
        f"effective field (x its peak), {result.samples} random input{'s' if result.samples != 1 else ''}, seed {result.seed}",
        fontsize=8,
    )
    ax.set_xlabel("input x (pixels)")
    ax.set_ylabel("input y (pixels)")
    _save(fig, path)


def plot_costs(all_costs: Sequence[Costs], path: str) -> None:
    """Three panels of grouped bars, one colour per model: MACs, parameters and the feature map's
    H x W (log scale) per stage; the legend under the panels, outside the bars."""
    from matplotlib.ticker import FuncFormatter

    names = list(dict.fromkeys(s.name for c in all_costs for s in c.stages))
    fig = _figure(COST_FIGURE_INCHES)
    axes = fig.subplots(1, 3)
    macs_ax, params_ax, size_ax = axes
    colours = _matplotlib().colormaps["tab10"].colors
    group = 0.8 / len(all_costs)
    spatial = [n for n in names if all(len(s.output) == 3 for c in all_costs for s in c.stages if s.name == n)]
    for i, costs in enumerate(all_costs):
        stages = {s.name: s for s in costs.stages}
        offset = -0.4 + group * (i + 0.5)
        colour = colours[i % len(colours)]
        xs = [j + offset for j, n in enumerate(names) if n in stages]
        macs_ax.bar(xs, [stages[n].macs / 1e9 for n in names if n in stages], group, color=colour, label=costs.model)
        params_ax.bar(xs, [stages[n].params / 1e6 for n in names if n in stages], group, color=colour)
        sized = [(j + offset, stages[n].output) for j, n in enumerate(spatial) if n in stages]
        size_ax.bar([x for x, _ in sized], [o[1] * o[2] for _, o in sized], group, color=colour)
        if len(all_costs) <= 4:  # each bar says its size when the models' maps differ there
            for (x, output), n in zip(sized, [n for n in spatial if n in stages]):
                if len(maps_of(all_costs, n)) > 1:
                    size_ax.annotate(
                        f"{output[1]}x{output[2]}",
                        (x, output[1] * output[2]),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="center",
                        va="bottom",
                        rotation=90,
                        fontsize=6,
                    )
    first = all_costs[0]
    fig.suptitle(
        f"per stage at {first.input[0]}x{first.input[1]}, batch {first.batch} (MACs = multiply-accumulates, "
        "FLOPs = 2 x MACs)",
        fontsize=10,
    )
    macs_ax.set_title("GMACs", fontsize=9)
    params_ax.set_title("parameters (millions)", fontsize=9)
    size_ax.set_title("output H x W (pixels, log scale)", fontsize=9)
    size_ax.set_yscale("log")
    size_ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    size_ax.margins(y=0.15)  # room for the size labels above the bars
    maps = {n: maps_of(all_costs, n) for n in spatial}
    shared = [
        f"{n}\n{size[0]}x{size[1]}" if len(maps[n]) == 1 and (size := next(iter(maps[n]))) else n for n in spatial
    ]
    for ax, labels in ((macs_ax, names), (params_ax, names), (size_ax, shared)):
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    count = len(all_costs)
    columns = count if sum(len(c.model) for c in all_costs) <= 120 else -(-count // 2)  # one row, or two
    fig.legend(loc="outside lower center", ncols=columns, fontsize=8, frameon=False)
    _save(fig, path)


def maps_of(all_costs: Sequence[Costs], stage: str) -> set[tuple[int, ...]]:
    """The distinct H x W of one stage's output over several models."""
    return {s.output[1:] for c in all_costs for s in c.stages if s.name == stage}


def _binary_unit(largest: float) -> tuple[str, int]:
    return ("GiB", 2**30) if largest >= 2**30 else ("MiB", 2**20)


def plot_memory(results: Sequence[Memory], path: str) -> None:
    """Saved activations (training) or the forward peak (inference) per stage as grouped bars, one
    colour per model, and each model's total as a stacked bar of its parts (with the budget as a line
    when given); as `plot_costs`, the models' legend under the panels, the parts' beside theirs."""
    training = results[0].mode == "training"
    names = [s.name for s in results[0].stages]
    fig = _figure(MEMORY_FIGURE_INCHES)
    stage_ax, total_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})

    def per_stage(m: Memory) -> dict[str, int]:
        return {s.name: (s.activations_saved_bytes if training else (s.forward_peak_bytes or 0)) for s in m.stages}

    unit, scale = _binary_unit(max(max(per_stage(m).values()) for m in results))
    colours = _matplotlib().colormaps["tab10"].colors
    group = 0.8 / len(results)
    for i, m in enumerate(results):
        values = per_stage(m)
        xs = [j - 0.4 + group * (i + 0.5) for j in range(len(names))]
        stage_ax.bar(xs, [values.get(n, 0) / scale for n in names], group, color=colours[i % 10], label=m.model)
    stage_ax.set_xticks(range(len(names)))
    stage_ax.set_xticklabels(names, fontsize=8)
    first = results[0]
    fig.suptitle(
        f"memory at {first.input[0]}x{first.input[1]}, batch {first.batch}, {first.dtype}"
        + (f", training with {first.optimizer}" if training else ", inference"),
        fontsize=10,
    )
    what = "activations saved for backward" if training else "forward peak"
    stage_ax.set_title(f"{what} per stage ({unit})", fontsize=9)

    totals = [m.total_bytes or 0 for m in results]
    budgets = [m.budget_bytes for m in results if m.budget_bytes]
    unit, scale = _binary_unit(max([*totals, *budgets]))
    pieces = (
        [("weights", "weights_bytes"), ("gradients", "grads_bytes"), ("optimizer", "optimizer_bytes"),
         ("saved activations", "activations_saved_bytes")]
        if training
        else [("weights", "weights_bytes"), ("forward peak", "forward_peak_bytes")]
    )  # fmt: skip
    shades = _matplotlib().colormaps["Greys"]([0.25 + 0.6 * k / max(1, len(pieces) - 1) for k in range(len(pieces))])
    bottoms = [0.0] * len(results)
    for (label, attribute), shade in zip(pieces, shades):
        heights = [(getattr(m, attribute) or 0) / scale for m in results]
        total_ax.bar(range(len(results)), heights, 0.6, bottom=bottoms, color=shade, label=label)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    for i, m in enumerate(results):
        label = f"{totals[i] / scale:,.1f} {unit}"
        if m.max_batch is not None:
            label += f"\nfits batch {m.max_batch}"
        total_ax.annotate(label, (i, bottoms[i]), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
    if budgets:
        total_ax.axhline(budgets[0] / scale, color="black", linestyle="--", linewidth=1.0, label="budget")
    total_ax.set_ylim(0, 1.15 * max([*bottoms, *(b / scale for b in budgets)]))  # room for the labels
    total_ax.set_xticks(range(len(results)))
    slanted = max(len(m.model) for m in results) * len(results) > 48  # level names would run into each other
    total_ax.set_xticklabels(
        [m.model for m in results], fontsize=8, rotation=25 if slanted else 0, ha="right" if slanted else "center"
    )
    for tick, colour in zip(total_ax.get_xticklabels(), colours):
        tick.set_color(colour)  # each model's name in its colour on the left
    total_ax.set_title(f"total ({unit})", fontsize=9)
    total_ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    for ax in (stage_ax, total_ax):
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    columns = len(results) if sum(len(m.model) for m in results) <= 100 else -(-len(results) // 2)
    fig.legend(
        *stage_ax.get_legend_handles_labels(), loc="outside lower center", ncols=columns, fontsize=8, frameon=False
    )
    _save(fig, path)
