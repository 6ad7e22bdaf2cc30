"""`bench`: real forward latency and throughput of a built model with random weights.

The one command that runs the network for real. Before allocating anything it estimates the memory
the run needs (weights plus an upper bound on live activations) and refuses, with the estimate,
when the device does not have it.
"""

from __future__ import annotations

import contextlib
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InspectError
from ..machine import available_bytes, cpu_name
from ..model.build import check_device, materialise, tensor_bytes
from ..model.checkpoint import CheckpointReport, load_into
from ..numbers.costs import DTYPE_BYTES, Costs, peak_activation_elements

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class BenchResult:
    """Latencies of the timed iterations and what they imply."""

    model: str
    device: str
    device_name: str
    dtype: str
    channels_last: bool
    batch: int
    input: tuple[int, int]
    warmup: int
    iters: int
    threads: int
    latency_ms_median: float
    latency_ms_min: float
    latency_ms_max: float
    latency_ms_iqr: float
    images_per_s: float
    peak_memory_bytes: int
    peak_memory_kind: str  # "cuda max allocated" or "process peak RSS"
    estimated_bytes: int
    latencies_ms: tuple[float, ...]
    # `memory --inference`'s exact tensor-level prediction of the peak (weights + activations alive at
    # once, the input included); max allocated on CUDA adds workspaces and allocator rounding to it.
    predicted_bytes: int | None = None
    checkpoint: CheckpointReport | None = None  # the weights loaded, and what was left out


@contextlib.contextmanager
def _cudnn_autotuned(on: bool) -> Iterator[None]:
    """cuDNN's autotuner (a process-wide switch) on for the timed loop only, then as it was."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = before or on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def estimate_bytes(model: nn.Module, costs: Costs, dtype: str) -> tuple[int, int]:
    """(weights, activations) bytes an inference pass at `costs`' input needs: every parameter and
    buffer, and the activations a part of the network can hold at once (convolution workspaces,
    which depend on the backend, are not included)."""
    itemsize = DTYPE_BYTES[dtype]
    weights = tensor_bytes(model) * itemsize // 4  # built in float32, cast to `dtype`
    return weights, peak_activation_elements(costs) * itemsize


def check_dtype(device: torch.device, dtype: str) -> None:
    """InspectError when this torch cannot run a convolution in `dtype` on `device` (probed)."""
    if dtype not in DTYPES:
        raise InspectError(f"must be one of {', '.join(DTYPES)}, not {dtype!r}", "dtype")
    if device.type == "cuda" and dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise InspectError(f"{torch.cuda.get_device_name(device)} does not support bfloat16")
    try:
        probe = torch.nn.functional.conv2d(
            torch.ones(1, 2, 4, 4, device=device, dtype=DTYPES[dtype]),
            torch.ones(2, 1, 3, 3, device=device, dtype=DTYPES[dtype]),
            groups=2,
        )
        torch.nn.functional.batch_norm(probe, None, None, training=True)
    except (RuntimeError, NotImplementedError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InspectError(f"{dtype} on {device} is not supported by torch {torch.__version__}: {first_line}") from None


def preflight(model: nn.Module, costs: Costs, device: str, dtype: str, warmup: int, iters: int) -> torch.device:
    """Every check a run needs before it allocates anything; InspectError saying what is wrong."""
    target = check_device(device)
    if target.type == "meta":
        raise InspectError("must be cpu or cuda, not meta: bench runs the network for real", "device")
    if not 0 <= warmup <= 10_000:
        raise InspectError(f"must be 0 to 10000, got {warmup}", "warmup")
    if not 1 <= iters <= 100_000:
        raise InspectError(f"must be 1 to 100000, got {iters}", "iters")
    check_dtype(target, dtype)
    weights, activations = estimate_bytes(model, costs, dtype)
    free = available_bytes(target)
    if weights + activations > free:
        raise InspectError(
            f"{costs.model} at {costs.input[0]}x{costs.input[1]}, batch {costs.batch}, {dtype} needs about "
            f"{(weights + activations) / 2**30:.2f} GiB (weights {weights / 2**30:.2f} GiB + live activations "
            f"{activations / 2**30:.2f} GiB) but {target} has {free / 2**30:.2f} GiB free"
        )
    return target


def _peak_rss() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage if sys.platform == "darwin" else usage * 1024


def run(
    model: nn.Module,
    costs: Costs,
    device: str,
    dtype: str = "float32",
    channels_last: bool = False,
    warmup: int = 5,
    iters: int = 20,
    progress: Callable[[int, int], None] | None = None,
    weights: str | None = None,
    strict: bool = True,
    predicted: int | None = None,
) -> BenchResult:
    """Time `iters` forward passes after `warmup` ones; `model` is on the meta device and is
    materialised here with torchvision's initialisation, then the `weights` file when given.
    `predicted`: the analytic peak to report beside the measured one."""
    target = preflight(model, costs, device, dtype, warmup, iters)
    estimated = sum(estimate_bytes(model, costs, dtype))  # of the float32 meta model, before the cast
    model = materialise(model, target)
    loaded = load_into(model, weights, strict) if weights else None
    model = model.to(dtype=DTYPES[dtype]).eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    x = torch.randn(costs.batch, costs.channels, *costs.input, device=target, dtype=DTYPES[dtype])
    x = x.contiguous(memory_format=memory_format)
    cuda = target.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(target)
    latencies: list[float] = []
    with torch.inference_mode(), _cudnn_autotuned(cuda):
        for step in range(warmup + iters):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                model(x)
                end.record()
                end.synchronize()
                elapsed = start.elapsed_time(end)
            else:
                began = time.perf_counter()
                model(x)
                elapsed = (time.perf_counter() - began) * 1000
            if step >= warmup:
                latencies.append(elapsed)
            if progress:
                progress(step + 1, warmup + iters)
    quartiles = statistics.quantiles(latencies, n=4) if len(latencies) > 1 else [latencies[0]] * 3
    median = statistics.median(latencies)
    return BenchResult(
        model=costs.model,
        device=str(target),
        device_name=torch.cuda.get_device_name(target) if cuda else cpu_name(),
        dtype=dtype,
        channels_last=channels_last,
        batch=costs.batch,
        input=costs.input,
        warmup=warmup,
        iters=iters,
        threads=torch.get_num_threads(),
        latency_ms_median=median,
        latency_ms_min=min(latencies),
        latency_ms_max=max(latencies),
        latency_ms_iqr=quartiles[2] - quartiles[0],
        images_per_s=costs.batch / (median / 1000),
        peak_memory_bytes=torch.cuda.max_memory_allocated(target) if cuda else _peak_rss(),
        peak_memory_kind="cuda max allocated" if cuda else "process peak RSS",
        estimated_bytes=estimated,
        latencies_ms=tuple(latencies),
        predicted_bytes=predicted,
        checkpoint=loaded,
    )
