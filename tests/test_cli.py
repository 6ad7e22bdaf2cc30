"""The command line: formats, the JSON schema, help, and the bad-input table (one line, exit 2)."""

import csv
import io
import json
import shlex
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from resnet_inspect import __version__
from resnet_inspect.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


COMMANDS = ["show", "list", "flops", "rf", "diff", "memory", "bench", "export-keys"]
# examples that need a file, a GPU, a real forward pass or fvcore's minutes are left to their own tests
NOT_RUN_HERE = (".pth", ".png", "cuda", "bench ", "--count fvcore", "timm:", "torchvision:")


def help_examples(command):
    text = run(command, "--help").output
    return [
        shlex.split(line.strip().split("#")[0])
        for line in text.splitlines()
        if line.strip().startswith("resnet-inspect ")
    ]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_example_in_help_runs(command):
    examples = help_examples(command)
    assert examples, f"{command} --help shows no example"
    for example in examples:
        assert example[1] == command
        if any(marker in " ".join(example) for marker in NOT_RUN_HERE):
            continue
        result = run(*example[1:])
        assert result.exit_code == 0, (example, result.output)


def test_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "resnet_inspect", "show", "resnet18", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout)["params"] == 11_689_512


def test_show_table_lists_every_stage_and_the_parameter_count():
    result = run("show", "resnext50_32x4d")
    assert result.exit_code == 0
    assert "25,028,904 parameters" in result.output
    for stage in ("stem", "layer1: 3 bottleneck", "layer2: 4", "layer3: 6", "layer4: 3"):
        assert stage in result.output
    assert "2@3x3" in result.output and "conv/2" in result.output


# The layer notes of seed 000 for resnext50_32x4d, corrected: the first block of layers 2-4 has
# stride 2 (and so does its 1x1 projection) in the real network, on the 3x3 (conv2; torchvision's
# "V1.5"), and there are 3, 4, 6, 3 blocks, not 2, 3, 5, 3. Added: width = planes x 4 / 64 x 32.
NOTES_LAYER2_START = """## Layer 2

Bottleneck1(inplanes=256, planes=128, width=256, stride=2 (on conv2, the 3x3), downsample, groups=32, base_width=4, \
dilation=1)
\t-> Downsample(conv1x1(inplanes=256, outplanes=512, stride=2))
\tIN: 256, OUT: 512
Bottleneck2(inplanes=512, planes=128, width=256, stride=1, groups=32, base_width=4, dilation=1)
\t(No Downsample)
\tIN: 512, OUT: 512
"""
NOTES_LAYER1 = """## Layer 1

Bottleneck1(inplanes=64, planes=64, width=128, stride=1, downsample, groups=32, base_width=4, dilation=1)
\t-> Downsample(conv1x1(inplanes=64, outplanes=256, stride=1))
\tIN: 64, OUT: 256
Bottleneck2(inplanes=256, planes=64, width=128, stride=1, groups=32, base_width=4, dilation=1)
\t(No Downsample)
\tIN: 256, OUT: 256
Bottleneck3(inplanes=256, planes=64, width=128, stride=1, groups=32, base_width=4, dilation=1)
\t(No Downsample)
\tIN: 256, OUT: 256
"""


def test_notes_format_matches_the_seed_with_the_true_strides():
    out = run("show", "resnext50_32x4d", "--format", "notes").output
    assert NOTES_LAYER1 in out
    assert NOTES_LAYER2_START in out
    assert "Bottleneck1(inplanes=512, planes=256, width=512, stride=2 (on conv2, the 3x3), downsample" in out
    assert "Bottleneck1(inplanes=1024, planes=512, width=1024, stride=2 (on conv2, the 3x3), downsample" in out
    assert out.count("Bottleneck") == 3 + 4 + 6 + 3


def test_notes_say_where_the_stride_sits():
    # ResNet-A (_va, MSRA's Caffe models): the stride on the first 1x1 of the bottleneck
    out = run("show", "resnet50_va", "--format", "notes").output
    assert "Bottleneck1(inplanes=256, planes=128, width=128, stride=2 (on conv1, the 1x1), downsample" in out
    # a basic block strides on its first 3x3
    out = run("show", "resnet18", "--format", "notes").output
    assert "BasicBlock1(inplanes=64, planes=128, width=128, stride=2 (on conv1, the 3x3), downsample" in out


def test_notes_show_the_avgpool_shortcut():
    out = run("show", "resnet50_vd", "--format", "notes").output
    assert "-> Downsample(avgpool2x2(stride=2), conv1x1(inplanes=256, outplanes=512, stride=1))" in out


BLOCK_KEYS = {
    "name",
    "stage",
    "index",
    "type",
    "inplanes",
    "planes",
    "width",
    "outplanes",
    "stride",
    "stride_at",
    "dilation",
    "dilations",
    "groups",
    "base_width",
    "downsample",
    "params",
    "cumulative_stride",
    "attention",
    "anti_alias",
}


def test_json_schema():
    data = json.loads(run("show", "resnet50_vd", "--output-stride", "16", "--format", "json").output)
    assert data["schema"] == "resnet-inspect/show/1"
    assert data["model"] == "resnet50_vd@os16"
    assert isinstance(data["params"], int) and data["params"] == 25_576_264
    assert data["spec"]["output_stride"] == 16 and data["spec"]["layers"] == [3, 4, 6, 3]
    assert data["stem"]["widths"] == [32, 32, 64]
    assert len(data["blocks"]) == 16
    for block in data["blocks"]:
        assert set(block) == BLOCK_KEYS
        assert block["downsample"] is None or set(block["downsample"]) == {"kind", "stride"}
    assert data["blocks"][3]["downsample"] == {"kind": "avgpool+conv", "stride": 2}
    assert [b["dilation"] for b in data["blocks"][-3:]] == [2, 2, 2]


def test_notes_and_markdown_layouts(golden):
    golden("notes_resnext50_32x4d.txt", run("show", "resnext50_32x4d", "--format", "notes").output)
    golden("show_resnet18.md", run("show", "resnet18", "--format", "markdown").output)
    golden(
        "flops_resnet50_vd_os8.md",
        run("flops", "resnet50_vd@os8", "--per", "block", "--format", "markdown").output,
    )


def test_overrides_on_the_command_line():
    data = json.loads(run("show", "resnet50", "--groups", "32", "--width-per-group", "4", "--format", "json").output)
    assert data["params"] == 25_028_904  # = resnext50_32x4d
    data = json.loads(run("show", "resnet50", "--layers", "3,4,23,3", "--format", "json").output)
    assert data["params"] == 44_549_160  # = resnet101


def test_list_names_every_registered_variant():
    out = run("list").output
    for name in ("resnet18", "resnext101_64x4d", "wide_resnet101_2", "resnet50d", "resnet200_vd"):
        assert name in out
    names = [row["name"] for row in json.loads(run("list", "--json").output)]
    assert names.index("resnet18") < names.index("resnet101")  # natural order


def test_cpu_device_builds_real_tensors():
    import resnet_inspect as ri

    model = ri.build("resnet18", device="cpu", init=True)
    assert all(p.device.type == "cpu" and torch.isfinite(p).all() for p in model.parameters())
    # torchvision's initialisation: BN weight 1, bias 0; Kaiming-normal (fan_out) convs: std sqrt(2 / fan_out)
    assert torch.equal(model.bn1.weight, torch.ones(64)) and torch.equal(model.bn1.bias, torch.zeros(64))
    std = float(model.layer3[0].conv2.weight.detach().std())
    assert abs(std - (2 / (256 * 9)) ** 0.5) < 0.1 * (2 / (256 * 9)) ** 0.5
    data = json.loads(run("show", "resnet18", "--device", "cpu", "--format", "json").output)
    assert data["params"] == 11_689_512


def test_flops_json_schema():
    data = json.loads(run("flops", "resnet50", "--input", "224", "--json").output)
    assert data["schema"] == "resnet-inspect/flops/1"
    assert (data["model"], data["input"], data["batch"], data["output_stride"]) == (
        "resnet50",
        [224, 224],
        1,
        32,
    )
    assert data["params"] == 25_557_032 and data["flops"] == 2 * data["macs"]
    assert round(data["macs"] / 1e9, 3) == 4.089  # torchvision's table
    assert [s["name"] for s in data["stages"]] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    for stage in data["stages"]:
        assert set(stage) == {"name", "params", "macs", "flops", "activations", "output", "stride"}
    assert data["stages"][4]["output"] == [2048, 7, 7] and data["stages"][5]["output"] == [1000]


def test_flops_of_several_names_and_of_none_are_lists():
    both = json.loads(run("flops", "resnet50", "resnet50_vd", "--json").output)
    assert [d["model"] for d in both] == ["resnet50", "resnet50_vd"]
    zoo = json.loads(run("flops", "--json").output)
    assert "resnext101_64x4d" in [d["model"] for d in zoo] and len(zoo) > 30
    assert "resnext101_64x4d" in run("flops").output


def test_flops_output_stride_changes_the_feature_map():
    data = json.loads(run("flops", "resnet101", "--input", "1024x2048", "--output-stride", "8", "--json").output)
    assert data["output_stride"] == 8 and data["stages"][4]["output"] == [2048, 128, 256]


def test_flops_per_block_and_layer():
    per_block = json.loads(run("flops", "resnet18", "--per", "block", "--json").output)
    assert len(per_block["blocks"]) == 8
    per_layer = json.loads(run("flops", "resnet18", "--per", "layer", "--json").output)
    assert per_layer["layers"][0]["name"] == "conv1" and per_layer["layers"][0]["output"] == [64, 112, 112]
    assert "layer4.1.conv2" in run("flops", "resnet18", "--per", "layer").output


def test_flops_count_fvcore_reproduces_fvcores_total():
    pytest.importorskip("fvcore")
    data = json.loads(run("flops", "resnet18", "--input", "64", "--count", "fvcore", "--json").output)
    ops = data["fvcore"]["by_operator"]
    assert ops["conv"] + ops["linear"] == data["macs"]
    # fvcore's batch-norm count, derived by hand: one per element of each BN output in eval mode
    # (resnet18 at 64: 64x32x32 stem; per stage 4 BN outputs at the stage size, plus projections)
    elements = 64 * 32 * 32 + sum(c * s * s * (4 + (c != 64)) for c, s in ((64, 16), (128, 8), (256, 4), (512, 2)))
    assert ops["batch_norm"] in (elements, 2 * elements)


def test_rf_json_schema():
    data = json.loads(run("rf", "resnet50", "--json").output)
    assert data["schema"] == "resnet-inspect/rf/1" and data["output_stride"] == 32
    assert [s["name"] for s in data["stages"]] == ["layer1", "layer2", "layer3", "layer4"]
    assert data["stages"][-1]["size"] == 427 and data["stages"][-1]["stride"] == 32
    assert set(data["stages"][0]) >= {"name", "size", "stride", "padding", "center", "aligned"}
    assert len(data["blocks"]) == 16


def test_rf_table_and_csv_agree_with_the_json():
    args = ("rf", "resnet50_vd", "--output-stride", "16", "--multi-grid", "1,2,4")
    data = json.loads(run(*args, "--json").output)
    # Paddle OS16 + grid 1,2,4: layer4's rates 2, 4, 8 at jump 16 add 2*16*(2+4+8) ... to layer3's field
    layer3, layer4 = data["stages"][2], data["stages"][3]
    assert layer4["size"] - layer3["size"] == 2 * 16 * (2 + 4 + 8)
    table = run(*args, "--per", "stage").output
    row = next(line.split() for line in table.splitlines() if line.startswith("layer4"))
    assert [int(v) for v in row[1:5]] == [layer4["size"], 16, layer4["padding"], layer4["center"]]
    rows = list(csv.DictReader(io.StringIO(run(*args, "--format", "csv").output)))
    assert [int(r["size"]) for r in rows if r["name"].startswith("layer") and "." not in r["name"]] == [
        s["size"] for s in data["stages"]
    ]


def test_show_with_input_adds_output_sizes_and_strides():
    out = run("show", "resnet101", "--input", "513", "--output-stride", "16").output
    assert "2048x33x33" in out
    data = json.loads(run("show", "resnet50", "--input", "97x131", "--format", "json").output)
    assert data["input"] == [97, 131]
    assert data["blocks"][-1]["output"] == [2048, 4, 5] and data["blocks"][-1]["cumulative_stride"] == 32


BAD_INPUT = [
    (["flops", "resnet50", "--input", "0"], "positive"),
    (["flops", "resnet50", "--input", "12x"], "N or HxW"),
    (["flops", "resnet50", "--input", "axb"], "N or HxW"),
    (["flops", "resnet50", "--input", "-5"], "N or HxW"),
    (["flops", "resnet50", "--batch", "0"], "batch must be at least 1"),
    (["flops", "resnet50", "--count", "fvcore", "--device", "meta"], "real forward pass"),
    (["flops", "resnet50", "nosuchnet"], "unknown model 'nosuchnet'"),
    (["rf", "resnet50", "--output-stride", "4"], "--output-stride must be 8, 16 or 32"),
    (["show", "resnet50", "--input", "3x3x3"], "N or HxW"),
    (["show", "resnet5O"], "closest: resnet50"),
    (["show", "resnet77"], "no stage table for depth 77"),
    (["show", "resnext18_32x4d"], "basic blocks"),
    (["show", "resnet50", "--output-stride", "12"], "--output-stride must be 8, 16 or 32"),
    (["show", "resnet50", "--output-stride", "abc"], "'abc' is not a non-negative integer"),
    (["show", "resnet50", "--layers", "3,4,x,3"], "must be integers separated by ',' or '-'"),
    (["show", "resnet50", "--layers", "3,4,6"], "--layers needs 4 positive block counts"),
    (["show", "resnet50", "--multi-grid", "1,2", "--output-stride", "16"], "one factor per block"),
    (["show", "resnet50", "--groups", "0"], "--groups, --width-per-group must be at least 1"),
    (["show", "resnet18", "--groups", "32"], "do not apply to basic blocks"),
    (["show", "resnet50", "--stem", "tall"], "'tall' is not one of"),
    (["show", "resnet50", "--device", "tpu"], "--device must be cpu, cuda, cuda:N or meta"),
    (["show", "resnet50", "--format", "yaml"], "'yaml' is not one of"),
    (["show", "resnet50@os8", "--output-stride", "16"], "given twice"),
    (["show", "resnet50@bogus"], "malformed option 'bogus'"),
    (["show", "resnet50@os12"], "@os must be 8, 16 or 32"),
    (["flops", "resnet50", "--json", "--format", "csv"], "two formats"),
    (["show"], "Missing argument"),
    (["frobnicate"], "No such command"),
]


@pytest.mark.parametrize("args, fragment", BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(args, fragment):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_exit_2():
    result = CliRunner().invoke(cli, ["show", "resnet50", "--device", "cuda"])
    assert result.exit_code == 2 and "CUDA is not available" in result.output


def test_console_script_gives_one_line_on_stderr():
    result = subprocess.run(
        [sys.executable, "-m", "resnet_inspect", "show", "resnet5O"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("Error: unknown model")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["rf", "resnet50", "--seed", "1"], "--seed applies only with --plot"),
        (["rf", "resnet50", "--stage", "layer3", "--samples", "2"], "--stage, --samples apply only with --plot"),
        (["show", "resnet50", "--format", "notes", "--input", "224"], "not to the notes"),
        (["show", "resnet50", "--non-strict"], "--non-strict applies to --weights"),
        (["flops", "--freeze-at", "2"], "need a NAME"),
    ],
)
def test_options_that_would_be_ignored_are_refused(args, fragment):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and fragment in result.output
