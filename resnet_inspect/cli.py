"""The command line: one function per command, each parse -> API call -> render.

Bad input (an InspectError from the library, or a click usage error) becomes one `Error: ...` line on
stderr and exit status 2; exit status 1 is left to bugs.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import importlib
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import click

from . import __version__
from .errors import CheckpointMismatch, InspectError

EPILOG_NAMES = (
    "NAME is a variant name (see `resnet-inspect list`) with optional @overrides (resnet101@os8), "
    "torchvision:NAME or timm:NAME (if installed; @os8 and @key=value pass through), or your own "
    "path/to/file.py:factory or package.module:factory: this runs that file's or module's code (the "
    "Python API refuses such names unless called with trust_code=True)."
)
SORT_CHOICES = (  # api.SORT_KEYS (not imported here: --help starts without the library)
    "name",
    "params",
    "macs",
    "flops",
    "activations",
    "output_stride",
    "feature_map",
    "receptive_field",
)
PLOT_METAVAR = "FILE.png|svg|pdf"
FLAGS = {
    "strict": "--non-strict",
    "stage": "--stage",
    "attention": "--attn",
    "anti_alias": "--aa",
    "attention_reduction": "--se-reduction",
}  # API parameter -> flag, where not just --param-name


def flag(param: str) -> str:
    """The flag a CLI user types for an API parameter (inline `@key` options stay as they are)."""
    if param.startswith("@"):
        return param
    return FLAGS.get(param, "--" + param.replace("_", "-"))


class IntList(click.ParamType):
    """A list of integers: `3,4,6,3` (or `3-4-6-3`, as in name specs)."""

    name = "ints"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        """'3,4,6,3' -> (3, 4, 6, 3)."""
        from .api import parse_int_list

        if isinstance(value, tuple):
            return value
        try:
            return parse_int_list(str(value), param.name if param and param.name else "value")
        except InspectError as error:
            self.fail(error.detail, param, ctx)


class Count(click.ParamType):
    """A non-negative integer in ASCII digits, at most 9 of them, no leading zeros (the library then
    checks each option's own range)."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """'32' -> 32; anything else fails with one line."""
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = str(value).strip()
        if not re.fullmatch(r"0|[1-9][0-9]{0,8}", text):
            self.fail(f"{str(value)!r} is not a non-negative integer of at most 9 ASCII digits", param, ctx)
        return int(text)


COUNT = Count()
MODEL_PARAMS: set[str] = set()  # the parameters @model_options adds, listed in help under their own heading


_STDOUT = "resnet_inspect.stdout"  # context meta key: the real stdout while a command runs
WITHOUT_TORCH = {"list"}  # commands that never import torch (they start fast)


def _import_holding_ctrl_c(module: str) -> None:
    """Import `module` with Ctrl-C held until the import is over, then raised as KeyboardInterrupt:
    torch's import swallows a KeyboardInterrupt that lands while it imports numpy (and carries on),
    and an interrupted run must not end as a finished one."""
    if module in sys.modules or threading.current_thread() is not threading.main_thread():
        importlib.import_module(module)
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: pressed.append(number))
    try:
        importlib.import_module(module)
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


class SectionedCommand(click.Command):
    """A command whose help lists its own options first, then the model options it shares; an option
    given twice, or given an empty value, is refused rather than taken or dropped silently."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Click's parsing, after refusing repeated single-valued options."""
        names = {}
        for param in self.get_params(ctx):
            if isinstance(param, click.Option) and not param.multiple:
                names.update({opt: param for opt in (*param.opts, *param.secondary_opts)})
        seen: dict[str, str] = {}
        for arg in args:
            if arg == "--":
                break
            option = arg.split("=", 1)[0]
            param = names.get(option)
            if param is None or param.name is None:
                continue
            if param.name in seen:
                raise click.UsageError(f"{seen[param.name]} is given twice; give it once", ctx)
            seen[param.name] = option
        rest = super().parse_args(ctx, args)
        flags = {p.name: p.opts[-1] for p in self.get_params(ctx) if isinstance(p, click.Option)}
        for name, value in ctx.params.items():
            if value == "":
                raise click.UsageError(f"{flags.get(name, name)} is empty", ctx)
        return rest

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command with sys.stdout pointing at stderr (the real stdout kept for its output)."""
        ctx.meta[_STDOUT] = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):
            if self.name not in WITHOUT_TORCH:
                _import_holding_ctrl_c("torch")
            return super().invoke(ctx)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """'Options' (the command's own), then 'Model options'."""
        own, shared = [], []
        for param in self.get_params(ctx):
            if not isinstance(param, click.Option):  # arguments are in the usage line and the text
                continue
            record = param.get_help_record(ctx)
            if record is not None:
                (shared if param.name in MODEL_PARAMS else own).append(record)
        if own:
            with formatter.section("Options"):
                formatter.write_dl(own)
        if shared:
            with formatter.section("Model options (shared by every command that builds a model)"):
                formatter.write_dl(shared)


class OneLineErrors(click.Group):
    """A group whose every bad-input path ends in one line on stderr and exit status 2."""

    command_class = SectionedCommand

    def main(
        self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None, **extra: Any
    ) -> Any:
        """Run the command; turn InspectError and click usage errors into one line, exit 2."""
        extra.pop("standalone_mode", None)
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except SystemExit as done:
            from click.utils import PacifyFlushWrapper

            if done.code == 1 and isinstance(sys.stdout, PacifyFlushWrapper):  # click's answer to a closed pipe
                _output_failed(BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE)))
            raise
        except OSError as error:
            _output_failed(error)
        except CheckpointMismatch as error:  # say where the keys differ, then the one line
            from .output.show import checkpoint_document

            _print_document(checkpoint_document(error.report), stderr=True)
            _fail(error.spelled(flag))
        except InspectError as error:
            _fail(error.spelled(flag))
        except click.exceptions.NoArgsIsHelpError as error:  # `resnet-inspect` alone: its help
            out(error.ctx.get_help())
            sys.exit(0)
        except click.UsageError as error:
            where = f" (see `{error.ctx.command_path} --help`)" if error.ctx else ""
            _fail(error.format_message().replace("\n", " ") + where)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _interrupted()


# Exit statuses (docs/cli.md): 0 done, 2 bad input (or output that cannot be written), 130
# interrupted, 141 the reader of stdout went away; 1 only for bugs.
EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_CLOSED_PIPE = 2, 130, 141
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _shown(value: object) -> str:
    """User text as it may appear in a message: control characters (terminal escapes) escaped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", repr(value) if not isinstance(value, str) else value)


def _fail(message: str) -> None:
    click.echo("Error: " + _shown(message.replace("\n", "\\n")), err=True)
    sys.exit(EXIT_BAD_INPUT)


def _interrupted() -> None:
    click.echo("Interrupted.", err=True)
    sys.exit(EXIT_INTERRUPTED)


# -- shared options ----------------------------------------------------------------------------------


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The overrides and loading options every command that builds a model accepts."""
    options = [
        click.option("--layers", type=IntList(), help="Blocks per stage, e.g. 3,4,6,3 (or 3-4-6-3)."),
        click.option("--groups", type=COUNT, help="Groups (cardinality) of every 3x3 conv."),
        click.option("--width-per-group", type=COUNT, help="Channels per group at 64 planes (ResNeXt's d)."),
        click.option(
            "--stem",
            type=click.Choice(["classic", "deep", "tiered"]),
            help="7x7 conv, or three 3x3 convs (tiered: widths 3/4, 1, 2 x stem width).",
        ),
        click.option("--stem-width", type=COUNT, help="Classic: the 7x7's channels; deep: the first two 3x3s'."),
        click.option(
            "--stem-pool",
            type=click.Choice(["torch", "caffe", "conv"]),
            help="The stem's /2 pool: torch's padded 3x3 max-pool, Caffe's unpadded ceil-mode one, or "
            "ResNet-RS's strided 3x3 conv.",
        ),
        click.option(
            "--attn",
            "attention",
            type=click.Choice(["none", "se", "eca"]),
            help="Attention in every block: squeeze-excitation or ECA (timm's placement).",
        ),
        click.option(
            "--se-reduction", "attention_reduction", type=COUNT, help="SE's squeeze: C / this (16; ResNet-RS 4)."
        ),
        click.option(
            "--aa",
            "anti_alias",
            type=click.Choice(["none", "blur", "avg"]),
            help="Anti-aliasing: a blur or average pool carries each stride after the 3x3 (Zhang 2019).",
        ),
        click.option(
            "--norm", type=click.Choice(["bn", "gn", "frozen_bn"]), help="Batch, group (32) or frozen batch norm."
        ),
        click.option(
            "--shortcut",
            type=click.Choice(["conv", "avgpool"]),
            help="Strided 1x1 conv, or avg-pool + 1x1 conv (ResNet-D).",
        ),
        click.option("--num-classes", type=COUNT, help="Classifier outputs; 0 drops the fc layer."),
        click.option(
            "--output-stride",
            type=COUNT,
            metavar="[8|16|32]",
            help="Later stages dilate instead of striding.",
        ),
        click.option(
            "--multi-grid",
            type=IntList(),
            help="Dilation factors of the last stage's blocks, e.g. 1,2,4 (or 1-2-4, as in @grid=1-2-4).",
        ),
        click.option(
            "--dilation-style",
            type=click.Choice(["torchvision", "paddle"]),
            help="Whether a dilated stage's first block keeps the old rate (torchvision) or not.",
        ),
        click.option(
            "--device",
            help="Where to build: meta (default: no memory, no initialisation), cpu, cuda, cuda:N.",
        ),
        click.option(
            "--weights",
            type=click.Path(dir_okay=False),
            metavar="FILE",
            help="A state dict (.pth/.pt/.bin, or under 'state_dict'/'model') to load, weights_only.",
        ),
        click.option("--non-strict", is_flag=True, help="Load the keys that match and report the rest."),
    ]
    before = len(getattr(command, "__click_params__", []))
    for option in reversed(options):
        command = option(command)
    MODEL_PARAMS.update(p.name for p in command.__click_params__[before:] if p.name)  # type: ignore[attr-defined]
    return command


def output_format(*choices: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--format` with these choices (table first, the default) and `--json`, its alias."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def run(*args: Any, fmt: str, as_json: bool, **kwargs: Any) -> Any:
            if as_json and _given("fmt") and fmt != "json":
                raise click.UsageError(f"--json and --format {fmt} ask for two formats")
            return command(*args, fmt="json" if as_json else fmt, **kwargs)

        run = click.option("--json", "as_json", is_flag=True, help="Same as --format json.")(run)
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(choices),
            default=choices[0],
            show_default=True,
            help="Terminal tables, " + ", ".join(choices[1:]) + " (JSON schemas: docs/cli.md).",
        )(run)

    return decorate


def size_option(help: str, default: str | None = "224") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--input N|HxW`, passed to the command as `size`."""
    return click.option(
        "--input", "size", default=default, show_default=default is not None, metavar="N|HxW", help=help
    )


def batch_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--batch N`, 1 by default."""
    return click.option("--batch", default=1, show_default=True, type=COUNT, help=help)


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(overrides, loading arguments) from a command's model options."""
    loading = {
        "weights": options.pop("weights", None),
        "strict": not options.pop("non_strict", False),
        "trust_code": True,  # a CLI user names the file or module whose code runs (see the epilog)
    }
    if not loading["strict"] and not loading["weights"]:
        raise InspectError("applies to --weights", "strict")
    return options, loading


def _given(parameter: str) -> bool:
    """Whether the user typed this option (not its default)."""
    source = click.get_current_context().get_parameter_source(parameter)
    return source is not None and source.name == "COMMANDLINE"


def _unused(flags: tuple[tuple[str, str], ...], why: str) -> None:
    """A usage error naming the options (flag, parameter) typed although `why` makes them meaningless."""
    stray = [flag for flag, parameter in flags if _given(parameter)]
    if stray:
        raise click.UsageError(f"{', '.join(stray)} {'applies' if len(stray) == 1 else 'apply'} {why}")


def _exclusive(chosen: dict[str, Any]) -> None:
    """A usage error when two views that cannot be combined are asked for together."""
    named = [option for option, value in chosen.items() if value]
    if len(named) > 1:
        raise click.UsageError(f"{' and '.join(named)} cannot be combined: each is a view of its own")


# -- output ------------------------------------------------------------------------------------------


@functools.cache
def _console_class() -> Any:
    """rich's Console, except that a closed pipe is left to the command line (rich would exit 1)."""
    from rich.console import Console

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            """Raise it as the OSError any other write would raise."""
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    return PipeConsole


def _console(stderr: bool = False) -> Any:
    return _console_class()(stderr=stderr) if stderr else _console_class()(file=_stdout())


def _width(console: Any) -> int | None:
    """The width to lay tables out for: the terminal's, or COLUMNS when the user set it; None (no
    limit: nothing wrapped, nothing cut) when the output is a file or a pipe."""
    if console.is_terminal:
        return console.width
    columns = os.environ.get("COLUMNS", "").strip()
    return int(columns) if columns.isdigit() and int(columns) > 0 else None


def _print_document(document: Any, stderr: bool = False) -> None:
    from .output.render import print_rich

    console = _console(stderr)
    print_rich(document, console, _width(console))


def _stdout() -> Any:
    """Where a command's output goes: the stdout it started with (while it runs, sys.stdout is stderr,
    so that nothing else, a user's model printing say, can land in JSON)."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(_STDOUT, sys.stdout) if ctx is not None else sys.stdout


def out(text: str, nl: bool = True) -> None:
    """Write the command's output."""
    click.echo(text, nl=nl, file=_stdout())


def emit(fmt: str, document: Callable[[], Any], data: Callable[[], Any]) -> None:
    """Print a view in the chosen format: JSON from `data`, everything else from `document`."""
    from .output import render

    if fmt == "json":
        out(render.to_json(_with_checkpoints(data())))
        return
    doc = document()
    if fmt == "markdown":
        out(render.to_markdown(doc), nl=False)
    elif fmt == "csv":
        out(render.to_csv(doc.csv), nl=False)
    else:
        _print_document(doc)


def _with_checkpoints(data: Any) -> Any:
    """JSON documents with the checkpoints loaded for them (what was loaded, what was left out)."""
    from .output import schema

    reports = click.get_current_context().meta.get("checkpoints", [])
    documents = [data] if isinstance(data, dict) else data if isinstance(data, list) else []
    if reports and len(reports) == len(documents) and all(isinstance(d, dict) for d in documents):
        for document, report in zip(documents, reports):
            document["checkpoint"] = schema.checkpoint(report)
    return data


def _one_or_list(items: list[Any]) -> Any:
    return items[0] if len(items) == 1 else items


def _report_checkpoint(model: Any) -> None:
    """One line on stderr for a loaded checkpoint, and the table when keys were left out."""
    from .output.show import checkpoint_document, checkpoint_line

    report = model.checkpoint
    if report is None:
        return
    click.get_current_context().meta.setdefault("checkpoints", []).append(report)
    if not report.matches:
        _print_document(checkpoint_document(report), stderr=True)
    click.echo(checkpoint_line(report), err=True)


def _merged(documents: list[Any], csv: Any = None) -> Any:
    from .output.document import Document

    merged = Document(csv=csv)
    for doc in documents:
        merged.extend(doc)
    return merged


# -- commands ----------------------------------------------------------------------------------------


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
      resnet-inspect memory resnet101@os8 --input 769 --batch 8 --budget 24GiB
      resnet-inspect bench resnet50 --device cpu --iters 10
      resnet-inspect export-keys timm:resnet50d
      resnet-inspect list
    """


@cli.command(epilog=EPILOG_NAMES)
@click.argument("name")
@output_format("table", "notes", "json", "markdown", "csv")
@size_option("Add each block's output C x H x W and cumulative stride.", default=None)
@click.option(
    "--freeze-at",
    type=COUNT,
    metavar="[0|1|2|3|4|5]",
    help="detectron2's freeze_at: frozen vs trainable backbone parameters, batch norms.",
)
@model_options
def show(name: str, fmt: str, size: str | None, freeze_at: int | None, device: str | None, **options: Any) -> None:
    """Per-block table of a variant: inplanes, planes, width, stride, dilation, groups, shortcut.

    \b
    Examples:
      resnet-inspect show resnext50_32x4d
      resnet-inspect show resnet50 --groups 32 --width-per-group 4 --format notes
      resnet-inspect show resnet101_vd --output-stride 8 --multi-grid 1,2,4
      resnet-inspect show resnet50 --input 513 --output-stride 16
      resnet-inspect show torchvision:resnet50 --weights resnet50.pth
      resnet-inspect show resnet101_va --freeze-at 2
    """
    from . import api
    from .output import schema
    from .output.show import notes, show_document

    overrides, loading = _split(options)
    if fmt == "notes" and (size or freeze_at is not None):
        raise click.UsageError("--input and --freeze-at add to the tables, not to the notes")
    view = api.show(name, size, freeze_at, device=device or "meta", **loading, **overrides)
    _report_checkpoint(view.model)
    if fmt == "notes":
        out(notes(view.record), nl=False)
        return
    emit(
        fmt,
        lambda: show_document(view.record, view.model.spec, view.costs, view.frozen),
        lambda: schema.show(view.record, view.model.spec, view.costs, view.frozen),
    )


@cli.command(epilog=EPILOG_NAMES)
@click.argument("names", nargs=-1)
@output_format("table", "json", "markdown", "csv")
@size_option("Input height x width.")
@batch_option("Images per batch (MACs scale with it).")
@click.option(
    "--per",
    type=click.Choice(["stage", "block", "layer"]),
    default="stage",
    show_default=True,
    help="Breakdown granularity (stem and head rows included); with several names, one report each.",
)
@click.option(
    "--sort",
    type=click.Choice(SORT_CHOICES),
    metavar="COLUMN",
    help=f"Order the comparison table by COLUMN, smallest first: {', '.join(SORT_CHOICES)}.",
)
@click.option(
    "--count",
    "engine",
    type=click.Choice(["analytic", "fvcore"]),
    default="analytic",
    show_default=True,
    help="analytic: conv arithmetic on the walked modules, no tensors; fvcore: run fvcore's "
    "FlopCountAnalysis on a real input (needs --device cpu or cuda, default cpu).",
)
@click.option(
    "--split",
    type=click.Choice(["c4", "c5"]),
    help="Detection view: c4 = stem..layer3 base + layer4 per RoI (Faster R-CNN C4); c5 = whole trunk.",
)
@click.option("--rois", default=300, show_default=True, type=COUNT, help="RoIs per image for --split c4.")
@click.option("--roi-size", default=7, show_default=True, type=COUNT, help="RoI-pooled feature size for --split c4.")
@click.option(
    "--freeze-at",
    type=COUNT,
    metavar="[0|1|2|3|4|5]",
    help="detectron2's freeze_at: frozen vs trainable backbone parameters, batch norms.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    metavar=PLOT_METAVAR,
    help="Bars of MACs, params and feature-map size per stage, one colour per model; needs the plot extra.",
)
@model_options
def flops(
    names: tuple[str, ...], fmt: str, engine: str, split: str | None, plot: str | None, sort: str | None, **options: Any
) -> None:
    """Parameters, MACs, FLOPs (= 2 x MACs), activations and output shapes per stage, block or layer;
    with several names, patterns or none, one comparison table.

    MACs count multiply-accumulates of conv and linear layers: the number torchvision, fvcore and the
    ResNet papers call "FLOPs". One NAME prints its report (per stage, block or layer). Several
    NAMEs, shell-style patterns of registered names ('resnet*d', quoted) or no NAME at all (every
    registered name: the model zoo) print one row per model: params, MACs, FLOPs, activations,
    output stride, final feature map and the last stage's receptive field. The default count runs no
    tensors: any input size costs the same.

    \b
    Examples:
      resnet-inspect flops resnet50
      resnet-inspect flops resnet50 resnet50_vd resnext50_32x4d wide_resnet50_2
      resnet-inspect flops 'resnet*d' --input 512 --sort macs
      resnet-inspect flops resnet101 --input 1024x2048 --output-stride 8
      resnet-inspect flops resnet50 resnet50_vd --per block --json
      resnet-inspect flops                      # the model-zoo table at 224
      resnet-inspect flops resnet50 --count fvcore
      resnet-inspect flops resnet101 --split c4 --input 600x1000 --freeze-at 2
      resnet-inspect flops resnet101 --split c4 --per block --input 600x1000
      resnet-inspect flops resnet50 resnet50_vd --plot cost.png
    """
    from .api import is_pattern

    if (split or options["freeze_at"] is not None) and not names:
        raise click.UsageError("--split and --freeze-at need a NAME")
    _exclusive({"--split": split, "--count fvcore": engine == "fvcore", "--plot": plot})
    _exclusive({"--count fvcore": engine == "fvcore", "--freeze-at": options["freeze_at"] is not None})
    if split and options["per"] == "layer":
        raise click.UsageError("--split breaks down per stage or per block, not per layer")
    if split != "c4" and (_given("rois") or _given("roi_size")):
        raise click.UsageError("--rois and --roi-size belong to --split c4")
    one = len(names) == 1 and not is_pattern(names[0])
    compared = not (split or engine == "fvcore" or one or _given("per") or options["freeze_at"] is not None)
    if sort and not compared:
        raise click.UsageError("--sort orders the comparison table of several models (no --per, --split, --count)")
    if split:
        _flops_split(names, fmt, split, **options)
    elif engine == "fvcore":
        _flops_fvcore(names, fmt, **options)
    elif compared:
        _flops_compared(names, fmt, plot, sort, **options)
    else:
        _flops_names(names, fmt, plot, **options)


def _flops_names(
    names: tuple[str, ...],
    fmt: str,
    plot: str | None,
    size: str,
    batch: int,
    per: str,
    freeze_at: int | None,
    device: str | None,
    rois: int,
    roi_size: int,
    **options: Any,
) -> None:
    from . import api
    from .output import schema
    from .output.costs import costs_document, many_costs_csv
    from .output.show import freeze_document

    overrides, loading = _split(options)
    targets = api.expand(names)
    if plot:
        from .output.plots import check_models, check_output

        check_output(plot)
        check_models(len(targets))
    reports = [api.inspect(n, size, batch, device or "meta", **loading, **overrides) for n in targets]
    frozen = [api.freeze(r, freeze_at) if freeze_at is not None else None for r in reports]
    for report in reports:
        _report_checkpoint(report)
    if plot:
        from .output.plots import plot_costs

        plot_costs([r.costs for r in reports], plot)

    def document() -> Any:
        docs = [costs_document(r.costs, per, [op.name for op in r.record.probed] if r.record else ()) for r in reports]
        for doc, f in zip(docs, frozen):
            if f:
                doc.extend(freeze_document(f))
        csv = docs[0].csv if len(docs) == 1 else many_costs_csv([r.costs for r in reports], per)
        return _merged(docs, csv)

    def last_field(report: Any) -> Any:
        fields = report.receptive_fields
        return fields.stages[-1] if fields and fields.stages else None

    emit(
        fmt,
        document,
        lambda: _one_or_list(
            [schema.flops(r.costs, per, last_field(r), freeze=f and schema.freeze(f)) for r, f in zip(reports, frozen)]
        ),
    )
    if plot and fmt == "table":
        out(f"wrote {plot}")


def _flops_compared(
    names: tuple[str, ...],
    fmt: str,
    plot: str | None,
    sort: str | None,
    size: str,
    batch: int,
    per: str,
    device: str | None,
    freeze_at: int | None,
    rois: int,
    roi_size: int,
    **options: Any,
) -> None:
    from . import api
    from .output import schema
    from .output.costs import comparison_document

    overrides, loading = _split(options)
    if plot:
        from .output.plots import check_models, check_output

        check_output(plot)
        check_models(len(api.expand(names)))
    rows = api.comparison(names or None, size, batch, sort, device=device or "meta", **loading, **overrides)
    for row in rows:
        _report_checkpoint(row)
    if plot:
        from .output.plots import plot_costs

        plot_costs([row.costs for row in rows], plot)
    emit(
        fmt,
        lambda: comparison_document([(row.costs, row.field) for row in rows]),
        lambda: [schema.flops(row.costs, per, row.field) for row in rows],
    )
    if plot and fmt == "table":
        out(f"wrote {plot}")


def _flops_split(
    names: tuple[str, ...],
    fmt: str,
    split: str,
    size: str,
    batch: int,
    rois: int,
    roi_size: int,
    freeze_at: int | None,
    device: str | None,
    per: str,
    **options: Any,
) -> None:
    from . import api
    from .output import schema
    from .output.costs import split_document
    from .output.show import freeze_document

    overrides, loading = _split(options)
    breakdown = per if _given("per") else None
    results = []
    for name in api.expand(names):
        model, result, frozen = api.split(
            name,
            size,
            split,
            rois,
            roi_size,
            batch,
            freeze_at,
            device=device or "meta",
            **loading,
            **overrides,
        )
        _report_checkpoint(model)
        results.append((result, frozen))

    def document() -> Any:
        docs = [split_document(sc, breakdown) for sc, _ in results]
        for doc, (_, f) in zip(docs, results):
            if f:
                doc.extend(freeze_document(f))
        return _merged(docs, docs[0].csv)

    emit(fmt, document, lambda: _one_or_list([schema.split(sc, f, per) for sc, f in results]))


def _flops_fvcore(
    names: tuple[str, ...], fmt: str, size: str, batch: int, per: str, device: str | None, **options: Any
) -> None:
    from . import api
    from .output import schema
    from .output.costs import fvcore_document

    options.pop("freeze_at"), options.pop("rois"), options.pop("roi_size")
    overrides, loading = _split(options)
    names = api.expand(names)
    results = []
    with _progress("fvcore's forward pass", fmt == "table") as progress:
        for done, name in enumerate(names, start=1):
            results.append(api.fvcore_costs(name, size, batch, device or "cpu", **loading, **overrides))
            if progress and len(names) > 1:
                progress(done, len(names))
    emit(
        fmt,
        lambda: _merged([fvcore_document(c, f) for c, f in results], fvcore_document(*results[0]).csv),
        lambda: _one_or_list([schema.flops(c, per, fvcore=f) for c, f in results]),
    )


@cli.command(epilog=EPILOG_NAMES)
@click.argument("name")
@output_format("table", "json", "markdown", "csv")
@click.option(
    "--per",
    type=click.Choice(["stage", "block"]),
    default="block",
    show_default=True,
    help="Stages only, or every block too.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    metavar=PLOT_METAVAR,
    help="Draw one unit's theoretical field over its effective field (Luo et al. 2016); plot extra.",
)
@click.option(
    "--stage",
    metavar="[layer1|layer2|layer3|layer4]",
    help="The stage whose centre unit --plot draws (default: the last).",
)
@size_option(
    "Per stage, the feature-map size and how much of this image the centre unit's field covers "
    "(clipped at the borders); the --plot input too.",
    default=None,
)
@click.option("--samples", default=4, show_default=True, type=COUNT, help="Random inputs averaged for --plot.")
@click.option("--seed", default=0, show_default=True, type=COUNT, help="Seed of those inputs and of the weights.")
@model_options
def rf(
    name: str,
    fmt: str,
    per: str,
    plot: str | None,
    stage: str | None,
    size: str | None,
    samples: int,
    seed: int,
    device: str | None,
    **options: Any,
) -> None:
    """Theoretical receptive field, jump, effective padding and centre per block and stage.

    Follows Araujo, Norris & Sim (Distill, 2019), with dilation and, at each residual sum, the union
    of what the two branches see; `aligned` says whether the branches share jump and centre. With
    --input, each stage's feature-map size at that input and how much of the image the field of its
    centre unit covers, clipped at the borders (docs/conventions.md).

    \b
    Examples:
      resnet-inspect rf resnet50
      resnet-inspect rf resnet101_vd --output-stride 8 --multi-grid 1,2,4
      resnet-inspect rf resnet50_vd --output-stride 8 --input 769 --per stage
      resnet-inspect rf resnet50d --json
      resnet-inspect rf resnet50 --plot rf.png --stage layer3 --input 512
    """
    from . import api
    from .output import schema
    from .output.costs import rf_document

    overrides, loading = _split(options)
    if not plot:
        _unused((("--stage", "stage"), ("--samples", "samples"), ("--seed", "seed")), "only with --plot")
    covered: Any = ()
    if plot:
        from .output.plots import check_output, plot_receptive_field

        check_output(plot)
        with _progress("effective field", fmt == "table") as progress:
            model, report, field = api.effective_field(
                name, stage, size or "224", samples, seed, device or "cpu", progress, **loading, **overrides
            )
        plot_receptive_field(field, model.label, plot)
        if size:
            covered = api.coverage(name, size, device="meta", **overrides)[2]
    elif size:
        model, report, covered = api.coverage(name, size, device=device or "meta", **loading, **overrides)
    else:
        model, report = api.fields(name, device=device or "meta", **loading, **overrides)
    _report_checkpoint(model)
    emit(fmt, lambda: rf_document(report, per, covered), lambda: schema.rf(report, covered))
    if plot and fmt == "table":
        out(f"wrote {plot}")


@cli.command(epilog=EPILOG_NAMES)
@click.argument("a")
@click.argument("b")
@output_format("table", "json", "markdown")
@size_option("Input height x width for costs and feature maps.")
@click.option("--all", "show_all", is_flag=True, help="Also show rows that are equal.")
@model_options
def diff(a: str, b: str, fmt: str, size: str, show_all: bool, device: str | None, **options: Any) -> None:
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
    from . import api
    from .output import schema
    from .output.diff import diff_document, identical_line

    overrides, loading = _split(options)
    if loading["weights"]:
        raise click.UsageError("diff compares architectures; --weights does not apply")
    result = api.diff(a, b, size, device=device or "meta", trust_code=True, **overrides)
    if result.identical and fmt == "table":
        out(identical_line(result))
        return
    emit(fmt, lambda: diff_document(result, show_all), lambda: schema.diff(result, show_all))


@cli.command(epilog=EPILOG_NAMES)
@click.argument("name")
@output_format("table", "json", "markdown", "csv")
@size_option("Input height x width.")
@batch_option("Images per forward pass.")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default="float32",
    show_default=True,
    help="Weights and inputs in this dtype.",
)
@click.option("--channels-last", is_flag=True, help="Run in channels-last memory format.")
@click.option("--warmup", default=5, show_default=True, type=COUNT, help="Untimed iterations first.")
@click.option("--iters", default=20, show_default=True, type=COUNT, help="Timed iterations.")
@model_options
def bench(
    name: str,
    fmt: str,
    size: str,
    batch: int,
    dtype: str,
    channels_last: bool,
    warmup: int,
    iters: int,
    device: str | None,
    **options: Any,
) -> None:
    """Real forward latency and throughput with random weights (the one command that runs the network).

    Warm-up, then timed iterations (CUDA synchronised, cudnn.benchmark on), median and spread,
    images/s and peak memory (CUDA: max allocated; CPU: process peak RSS). The memory a run needs
    is estimated first; a run that would not fit is refused with the estimate. --device defaults to cpu.

    \b
    Examples:
      resnet-inspect bench resnet50 --device cpu --input 224 --iters 10
      resnet-inspect bench resnet101 --device cuda --dtype float16 --channels-last
      resnet-inspect bench resnet50@os8 --device cuda --input 512x1024 --json
    """
    from . import api
    from .output import schema
    from .output.costs import bench_document

    gc.freeze()  # what is loaded by now stays; collect only what the run makes
    gc.enable()
    overrides, loading = _split(options)
    target = device or "cpu"
    with _progress(f"{name} on {target}", fmt == "table") as progress:
        result = api.bench(
            name,
            target,
            size,
            batch,
            dtype,
            channels_last,
            warmup,
            iters,
            progress=progress,
            **loading,
            **overrides,
        )
    _report_checkpoint(result)
    emit(fmt, lambda: bench_document(result), lambda: schema.bench(result))


@cli.command(epilog=EPILOG_NAMES)
@click.argument("names", nargs=-1)
@output_format("table", "json", "markdown", "csv")
@size_option("Input height x width.")
@batch_option("Images per batch.")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float16", "bfloat16"]),
    default="float32",
    show_default=True,
    help="Training: autocast to this dtype (parameters, gradients and optimizer state stay float32). "
    "--inference: the model cast to it.",
)
@click.option(
    "--optimizer",
    type=click.Choice(["sgd", "momentum", "adam", "adamw"]),
    default="momentum",
    show_default=True,
    help="State per trainable parameter: sgd none, momentum 1 copy, adam/adamw 2 copies.",
)
@click.option("--freeze-at", type=COUNT, help="detectron2's freeze_at: frozen parts train nothing and save nothing.")
@click.option("--inference", is_flag=True, help="Eval mode under no_grad: weights and the forward peak instead.")
@click.option("--budget", metavar="SIZE", help="Memory to fit, e.g. 24GiB, 80GB, 512MiB: the biggest batch that does.")
@click.option(
    "--per",
    type=click.Choice(["stage", "block"]),
    default="stage",
    show_default=True,
    help="Rows per stage, or per block (with stem and head).",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    metavar=PLOT_METAVAR,
    help="Bars of the saved activations per stage (grouped for several names); needs the plot extra.",
)
@model_options
def memory(
    names: tuple[str, ...],
    fmt: str,
    size: str,
    batch: int,
    dtype: str,
    optimizer: str,
    freeze_at: int | None,
    inference: bool,
    budget: str | None,
    per: str,
    plot: str | None,
    device: str | None,
    **options: Any,
) -> None:
    """Training memory per stage: parameters, gradients, optimizer state and the activations autograd
    saves for backward, each tensor counted once; or, with --inference, the forward peak.

    Computed from the layers, no tensors: any input size costs the same. What autograd saves is what
    torch's derivative formulas keep (a conv its input, a batch norm its input and statistics, an
    in-place ReLU its output, a max-pool its input and indices); tensors shared between layers count
    once. Not included: the CUDA context, cuDNN workspaces, allocator caching (docs/conventions.md).

    \b
    Examples:
      resnet-inspect memory resnet50 --batch 32
      resnet-inspect memory resnet101@os8 --input 769 --batch 8 --budget 24GiB
      resnet-inspect memory resnet50 --dtype float16 --optimizer adamw --per block
      resnet-inspect memory resnet101 --input 800x1333 --batch 2 --freeze-at 2
      resnet-inspect memory resnet50 --inference --batch 64 --dtype float16
      resnet-inspect memory resnet50 resnet50@os8 --input 512 --plot memory.png
    """
    from . import api
    from .output import schema
    from .output.memory import many_memory_csv, memory_document

    if not names:
        raise click.UsageError("name at least one model")
    if inference:
        _unused((("--optimizer", "optimizer"), ("--freeze-at", "freeze_at")), "to training, not to --inference")
    overrides, loading = _split(options)
    if plot:
        from .output.plots import check_output

        check_output(plot)
    settings = {"optimizer": optimizer, "freeze_at": freeze_at or 0, "inference": inference, "budget": budget}
    results = []
    for name in api.expand(names):
        model, result = api.memory(
            name, size, batch, dtype, device=device or "meta", **settings, **loading, **overrides
        )
        _report_checkpoint(model)
        results.append(result)
    if plot:
        from .output.plots import plot_memory

        plot_memory(results, plot)

    def document() -> Any:
        docs = [memory_document(m, per) for m in results]
        return _merged(docs, docs[0].csv if len(docs) == 1 else many_memory_csv(results, per))

    emit(fmt, document, lambda: _one_or_list([schema.memory(m) for m in results]))
    if plot and fmt == "table":
        out(f"wrote {plot}")


class _progress:
    """A progress bar on stderr, started by the first `progress(done, total)` call (so that a run
    refused before it starts prints nothing), or no callback at all when not `shown`."""

    def __init__(self, description: str, shown: bool) -> None:
        self.description, self.shown, self.bar, self.task = description, shown, None, None

    def update(self, done: int, total: int) -> None:
        """Advance the bar (drawn only on a terminal: elsewhere rich would leave a blank line)."""
        if not self.shown:
            return
        if self.bar is None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            console = _console(stderr=True)
            if not console.is_terminal:
                self.shown = False
                return
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=total)
        self.bar.update(self.task, completed=done, total=total)

    def __enter__(self) -> Callable[[int, int], None] | None:
        return self.update if self.shown else None

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


@cli.command(name="export-keys", epilog=EPILOG_NAMES)
@click.argument("name")
@output_format("table", "json", "markdown", "csv")
@model_options
def export_keys(name: str, fmt: str, device: str | None, **options: Any) -> None:
    """Every state-dict entry (parameters and buffers) with its shape: what porting weights must match.

    \b
    Examples:
      resnet-inspect export-keys resnet50_vd
      resnet-inspect export-keys timm:resnet50d --json
    """
    from . import api
    from .output.show import keys_document

    overrides, loading = _split(options)
    model = api.load(name, device=device or "meta", **loading, **overrides)
    _report_checkpoint(model)
    keys = api.state_keys(model.module)
    emit(fmt, lambda: keys_document(model.label, keys), lambda: keys)


@cli.command(name="list")
@click.argument("patterns", nargs=-1)
@output_format("table", "json", "markdown", "csv")
def list_names(patterns: tuple[str, ...], fmt: str) -> None:
    """Every registered variant name (or those matching shell-style PATTERNs, as timm's
    list_models) with its family, block, depths, groups x width, stem and source convention.

    Names outside the list still resolve through the grammar (resnet{D}, resnext{D}_{G}x{W}d,
    wide_resnet{D}_{K}, the _va/_vb/_vc/_vd suffixes and timm's c/d/s letters): see docs/variants.md.
    Quote a pattern so that the shell leaves it alone.

    \b
    Examples:
      resnet-inspect list
      resnet-inspect list 'resnet*d' 'wide_*'
    """
    from . import api
    from .output import schema
    from .output.show import list_document

    specs = api.list_specs(patterns)
    emit(fmt, lambda: list_document(specs), lambda: schema.names(specs))


def main() -> None:
    """Console-script entry point."""
    # A short-lived process that loads torch makes no garbage worth a cycle collection, yet the
    # collector would walk every object torch created, several times, at ~40 ms a pass. `bench`,
    # the one long-running command, turns it back on.
    gc.disable()
    code: int | str | None = 0
    try:
        try:
            cli(prog_name="resnet-inspect")
            sys.stdout.flush()  # a write error surfaces here, inside the handlers below, not at exit
        except KeyboardInterrupt:
            _interrupted()
        except OSError as error:
            _output_failed(error)
    except SystemExit as done:
        code = done.code
    # The work is done and written: leave without the interpreter's teardown (torch's atexit
    # handlers), where a late Ctrl-C would print a traceback or end the process by its signal.
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))


def _output_failed(error: OSError) -> None:
    """stdout is gone (a closed pipe: stop quietly) or cannot be written (a full disk: one line)."""
    with contextlib.suppress(OSError, ValueError):  # no descriptor: CliRunner's streams
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing left to flush at exit
    if error.errno == errno.EPIPE:
        sys.exit(EXIT_CLOSED_PIPE)
    click.echo(f"Error: cannot write the output: {error.strerror or error}", err=True)
    sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":  # pragma: no cover
    main()
