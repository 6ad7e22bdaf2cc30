"""The command line: one function per command, each parse -> library call -> render.

Bad input (an InspectError from the library, or a click usage error) becomes one `Error: ...` line on
stderr and exit status 2; exit status 1 is left to bugs.
"""

from __future__ import annotations

import errno
import gc
import sys
from collections.abc import Callable
from typing import Any

import click

from . import __version__
from .errors import InspectError

EPILOG_NAMES = (
    "NAME is a variant name (see `resnet-inspect list`) with optional @overrides (resnet101@os8), "
    "torchvision:NAME or timm:NAME (if installed; @os8 and @key=value pass through), or your own "
    "path/to/file.py:factory or package.module:factory (this runs your code)."
)


class IntList(click.ParamType):
    """A comma-separated list of integers: `3,4,6,3`."""

    name = "ints"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        """'3,4,6,3' -> (3, 4, 6, 3)."""
        if isinstance(value, tuple):
            return value
        items = [v.strip() for v in str(value).split(",")]
        if not all(item.isdigit() for item in items):
            self.fail(f"{value!r} is not a comma-separated list of integers (e.g. 3,4,6,3)", param, ctx)
        return tuple(int(item) for item in items)


class OneLineErrors(click.Group):
    """A group whose every bad-input path ends in one line on stderr and exit status 2."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:  # fmt: skip
        """Run the command; turn InspectError and click usage errors into one line, exit 2."""
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except InspectError as error:
            report = getattr(error, "report", None)  # a checkpoint that does not match: say where
            if report is not None:
                from . import render

                render.stderr_console().print(render.checkpoint_table(report))
            _fail(str(error))
        except click.UsageError as error:
            where = f" (see `{error.ctx.command_path} --help`)" if error.ctx else ""
            _fail(error.format_message().replace("\n", " ") + where)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except OSError as error:
            if error.errno != errno.EPIPE:  # output piped into `head`: stop quietly
                raise
            sys.stderr.close()
            sys.exit(1)


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The overrides and loading options every command that builds a model accepts."""
    options = [
        click.option("--layers", type=IntList(), help="Blocks per stage, e.g. 3,4,6,3."),
        click.option("--groups", type=int, help="Groups (cardinality) of every 3x3 conv."),
        click.option("--width-per-group", type=int, help="Channels per group at 64 planes (ResNeXt's d)."),
        click.option("--stem", type=click.Choice(["classic", "deep"]), help="7x7 conv, or three 3x3 convs."),
        click.option("--stem-width", type=int, help="Classic: the 7x7's channels; deep: the first two 3x3s'."),
        click.option("--shortcut", type=click.Choice(["conv", "avgpool"]),
                     help="Strided 1x1 conv, or avg-pool + 1x1 conv (ResNet-D)."),  # fmt: skip
        click.option("--num-classes", type=int, help="Classifier outputs; 0 drops the fc layer."),
        click.option("--output-stride", type=int, help="8, 16 or 32: later stages dilate instead of striding."),
        click.option("--multi-grid", type=IntList(), help="Dilation factors of the last stage's blocks, e.g. 1,2,4."),
        click.option("--dilation-style", type=click.Choice(["torchvision", "paddle"]),
                     help="Whether a dilated stage's first block keeps the old rate (torchvision) or not."),  # fmt: skip
        click.option("--device", help="Where to build: meta (default: no memory, no initialisation), cpu, "
                                      "cuda, cuda:N."),  # fmt: skip
        click.option("--weights", type=click.Path(dir_okay=False), metavar="FILE",
                     help="A state dict (.pth/.pt/.bin, or under 'state_dict'/'model') to load, weights_only."),  # fmt: skip
        click.option("--non-strict", is_flag=True, help="Load the keys that match and report the rest."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


LOADING = ("device", "weights", "non_strict")


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(overrides, loading arguments for api.load) from a command's keyword options."""
    loading = {"weights": options.pop("weights", None), "strict": not options.pop("non_strict", False)}
    if not loading["strict"] and not loading["weights"]:
        raise InspectError("--non-strict applies to --weights")
    options.pop("device", None)
    return options, loading


def _report_checkpoint(model: Any) -> None:
    """One line on stderr for a loaded checkpoint, and the table when keys were left out."""
    report = model.checkpoint
    if report is None:
        return
    from . import render

    if not report.matches:
        render.stderr_console().print(render.checkpoint_table(report))
    click.echo(render.checkpoint_line(report), err=True)


MIN_WIDTH = 100  # the widest stage table; a narrower terminal wraps rather than truncating digits


def _console() -> Any:
    from rich.console import Console

    console = Console()
    if console.width < MIN_WIDTH:
        console = Console(width=MIN_WIDTH)
    return console


def _print(parts: list[Any]) -> None:
    console = _console()
    for part in parts:
        console.print(part)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="resnet-inspect")
def cli() -> None:
    """Build any ResNet / ResNeXt / Wide ResNet / ResNet-vd variant and tell the truth about it.

    \b
    Examples:
      resnet-inspect show resnext50_32x4d
      resnet-inspect show resnet50_vd --output-stride 8 --format notes
      resnet-inspect flops resnet101 --input 1024x2048 --output-stride 8
      resnet-inspect rf resnet50d
      resnet-inspect diff resnet50 resnet50_vd
      resnet-inspect bench resnet50 --device cpu --iters 10
      resnet-inspect export-keys timm:resnet50d
      resnet-inspect list
    """


@cli.command(epilog=EPILOG_NAMES)
@click.argument("name")
@model_options
@click.option("--format", "fmt", type=click.Choice(["table", "notes", "json", "markdown"]), default="table",
              show_default=True, help="rich tables, layer notes, JSON (docs/cli.md) or markdown.")  # fmt: skip
@click.option("--input", "size", metavar="N|HxW", help="Add each block's output C x H x W and cumulative stride.")
@click.option("--freeze-at", type=int, help="detectron2's freeze_at: frozen vs trainable parameters, batch norms.")
def show(name: str, device: str | None, fmt: str, size: str | None, freeze_at: int | None, **options: Any) -> None:
    """Per-block table of a variant: inplanes, planes, width, stride, dilation, groups, shortcut.

    \b
    Examples:
      resnet-inspect show resnext50_32x4d
      resnet-inspect show resnet50 --groups 32 --width-per-group 4 --format notes
      resnet-inspect show resnet101_vd --output-stride 8 --multi-grid 1,2,4 --format json
      resnet-inspect show resnet50 --input 513 --output-stride 16
      resnet-inspect show torchvision:resnet50 --weights resnet50.pth
      resnet-inspect show resnet101_va --freeze-at 2
    """
    from . import analysis, api, render

    overrides, loading = _split(options)
    if fmt in ("notes", "markdown") and (size or freeze_at is not None):
        raise InspectError(f"--input and --freeze-at add to the table and JSON formats, not to {fmt}")
    model, record = api.records(name, device=device or "meta", **loading, **overrides)
    _report_checkpoint(model)
    costs = analysis.costs(record, *analysis.parse_input(size)) if size else None
    frozen = analysis.freeze(record, freeze_at) if freeze_at is not None else None
    if fmt == "json":
        data = render.show_data(record, model.spec, costs)
        if frozen:
            from .render_costs import freeze_data

            data["freeze"] = freeze_data(frozen)
        click.echo(render.to_json(data))
    elif fmt == "notes":
        click.echo(render.notes(record), nl=False)
    elif fmt == "markdown":
        click.echo(render.markdown(record, model.spec), nl=False)
    else:
        console = _console()
        for part in render.show_tables(record, model.spec, costs):
            console.print(part)
            console.print()
        if frozen:
            from .render_costs import freeze_text

            console.print(freeze_text(frozen))


@cli.command(epilog=EPILOG_NAMES)
@click.argument("names", nargs=-1)
@model_options
@click.option("--input", "size", default="224", show_default=True, metavar="N|HxW", help="Input height x width.")
@click.option("--batch", default=1, show_default=True, type=int, help="Images per batch (MACs scale with it).")
@click.option("--per", type=click.Choice(["stage", "block", "layer"]), default="stage", show_default=True,
              help="Breakdown granularity.")  # fmt: skip
@click.option("--count", "engine", type=click.Choice(["analytic", "fvcore"]), default="analytic", show_default=True,
              help="analytic: conv arithmetic on the walked modules, no tensors; fvcore: run fvcore's "
                   "FlopCountAnalysis on a real input (needs --device cpu or cuda, default cpu).")  # fmt: skip
@click.option("--split", type=click.Choice(["c4", "c5"]),
              help="Detection view: c4 = stem..layer3 base + layer4 per RoI (Faster R-CNN C4); c5 = whole trunk.")  # fmt: skip
@click.option("--rois", default=300, show_default=True, type=int, help="RoIs per image for --split c4.")
@click.option("--roi-size", default=7, show_default=True, type=int, help="RoI-pooled feature size for --split c4.")
@click.option("--freeze-at", type=int, help="detectron2's freeze_at: frozen vs trainable parameters, batch norms.")
@click.option("--plot", type=click.Path(dir_okay=False), metavar="FILE.png",
              help="Bars of MACs and params per stage (grouped for several names); needs the plot extra.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/cli.md).")
def flops(names: tuple[str, ...], device: str | None, size: str, batch: int, per: str, engine: str,
          split: str | None, rois: int, roi_size: int, freeze_at: int | None, plot: str | None,
          as_json: bool, **options: Any) -> None:  # fmt: skip
    """Parameters, MACs, FLOPs (= 2 x MACs), activations and output shapes per stage, block or layer.

    MACs count multiply-accumulates of conv and linear layers: the number torchvision, fvcore and the
    ResNet papers call "FLOPs". With no NAME, one row per registered variant (the model-zoo table).
    The default count runs no tensors: any input size costs the same.

    \b
    Examples:
      resnet-inspect flops resnet50
      resnet-inspect flops resnet101 --input 1024x2048 --output-stride 8
      resnet-inspect flops resnet50 resnet50_vd --per block --json
      resnet-inspect flops                      # the model-zoo table at 224
      resnet-inspect flops resnet50 --count fvcore
      resnet-inspect flops resnet101 --split c4 --rois 300 --input 600x1000 --freeze-at 2
      resnet-inspect flops resnet50 resnet50_vd --plot cost.png
    """
    from . import analysis, api, render, render_costs

    height, width = analysis.parse_input(size)
    analysis.check_input(height, width, batch)
    overrides, loading = _split(options)
    if (plot or split or freeze_at is not None) and not names:
        raise InspectError("--plot, --split and --freeze-at need a NAME")
    _exclusive({"--split": split, "--count fvcore": engine == "fvcore", "--plot": plot})
    _exclusive({"--count fvcore": engine == "fvcore", "--freeze-at": freeze_at is not None})
    _exclusive({"--split": split, "--per": _given("per")})
    if not split and (_given("rois") or _given("roi_size")):
        raise InspectError("--rois and --roi-size belong to --split c4")
    if plot:
        from . import plots

        plots.check_output(plot)
    if split:
        _flops_split(names, device, height, width, batch, split, rois, roi_size, freeze_at, as_json, loading, overrides)
        return
    if engine == "fvcore":
        results = [api.fvcore_costs(name, (height, width), batch, device or "cpu", **loading, **overrides)
                   for name in names or _zoo()]  # fmt: skip
        if as_json:
            data = [{**render_costs.costs_data(c, per), "fvcore": f} for c, f in results]
            click.echo(render.to_json(data[0] if len(names) == 1 else data))
        else:
            _print([part for c, f in results for part in render_costs.fvcore_tables(c, f)])
        return
    if not names:
        if loading["weights"]:
            raise InspectError("--weights needs a NAME")
        zoo = api.costs_of_names(_zoo(), height, width, batch, device=device or "meta", **overrides)
        if as_json:
            click.echo(render.to_json([render_costs.costs_data(c, per) for c in zoo]))
        else:
            _console().print(render_costs.zoo_costs_table(zoo))
        return
    reports = [api.inspect(name, (height, width), batch, device or "meta", **loading, **overrides) for name in names]
    frozen = [_freeze(r, freeze_at) for r in reports]
    if plot:
        from . import plots

        plots.plot_costs([r.costs for r in reports], plot)
    if as_json:
        data = [{**render_costs.costs_data(r.costs, per), **({"freeze": render_costs.freeze_data(f)} if f else {})}
                for r, f in zip(reports, frozen)]  # fmt: skip
        click.echo(render.to_json(data[0] if len(names) == 1 else data))
        return
    parts: list[Any] = []
    for report, f in zip(reports, frozen):
        _report_checkpoint(report)
        parts += render_costs.costs_tables(report.costs, per, traced=report.record is None,
                                           unrecognised=report.unrecognised)  # fmt: skip
        if f:
            parts.append(render_costs.freeze_text(f))
    if plot:
        parts.append(f"wrote {plot}")
    _print(parts)


def _given(parameter: str) -> bool:
    """Whether the user typed this option (not its default)."""
    source = click.get_current_context().get_parameter_source(parameter)
    return source is not None and source.name == "COMMANDLINE"


def _exclusive(chosen: dict[str, Any]) -> None:
    """InspectError when two views that cannot be combined are asked for together."""
    named = [option for option, value in chosen.items() if value]
    if len(named) > 1:
        raise InspectError(f"{' and '.join(named)} cannot be combined: each is a view of its own")


def _freeze(report: Any, freeze_at: int | None) -> Any:
    from . import analysis

    if freeze_at is None:
        return None
    if report.record is None:
        raise InspectError(f"--freeze-at needs the stages of a ResNet; {report.model} does not read as one")
    return analysis.freeze(report.record, freeze_at)


def _flops_split(names: tuple[str, ...], device: str | None, height: int, width: int, batch: int, split: str,
                 rois: int, roi_size: int, freeze_at: int | None, as_json: bool, loading: dict[str, Any],
                 overrides: dict[str, Any]) -> None:  # fmt: skip
    from . import analysis, api, render, render_costs

    results = []
    for name in names:
        model, record = api.records(name, device=device or "meta", **loading, **overrides)
        _report_checkpoint(model)
        frozen = analysis.freeze(record, freeze_at) if freeze_at is not None else None
        results.append((analysis.split_costs(record, height, width, split, rois, roi_size, batch), frozen))
    if as_json:
        data = [{**render_costs.split_data(sc), **({"freeze": render_costs.freeze_data(f)} if f else {})}
                for sc, f in results]  # fmt: skip
        click.echo(render.to_json(data[0] if len(names) == 1 else data))
        return
    _print([part for sc, f in results for part in [*render_costs.split_tables(sc), *([render_costs.freeze_text(f)]
            if f else [])]])  # fmt: skip


def _zoo() -> list[str]:
    from .names import REGISTRY, natural_key

    return sorted(REGISTRY, key=natural_key)


@cli.command(epilog=EPILOG_NAMES)
@click.argument("name")
@model_options
@click.option("--per", type=click.Choice(["stage", "block"]), default="block", show_default=True,
              help="Stages only, or stages and every block.")  # fmt: skip
@click.option("--plot", type=click.Path(dir_okay=False), metavar="FILE.png",
              help="Draw one unit's theoretical field over its effective field (Luo et al. 2016); plot extra.")  # fmt: skip
@click.option("--stage", help="The stage whose centre unit --plot draws (default: the last).")
@click.option("--input", "size", default="224", show_default=True, metavar="N|HxW", help="Input size for --plot.")
@click.option("--samples", default=4, show_default=True, type=int, help="Random inputs averaged for --plot.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of those inputs and of the weights.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/cli.md).")
def rf(name: str, device: str | None, per: str, plot: str | None, stage: str | None, size: str, samples: int,
       seed: int, as_json: bool, **options: Any) -> None:  # fmt: skip
    """Theoretical receptive field, jump, effective padding and centre per block and stage.

    Follows Araujo, Norris & Sim (Distill, 2019), with dilation and, at each residual sum, the union
    of what the two branches see; `aligned` says whether the branches share jump and centre.

    \b
    Examples:
      resnet-inspect rf resnet50
      resnet-inspect rf resnet101_vd --output-stride 8 --multi-grid 1,2,4 --per stage
      resnet-inspect rf resnet50d --json
      resnet-inspect rf resnet50 --plot rf.png --stage layer3 --input 512
    """
    from . import analysis, api, render, render_costs

    overrides, loading = _split(options)
    stray = [f"--{p.replace('_', '-')}" for p in ("stage", "size", "samples", "seed") if _given(p)]
    if stray and not plot:
        raise InspectError(f"{', '.join(stray).replace('--size', '--input')} only apply with --plot")
    if plot:
        from . import plots

        height, width = analysis.parse_input(size)
        if samples < 1:
            raise InspectError(f"--samples must be at least 1, got {samples}")
        plots.check_output(plot)
        import torch

        torch.manual_seed(seed)  # the random weights
        model, record = api.records(name, device=device or "cpu", init=True, **loading, **overrides)
        field = plots.effective_field(model.module, record, stage or record.stages[-1], height, width, samples, seed)
        plots.plot_receptive_field(field, model.label, plot)
    else:
        model, record = api.records(name, device=device or "meta", **loading, **overrides)
    _report_checkpoint(model)
    report = analysis.receptive_fields(record)
    if as_json:
        click.echo(render.to_json(render_costs.rf_data(report)))
    else:
        _print(render_costs.rf_tables(report, per) + ([f"wrote {plot}"] if plot else []))


@cli.command(epilog=EPILOG_NAMES)
@click.argument("a")
@click.argument("b")
@model_options
@click.option("--input", "size", default="224", show_default=True, metavar="N|HxW",
              help="Input height x width for costs and feature maps.")  # fmt: skip
@click.option("--all", "show_all", is_flag=True, help="Also show rows that are equal.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/cli.md).")
def diff(a: str, b: str, device: str | None, size: str, show_all: bool, as_json: bool, **options: Any) -> None:
    """Two variants side by side: totals, stem, every block field that differs, state-dict names.

    Each side may carry its own overrides after `@` (os8, grid=1-2-4, layers=3-4-6-3, ...; see
    docs/cli.md); options given here apply to both sides. The same name with different settings is
    a valid diff.

    \b
    Examples:
      resnet-inspect diff resnet50 resnet50_vd
      resnet-inspect diff resnet50d resnet50_vd --output-stride 8
      resnet-inspect diff resnet101@os16 resnet101@os8 --input 513
      resnet-inspect diff resnet50 resnext50_32x4d --json
    """
    from . import api, render, render_diff

    overrides, loading = _split(options)
    if loading["weights"]:
        raise InspectError("diff compares architectures; --weights does not apply")
    result = api.diff(a, b, size, device=device or "meta", **overrides)
    if as_json:
        click.echo(render.to_json(render_diff.diff_data(result, show_all)))
    elif result.identical:
        click.echo(render_diff.identical_line(result))
    else:
        _print(render_diff.diff_tables(result, show_all))


@cli.command(epilog=EPILOG_NAMES)
@click.argument("name")
@model_options
@click.option("--input", "size", default="224", show_default=True, metavar="N|HxW", help="Input height x width.")
@click.option("--batch", default=1, show_default=True, type=int, help="Images per forward pass.")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default="float32", show_default=True)
@click.option("--channels-last", is_flag=True, help="Run in channels-last memory format.")
@click.option("--warmup", default=5, show_default=True, type=int, help="Untimed iterations first.")
@click.option("--iters", default=20, show_default=True, type=int, help="Timed iterations.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/cli.md).")
def bench(name: str, device: str | None, size: str, batch: int, dtype: str, channels_last: bool, warmup: int,
          iters: int, as_json: bool, **options: Any) -> None:  # fmt: skip
    """Real forward latency and throughput with random weights (the one command that runs the network).

    Warm-up, then timed iterations (CUDA synchronised, cudnn.benchmark on), median and spread,
    images/s and peak memory (CUDA: max allocated; CPU: process peak RSS). The memory a run needs
    is estimated first; a run that would not fit is refused with the estimate. --device defaults to cpu.

    \b
    Examples:
      resnet-inspect bench resnet50 --device cpu --input 224 --iters 10
      resnet-inspect bench resnet101_vd --device cuda --batch 32 --dtype float16 --channels-last
      resnet-inspect bench resnet50@os8 --device cuda --input 512x1024 --json
    """
    from . import api, render, render_costs
    from . import bench as benchmark

    gc.freeze()  # what is loaded by now stays; collect only what the run makes
    gc.enable()
    overrides, loading = _split(options)
    target = device or "cpu"
    model, costs = api.prepare_bench(name, target, size, batch, dtype, warmup, iters, **overrides)
    run = (model, costs, target, dtype, channels_last, warmup, iters)
    if as_json:
        result = benchmark.run(*run, weights=loading["weights"], strict=loading["strict"])
        click.echo(render.to_json(render_costs.bench_data(result)))
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), console=render.stderr_console(), transient=True) as bar:  # fmt: skip
        task = bar.add_task(f"{costs.model} on {target}", total=warmup + iters)
        result = benchmark.run(*run, progress=lambda done, total: bar.update(task, completed=done),
                               weights=loading["weights"], strict=loading["strict"])  # fmt: skip
    _console().print(render_costs.bench_table(result))


@cli.command(name="export-keys", epilog=EPILOG_NAMES)
@click.argument("name")
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON: [{name, shape, kind, dtype}].")
def export_keys(name: str, device: str | None, as_json: bool, **options: Any) -> None:
    """Every state-dict entry (parameters and buffers) with its shape: what porting weights must match.

    \b
    Examples:
      resnet-inspect export-keys resnet50_vd
      resnet-inspect export-keys timm:resnet50d --json
    """
    from . import api, render

    overrides, loading = _split(options)
    model = api.load(name, device=device or "meta", **loading, **overrides)
    _report_checkpoint(model)
    keys = api.state_keys(model.module)
    if as_json:
        click.echo(render.to_json(keys))
    else:
        _console().print(render.keys_table(model.label, keys))


@cli.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_names(as_json: bool) -> None:
    """Every registered variant name with its block, depths, groups x width and source convention.

    Names outside the list still resolve through the grammar (resnet{D}, resnext{D}_{G}x{W}d,
    wide_resnet{D}_{K}, the _va/_vb/_vc/_vd suffixes and timm's c/d/s letters): see docs/variants.md.

    \b
    Example:
      resnet-inspect list
    """
    from . import render
    from .names import REGISTRY

    specs = [REGISTRY[name]() for name in _zoo()]
    if as_json:
        click.echo(render.to_json(render.zoo_data(specs)))
    else:
        _console().print(render.zoo_table(specs))


def main() -> None:
    """Console-script entry point."""
    # A short-lived process that loads torch makes no garbage worth a cycle collection, yet the
    # collector would walk every object torch created, several times, at ~40 ms a pass. `bench`,
    # the one long-running command, turns it back on.
    gc.disable()
    cli(prog_name="resnet-inspect")


if __name__ == "__main__":  # pragma: no cover
    main()
