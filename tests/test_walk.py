"""The walker reads records off real modules: a ResNet written by hand in this file, and
hand-derived tables for resnext50_32x4d, resnet50_vd and the dilation conventions."""

import pytest
from torch import nn

import resnet_inspect as ri
from resnet_inspect.errors import InspectError
from resnet_inspect.model.build import build
from resnet_inspect.model.names import resolve
from resnet_inspect.numbers.costs import costs
from resnet_inspect.records.types import Downsample
from resnet_inspect.records.walker import walk


def records(name):
    return walk(build(resolve(name)), name)


# --- a ResNet built by hand: other class names, torchvision's attribute names -------------------


class HandBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, project, groups=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = (
            nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
            if project
            else None
        )


class HandNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 5, 2, 2, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(HandBottleneck(16, 8, 1, True), HandBottleneck(32, 8, 1, False))
        self.layer2 = nn.Sequential(HandBottleneck(32, 16, 2, True, groups=4))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)


def test_walks_a_hand_written_resnet():
    record = walk(HandNet(), "hand")
    assert record.stem.convs == ("5x5/2",) and record.stem.widths == (16,)
    assert record.stem.pool == "max 3x3/2" and record.stem.stride == 4
    assert record.stages == ("layer1", "layer2")
    first, second, third = record.blocks
    assert (first.inplanes, first.planes, first.width, first.outplanes, first.stride) == (16, 8, 8, 32, 1)
    assert first.downsample == Downsample("conv", 1)
    assert second.downsample is None and second.inplanes == 32
    # width 16 in 4 groups = 4 channels per group at 16 planes: base_width = 4 * 64 / 16 = 16
    assert (third.stride, third.stride_at, third.groups, third.base_width) == (2, "3x3", 4, 16)
    assert third.downsample == Downsample("conv", 2)
    # 1x1 16->8, 3x3 8->8, 1x1 8->32, projection 16->32, and a BN (2 per channel) after each
    assert first.params == 16 * 8 + 8 * 8 * 9 + 8 * 32 + 16 * 32 + 2 * (8 + 8 + 32 + 32)
    assert record.params == sum(p.numel() for p in HandNet().parameters())
    assert [op.kind for op in record.head] == ["adaptive_avgpool", "linear"]
    assert record.unrecognised == ()


def test_the_walk_reads_modules_not_the_spec():
    model = build(resolve("resnet50"))
    model.layer2[0].conv2 = nn.Conv2d(128, 128, 3, 1, 2, dilation=2, groups=2, bias=False, device="meta")
    block = walk(model).blocks[3]
    assert (block.stride, block.dilation, block.groups, block.stride_at) == (1, 2, 2, None)


class Gate(nn.Module):  # a layer no rule describes
    def forward(self, x):
        return x


def test_unknown_layers_are_probed_not_ignored():
    model = build(resolve("resnet18"))
    model.layer1[0].gate = Gate()
    record = walk(model)
    assert [(op.name, op.kind, op.module) for op in record.probed] == [("layer1.0.gate", "probed", "Gate")]
    # without a probe the totals say they are incomplete; the API probes it (a no-op: nothing is missing)
    alone = costs(record, 224, 224)
    assert not alone.complete and [u.module for u in alone.uncounted] == ["layer1.0.gate"]
    report = ri.inspect(model, input=224)
    assert report.costs.complete and report.macs == alone.macs == 1_814_073_344


def test_a_module_without_residual_stages_is_explained():
    plain = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
    with pytest.raises(InspectError, match="does not read as a ResNet"):
        walk(plain)


# --- hand-derived tables ---------------------------------------------------------------------


def first_blocks(record):
    return {b.stage: b for b in record.blocks if b.index == 0}


def test_resnext50_32x4d_table():
    record = records("resnext50_32x4d")
    assert (record.stem.kind, record.stem.convs, record.stem.widths) == ("classic", ("7x7/2",), (64,))
    # (inplanes, planes, width = int(planes * 4 / 64) * 32, outplanes, stride, groups, base_width)
    expected = {
        "layer1": (64, 64, 128, 256, 1, 32, 4, Downsample("conv", 1)),
        "layer2": (256, 128, 256, 512, 2, 32, 4, Downsample("conv", 2)),
        "layer3": (512, 256, 512, 1024, 2, 32, 4, Downsample("conv", 2)),
        "layer4": (1024, 512, 1024, 2048, 2, 32, 4, Downsample("conv", 2)),
    }
    for stage, b in first_blocks(record).items():
        assert (
            b.inplanes,
            b.planes,
            b.width,
            b.outplanes,
            b.stride,
            b.groups,
            b.base_width,
            b.downsample,
        ) == expected[stage]
        assert b.stride_at == ("3x3" if b.stride == 2 else None)  # torchvision V1.5
    later = [b for b in record.blocks if b.index > 0]
    assert all(b.downsample is None and b.stride == 1 and b.inplanes == b.outplanes for b in later)
    assert [len([b for b in record.blocks if b.stage == s]) for s in record.stages] == [3, 4, 6, 3]


def test_resnet50_vd_table():
    record = records("resnet50_vd")
    assert record.stem.kind == "deep"
    assert record.stem.convs == ("3x3/2", "3x3", "3x3") and record.stem.widths == (32, 32, 64)
    assert record.stem.pool == "max 3x3/2"
    expected = {  # Paddle: layer1's first block projects 64 -> 256 with a plain 1x1 (if_first)
        "layer1": (64, 64, 256, 1, Downsample("conv", 1)),
        "layer2": (256, 128, 512, 2, Downsample("avgpool+conv", 2)),
        "layer3": (512, 256, 1024, 2, Downsample("avgpool+conv", 2)),
        "layer4": (1024, 512, 2048, 2, Downsample("avgpool+conv", 2)),
    }
    for stage, b in first_blocks(record).items():
        assert (b.inplanes, b.planes, b.outplanes, b.stride, b.downsample) == expected[stage]
    pool = first_blocks(record)["layer2"].shortcut[0]
    assert (pool.kind, pool.kernel, pool.stride, pool.ceil_mode) == ("avgpool", (2, 2), (2, 2), True)


def test_resnet50_va_puts_the_stride_on_the_first_1x1():
    for b in first_blocks(records("resnet50_va")).values():
        assert b.stride_at == ("1x1" if b.stride == 2 else None)


def test_resnet18_vd_projects_its_first_stage():
    b = first_blocks(records("resnet18_vd"))["layer1"]
    assert (b.inplanes, b.outplanes, b.downsample) == (64, 64, Downsample("conv", 1))
    assert first_blocks(records("resnet18d"))["layer1"].downsample is None


def dilations(record, stage):
    return [b.dilations for b in record.blocks if b.stage == stage]


def strides(record, stage):
    return [b.stride for b in record.blocks if b.stage == stage]


def test_output_stride_16_torchvision_convention():
    r = records("resnet50@os16")
    assert strides(r, "layer4") == [1, 1, 1]
    assert dilations(r, "layer4") == [(1,), (2,), (2,)]  # the first block keeps the old rate
    assert dilations(r, "layer3") == [(1,)] * 6
    assert first_blocks(r)["layer4"].downsample == Downsample("conv", 1)


def test_output_stride_8_torchvision_convention():
    r = records("resnet101@os8")
    assert strides(r, "layer3") == [1] * 23 and strides(r, "layer4") == [1, 1, 1]
    assert dilations(r, "layer3") == [(1,)] + [(2,)] * 22
    assert dilations(r, "layer4") == [(2,), (4,), (4,)]


def test_output_stride_paddle_convention():
    r16 = records("resnet50_vd@os16")
    assert dilations(r16, "layer4") == [(2,), (2,), (2,)]
    r8 = records("resnet50_vd@os8")
    assert dilations(r8, "layer3") == [(2,)] * 6 and dilations(r8, "layer4") == [(4,)] * 3
    # where the stride became 1 Paddle uses no avg-pool: a plain 1x1 conv
    assert first_blocks(r8)["layer3"].downsample == Downsample("conv", 1)
    assert first_blocks(r8)["layer2"].downsample == Downsample("avgpool+conv", 2)


def test_timm_d_keeps_a_same_padded_pool_in_dilated_shortcuts():
    b = first_blocks(records("resnet50d@os8"))["layer3"]
    assert b.downsample == Downsample("avgpool+conv", 1)
    assert (b.shortcut[0].kind, b.shortcut[0].kernel, b.shortcut[0].stride) == (
        "avgpool_same",
        (2, 2),
        (1, 1),
    )
    assert b.dilations == (1,)


def test_dilation_style_override_switches_conventions():
    r = records("resnet50@os8,dilation=paddle")
    assert dilations(r, "layer3") == [(2,)] * 6


def test_multi_grid_multiplies_the_last_stage():
    assert dilations(records("resnet50_vd@os16,grid=1-2-4"), "layer4") == [(2,), (4,), (8,)]
    assert dilations(records("resnet50_vd@os8,grid=1-2-4"), "layer4") == [(4,), (8,), (16,)]
    # torchvision convention: the rate each block would have (1, 2, 2) times the grid
    assert dilations(records("resnet50@os16,grid=1-2-4"), "layer4") == [(1,), (4,), (8,)]


def test_basic_blocks_dilate_both_convs():
    r = records("resnet18@os8")
    assert dilations(r, "layer3") == [(1, 2), (2, 2)]
    assert dilations(r, "layer4") == [(2, 4), (4, 4)]
    assert dilations(records("resnet18_vd@os8"), "layer4") == [(4, 4), (4, 4)]


class Excite(nn.Module):  # a side branch: pooled, squeezed, multiplied back
    def __init__(self, channels):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // 4, 1)
        self.fc2 = nn.Conv2d(channels // 4, channels, 1)

    def forward(self, x):
        return x * self.fc2(self.fc1(x.mean((2, 3), keepdim=True))).sigmoid()


def test_composite_layers_are_counted_alone_not_read_as_a_chain():
    # read as a chain, fc1/fc2 would be counted at full resolution: numbers that look right and are not
    model = build(resolve("resnet50"))
    block = model.layer1[0]
    block.bn3 = nn.Sequential(block.bn3, Excite(256).to("meta"))  # gate after bn3, as SE sits
    record = walk(model)
    assert [op.name for op in record.probed] == ["layer1.0.bn3.1"]
    assert [op.name for op in record.blocks[0].main if op.kind == "conv"] == [
        "layer1.0.conv1",
        "layer1.0.conv2",
        "layer1.0.conv3",
    ]
    assert record.blocks[0].params == 75_008 + (256 * 64 + 64) + (64 * 256 + 256)  # counted as parameters
    # counted from a forward pass of it alone: fc1 and fc2 on the pooled 1 x 1 map, 256 x 64 each
    report = ri.inspect(model, input=224)
    assert report.costs.complete and report.costs.notes == ()
    assert report.macs == 4_089_184_256 + 2 * 256 * 64


def test_a_module_read_but_never_called_is_caught_by_a_forward_pass():
    model = build(resolve("resnet50"))
    model.layer1[0].gate = Excite(256).to("meta")  # an attribute the block's forward never calls
    report = ri.inspect(model, input=224)
    assert report.macs == 4_089_184_256 and report.output_stride == 32  # what actually runs
    assert any("was not used" in note for note in report.costs.notes)
