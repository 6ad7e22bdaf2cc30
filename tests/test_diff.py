"""`diff` on the issue's examples, each expectation derived by hand here."""

import json

from click.testing import CliRunner

from resnet_inspect.cli import cli


def diff(*args):
    result = CliRunner().invoke(cli, ["diff", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def changed_blocks(data, stage):
    return {b["name"]: b for s in data["stages"] if s["name"] == stage for b in s["blocks"]}


def stem_macs(h, w, convs):
    return sum(h * w * cout * cin * k * k for cin, cout, k in convs)


def test_resnet50_vs_resnet50_vd():
    d = diff("resnet50", "resnet50_vd")
    assert d["stem"]["kind"] == {"a": "classic", "b": "deep"}
    assert d["stem"]["convs"] == {"a": ["7x7/2"], "b": ["3x3/2", "3x3", "3x3"]}
    assert d["stem"]["widths"] == {"a": [64], "b": [32, 32, 64]}
    for stage in ("layer2", "layer3", "layer4"):
        block = changed_blocks(d, stage)[f"{stage}.0"]
        assert block["fields"]["downsample"] == {"a": "conv1x1/2", "b": "avgpool2x2/2 + conv1x1"}
    assert "layer1" not in [s["name"] for s in d["stages"]]  # layer1.0's 1x1 projection is alike
    assert d["summary"]["params"] == {
        "a": 25_557_032,
        "b": 25_576_264,
        "delta": 19_232,
        "ratio": 25_576_264 / 25_557_032,
    }
    # the MACs rise by the deep stem's cost over the 7x7's, both at 112 x 112
    deep = stem_macs(112, 112, [(3, 32, 3), (32, 32, 3), (32, 64, 3)])
    classic = stem_macs(112, 112, [(3, 64, 7)])
    assert d["summary"]["macs"]["delta"] == deep - classic == 239_640_576
    assert d["summary"]["flops"]["delta"] == 2 * (deep - classic)


def test_resnet50_vs_resnext50_32x4d():
    d = diff("resnet50", "resnext50_32x4d")
    for stage, planes in zip(("layer1", "layer2", "layer3", "layer4"), (64, 128, 256, 512)):
        blocks = changed_blocks(d, stage)
        assert len(blocks) == {"layer1": 3, "layer2": 4, "layer3": 6, "layer4": 3}[stage]
        for block in blocks.values():
            # the 3x3's width: planes (resnet50) -> int(planes * 4 / 64) * 32 = 2 * planes
            width, groups = block["fields"]["width"], block["fields"]["groups"]
            assert (width["a"], width["b"], groups["a"], groups["b"]) == (planes, 2 * planes, 1, 32)
    assert (d["summary"]["params"]["a"], d["summary"]["params"]["b"]) == (25_557_032, 25_028_904)
    assert round(d["summary"]["macs"]["a"] / 1e9, 3) == 4.089  # torchvision's tables
    assert round(d["summary"]["macs"]["b"] / 1e9, 3) == 4.230


def test_timm_and_paddle_dilate_differently_at_os8():
    d = diff("resnet50d", "resnet50_vd", "--output-stride", "8")
    layer3, layer4 = changed_blocks(d, "layer3"), changed_blocks(d, "layer4")
    assert set(layer3) == {"layer3.0"} and set(layer4) == {"layer4.0"}
    assert layer3["layer3.0"]["fields"]["dilations"] == {"a": [1], "b": [2]}  # timm keeps the old rate
    assert layer4["layer4.0"]["fields"]["dilations"] == {"a": [2], "b": [4]}
    assert layer3["layer3.0"]["fields"]["downsample"] == {"a": "avgpool2x2(same) + conv1x1", "b": "conv1x1"}
    # the two 3x3s see with a larger rate at jump 8: (2 - 1) * 2 * 8 + (4 - 2) * 2 * 8 = 48 more pixels
    rf = d["summary"]["receptive field"]
    assert rf["delta"] == 48
    assert d["summary"]["macs"]["delta"] == 0 and d["summary"]["params"]["delta"] == 0


def test_resnet200d_vs_resnet200_vd_depths():
    d = diff("resnet200d", "resnet200_vd")
    layer2, layer3 = changed_blocks(d, "layer2"), changed_blocks(d, "layer3")
    assert sorted(layer2) == sorted(f"layer2.{i}" for i in range(12, 24))  # [3,24,36,3] vs [3,12,48,3]
    assert all(b["status"] == "only_a" for b in layer2.values())
    assert sorted(layer3) == sorted(f"layer3.{i}" for i in range(36, 48))
    assert all(b["status"] == "only_b" for b in layer3.values())
    # a layer2 block at 28x28 costs what a layer3 block at 14x14 does, so 12 moved blocks cost nothing
    layer2_block = 28 * 28 * (512 * 128 + 128 * 128 * 9 + 128 * 512)
    layer3_block = 14 * 14 * (1024 * 256 + 256 * 256 * 9 + 256 * 1024)
    assert layer2_block == layer3_block and d["summary"]["macs"]["delta"] == 0
    assert d["state_dict"]["only_a"][0] == "layer2.12.conv1.weight"


def test_output_stride_16_vs_8():
    d = diff("resnet101@os16", "resnet101@os8")
    layer3 = changed_blocks(d, "layer3")
    first = layer3["layer3.0"]["fields"]
    assert first["stride"] == {"a": 2, "b": 1, "delta": -1, "ratio": 0.5}
    assert first["downsample"] == {"a": "conv1x1/2", "b": "conv1x1"}
    assert first["output"] == {"a": [1024, 14, 14], "b": [1024, 28, 28]}
    assert all(layer3[f"layer3.{i}"]["fields"]["dilations"] == {"a": [1], "b": [2]} for i in range(1, 23))
    assert d["summary"]["feature map"] == {"a": [2048, 14, 14], "b": [2048, 28, 28]}
    assert d["summary"]["macs"]["delta"] > 0
    assert d["summary"]["receptive field"]["delta"] == 0  # dilation compensates exactly
    assert d["summary"]["receptive field jump"] == {"a": 16, "b": 8, "delta": -8, "ratio": 0.5}
    assert d["state_dict"]["only_a"] == [] and d["state_dict"]["reshaped"] == []


def test_state_dict_section_for_porting():
    d = diff("resnet50", "resnet50d")
    state = d["state_dict"]
    assert "conv1.weight" in state["only_a"] and "conv1.0.weight" in state["only_b"]
    # downsample.1 is a BN in torchvision's layout and the conv in timm's avg-pool layout
    assert {"name": "layer1.0.downsample.1.weight", "a": [256], "b": [256, 64, 1, 1]} in state["reshaped"]


def test_identical_inputs_say_so_in_one_line():
    for a, b in (("resnet50", "resnet50_vb"), ("resnet50@groups=32,width=4", "resnext50_32x4d")):
        result = CliRunner().invoke(cli, ["diff", a, b])
        assert result.exit_code == 0
        assert result.output.count("\n") == 1 and "are identical" in result.output
    assert diff("resnet50", "resnet50_vb")["identical"] is True


def test_the_table_marks_changes_like_word_diff():
    out = CliRunner().invoke(cli, ["diff", "resnet50", "resnet50_vd"]).output
    assert "[-7x7/2-]{+3x3/2,3x3,3x3+}" in out
    assert "[-conv1x1/2-]{+avgpool2x2/2 + conv1x1+}" in out


def test_all_shows_equal_rows():
    terse = diff("resnet50", "resnet50_vd")
    full = diff("resnet50", "resnet50_vd", "--all")
    assert len(full["stages"]) == 5 > len(terse["stages"])  # layer1..4 and the head
    assert {b["status"] for s in full["stages"] for b in s["blocks"]} == {"same", "changed"}


def test_a_bad_side_is_named():
    for args, side in (
        (["resnet5O", "resnet50"], "A (resnet5O)"),
        (["resnet50", "resnet50@os12"], "B (resnet50@os12)"),
    ):
        result = CliRunner().invoke(cli, ["diff", *args])
        assert result.exit_code == 2
        line = result.output.strip()
        assert line.startswith(f"Error: {side}: ") and "\n" not in line
