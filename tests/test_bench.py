"""`bench` on the CPU with a tiny input; its refusals; the CUDA path where CUDA exists."""

import json

import pytest
import torch
from click.testing import CliRunner

from resnet_inspect.cli import cli
from resnet_inspect.model.build import build
from resnet_inspect.model.names import resolve
from resnet_inspect.numbers.costs import costs, peak_activation_elements
from resnet_inspect.records.walker import walk


def bench(*args):
    return CliRunner().invoke(cli, ["bench", *args])


def test_cpu_run_reports_latency_throughput_and_memory():
    result = bench("resnet18", "--input", "32", "--batch", "2", "--warmup", "1", "--iters", "3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["schema"] == "resnet-inspect/bench/1"
    assert (data["device"], data["dtype"], data["batch"], data["input"], data["iters"]) == (
        "cpu",
        "float32",
        2,
        [32, 32],
        3,
    )
    assert len(data["latencies_ms"]) == 3 and all(t > 0 for t in data["latencies_ms"])
    assert data["latency_ms_min"] <= data["latency_ms_median"] <= data["latency_ms_max"]
    assert data["images_per_s"] == pytest.approx(2 / (data["latency_ms_median"] / 1000))
    assert data["peak_memory_kind"] == "process peak RSS" and data["peak_memory_bytes"] > 0


def test_table_output_and_channels_last():
    result = bench("resnet18_vd@os8", "--input", "32", "--warmup", "0", "--iters", "1", "--channels-last")
    assert result.exit_code == 0 and "images/s" in result.output and "channels_last" in result.output


def test_activation_estimate_by_hand():
    # resnet18 at 32x32: the stem holds the 3x32x32 input, conv1 and bn1 outputs (64x16x16 each) and
    # the max-pool output (64x8x8); layer1.0 holds its 64x8x8 input and four 64x8x8 outputs.
    result = costs(walk(build(resolve("resnet18"))), 32, 32)
    stem = 3 * 32 * 32 + 2 * 64 * 16 * 16 + 64 * 8 * 8
    assert stem == 3072 + 32768 + 4096
    assert peak_activation_elements(result) == stem  # the largest part at this size


def test_a_run_that_cannot_fit_is_refused_with_the_estimate():
    result = bench("resnet152", "--input", "16384x16384", "--batch", "256")
    assert result.exit_code == 2
    assert "needs about" in result.output and "GiB free" in result.output
    assert result.output.count("\n") == 1


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--device", "meta"], "runs the network for real"),
        (["--iters", "0"], "--iters must be 1 to 100000"),
        (["--dtype", "float64"], "'float64' is not one of"),
        (["--batch", "0"], "batch must be at least 1"),
    ],
)
def test_bad_bench_input(args, fragment):
    result = bench("resnet18", "--input", "32", *args)
    assert result.exit_code == 2 and fragment in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_request_without_cuda():
    result = bench("resnet18", "--device", "cuda")
    assert result.exit_code == 2 and "CUDA is not available" in result.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_cuda_run(dtype):
    assert not torch.backends.cudnn.benchmark
    result = bench(
        "resnet50",
        "--device",
        "cuda",
        "--input",
        "64",
        "--batch",
        "4",
        "--dtype",
        dtype,
        "--warmup",
        "2",
        "--iters",
        "3",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["device"].startswith("cuda") and data["peak_memory_kind"] == "cuda max allocated"
    assert not torch.backends.cudnn.benchmark  # the autotuner was on for the timed loop only
    assert data["peak_memory_bytes"] > 25_557_032 * (2 if dtype == "float16" else 4)  # at least the weights


def test_the_autotuner_switch_is_given_back():
    # cudnn.benchmark is process-wide: bench turns it on around its timed loop and restores it,
    # an exception included
    from resnet_inspect.measure.bench import _cudnn_autotuned

    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        with pytest.raises(RuntimeError), _cudnn_autotuned(True):
            assert torch.backends.cudnn.benchmark
            raise RuntimeError
        assert not torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        with _cudnn_autotuned(False):
            assert torch.backends.cudnn.benchmark  # the caller's own choice stands
        assert torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before
