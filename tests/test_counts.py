"""MACs, parameters and activations against outside truths: a count written by hand in this file,
torchvision's published GFLOPS, and fvcore's own per-operator counts on the same model."""

import tracemalloc

import pytest
import torch

from resnet_inspect.errors import InspectError
from resnet_inspect.model.build import build
from resnet_inspect.model.names import resolve
from resnet_inspect.numbers.costs import costs
from resnet_inspect.records.walker import walk

from conftest import analysed, records_of
from oracles import hand_stage_macs


@pytest.mark.parametrize(
    "name, h, w, kwargs",
    [
        ("resnet50", 224, 224, {"layers": (3, 4, 6, 3)}),
        ("resnet101", 97, 131, {"layers": (3, 4, 23, 3)}),
        ("resnext50_32x4d", 225, 225, {"layers": (3, 4, 6, 3), "groups": 32, "width_per_group": 4}),
        ("wide_resnet50_2", 160, 96, {"layers": (3, 4, 6, 3), "width_per_group": 128}),
        ("resnet50_vd", 97, 131, {"layers": (3, 4, 6, 3), "deep_stem": (32, 32, 64), "avgpool_shortcut": True}),
        ("resnet50s", 224, 224, {"layers": (3, 4, 6, 3), "deep_stem": (64, 64, 128)}),
        ("resnet50_va", 225, 225, {"layers": (3, 4, 6, 3), "stride_on_1x1": True}),
        ("resnet152", 16384, 16384, {"layers": (3, 8, 36, 3)}),  # no memory for the input is needed
    ],
)
def test_stage_macs_equal_a_hand_count(name, h, w, kwargs):
    expected = hand_stage_macs(h, w, **kwargs)
    result = analysed(name, h, w)
    assert {s.name: s.macs for s in result.stages} == expected
    assert result.macs == sum(expected.values())


# torchvision's model tables, "GFLOPS" column (multiply-accumulates at 224x224), 3 decimals.
TORCHVISION_GMACS = {
    "resnet18": 1.814,
    "resnet34": 3.664,
    "resnet50": 4.089,
    "resnet101": 7.801,
    "resnet152": 11.514,
    "resnext50_32x4d": 4.230,
    "resnext101_32x8d": 16.414,
    "resnext101_64x4d": 15.460,
    "wide_resnet50_2": 11.398,
    "wide_resnet101_2": 22.753,
}


@pytest.mark.parametrize("name, published", TORCHVISION_GMACS.items())
def test_macs_at_224_equal_torchvisions_tables(name, published):
    assert round(analysed(name, 224).macs / 1e9, 3) == published


def test_batch_multiplies_macs_and_activations_not_params():
    one, four = analysed("resnet18", 97), analysed("resnet18", 97, batch=4)
    assert (four.macs, four.activations, four.params) == (4 * one.macs, 4 * one.activations, one.params)


def test_a_huge_input_allocates_nothing():
    record = records_of("resnet152@os8")
    tracemalloc.start()
    result = costs(record, 16384, 16384)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20
    assert result.stages[-2].output == (2048, 2048, 2048)  # 16384 / 8


# --- fvcore, on the same model ----------------------------------------------------------------------

FVCORE_CASES = [
    ("resnet18", 97, 131),
    ("resnet50_vd@os8", 65, 97),
    ("resnet50d@os16", 97, 64),
    ("resnext50_32x4d", 225, 225),
    ("resnet34_vd@os16,grid=1-2-4", 64, 64),
    ("resnet50_va", 71, 71),
]


@pytest.mark.parametrize("name, h, w", FVCORE_CASES)
def test_conv_and_linear_macs_equal_fvcores_per_stage(name, h, w):
    fvcore = pytest.importorskip("fvcore.nn")
    model = build(resolve(name), device="cpu", init=True)
    x = torch.randn(1, 3, h, w)
    flops = fvcore.FlopCountAnalysis(model, x)
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    per_module = flops.by_module_and_operator()
    result = costs(walk(model, name), h, w)

    def conv_linear(module):
        ops = per_module[module]
        return ops.get("conv", 0) + ops.get("linear", 0) + ops.get("addmm", 0)

    for stage in result.stages:
        if stage.name.startswith("layer"):
            assert stage.macs == conv_linear(stage.name), stage.name
    assert result.macs == conv_linear("")
    activations = fvcore.ActivationCountAnalysis(model, x)
    activations.unsupported_ops_warnings(False)
    assert result.activations == activations.total()


def test_parameters_per_stage_add_up_to_the_module():
    result = analysed("resnext101_vd_64x4d", 224)
    assert sum(s.params for s in result.stages) == result.params
    model = build(resolve("resnext101_vd_64x4d"))
    assert result.stages[1].params == sum(p.numel() for p in model.layer1.parameters())


# --- bad sizes ---------------------------------------------------------------------------------------


def test_inputs_too_small_for_unpadded_layers_are_refused():
    from torch import nn

    class Unpadded(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 7, 2)

            class Block(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(8, 8, 3)
                    self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
                    self.downsample = nn.Sequential(nn.Conv2d(8, 8, 3))

            self.layer1 = nn.Sequential(Block())

    record = walk(Unpadded())
    # 11 -> 7x7/2 unpadded: (11 - 7) // 2 + 1 = 3 -> 3x3 unpadded: 1
    assert costs(record, 11, 11).stages[1].output == (8, 1, 1)
    # 10 -> (10 - 7) // 2 + 1 = 2 -> 3x3 unpadded: 0
    with pytest.raises(InspectError, match="too small.*layer1.0.conv1 would produce 0x0 from 2x2"):
        costs(record, 10, 10)


@pytest.mark.parametrize("h, w, batch", [(0, 224, 1), (224, -1, 1), (224, 224, 0)])
def test_non_positive_sizes_and_batches_are_refused(h, w, batch):
    with pytest.raises(InspectError):
        analysed("resnet18", h, w, batch)


def test_many_names_at_once_equal_one_at_a_time():
    # the zoo table walks names that build the same layers once; the numbers must be those of each
    # name on its own
    from resnet_inspect.api import list_names, zoo

    names = list_names()[:12] + ["resnet50d", "resnet50_vd", "resnet50c", "resnet50_vc"]
    together = zoo(names, (97, 131), batch=2)
    assert together == [analysed(name, 97, 131, batch=2) for name in names]
    assert [c.model for c in together] == names
