"""The effective receptive field of one unit (Luo et al., "Understanding the Effective Receptive Field
in Deep Convolutional Neural Networks", NeurIPS 2016): the magnitude of the gradient of the unit with
respect to the input, averaged over a few random inputs, for the network as built. Runs real tensors
(forward up to the stage, then backward), on the CPU or a GPU."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import InspectError
from ..numbers.fields import receptive_fields
from ..records.types import NetRecord


@dataclass(frozen=True)
class UnitField:
    """One unit of a stage and what it sees: the theoretical box and the effective field."""

    stage: str
    unit: tuple[int, int]  # row, column in the stage's feature map
    feature_size: tuple[int, int]
    box: tuple[int, int, int, int]  # top, left, bottom, right input pixels (inclusive) of the theoretical field
    center: tuple[float, float]  # the unit's centre in input coordinates
    erf: Any  # |d unit / d input| averaged over samples and channels: an H x W numpy array
    peak: tuple[int, int]  # row, column of its maximum after a 5x5 box filter
    samples: int
    seed: int
    jump: tuple[int, int]  # input pixels between neighbouring units


class _Reached(Exception):
    """Raised by the stage's hook: the forward pass need not go further."""


def effective_field(
    model: nn.Module,
    record: NetRecord,
    stage: str,
    height: int,
    width: int,
    samples: int = 4,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> UnitField:
    """The centre unit of `stage` at `height` x `width`: its theoretical field (analytic) and its
    effective field (input gradient of a real forward pass up to that stage, averaged over `samples`
    random inputs)."""
    rows = [receptive_fields(record, axis).stage(stage) for axis in (0, 1)]
    if not 1 <= samples <= 10_000:
        raise InspectError(f"must be 1 to 10000, got {samples}", "samples")
    generator = torch.Generator().manual_seed(seed)
    reached: dict[str, torch.Tensor] = {}

    def stop(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        reached["y"] = output
        raise _Reached

    device = next(model.parameters()).device
    hook = dict(model.named_children())[stage].register_forward_hook(stop)
    total = torch.zeros(height, width)
    try:
        for done in range(samples):
            x = torch.randn(1, record.stem.in_ch, height, width, generator=generator).to(device).requires_grad_()
            try:
                model(x)
            except _Reached:
                pass
            y = reached.pop("y")
            row, col = (y.shape[2] - 1) // 2, (y.shape[3] - 1) // 2
            y[0, :, row, col].sum().backward()
            total += x.grad[0].abs().sum(dim=0).cpu()
            if progress:
                progress(done + 1, samples)
    finally:
        hook.remove()
    erf = total / samples
    smooth = torch.nn.functional.avg_pool2d(erf[None, None], 5, 1, 2, count_include_pad=False)[0, 0]
    peak = divmod(int(smooth.argmax()), smooth.shape[1])
    unit = (row, col)
    top, left = (unit[a] * rows[a].stride - rows[a].padding for a in (0, 1))
    return UnitField(
        stage=stage,
        unit=unit,
        feature_size=(int(y.shape[2]), int(y.shape[3])),
        box=(top, left, top + rows[0].size - 1, left + rows[1].size - 1),
        center=(rows[0].center + unit[0] * rows[0].stride, rows[1].center + unit[1] * rows[1].stride),
        erf=erf.numpy(),
        peak=peak,
        samples=samples,
        seed=seed,
        jump=(rows[0].stride, rows[1].stride),
    )
