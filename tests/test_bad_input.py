"""Every bad input gets one line and exit status 2: the reproductions of the hardening issue as a
table, and a fuzz over every option of every command (exit 0 or 2, never a traceback)."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resnet_inspect.cli import cli

REPRODUCTIONS = [
    (["flops", "resnet50", "--input", "²²⁴"], "--input must be N or HxW"),
    (["show", "resnet50", "--layers", "²,4,6,3"], "must be integers separated by"),
    (["show", "resnet50", "--output-stride", "16", "--multi-grid", "1,2,³"], "must be integers separated by"),
    (["show", "resnet50@classes=99999999999999999999"], "@classes must be a non-negative integer"),
    (["show", "resnet50", "--num-classes", "99999999999999999999"], "is not a non-negative integer of at most 9"),
    (["show", "resnet50", "--num-classes", "99999999"], "--num-classes must be 0 to 1048576"),
    (["show", "resnet" + "5" * 4400], "unknown model"),
    (["show", "resnet50", "--layers", "3" * 4400], "must be integers separated by"),
    (["flops", "resnet50", "--input", "1" + "0" * 200], "--input must be N or HxW"),
    (["show", "resnet50@groups=" + "3" * 4400], "@groups must be a non-negative integer"),
    (["rf", "resnet18", "--plot", "x.png", "--device", "meta"], "--device must be cpu or cuda, not meta"),
    (["flops", "resnet50", "--input", "512 1024"], "--input must be N or HxW"),
    (["show", "resnet50", "--weights", ""], "--weights is empty"),
    (["flops", "resnet50", "--plot", ""], "--plot is empty"),
    (["show", "resnet50", "--device", ""], "--device is empty"),
    (["flops", "resnet50", "--input", ""], "--input is empty"),
    (["rf", "resnet18", "--stage", "", "--plot", "x.png"], "--stage is empty"),
    (["flops", "resnet50", "--split", "c5", "--rois", "10"], "--rois and --roi-size belong to --split c4"),
    (["flops", "resnet50", "--input", "224", "--input", "225"], "--input is given twice"),
    (["show", "resnet50@os08,layers=03-04-06-03"], "@os must be a non-negative integer, got '08'"),
    (["show", "resnet050"], "unknown model"),
    (["show", "resnet\nfifty"], "unknown model 'resnet\\nfifty'"),
    (["show", "resnet\x1b[31m50"], "unknown model 'resnet\\x1b[31m50'"),
    (["show", "resnet18", "--weights", "/dev/null"], "is not a regular file"),
    (["flops", "resnet18", "--plot", "dir/.png"], "--plot needs a file name before the extension"),
    (["flops", "resnet18", "--count", "fvcore", "--batch", "1000000"], "needs about"),
    (["bench", "resnet18", "--batch", "0"], "--batch must be at least 1"),
    (["rf", "resnet18", "--plot", "x.png", "--samples", "0"], "--samples must be 1 to 10000"),
    (["show", "resnet18", "--non-strict"], "--non-strict applies to --weights"),
    (["show", "torchvision:resnet50@weights=DEFAULT"], "would fetch weights"),
]


@pytest.mark.parametrize("args, fragment", REPRODUCTIONS, ids=[" ".join(a)[:60] for a, _ in REPRODUCTIONS])
def test_reproductions(args, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert fragment in lines[0]
    assert "\x1b" not in result.output
    assert not (tmp_path / "X").exists() and not (tmp_path / "x.png").exists()


def test_no_arguments_print_the_help():
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 0 and result.output.startswith("Usage: ") and "Commands:" in result.output


def test_exit_statuses_of_the_console_script(tmp_path):
    with open("/dev/full", "w") as device:
        full = subprocess.run(
            [sys.executable, "-m", "resnet_inspect", "list"],
            stdout=device,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert full.returncode == 2 and full.stderr.strip() == "Error: cannot write the output: No space left on device"
    # a reader that goes away: the zoo table is larger than a pipe's buffer
    reader = subprocess.Popen(
        f"{sys.executable} -m resnet_inspect flops --per stage --format csv --input 224 | head -c 1",
        shell=True,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert "Traceback" not in reader.communicate()[1]


@pytest.mark.parametrize("args", [["list"], ["--help"], ["flops", "resnet18"], ["show", "resnet18", "--json"]])
def test_a_closed_pipe_ends_quietly_with_141(args):
    """128 + SIGPIPE, what a shell reports for a pipeline whose reader left, and nothing on stderr;
    plain text, rich tables and JSON each take their own path to stdout."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written
    try:
        result = subprocess.run(
            [sys.executable, "-m", "resnet_inspect", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write)
    assert (result.returncode, result.stderr) == (141, "")


# -- a fuzz over every option ---------------------------------------------------------------------

WORDS = st.sampled_from(
    [
        "resnet18",
        "resnet50d@os8",
        "resnet5O",
        "",
        " ",
        "0",
        "-1",
        "1" * 12,
        "²",
        "٣",
        "3,4,6,3",
        "1-2-4",
        "nan",
        "x.png",
        "224",
        "97x131",
        "8",
        "16",
        "32",
        "layer2",
        "c4",
        "c5",
        "cuda",
        "cpu",
        "meta",
        "json",
        "csv",
        "\x1b[0m",
        "a\nb",
        "se",
        "blur",
        "gn",
        "tiered",
        "caffe",
        "1e9",
        "24GiB",
        "-0",
        "+3",
        "0x10",
        "9" * 10,
    ]
)
COMMANDS = {
    "show": [
        "--input",
        "--freeze-at",
        "--format",
        "--layers",
        "--groups",
        "--output-stride",
        "--multi-grid",
        "--device",
    ],
    "flops": [
        "--input",
        "--batch",
        "--per",
        "--split",
        "--rois",
        "--roi-size",
        "--freeze-at",
        "--sort",
        "--format",
        "--stem",
        "--stem-width",
        "--attn",
        "--aa",
        "--norm",
        "--num-classes",
        "--width-per-group",
    ],
    "rf": ["--input", "--per", "--stage", "--format", "--output-stride", "--dilation-style", "--se-reduction"],
    "diff": ["--input", "--format", "--stem-pool", "--shortcut"],
    "memory": ["--input", "--batch", "--dtype", "--optimizer", "--freeze-at", "--budget", "--format"],
    "export-keys": ["--format", "--layers", "--groups"],
    "list": ["--format"],
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    command=st.sampled_from(sorted(COMMANDS)),
    data=st.data(),
)
def test_every_option_gives_exit_0_or_2_and_no_traceback(command, data):
    options = COMMANDS[command]
    chosen = data.draw(st.lists(st.sampled_from(options), max_size=4))
    args = [command]
    if command not in ("list",):
        args.append(data.draw(WORDS))
    if command == "diff":
        args.append(data.draw(WORDS))
    for option in chosen:
        args += [option, data.draw(st.one_of(WORDS, st.text(max_size=12)))]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 2), (args, result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert len(result.output.strip().splitlines()) == 1, (args, result.output)
