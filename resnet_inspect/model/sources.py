"""Where a model comes from: one of our names (`resnet50_vd@os8`), torchvision or timm
(`torchvision:resnet50`, `timm:resnet50d@os8`), or the user's own code (`path/to/file.py:factory`,
`package.module:factory`). Every source ends as an nn.Module for the walker.

User code is executed: only when its path or module is named explicitly. torchvision and timm are
optional; they are imported only for a name that asks for them.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
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


def _torchvision(source: Source, options: dict[str, Any]) -> Callable[[], nn.Module]:
    models = _require("torchvision.models")
    kwargs = {k: v for k, v in options.items() if k != "os"}
    if "os" in options:
        strides = {8: [False, True, True], 16: [False, False, True], 32: [False, False, False]}
        if options["os"] not in strides:
            raise InspectError(f"must be 8, 16 or 32, got {options['os']}", "output_stride")
        kwargs["replace_stride_with_dilation"] = strides[options["os"]]
    if source.target not in models.list_models():
        raise InspectError(f"torchvision has no model {source.target!r}")
    kwargs.setdefault("weights", None)  # never download
    return lambda: models.get_model(source.target, **kwargs)


def _timm(source: Source, options: dict[str, Any]) -> Callable[[], nn.Module]:
    timm = _require("timm")
    kwargs = {("output_stride" if k == "os" else k): v for k, v in options.items()}
    if source.target not in timm.list_models():
        close = timm.list_models(f"*{source.target.split('.')[0]}*")[:3]
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise InspectError(f"timm has no model {source.target!r}{hint}")
    return lambda: timm.create_model(source.target, pretrained=False, **kwargs)


def _user(source: Source) -> Callable[[], nn.Module]:
    if source.kind == "file":
        path = Path(source.target)
        if not path.is_file():
            raise InspectError(f"no such file: {source.target}")
        spec = importlib.util.spec_from_file_location(f"resnet_inspect_user_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # noqa: BLE001 - the user's code: any failure is theirs to fix
            raise InspectError(f"{source.target} failed to import: {type(error).__name__}: {error}") from None
    else:
        try:
            module = importlib.import_module(source.target)
        except ImportError as error:
            raise InspectError(f"cannot import {source.target}: {error}") from None
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


def load(text: str, device: str = "meta", init: bool = False, **overrides: Any) -> Model:
    """Build the model `text` names on `device` (meta: no memory; no weights are ever downloaded)."""
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
        factory = _user(source)
    try:
        with torch.device(target):
            module = factory()
    except InspectError:
        raise
    except TypeError as error:
        raise InspectError(f"{text}: {error}") from None
    except Exception as error:  # noqa: BLE001 - a library or user factory refusing its arguments
        raise InspectError(f"{text} could not be built: {type(error).__name__}: {str(error).splitlines()[0]}") from None
    if not isinstance(module, nn.Module):
        raise InspectError(f"{text} returned {type(module).__name__}, not an nn.Module")
    if target.type != "meta":
        module.eval()
    return Model(text.strip(), module, None)
