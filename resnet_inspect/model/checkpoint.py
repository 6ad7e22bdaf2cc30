"""Checkpoints: read a state dict safely, match its keys to a model, load what matches.

Files are read with `torch.load(weights_only=True)`: tensors and plain containers only, never
arbitrary Python objects (a pickle that would run code is refused).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointMismatch, InspectError

WRAPPERS = ("state_dict", "model")  # dicts holding the state dict under one of these keys
PREFIXES = ("module.", "backbone.", "model.")  # DataParallel, detection and training wrappers


@dataclass(frozen=True)
class CheckpointReport:
    """How a checkpoint's keys met the model's."""

    path: str
    wrapper: str | None  # the key the state dict was found under, if any
    stripped: tuple[str, ...]  # prefixes removed from the checkpoint's keys, in order
    loaded: int
    missing: tuple[str, ...]  # in the model, not in the checkpoint
    unexpected: tuple[str, ...]  # in the checkpoint, not in the model
    mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]  # name, model shape, file shape

    @property
    def matches(self) -> bool:
        """Every key on both sides, every shape equal."""
        return not (self.missing or self.unexpected or self.mismatched)


def read_state_dict(path: str) -> tuple[dict[str, torch.Tensor], str | None]:
    """The tensors of a .pth/.pt/.bin file (or of its 'state_dict' / 'model' entry)."""
    file = Path(path)
    if not file.is_file():
        raise InspectError(f"no such checkpoint file: {path}")
    try:
        obj: Any = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        rejected = next((line for line in lines if "GLOBAL" in line), None)
        if rejected:  # the weights-only unpickler met a function or class to call
            raise InspectError(
                f"{path}: refused to load: it holds Python objects that could run code, not only tensors "
                f"({rejected.removeprefix('WeightsUnpickler error: ')})"
            ) from None
        detail = next((line for line in lines if line.startswith("Unsupported")), lines[0] if lines else "")
        raise InspectError(f"{path} is not a readable PyTorch checkpoint: {detail}") from None
    except Exception as error:  # noqa: BLE001 - truncated zip, wrong format, empty file: all bad input
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InspectError(
            f"{path} is not a readable PyTorch checkpoint (torch.load: {type(error).__name__}"
            + (f": {message})" if message else ")")
        ) from None
    wrapper = None
    if isinstance(obj, dict):
        for key in WRAPPERS:
            if isinstance(obj.get(key), dict):
                obj, wrapper = obj[key], key
                break
    if not isinstance(obj, dict):
        raise InspectError(f"{path} holds a {type(obj).__name__}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise InspectError(f"{path} holds no tensors (keys: {', '.join(map(str, list(obj)[:5]))})")
    return tensors, wrapper


def _matched(keys: set[str], state: dict[str, torch.Tensor]) -> int:
    return sum(k in keys for k in state)


def strip_prefixes(state: dict[str, torch.Tensor], keys: set[str]) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """Remove wrapper prefixes from the checkpoint's keys while that makes more of them match."""
    stripped: list[str] = []
    improved = True
    while improved:
        improved = False
        for prefix in PREFIXES:
            if not any(k.startswith(prefix) for k in state):
                continue
            candidate = {(k.removeprefix(prefix)): v for k, v in state.items()}
            if _matched(keys, candidate) > _matched(keys, state):
                state, improved = candidate, True
                stripped.append(prefix)
    return state, tuple(stripped)


def load_into(model: nn.Module, path: str, strict: bool = True) -> CheckpointReport:
    """Match the file's keys to `model` (stripping known prefixes when that helps) and load what
    matches; with `strict`, load nothing and raise on any mismatch (the report says what)."""
    state, wrapper = read_state_dict(path)
    own = model.state_dict()
    state, stripped = strip_prefixes(state, set(own))
    mismatched = tuple(
        (k, tuple(own[k].shape), tuple(v.shape)) for k, v in state.items() if k in own and own[k].shape != v.shape
    )
    bad = {k for k, _, _ in mismatched}
    loadable = {k: v for k, v in state.items() if k in own and k not in bad}
    report = CheckpointReport(
        path=path,
        wrapper=wrapper,
        stripped=stripped,
        loaded=len(loadable) if (not strict or not (bad or set(own) - set(state) or set(state) - set(own))) else 0,
        missing=tuple(k for k in own if k not in state),
        unexpected=tuple(k for k in state if k not in own),
        mismatched=mismatched,
    )
    if strict and not report.matches:
        raise CheckpointMismatch(report)
    on_meta = any(t.is_meta for t in own.values())
    # assign=True hands the file's tensors to a meta-built model instead of copying into nothing
    model.load_state_dict(loadable, strict=False, assign=on_meta)
    return report
