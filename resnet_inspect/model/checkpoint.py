"""Checkpoints: read a state dict safely, match its keys to a model, load what matches.

Files are read with `torch.load(weights_only=True)`: tensors and plain containers only, never
arbitrary Python objects (a pickle that would run code is refused). Zip checkpoints (torch.save's
default) are memory-mapped, so nothing is read before its shape has been checked against the model;
compressed entries (which could inflate far beyond the file) are refused, and an old-format file is
read only if it fits in memory. Only dense floating-point tensors load into floating-point weights.
"""

from __future__ import annotations

import itertools
import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointMismatch, InspectError
from ..machine import available_bytes

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


def _refusal(path: str, error: Exception) -> InspectError:
    """What the weights-only reader's complaint means for the user."""
    text = str(error)
    if "GLOBAL numpy" in text:
        return InspectError(
            f"{path!r} holds numpy arrays, which the safe (weights-only) reader does not load; save the state "
            "dict with torch tensors instead (torch.from_numpy)"
        )
    found = next((line.strip() for line in text.splitlines() if "GLOBAL" in line), None)
    if found:  # the weights-only unpickler met a function or class to call
        return InspectError(
            f"{path!r}: refused to load: it holds Python objects that could run code, not only tensors "
            f"({found.removeprefix('WeightsUnpickler error: ').split(' was not')[0]})"
        )
    with open(path, "rb") as head:
        pickled = head.read(1) == b"\x80"  # pickle's PROTO opcode: a pickle, not just any file
    if pickled and "Unsupported" in text:
        return InspectError(
            f"{path!r}: refused to load: its pickle uses instructions the safe (weights-only) reader does not "
            "accept; it is not a plain state dict saved by torch.save"
        )
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return InspectError(f"{path!r} is not a readable PyTorch checkpoint: {first}")


def _check_archive(path: str, file: Path) -> bool:
    """True for a zip checkpoint (after checking it holds no compressed entries); False for another
    format, which is then read whole: only when it fits in memory."""
    if zipfile.is_zipfile(file):
        with zipfile.ZipFile(file) as archive:
            packed = [i.filename for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED]
        if packed:
            raise InspectError(
                f"{path!r}: refused to load: it has compressed entries ({packed[0]}, ...), which torch.save never "
                "writes and which could inflate far beyond the file's size"
            )
        return True
    free = available_bytes(torch.device("cpu"))
    if file.stat().st_size > free:
        raise InspectError(f"{path!r} is {file.stat().st_size / 2**30:.2f} GiB; only {free / 2**30:.2f} GiB are free")
    return False


def read_state_dict(path: str) -> tuple[dict[str, torch.Tensor], str | None]:
    """The tensors of a .pth/.pt/.bin file (or of its 'state_dict' / 'model' entry), memory-mapped
    when the file is a zip checkpoint."""
    file = Path(path)
    if not file.exists():
        raise InspectError(f"no such checkpoint file: {path!r}")
    if not file.is_file():
        raise InspectError(f"{path!r} is not a regular file")
    mapped = _check_archive(path, file)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's own advice to use weights_only=False: not ours to give
            obj: Any = torch.load(file, map_location="cpu", weights_only=True, mmap=mapped)
    except pickle.UnpicklingError as error:
        raise _refusal(path, error) from None
    except Exception as error:  # noqa: BLE001 - truncated zip, wrong format, empty file: all bad input
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InspectError(
            f"{path!r} is not a readable PyTorch checkpoint (torch.load: {type(error).__name__}"
            + (f": {message})" if message else ")")
        ) from None
    wrapper = None
    if isinstance(obj, dict):
        for key in WRAPPERS:
            if isinstance(obj.get(key), dict):
                obj, wrapper = obj[key], key
                break
    if not isinstance(obj, dict):
        raise InspectError(f"{path!r} holds a {type(obj).__name__}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise InspectError(f"{path!r} holds no tensors (keys: {', '.join(map(repr, list(obj)[:5]))})")
    return tensors, wrapper


def _matched(keys: set[str], state: dict[str, torch.Tensor]) -> int:
    return sum(k in keys for k in state)


def strip_prefixes(state: dict[str, torch.Tensor], keys: set[str]) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """Remove wrapper prefixes from the checkpoint's keys (stacked ones too, `module.backbone.`) when
    that makes more of them match: the fewest prefixes giving the most matches."""
    best, best_prefixes = state, ()
    for depth in range(1, 4):
        for prefixes in itertools.product(PREFIXES, repeat=depth):
            candidate = state
            for prefix in prefixes:
                candidate = {k.removeprefix(prefix): v for k, v in candidate.items()}
            if _matched(keys, candidate) > _matched(keys, best):
                best, best_prefixes = candidate, prefixes
    return best, best_prefixes


def _unloadable(name: str, tensor: torch.Tensor, own: torch.Tensor) -> str | None:
    """Why the file's tensor cannot become the model's, or None."""
    if tensor.layout != torch.strided:
        return f"{name} is a {tensor.layout} tensor, not a dense one"
    if tensor.is_meta:
        return f"{name} holds no data (a meta tensor)"
    if tensor.is_complex():
        return f"{name} is {tensor.dtype}; the model's is {own.dtype}"
    if tensor.is_floating_point() != own.is_floating_point():
        return f"{name} is {tensor.dtype} where the model's is {own.dtype}"
    return None


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
    for key, tensor in state.items():
        problem = _unloadable(key, tensor, own[key]) if key in own and key not in bad else None
        if problem:
            raise InspectError(f"{path!r}: refused to load: {problem}")
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
