"""The error types for bad input. The library raises them and never prints or exits; the CLI turns
them into one line and exit status 2.

An error about one argument names that argument the way the caller passed it: a Python API user
reads `rois must be at least 1`, a command-line user `--rois must be at least 1` (the CLI maps
parameter names to flags in one place).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model.checkpoint import CheckpointReport


class InspectError(ValueError):
    """Bad input from the user: an unknown name, an impossible size, a malformed spec."""

    def __init__(self, message: str, param: str | tuple[str, ...] | None = None, where: str = "") -> None:
        self.detail = message
        self.params: tuple[str, ...] = (param,) if isinstance(param, str) else tuple(param or ())
        self.where = where  # what the error is about, before the parameter: "B (resnet50@os12): "
        super().__init__(self.spelled(lambda name: name))

    def spelled(self, spell: Callable[[str], str]) -> str:
        """The message with its parameters spelled by `spell` (a CLI flag, say)."""
        if not self.params:
            return self.where + self.detail
        return f"{self.where}{', '.join(spell(p) for p in self.params)} {self.detail}"

    def within(self, where: str) -> InspectError:
        """The same error, said to be about `where` (a side of a diff, say)."""
        return InspectError(self.detail, self.params, where + self.where)


class CheckpointMismatch(InspectError):
    """A strict load that found missing, unexpected or reshaped keys; carries the report."""

    def __init__(self, report: CheckpointReport) -> None:
        self.report = report
        super().__init__(
            f"{report.path} does not match the model: {len(report.missing)} missing, "
            f"{len(report.unexpected)} unexpected, {len(report.mismatched)} with another shape "
            "(a non-strict load takes what matches)"
        )
