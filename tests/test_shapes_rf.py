"""Predicted shapes against actual forward passes, and analytic receptive fields against the
input-gradient of one output unit."""

import pytest
import torch
from torch import nn

from resnet_inspect.model.build import build
from resnet_inspect.model.names import resolve
from resnet_inspect.numbers.fields import receptive_fields

from conftest import analysed, records_of


def forward_block_shapes(model, h, w, device):
    """Run the module and record every block's output shape (forward hooks)."""
    shapes = {}
    hooks = [
        block.register_forward_hook(lambda m, i, o, name=f"{stage}.{index}": shapes.__setitem__(name, o.shape[1:]))
        for stage in ("layer1", "layer2", "layer3", "layer4")
        for index, block in enumerate(getattr(model, stage))
    ]
    with torch.no_grad():
        logits = model(torch.zeros(1, 3, h, w, device=device))
    for hook in hooks:
        hook.remove()
    return {k: tuple(v) for k, v in shapes.items()}, tuple(logits.shape[1:])


def predicted(name, h, w):
    result = analysed(name, h, w)
    return {b.name: b.output for b in result.blocks}, result.stages[-1].output


VARIANTS = [
    "resnet18",
    "resnet50",
    "resnet50_vd",
    "resnet50d",
    "resnext50_32x4d",
    "resnet50_va",
    "resnet34_vd",
]
SIZES = [(224, 224), (513, 513), (225, 225), (97, 131), (512, 1024)]


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("os_", [8, 16, 32])
def test_shapes_equal_a_forward_pass_on_meta_tensors(name, os_):
    # torch's own shape functions run the real forward code on the meta device: every size, no memory
    full = f"{name}@os{os_}"
    model = build(resolve(full), device="meta")
    for h, w in SIZES:
        blocks, head = forward_block_shapes(model, h, w, "meta")
        assert (blocks, head) == predicted(full, h, w), (full, h, w)


@pytest.mark.parametrize(
    "name, h, w",
    [
        ("resnet18@os8", 97, 131),
        ("resnet50_vd@os16,grid=1-2-4", 65, 97),
        ("resnet50d@os8", 33, 47),
        ("resnext50_32x4d@os16", 225, 225),
        ("resnet50_va", 63, 31),
    ],
)
def test_shapes_equal_a_real_cpu_forward(name, h, w):
    model = build(resolve(name), device="cpu", init=True)
    assert forward_block_shapes(model, h, w, "cpu") == predicted(name, h, w)


def test_deeplab_513_crop():
    # DeepLab's 513 x 513 crop: ceil(513 / 16) = 33 at output stride 16, ceil(513 / 8) = 65 at 8
    for os_, side in ((16, 33), (8, 65)):
        blocks, _ = predicted(f"resnet101@os{os_}", 513, 513)
        assert blocks["layer4.2"] == (2048, side, side)
        blocks, _ = predicted(f"resnet101_vd@os{os_}", 513, 513)
        assert blocks["layer4.2"] == (2048, side, side)


# --- receptive fields --------------------------------------------------------------------------


def positive(model):
    """The model in float64 and eval mode with every conv weight positive and max-pools made average
    pools of the same geometry: every path then adds a positive amount to a unit's input gradient."""
    model = model.double().eval()
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.MaxPool2d):
                pool = nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode)
                setattr(module, child_name, pool)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
    return model


def measured_rows(name, stage, unit, height, width=8):
    """Rows of the input that influence one unit of `stage` (first and last), by gradient.

    All conv weights positive, max-pools replaced by average pools of the same geometry, float64:
    every path adds a positive amount, so a row is non-zero exactly when it is in the field."""
    model = positive(build(resolve(name), device="cpu", init=True))
    x = torch.ones(1, 3, height, width, dtype=torch.float64, requires_grad=True)
    y = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        y = getattr(model, layer)(y)
        if layer == stage:
            break
    y[0, 0, unit, y.shape[3] // 2].backward()
    rows = (x.grad[0].abs().sum(dim=(0, 2)) > 0).nonzero().flatten()
    return rows.min().item(), rows.max().item()


RF_CASES = [
    ("resnet50", "layer4"),
    ("resnet50", "layer2"),
    ("resnet50_va", "layer4"),
    ("resnet18@os8", "layer4"),
    ("resnet18_vd@os16", "layer3"),
    ("resnet50_vd", "layer4"),  # deep stem + avg-pool shortcut (misaligned by half a jump)
    ("resnet50_vd@os8", "layer4"),
    ("resnet50_vd@os16,grid=1-2-4", "layer4"),  # multi-grid
    ("resnet50d@os8", "layer3"),  # timm's same-padded pool in dilated shortcuts
    ("resnet50d@os16", "layer4"),
    ("resnext50_32x4d@os16", "layer4"),
    ("resnet101@os8,grid=1-2-4", "layer4"),
]


@pytest.mark.parametrize("name, stage", RF_CASES)
def test_receptive_field_equals_the_gradient_extent(name, stage):
    report = receptive_fields(records_of(name))
    row = next(r for r in report.stages if r.name == stage)
    unit = row.padding // row.stride + 2  # a unit whose whole field lies inside the input
    first = unit * row.stride - row.padding
    height = first + row.size + 2 * row.stride
    low, high = measured_rows(name, stage, unit, height)
    assert (low, high) == (first, first + row.size - 1)
    assert row.center == (low + high) / 2 - unit * row.stride  # unit 0's centre, moved back `unit` jumps


def test_receptive_field_sizes_derived_by_hand():
    # torchvision resnet50: stem 7x7/2 + max-pool 3x3/2 -> 1 + 6 + 2*2 = 11, jump 4; each 3x3 at jump j
    # adds 2j: layer1 3 x 2*4 = 24 -> 35; layer2 2*4 (strided 3x3 at jump 4) + 3 x 2*8 = 56 -> 91;
    # layer3 2*8 + 5 x 2*16 = 176 -> 267; layer4 2*16 + 2 x 2*32 = 160 -> 427.
    report = receptive_fields(records_of("resnet50"))
    assert [r.size for r in (report.stem, *report.stages)] == [11, 35, 91, 267, 427]
    assert [r.stride for r in report.stages] == [4, 8, 16, 32]
    assert all(r.aligned for r in report.blocks)  # 1x1 stride-2 shortcut shares the centre
    # output stride 8 keeps the 3x3s at jump 8: layer3 2*8 + 5*2*16 (dilation 2 at jump 8), ...
    os8 = receptive_fields(records_of("resnet50@os8"))
    assert os8.output_stride == 8 and os8.stages[-1].size == 427  # dilation compensates the stride
    # ResNet-D's avg-pool shortcut looks half a jump to the right of the 3x3 branch
    vd = receptive_fields(records_of("resnet50_vd"))
    first_of_layer2 = next(r for r in vd.blocks if r.name == "layer2.0")
    assert not first_of_layer2.aligned
