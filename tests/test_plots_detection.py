"""Pictures (valid PNGs of the promised size; the effective field peaks at the unit's centre) and the
detection view (a base/head split and frozen parameters, derived by hand for resnet101)."""

import json
import struct
import sys

import pytest
from click.testing import CliRunner

from resnet_inspect.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


def png_size(path):
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])  # width, height


# --- pictures ---------------------------------------------------------------------------------------


def test_receptive_field_picture(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "rf.png"
    result = run("rf", "resnet18", "--plot", str(path), "--stage", "layer2", "--input", "96")
    assert result.exit_code == 0, result.output
    assert png_size(path) == (600, 600)


@pytest.mark.parametrize("name, stage, size", [("resnet18", "layer2", 96), ("resnet50_vd@os8", "layer3", 97)])
def test_effective_field_peaks_at_the_units_centre(name, stage, size):
    import torch

    import resnet_inspect as ri
    from resnet_inspect.measure.erf import effective_field

    torch.manual_seed(0)
    loaded = ri.load(name, device="cpu", init=True)
    record = ri.walk(loaded.module)
    field = effective_field(loaded.module, record, stage, size, size, samples=16, seed=0)
    # Luo et al.: the effective field is a bump around the unit's centre (the analytic one); a unit
    # stands for a jump x jump cell of the input, so its peak must fall inside that cell
    for axis in (0, 1):
        assert abs(field.peak[axis] - field.center[axis]) <= field.jump[axis] / 2
    top, left, bottom, right = field.box
    rows, cols = field.erf.nonzero()
    assert rows.min() >= max(top, 0) and rows.max() <= min(bottom, size - 1)
    assert cols.min() >= max(left, 0) and cols.max() <= min(right, size - 1)


def test_cost_picture_with_grouped_bars(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "cost.png"
    result = run("flops", "resnet50", "resnet50_vd", "--plot", str(path))
    assert result.exit_code == 0, result.output
    assert png_size(path) == (1200, 500)


@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".pdf", b"%PDF-")])
def test_pictures_as_svg_and_pdf(tmp_path, suffix, magic):
    pytest.importorskip("matplotlib")
    for args in (["flops", "resnet18", "resnet34"], ["rf", "resnet18", "--stage", "layer1", "--input", "64"]):
        path = tmp_path / f"{args[0]}{suffix}"
        result = (
            run(*args, "--plot", str(path), "--samples", "1") if args[0] == "rf" else run(*args, "--plot", str(path))
        )
        assert result.exit_code == 0, result.output
        assert path.read_bytes().startswith(magic)


def test_plots_without_matplotlib_name_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for args in (
        ["rf", "resnet18", "--plot", str(tmp_path / "a.png")],
        ["flops", "resnet18", "--plot", str(tmp_path / "b.png")],
    ):
        result = run(*args)
        assert result.exit_code == 2 and "pip install 'resnet-inspect[plot]'" in result.output


def test_bad_plot_requests(tmp_path):
    result = run("rf", "resnet18", "--plot", str(tmp_path / "missing" / "x.png"))
    assert result.exit_code == 2 and "cannot write" in result.output
    result = run("flops", "resnet18", "--plot", str(tmp_path / "x.jpg"))
    assert result.exit_code == 2 and "should end in .png, .svg or .pdf" in result.output
    result = run("rf", "resnet18", "--plot", str(tmp_path / "x.png"), "--stage", "layer9")
    assert (
        result.exit_code == 2 and "--stage must be one of layer1, layer2, layer3, layer4, not 'layer9'" in result.output
    )
    result = run("flops", "--plot", str(tmp_path / "zoo.png"))  # every registered name: too many bars
    assert result.exit_code == 2 and "--plot draws at most 8 models" in result.output
    assert not (tmp_path / "zoo.png").exists()


# --- detection view ---------------------------------------------------------------------------------


def conv_out(n, k, s, p):
    return (n + 2 * p - (k - 1) - 1) // s + 1


def bottleneck_macs(h, w, cin, planes, stride):
    """One torchvision bottleneck at h x w input: (MACs, output h, output w)."""
    ho, wo = conv_out(h, 3, stride, 1), conv_out(w, 3, stride, 1)
    out = planes * 4
    macs = h * w * cin * planes + ho * wo * planes * planes * 9 + ho * wo * planes * out
    if stride != 1 or cin != out:
        macs += ho * wo * cin * out
    return macs, ho, wo


def stage_macs(h, w, cin, planes, blocks, stride):
    total = 0
    for i in range(blocks):
        macs, h, w = bottleneck_macs(h, w, cin if i == 0 else planes * 4, planes, stride if i == 0 else 1)
        total += macs
    return total, h, w


def test_resnet101_c4_split_by_hand():
    data = json.loads(
        run(
            "flops",
            "resnet101",
            "--split",
            "c4",
            "--rois",
            "300",
            "--roi-size",
            "7",
            "--input",
            "600x1000",
            "--json",
        ).output
    )
    # base = conv1 .. layer3 at 600 x 1000
    h, w = conv_out(600, 7, 2, 3), conv_out(1000, 7, 2, 3)  # 300 x 500
    base = h * w * 64 * 3 * 49
    h, w = conv_out(h, 3, 2, 1), conv_out(w, 3, 2, 1)  # max-pool: 150 x 250
    macs, h, w = stage_macs(h, w, 64, 64, 3, 1)
    base += macs
    macs, h, w = stage_macs(h, w, 256, 128, 4, 2)
    base += macs
    macs, h, w = stage_macs(h, w, 512, 256, 23, 2)  # 38 x 63
    base += macs
    assert (h, w) == (38, 63)
    assert data["base"]["macs"] == base and data["base"]["output"] == [1024, 38, 63]
    assert data["base"]["stride"] == 16
    # head = layer4 on one 7 x 7 x 1024 RoI feature: the strided first block makes it 4 x 4
    head, ho, wo = stage_macs(7, 7, 1024, 512, 3, 2)
    assert (ho, wo) == (4, 4)
    assert data["head"]["macs_per_roi"] == head and data["head"]["output"] == [2048, 4, 4]
    assert data["head"]["macs"] == 300 * head and data["head"]["rois"] == 300
    # parameters: layer4 = 3 bottlenecks (2048 -> 512 -> 2048) + projection, BN 2 per channel
    layer4 = (
        1024 * 512
        + 512 * 512 * 9
        + 512 * 2048
        + 1024 * 2048
        + 2 * (512 + 512 + 2048 + 2048)
        + 2 * (2048 * 512 + 512 * 512 * 9 + 512 * 2048 + 2 * (512 + 512 + 2048))
    )
    assert data["head"]["params"] == layer4
    assert data["base"]["params"] == 44_549_160 - layer4 - (2048 * 1000 + 1000)  # torchvision total - head - fc
    assert data["macs"] == base + 300 * head


def test_c5_split_uses_the_whole_trunk():
    data = json.loads(run("flops", "resnet50", "--split", "c5", "--input", "800x1333", "--json").output)
    assert data["base"]["stride"] == 32 and data["base"]["output"][0] == 2048 and data["head"] is None
    assert data["base"]["params"] == 25_557_032 - 2_049_000


def test_split_table_shows_the_json_numbers_and_adds_up():
    args = ("flops", "resnet101", "--split", "c4", "--input", "600x1000")
    data = json.loads(run(*args, "--json").output)
    lines = [line.split() for line in run(*args).output.splitlines()]
    rows = {words[0]: words for words in lines if words and words[0] in ("base", "head", "total")}
    base, head = data["base"], data["head"]
    assert rows["base"][1:5] == [f"{base[k]:,}" for k in ("params", "macs", "flops", "activations")]
    assert rows["head"][:3] == ["head", "x", "300"]
    assert rows["head"][3:7] == [f"{head[k]:,}" for k in ("params", "macs", "flops", "activations")]
    # the rows add up: the head's parameters once, its work once per RoI
    assert data["params"] == base["params"] + head["params"]
    assert data["macs"] == base["macs"] + 300 * head["macs_per_roi"]
    assert data["activations"] == base["activations"] + 300 * head["activations_per_roi"]
    assert rows["total"][1:5] == [f"{data[k]:,}" for k in ("params", "macs", "flops", "activations")]


def test_split_per_block_rows_add_up_to_base_and_head():
    data = json.loads(
        run("flops", "resnet101", "--split", "c4", "--input", "600x1000", "--per", "block", "--json").output
    )
    base, head = data["base"], data["head"]
    assert [p["name"] for p in base["parts"]] == ["stem", "layer1", "layer2", "layer3"]
    assert len(base["blocks"]) == 3 + 4 + 23 and len(head["blocks_per_roi"]) == 3
    for key in ("params", "macs", "activations"):
        assert base["parts"][0][key] + sum(b[key] for b in base["blocks"]) == base[key]
        assert sum(b[key] for b in head["blocks_per_roi"]) == head[key if key == "params" else f"{key}_per_roi"]
    table = run("flops", "resnet101", "--split", "c4", "--input", "600x1000", "--per", "stage").output
    assert "base per stage, once per batch" in table and "head per stage, one RoI" in table


def test_freeze_at_by_hand():
    data = json.loads(run("show", "resnet50", "--freeze-at", "2", "--format", "json").output)
    freeze = data["freeze"]
    stem = 64 * 3 * 49 + 2 * 64
    first = 64 * 64 + 64 * 64 * 9 + 64 * 256 + 64 * 256 + 2 * (64 + 64 + 256 + 256)  # with its projection
    later = 256 * 64 + 64 * 64 * 9 + 64 * 256 + 2 * (64 + 64 + 256)
    layer1 = first + 2 * later
    fc = 2048 * 1000 + 1000
    assert freeze["frozen_params"] == stem + layer1
    # the backbone only: torchvision's total less the classifier
    assert freeze["trainable_params"] == 25_557_032 - fc - stem - layer1
    assert freeze["backbone_params"] == 25_557_032 - fc and freeze["head_params"] == fc
    # batch norms: 1 in the stem, 3 per block, 1 per projection: 1 + 16 * 3 + 4
    assert freeze["bn_layers"] == 1 + 16 * 3 + 4
    flops_data = json.loads(run("flops", "resnet50", "--freeze-at", "0", "--json").output)
    assert flops_data["freeze"]["frozen_params"] == 0


def test_resnet101_c4_freeze_counts_the_backbone_only():
    args = ("flops", "resnet101", "--split", "c4", "--input", "600x1000", "--freeze-at", "2")
    freeze = json.loads(run(*args, "--json").output)["freeze"]
    stem = 64 * 3 * 49 + 2 * 64
    layer1 = (64 * 64 + 64 * 64 * 9 + 64 * 256 + 64 * 256 + 2 * (64 + 64 + 256 + 256)) + 2 * (
        256 * 64 + 64 * 64 * 9 + 64 * 256 + 2 * (64 + 64 + 256)
    )
    backbone = 44_549_160 - (2048 * 1000 + 1000)  # torchvision's resnet101 less its fc
    trainable = backbone - stem - layer1
    # batch norms of layer2..4: per bottleneck planes + planes + 4 planes channels, plus each projection's 4 planes
    channels = sum(n * 6 * p + 4 * p for n, p in ((4, 128), (23, 256), (3, 512)))
    assert (trainable, trainable - 2 * channels) == (42_274_816, 42_172_416)  # the figures
    assert freeze["trainable_params"] == trainable
    assert freeze["trainable_with_frozen_bn"] == trainable - 2 * channels
    text = run(*args).output
    assert "42,274,816" in text and "42,172,416" in text and "44,323,816" not in text


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--split", "c3"], "'c3' is not one of"),
        (["--split", "c4", "--rois", "0"], "--rois must be 1 to 100000"),
        (["--split", "c4", "--roi-size", "0"], "--roi-size must be 1 to 1024"),
        (["--freeze-at", "6"], "--freeze-at must be 0 to 5"),
        (["--rois", "10"], "--rois and --roi-size belong to --split c4"),
        (["--split", "c4", "--count", "fvcore"], "--split and --count fvcore cannot be combined"),
        (["--split", "c4", "--plot", "x.png"], "--split and --plot cannot be combined"),
        (["--split", "c4", "--per", "layer"], "--split breaks down per stage or per block"),
        (["--split", "c4", "--sort", "macs"], "--sort orders the comparison table"),
    ],
)
def test_bad_detection_options(args, fragment):
    result = run("flops", "resnet101", *args)
    assert result.exit_code == 2 and fragment in result.output
