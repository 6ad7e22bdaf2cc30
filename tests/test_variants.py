"""The family beyond the plain ResNet, built natively: squeeze-excitation, ECA, anti-aliasing, the tiered
stem, ResNet-RS, pre-activation ResNetV2, GroupNorm, frozen batch norm and the Caffe stem pool,
against counts derived by hand here, forward passes, and the input gradient. (The same names against
timm's own models: tests/test_reference.py.)"""

import math

import pytest
import torch

import resnet_inspect as ri

from conftest import analysed, cli_json, cli_run, records_of
from oracles import bn, hand_params

STAGES = ((256, 3), (512, 4), (1024, 6), (2048, 3))  # a ResNet-50's block outputs and block counts


def se_hidden(channels, reduction=16):
    """timm's make_divisible(C / reduction, 8): the nearest multiple of 8, at least 8."""
    return max(8, int(channels / reduction + 4) // 8 * 8)


def test_squeeze_excitation_adds_two_1x1s_on_the_pooled_map():
    # hidden = 16, 32, 64, 128; fc1 (C -> hidden) and fc2 (hidden -> C) with biases, on a 1 x 1 map
    hidden = {c: se_hidden(c) for c, _ in STAGES}
    assert hidden == {256: 16, 512: 32, 1024: 64, 2048: 128}
    macs = sum(n * 2 * c * hidden[c] for c, n in STAGES)
    params = sum(n * (2 * c * hidden[c] + hidden[c] + c) for c, n in STAGES)
    assert macs == 2_514_944
    se, plain = analysed("seresnet50", 224), analysed("resnet50", 224)
    assert (se.macs - plain.macs, se.params - plain.params) == (macs, params)
    assert se.params == 28_088_024  # timm's seresnet50


def test_eca_adds_a_1d_conv_across_channels():
    # k = the odd number at or above int((log2 C + 1) / 2), at least 3: 256..1024 -> 5, 2048 -> 7
    kernels = {c: max(3, int((math.log2(c) + 1) / 2) | 1) for c, _ in STAGES}
    assert kernels == {256: 5, 512: 5, 1024: 5, 2048: 7}
    eca, plain = analysed("ecaresnet50d", 224), analysed("resnet50d", 224)
    assert eca.macs - plain.macs == sum(n * c * kernels[c] for c, n in STAGES) == 87_808
    assert eca.params - plain.params == sum(n * kernels[c] for c, n in STAGES)


def test_blur_anti_aliasing_moves_the_stride_to_a_blur_pool():
    # each strided block's 3x3 now runs at its input size (H) instead of H/2, then a 3x3 depthwise blur
    # at H/2; the stem gets a stride-1 max-pool and a blur /2 at 56
    extra = 56 * 56 * 64 * 9
    for width, size in ((128, 56), (256, 28), (512, 14)):
        extra += (size * size - (size // 2) ** 2) * width * width * 9 + (size // 2) ** 2 * width * 9
    blur, plain = analysed("resnetblur50", 224), analysed("resnet50", 224)
    assert blur.macs - plain.macs == extra == 1_043_836_416
    assert blur.params == plain.params  # the filter is a fixed buffer
    block = records_of("resnetblur50").blocks[3]
    assert (block.stride, block.stride_at, block.anti_alias) == (2, "blur", "blur")


def test_avg_anti_aliasing_fails_where_the_model_fails():
    # AvgPool2d(2) floors while the avg-pool shortcut ceils: at 200 x 200 layer3 gets 13 vs 12, and the
    # module itself cannot run (timm's resnetaa50d neither)
    with pytest.raises(ri.InspectError, match="branches disagree"):
        ri.inspect("resnetaa50d", input=200)
    model = ri.build("resnetaa50d")
    with pytest.raises(RuntimeError):
        model(torch.empty(1, 3, 200, 200, device="meta"))
    assert ri.inspect("resnetaa50d", input=225).macs > 0


def test_tiered_stem_and_resnet_rs():
    # deep_tiered: 3x3/2 24, 3x3 32, 3x3 64
    assert records_of("resnet50t").stem.widths == (24, 32, 64)
    assert analysed("resnet50t", 224).params == hand_params((3, 4, 6, 3), deep_stem=(24, 32, 64))
    # ResNet-RS: resnet50d + a strided 3x3 conv (64 -> 64) + BN in place of the max-pool + SE at C / 4
    rs, d = analysed("resnetrs50", 224), analysed("resnet50d", 224)
    pool_conv = 56 * 56 * 9 * 64 * 64
    se = sum(n * 2 * c * (c // 4) for c, n in STAGES)
    assert rs.macs - d.macs == pool_conv + se == 125_665_280
    assert rs.params - d.params == 9 * 64 * 64 + bn(64) + sum(n * (2 * c * (c // 4) + c // 4 + c) for c, n in STAGES)


def preact_params(layers, deep_stem=None, classes=1000):
    """A pre-activation ResNet (timm's ResNetV2) from its description: BN before each conv on that
    conv's input, no BN after the stem's last conv nor in the shortcut, one BN after the last stage,
    a 1x1 conv classifier with bias."""
    if deep_stem:
        a, b, c = deep_stem
        total, inplanes = 3 * a * 9 + bn(a) + a * b * 9 + bn(b) + b * c * 9, c
    else:
        total, inplanes = 3 * 64 * 49, 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        out = planes * 4
        for i in range(blocks):
            total += bn(inplanes) + inplanes * planes + bn(planes) + planes * planes * 9 + bn(planes) + planes * out
            if i == 0:
                total += inplanes * out
            inplanes = out
    return total + bn(inplanes) + inplanes * classes + classes


def test_pre_activation_counts_and_layout():
    assert analysed("resnetv2_50", 224).params == preact_params((3, 4, 6, 3)) == 25_549_352
    assert analysed("resnetv2_50d", 224).params == preact_params((3, 4, 6, 3), deep_stem=(32, 32, 64))
    # pre-activation moves no convolution: the MACs are resnet50's and resnet50d's
    assert analysed("resnetv2_50", 224).macs == analysed("resnet50", 224).macs
    assert analysed("resnetv2_50d", 224).macs == analysed("resnet50d", 224).macs
    keys = list(ri.build("resnetv2_50").state_dict())
    assert keys[:3] == [
        "stem.conv.weight",
        "stages.0.blocks.0.downsample.conv.weight",
        "stages.0.blocks.0.norm1.weight",
    ]
    assert keys[-2:] == ["head.fc.weight", "head.fc.bias"]
    assert records_of("resnetv2_50").stages == ("stages.0", "stages.1", "stages.2", "stages.3")


def test_group_norm_and_frozen_batch_norm():
    gn = ri.build("resnet50_gn")
    assert sum(p.numel() for p in gn.parameters()) == 25_557_032  # two per channel, as BN
    assert not any("running" in k for k in gn.state_dict()) and len(gn.state_dict()) == 161
    frozen = ri.build("resnet50@norm=frozen_bn")
    assert sum(p.numel() for p in frozen.parameters()) == 25_557_032 - 53_120  # BN's weights become buffers
    assert "bn1.running_var" in frozen.state_dict() and "bn1.num_batches_tracked" not in frozen.state_dict()
    with pytest.raises(ri.InspectError, match="gn divides channels into 32 groups; 24 do not divide"):
        ri.build("resnet50t@norm=gn")


def test_caffe_stem_pool_of_seed_002():
    # Faster R-CNN's Caffe ResNet-101: stride on the first 1x1 and an unpadded ceil-mode 3x3/2 max-pool:
    # a 301-pixel stem output gives ceil((301 - 3) / 2) + 1 = 150, torch's padded pool 151
    caffe = ri.inspect("resnet101_va@stem_pool=caffe", input=601)
    torch_pool = ri.inspect("resnet101_va", input=601)
    assert caffe.stages[0].output == (64, 150, 150) and torch_pool.stages[0].output == (64, 151, 151)
    model = ri.build("resnet101_va", stem_pool="caffe")
    stem = model.maxpool(model.conv1(torch.empty(1, 3, 601, 601, device="meta")))
    assert tuple(stem.shape) == (1, 64, 150, 150)
    data = cli_json("flops", "resnet101_va", "--stem-pool", "caffe", "--split", "c4", "--input", "600x1000")
    assert data["base"]["output"] == [1024, 38, 63] and data["base"]["stride"] == 16


def test_combinations_through_the_one_grammar():
    assert ri.resolve("resnext50_32x4d@attn=se") == ri.resolve("seresnext50_32x4d")
    assert ri.resolve("resnet50d", attention="eca") == ri.resolve("ecaresnet50d")
    vd = ri.resolve("resnet101_vd", attention="eca", anti_alias="blur")
    assert (vd.attention, vd.anti_alias, vd.dilation_style) == ("eca", "blur", "paddle")
    data = cli_json("show", "resnet101_vd", "--attn", "se", "--aa", "avg", "--format", "json")
    assert data["blocks"][3]["attention"] == "se" and data["blocks"][3]["anti_alias"] == "avgpool"
    assert data["blocks"][0]["anti_alias"] is None  # layer1.0 does not stride
    for text, fragment in (
        ("resnetv2_50@attn=se", "@attn do not apply to pre-activation networks"),
        ("resnet50_va@aa=blur", "@aa needs the stride on the 3x3"),
        ("resnetrs77", "ResNet-RS has depths 50, 101"),
    ):
        result = cli_run("show", text, ok=False)
        assert result.exit_code == 2 and fragment in result.output


def meta_shapes(name, height, width):
    """Every block's output shape in a forward pass on meta tensors."""
    model = ri.build(name)
    shapes = {}
    for block in records_of(name).blocks:
        model.get_submodule(block.name).register_forward_hook(
            lambda m, i, o, n=block.name: shapes.__setitem__(n, tuple(o.shape[1:]))
        )
    model.eval()
    logits = model(torch.empty(1, 3, height, width, device="meta"))
    return shapes, tuple(logits.shape[1:])


@pytest.mark.parametrize(
    "name",
    [
        "seresnext50_32x4d@os8",
        "ecaresnet26t",
        "resnetblur50@os16",
        "resnetaa50d@os8",
        "resnetrs50",
        "resnetv2_50d@os16",
        "resnetv2_101@os8",
        "resnet10t",
        "resnet101_va@stem_pool=caffe",
    ],
)
def test_shapes_equal_a_forward_pass(name):
    for height, width in ((225, 225), (97, 131), (513, 513)):
        try:
            costs = analysed(name, height, width)
        except ri.InspectError:  # only where the module itself cannot run (avg anti-aliasing, odd maps)
            with pytest.raises(RuntimeError):
                meta_shapes(name, height, width)
            continue
        shapes, logits = meta_shapes(name, height, width)
        assert {b.name: b.output for b in costs.blocks} == shapes, (name, height, width)
        assert costs.stages[-1].output in (logits, (*logits, 1, 1))


def test_built_on_cpu_they_run():
    model = ri.build("resnetblur18", device="cpu", init=True)
    blur = model.maxpool[1]
    assert torch.equal(blur.filt[0, 0], torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    for name in ("resnetblur18", "seresnet18", "resnetv2_18@norm=gn", "resnet18@norm=frozen_bn"):
        out = ri.build(name, device="cpu", init=True).eval()(torch.randn(2, 3, 64, 64))
        assert out.shape == (2, 1000) and torch.isfinite(out).all(), name


def test_an_attention_gate_makes_the_field_the_whole_input():
    # the analytic mark against the input gradient of one unit: positive weights, average pools,
    # float64, so a pixel reaches the unit exactly when it lies in its field
    from test_shapes_rf import positive

    for name, whole in (("resnet18", False), ("seresnet18", True), ("ecaresnet26t", True)):
        model = positive(ri.build(name, device="cpu", init=True))
        x = torch.ones(1, 3, 64, 64, dtype=torch.float64, requires_grad=True)
        y = model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))
        y[0, :, 8, 8].sum().backward()
        touched = int((x.grad[0].abs().sum(0) > 0).sum())
        field = ri.inspect(name, input=64).receptive_fields.stage("layer1")
        assert field.whole_input is whole and (touched == 64 * 64) is whole, name
        if not whole:
            assert touched == field.size**2


def test_notes_and_tables_show_attention_and_anti_aliasing():
    notes = cli_run("show", "seresnextaa101d_32x8d", "--format", "notes").output
    # width = 128 planes x 8 / 64 x 32 groups; the stride sits on the anti-aliasing pool after the 3x3
    assert (
        "Bottleneck1(inplanes=256, planes=128, width=512, stride=2 (on aa, an average pool), downsample, "
        "groups=32, base_width=8, dilation=1, " in notes
    )
    assert "attention=se, anti_alias=avgpool)" in notes
    table = cli_run("show", "seresnet50", "--input", "224").output
    row = next(line.split() for line in table.splitlines() if line.startswith("0 ") and " 256 " in line)
    assert "se" in row
    names = {row["name"] for row in cli_json("list")}
    assert names >= {"seresnet50", "resnetv2_50", "resnetrs101", "resnet50_gn", "resnetblur50", "ecaresnet26t"}
