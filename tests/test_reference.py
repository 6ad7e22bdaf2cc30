"""Every timm ResNet-family model and torchvision's ResNets and detection/segmentation backbones, against
the models themselves: parameters (sum of numel), MACs (torch's FlopCounterMode / 2, on meta tensors,
eval mode), stage output shapes (forward hooks) and strides (timm's feature_info reductions). CI runs
these in the reference venv, where they must not skip (conftest.reference)."""

from __future__ import annotations

import fnmatch

import pytest
import torch

import resnet_inspect as ri

from conftest import reference

PATTERNS = (
    "resnet*",
    "resnext*",
    "wide_resnet*",
    "seresnet*",
    "seresnext*",
    "ecaresnet*",
    "resnetrs*",
    "resnetblur*",
    "resnetaa*",
    "resnest*",
    "res2net*",
    "res2next*",
    "resnetv2*",
    "skresnet*",
    "legacy_se*",
)


def _timm_names() -> list[str]:
    try:
        import timm
    except ImportError:
        return ["(timm is not installed)"]
    names = {n for pattern in PATTERNS for n in timm.list_models(pattern)}
    return sorted(n for n in names if not fnmatch.fnmatch(n, "*clip*") or n.startswith("resnet"))


def measured(model, size=224):
    """The model itself: parameters, FlopCounterMode MACs and every module's output shape."""
    from torch.utils.flop_counter import FlopCounterMode

    shapes = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, i, o, n=n: shapes.__setitem__(n, tuple(o.shape[1:])) if torch.is_tensor(o) else None
        )
        for n, m in model.named_modules()
    ]
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, size, size, device="meta"))
    for hook in hooks:
        hook.remove()
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2, shapes


def check(model, label, size=224):
    params, macs, shapes = measured(model, size)
    report = ri.inspect(model, input=size)
    assert report.costs.complete, report.costs.uncounted
    assert (report.params, report.macs) == (params, macs), label
    assert report.record is not None, f"{label} did not read as a ResNet: {report.costs.notes}"
    assert report.costs.notes == (), report.costs.notes  # counted by the rules, not by a forward pass
    for part in report.costs.stages[1:-1]:
        assert part.output == shapes[part.name], (label, part.name)
    for part in report.costs.blocks:
        assert part.output == shapes[part.name], (label, part.name)
    return report


@pytest.mark.reference
@pytest.mark.parametrize("name", _timm_names())
def test_timm_resnet_family(name):
    timm = reference("timm")
    with torch.device("meta"):
        model = timm.create_model(name)
    report = check(model, name)
    reductions = {
        info["module"]: info["reduction"]
        for info in model.feature_info
        if info["module"] in dict(model.named_modules())
    }
    for part in report.costs.stages[1:-1]:
        if part.name in reductions:
            assert part.stride == reductions[part.name], (name, part.name)
    assert report.output_stride == model.feature_info[-1]["reduction"]


TORCHVISION = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
]


@pytest.mark.reference
@pytest.mark.parametrize("frozen", [False, True], ids=["bn", "frozen-bn"])
@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_resnets(name, frozen):
    models = reference("torchvision.models")
    from torchvision.ops.misc import FrozenBatchNorm2d

    with torch.device("meta"):
        model = getattr(models, name)(**({"norm_layer": FrozenBatchNorm2d} if frozen else {}))
    check(model, name)


@pytest.mark.reference
@pytest.mark.parametrize("name", ["deeplabv3_resnet50", "deeplabv3_resnet101", "fcn_resnet50", "fcn_resnet101"])
def test_torchvision_segmentation_backbones(name):
    segmentation = reference("torchvision.models.segmentation")
    with torch.device("meta"):
        backbone = getattr(segmentation, name)(weights=None, weights_backbone=None).backbone
    report = check(backbone, name, size=225)
    assert report.output_stride == 8 and report.costs.trunk.output[1:] == (29, 29)  # ceil(225 / 8)


def fpn_macs(channels, sizes, out=256):
    """An FPN written from its definition: a 1x1 lateral (bias) and a 3x3 output conv per level."""
    return sum(s * s * out * c + s * s * out * out * 9 for c, s in zip(channels, sizes))


@pytest.mark.reference
@pytest.mark.parametrize("frozen", [False, True], ids=["bn", "frozen-bn"])
def test_torchvision_fpn_backbone(frozen):
    reference("torchvision")
    from torchvision.models import resnet50
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops.misc import FrozenBatchNorm2d

    with torch.device("meta"):
        trunk = resnet50(**({"norm_layer": FrozenBatchNorm2d} if frozen else {}))
        model = _resnet_fpn_extractor(trunk, 3)
    params, macs, _ = measured(model)
    report = ri.inspect(model, input=224)
    body = 4_089_184_256 - 2048 * 1000  # torchvision's resnet50 without its classifier
    assert report.macs == macs == body + fpn_macs((256, 512, 1024, 2048), (56, 28, 14, 7))
    assert report.params == params and report.costs.complete
    assert [(s.name, s.output, s.stride) for s in report.stages] == [
        ("body", (2048, 7, 7), 32),  # layer4, the last of the body's maps
        ("fpn", (256, 4, 4), 64),  # the extra max-pooled level
    ]


def gradient_extent(model, stage, size=64):
    """Rows and columns of the input that reach one unit of `stage` (its centre), by gradient. All conv
    weights positive and max-pools made average pools of the same geometry, in float64: every path adds
    a positive amount (norms pass it on), so a pixel reaches the unit exactly when it lies in the unit's field."""
    model = model.eval().double()
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.MaxPool2d):
                setattr(module, child_name, torch.nn.AvgPool2d(child.kernel_size, child.stride, child.padding))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(1.0)  # timm zero-initialises each block's last norm
    x = torch.ones(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    outputs = {}
    hook = model.get_submodule(stage).register_forward_hook(lambda m, i, o: outputs.__setitem__("y", o))
    model(x)
    hook.remove()
    y = outputs["y"]
    y[0, :, y.shape[2] // 2, y.shape[3] // 2].sum().backward()
    touched = x.grad[0].abs().sum(0) > 0
    return int(touched.any(1).sum()), int(touched.any(0).sum())


@pytest.mark.reference
def test_squeeze_excitation_makes_the_field_the_whole_input():
    timm = reference("timm")
    se = timm.create_model("seresnet18")
    plain = timm.create_model("resnet18")
    fields = {name: ri.inspect(model, input=64).receptive_fields for name, model in (("se", se), ("plain", plain))}
    # layer1's 3x3s at jump 4 see a field of 43 pixels (the stem's 11 + 4 x 2 x 4); the SE gate's global
    # pool makes every unit of seresnet18's layer1 depend on all 64 x 64 pixels
    assert fields["plain"].stage("layer1").size == 43 and not fields["plain"].stage("layer1").whole_input
    assert gradient_extent(plain, "layer1") == (43, 43)
    assert fields["se"].stage("layer1").whole_input and fields["se"].stem.whole_input is False
    assert gradient_extent(se, "layer1") == (64, 64)
    data = ri.inspect(se, input=64).to_dict()["rf"]
    assert data["stages"][0]["global"] is True and data["stem"]["global"] is False and data["complete"] is True


def _variant_names():
    from resnet_inspect.model.names import LISTED

    extra = ("resnetaa50", "resnetblur18", "resnetaa34d", "resnetblur50d", "seresnet18", "resnetrs152", "resnetv2_50t")
    return [*LISTED["timm variants"], *extra]


def _randomised(model):
    """Weights, biases and batch-norm statistics drawn at random (seed 0), so that a forward tells apart
    any two different networks."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                values = torch.randn(tensor.shape, generator=generator) * 0.05
                tensor.copy_(values.abs() + 0.5 if "running_var" in name else values)
    return model.eval()


@pytest.mark.reference
@pytest.mark.parametrize("os_", [32, 8])
@pytest.mark.parametrize("name", _variant_names())
def test_native_variants_are_timms(name, os_):
    timm = reference("timm")
    kwargs = {} if os_ == 32 else {"output_stride": os_}
    label = name if os_ == 32 else f"{name}@os{os_}"
    with torch.device("meta"):
        theirs = timm.create_model(name, **kwargs)
    ours = ri.build(label)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    params, macs, _ = measured(theirs, 225)
    report = ri.inspect(label, input=225)
    assert (report.params, report.macs) == (params, macs)
    if os_ == 32 and name in (
        "seresnet50",
        "ecaresnet26t",
        "resnetblur50",
        "resnetrs50",
        "resnetv2_50d",
        "resnet50_gn",
    ):
        real = _randomised(timm.create_model(name))
        mine = ri.build(label, device="cpu")
        mine.load_state_dict(real.state_dict(), strict=True)
        x = torch.randn(2, 3, 97, 97, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            assert torch.equal(real(x), mine.eval()(x))
