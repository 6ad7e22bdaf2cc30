"""Built modules against outside truths: torchvision's published parameter counts, parameter counts
derived by hand from the papers' layer tables, and state-dict names written out in this file."""

import pytest
import torch

from resnet_inspect.errors import InspectError
from resnet_inspect.model.build import build
from resnet_inspect.model.names import resolve

from conftest import reference
from oracles import expected_keys, hand_params

# torchvision's model tables ("Params" column of each weights enum / docs page).
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
}


def params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, published", TORCHVISION_PARAMS.items())
def test_parameter_counts_equal_torchvisions_tables(name, published):
    assert params(build(resolve(name))) == published


@pytest.mark.parametrize(
    "name, expected",
    [
        ("resnet50", hand_params((3, 4, 6, 3))),
        ("resnet26", hand_params((2, 2, 2, 2))),
        ("resnet200", hand_params((3, 24, 36, 3))),
        ("resnext50_32x4d", hand_params((3, 4, 6, 3), groups=32, width_per_group=4)),
        ("resnet50d", hand_params((3, 4, 6, 3), deep_stem=(32, 32, 64))),
        ("resnet50s", hand_params((3, 4, 6, 3), deep_stem=(64, 64, 128))),
        ("resnet50_vd", hand_params((3, 4, 6, 3), deep_stem=(32, 32, 64), project_first=True)),
        ("resnet200_vd", hand_params((3, 12, 48, 3), deep_stem=(32, 32, 64), project_first=True)),
        # Paddle projects the first block of every stage, even 64 -> 64 in a basic-block net:
        (
            "resnet18_vd",
            hand_params((2, 2, 2, 2), bottleneck=False, deep_stem=(32, 32, 64), project_first=True),
        ),
        ("resnet18d", hand_params((2, 2, 2, 2), bottleneck=False, deep_stem=(32, 32, 64))),
        (
            "resnext101_vd_64x4d",
            hand_params((3, 4, 23, 3), groups=64, width_per_group=4, deep_stem=(32, 32, 64), project_first=True),
        ),
        ("resnet50@classes=10", hand_params((3, 4, 6, 3), classes=10)),
        ("resnet50@classes=0", hand_params((3, 4, 6, 3), classes=0)),
    ],
)
def test_parameter_counts_equal_a_hand_params(name, expected):
    assert params(build(resolve(name))) == expected


def test_resnet50_vd_count_is_the_published_resnet_d_figure():
    # ResNet-D's count (timm resnet50d, Paddle ResNet50_vd): 25,576,264.
    assert params(build(resolve("resnet50_vd"))) == 25_576_264
    assert params(build(resolve("resnet50d"))) == 25_576_264


def test_paddle_basic_vd_projects_the_first_stage_timm_does_not():
    # The extra 1x1 conv 64->64 + BN of layer1.0 in Paddle's ResNet18_vd: 64*64 + 2*64.
    assert params(build(resolve("resnet18_vd"))) - params(build(resolve("resnet18d"))) == 64 * 64 + 128


# --- state-dict names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("resnet50", {"layers": (3, 4, 6, 3)}),
        ("resnet18", {"layers": (2, 2, 2, 2), "bottleneck": False}),
        ("resnext101_32x8d", {"layers": (3, 4, 23, 3)}),
        ("resnet50d", {"layers": (3, 4, 6, 3), "deep_stem": True, "avgpool_shortcut": True}),
        ("resnet101c", {"layers": (3, 4, 23, 3), "deep_stem": True}),
        ("resnet34d", {"layers": (3, 4, 6, 3), "deep_stem": True, "avgpool_shortcut": True, "bottleneck": False}),
    ],
)
def test_state_dict_names_are_torchvisions_and_timms(name, kwargs):
    assert list(build(resolve(name)).state_dict()) == expected_keys(**kwargs)


def test_resnet50_shapes_of_a_few_weights():
    sd = build(resolve("resnext50_32x4d")).state_dict()
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["layer1.0.conv2.weight"].shape == (128, 128 // 32, 3, 3)  # width 128, 32 groups
    assert sd["layer2.0.downsample.0.weight"].shape == (512, 256, 1, 1)
    assert sd["layer4.2.conv3.weight"].shape == (2048, 1024, 1, 1)
    assert sd["fc.weight"].shape == (1000, 2048)


# --- devices -------------------------------------------------------------------------------------


def test_meta_build_holds_no_memory():
    model = build(resolve("resnet152"))
    assert all(p.is_meta for p in model.parameters())


def test_cpu_build_with_init_runs_a_forward_pass():
    model = build(resolve("resnet18_vd@os8"), device="cpu", init=True)
    assert all(p.device.type == "cpu" for p in model.parameters())
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 64))
        features = model.forward_features(torch.randn(1, 3, 64, 64))
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()
    assert features.shape == (1, 512, 8, 8)  # 64 / output stride 8


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(InspectError, match="CUDA is not available"):
        build(resolve("resnet50"), device="cuda")


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cpu:0", "", "cuda:\u00b2"])
def test_unknown_devices_are_refused(device):
    with pytest.raises(InspectError, match="device must be cpu, cuda, cuda:N or meta"):
        build(resolve("resnet50"), device=device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_build_runs_a_forward_pass():
    model = build(resolve("resnext50_32x4d@os16"), device="cuda", init=True)
    with torch.no_grad():
        out = model.forward_features(torch.randn(1, 3, 128, 128, device="cuda"))
    assert out.device.type == "cuda" and out.shape == (1, 2048, 8, 8)


# --- the reference implementations themselves, when installed -----------------------------------


@pytest.mark.reference
@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_torchvision_state_dict_loads_strictly(name):
    models = reference("torchvision.models")
    with torch.device("meta"):
        theirs = getattr(models, name)()
    ours = build(resolve(name))
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


@pytest.mark.reference
@pytest.mark.parametrize("name", ["resnet50d", "resnet18d", "resnet50s", "resnext50d_32x4d", "resnet200d"])
def test_timm_state_dict_loads_strictly(name):
    timm = reference("timm")
    with torch.device("meta"):
        theirs = timm.create_model(name)
    ours = build(resolve(name))
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_paddle_counts_bn_statistics_among_parameters():
    # Measured with PaddleSeg 2.8.0's ResNet50_vd on paddle 3.3.1 (backbone, no fc): 23,580,512.
    # Paddle's BN mean and variance are parameters; torch keeps them as buffers.
    model = build(resolve("resnet50_vd"))
    statistics = sum(b.numel() for name, b in model.named_buffers() if "running" in name)
    fc = sum(p.numel() for p in model.fc.parameters())
    assert params(model) - fc + statistics == 23_580_512
