"""Where a model comes from: one of our names (`resnet50_vd@os8`), torchvision or timm
(`torchvision:resnet50`, `timm:resnet50d@os8`), or the user's own code (`path/to/file.py:factory`,
`package.module:factory`). Every source ends as an nn.Module for the walker.

User code runs only when the caller opts in (`trust_code=True`; the command line does, and says so in
its help): a library that passes user-supplied names to the API runs nothing it did not ask for.
Whatever user code prints goes to stderr, never into JSON on stdout; whatever it raises (SystemExit
included) is reported as one line. torchvision and timm are optional and imported only for a name
that asks for them; options that would download weights are refused.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..errors import InspectError
from . import build
from .checkpoint import CheckpointReport
from .names import parse_options, resolve
from .spec import NetSpec

LIBRARIES = ("torchvision", "timm")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class Source:
    """A parsed model reference."""

    kind: Literal["name", "torchvision", "timm", "file", "module"]
    target: str  # our name, the library's model name, a file path or a module path
    attribute: str = ""  # the factory or module attribute (file and module sources)
    options: dict[str, Any] = field(default_factory=dict)  # the text after `@`, parsed


@dataclass(frozen=True)
class Model:
    """A built model and what is known about it."""

    label: str
    module: nn.Module
    spec: NetSpec | None  # only for our own names
    checkpoint: CheckpointReport | None = None  # when weights were loaded into it


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _library_options(text: str) -> dict[str, Any]:
    """'os8,drop_rate=0.1' -> {'os': 8, 'drop_rate': 0.1}: our short keys kept as they are,
    everything else passed to the library as a keyword argument."""
    return {key: _value(value) for key, value in parse_options(text).items()}


def parse_source(text: str) -> Source:
    """Which kind of source `text` names (nothing is imported or run here)."""
    base, at, inline = text.strip().partition("@")
    prefix, colon, rest = base.partition(":")
    if colon and prefix.lower() in LIBRARIES:
        if not rest:
            raise InspectError(f"{text}: name a model after '{prefix}:', e.g. {prefix}:resnet50")
        return Source(prefix.lower(), rest, options=_library_options(inline) if at else {})  # type: ignore[arg-type]
    if colon:
        location, _, attribute = base.rpartition(":")
        if not attribute.isidentifier():
            raise InspectError(f"{text}: after ':' comes the factory's name, e.g. models.py:make_net")
        options = _library_options(inline) if at else {}
        if location.endswith(".py") or "/" in location or "\\" in location:
            return Source("file", location, attribute, options)
        if _DOTTED.fullmatch(location):
            return Source("module", location, attribute, options)
        raise InspectError(f"{text}: expected path/to/file.py:factory or package.module:factory")
    return Source("name", text.strip())


def _require(module: str) -> Any:
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InspectError(
            f"{package} is not installed (pip install {package}); it is needed for {package}: names"
        ) from None


def _check_overrides(source: Source, overrides: dict[str, Any]) -> dict[str, Any]:
    """Our option names that a library model understands, mapped; any other is refused."""
    given = {k: v for k, v in overrides.items() if v is not None}
    unsupported = sorted(set(given) - {"output_stride", "num_classes"})
    if unsupported:
        raise InspectError(
            f"only apply to resnet-inspect's own names, not to {source.kind}:{source.target}",
            tuple(unsupported),
        )
    options = dict(source.options)
    if "output_stride" in given:
        if "os" in options and options["os"] != given["output_stride"]:
            raise InspectError(f"{source.target}: output stride given twice with different values")
        options["os"] = given["output_stride"]
    if "num_classes" in given:
        options["num_classes"] = given["num_classes"]
    return options


# Library options that fetch weights or files from the network (or from paths chosen by the name).
DOWNLOADS = frozenset(
    {
        "weights",
        "weights_backbone",
        "pretrained",
        "pretrained_backbone",
        "pretrained_cfg",
        "pretrained_cfg_overlay",
        "pretrained_strict",
        "checkpoint_path",
        "cache_dir",
        "progress",
    }
)


def _no_downloads(source: Source, options: dict[str, Any]) -> None:
    asked = sorted(k for k in options if k in DOWNLOADS)
    if asked:
        raise InspectError(
            "would fetch weights; resnet-inspect never downloads (load a local file with --weights / weights=)",
            tuple(f"@{k}" for k in asked),
            where=f"{source.kind}:{source.target}: ",
        )


def _torchvision(source: Source, options: dict[str, Any]) -> Callable[[], nn.Module]:
    _no_downloads(source, options)
    models = _require("torchvision.models")
    kwargs = {k: v for k, v in options.items() if k != "os"}
    if "os" in options:
        strides = {8: [False, True, True], 16: [False, False, True], 32: [False, False, False]}
        if options["os"] not in strides:
            raise InspectError(f"must be 8, 16 or 32, got {options['os']}", "output_stride")
        kwargs["replace_stride_with_dilation"] = strides[options["os"]]
    if source.target not in models.list_models():
        raise InspectError(f"torchvision has no model {source.target!r}")
    kwargs["weights"] = None  # never download
    return lambda: models.get_model(source.target, **kwargs)


def _timm(source: Source, options: dict[str, Any]) -> Callable[[], nn.Module]:
    _no_downloads(source, options)
    timm = _require("timm")
    kwargs = {("output_stride" if k == "os" else k): v for k, v in options.items()}
    if source.target not in timm.list_models():
        close = timm.list_models(f"*{source.target.split('.')[0]}*")[:3]
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise InspectError(f"timm has no model {source.target!r}{hint}")
    return lambda: timm.create_model(source.target, pretrained=False, **kwargs)


@contextlib.contextmanager
def _user_code(what: str) -> Iterator[None]:
    """Run user code: what it prints goes to stderr (never into JSON on stdout), and whatever it raises
    but an interrupt becomes one line of InspectError."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except InspectError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001 - SystemExit too: the user's code must not end the tool
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InspectError(f"{what}: {type(error).__name__}" + (f": {text}" if text else "")) from None


def _user(source: Source) -> Callable[[], nn.Module]:
    if source.kind == "file":
        path = Path(source.target)
        if not path.is_file():
            raise InspectError(f"no such file: {source.target!r}")
        spec = importlib.util.spec_from_file_location(f"resnet_inspect_user_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise InspectError(f"{source.target!r} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        with _user_code(f"{source.target} failed to import"):
            spec.loader.exec_module(module)
    else:
        with _user_code(f"cannot import {source.target}"):
            module = importlib.import_module(source.target)
    if not hasattr(module, source.attribute):
        raise InspectError(f"{source.target} has no attribute {source.attribute!r}")
    made = getattr(module, source.attribute)
    if isinstance(made, nn.Module):
        if source.options:
            raise InspectError(f"{source.target}:{source.attribute} is a module, not a factory: it takes no @options")
        return lambda: made
    if not callable(made):
        raise InspectError(f"{source.target}:{source.attribute} is neither an nn.Module nor a callable")
    return lambda: made(**source.options)


def load(text: str, device: str = "meta", init: bool = False, trust_code: bool = False, **overrides: Any) -> Model:
    """Build the model `text` names on `device` (meta: no memory; no weights are ever downloaded).
    Names of files and modules run their code, so they are refused unless `trust_code`."""
    source = parse_source(text)
    if source.kind == "name":
        spec = resolve(text, **overrides)
        return Model(spec.name, build.build(spec, device=device, init=init), spec)
    target = build.check_device(device)
    if source.kind == "torchvision":
        factory = _torchvision(source, _check_overrides(source, overrides))
    elif source.kind == "timm":
        factory = _timm(source, _check_overrides(source, overrides))
    else:
        given = sorted(k for k, v in overrides.items() if v is not None)
        if given:
            raise InspectError(f"only apply to resnet-inspect's own names; pass @key=value to {text}", tuple(given))
        if not trust_code:
            raise InspectError(
                f"{text.strip()!r} names {'a file' if source.kind == 'file' else 'a module'} whose code would run; "
                "pass trust_code=True to allow it",
                "trust_code",
            )
        factory = _user(source)
    with torch.device(target), _user_code(f"{text.strip()} could not be built"):
        module = factory()
    if not isinstance(module, nn.Module):
        raise InspectError(f"{text} returned {type(module).__name__}, not an nn.Module")
    if target.type != "meta":
        module.eval()
    return Model(text.strip(), module, None)
