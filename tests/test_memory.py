"""`memory` against what torch really does: the bytes autograd saves, seen by
torch.autograd.graph.saved_tensors_hooks on a real CPU training forward (unique storages, parameters
and buffers excluded, each charged to the part that saves it first); the inference peak, seen by a
dispatch mode that follows every storage's life; gradients and optimizer state after a real step;
and a closed form written in this file for sizes too large to run."""

import contextlib
import re
import textwrap
import tracemalloc
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from resnet_inspect import api
from resnet_inspect.errors import InspectError
from resnet_inspect.numbers import rules
from resnet_inspect.numbers.memory import memory
from resnet_inspect.numbers.sizes import parse_bytes

from conftest import cli_json, cli_run, records_of, reference

AUTOCAST = {"float16": torch.float16, "bfloat16": torch.bfloat16}
HEAD_CHILDREN = (
    "avgpool",
    "fc",
    "global_pool",
    "head",
    "norm",
    "last_linear",
)  # norm: a pre-activation net's final norm
BLOCK = re.compile(r"layer\d+\.\d+|stages\.\d+\.blocks\.\d+")  # torchvision's/ours; timm's ResNetV2/our pre-act


# --- the measurements -------------------------------------------------------------------------------


def part_of(module_name: str) -> str:
    """stem / the block (layerS.B, stages.S.blocks.B) / head, from a module's qualified name
    (torchvision's, timm's and our names)."""
    block = BLOCK.match(module_name)
    if block:
        return block.group(0)
    return "head" if module_name.split(".")[0] in HEAD_CHILDREN else "stem"


def saved_by_part(model: nn.Module, x: torch.Tensor, autocast: str | None = None) -> dict[str, int]:
    """Bytes of every storage autograd saves in one training forward, each counted once and charged
    to the part whose module saved it first; parameters and buffers (and views of them) excluded."""
    weights = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    running: list[str] = []
    seen: set[int] = set()
    parts: dict[str, int] = {}

    def enter(module, args, name):
        running.append(name)

    def leave(module, args, output):
        running.pop()

    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(lambda m, a, name=name: enter(m, a, name)))
            handles.append(module.register_forward_hook(leave))

    def pack(tensor):
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if storage.nbytes() and pointer not in weights and pointer not in seen:
            seen.add(pointer)
            part = part_of(running[-1]) if running else "head"
            parts[part] = parts.get(part, 0) + storage.nbytes()
        return tensor

    context = torch.autocast("cpu", dtype=AUTOCAST[autocast]) if autocast else contextlib.nullcontext()
    try:
        with context, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            output = model(x)
    finally:
        for handle in handles:
            handle.remove()
    del output  # the graph lived until every storage was seen, so no address was reused
    return parts


class LivePeak(TorchDispatchMode):
    """The most bytes of activation storages alive at once: after every aten op, each new output
    storage is registered weakly and the living ones are summed (parameters and buffers excluded)."""

    def __init__(self, model: nn.Module, x: torch.Tensor):
        super().__init__()
        self.weights = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0
        self.add(x)

    def add(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        if storage.nbytes() == 0 or storage.data_ptr() in self.weights:
            return
        ref = StorageWeakRef(storage)
        if ref.cdata not in self.live or self.live[ref.cdata][0].expired():
            self.live[ref.cdata] = (ref, storage.nbytes())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.add(t)
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        self.peak = max(self.peak, sum(n for _, n in self.live.values()))
        return out


def inference_peak(model: nn.Module, x: torch.Tensor) -> int:
    tracker = LivePeak(model, x)
    with torch.no_grad(), tracker:
        model(x)
    return tracker.peak


def freeze_parts(model: nn.Module, freeze_at: int) -> None:
    """detectron2's freeze_at: the stem (every top-level child before layer1 or the stages) and the
    first stages stop training (BN stays in train mode, as a plain BatchNorm2d)."""
    children = list(model.named_children())
    first = next(i for i, (name, _) in enumerate(children) if name.startswith("layer") or name == "stages")
    stages = [m for name, m in children[first:] if name.startswith("layer")] or list(children[first][1].children())
    groups = [[m for _, m in children[:first]]] + [[m] for m in stages]
    for group in groups[:freeze_at]:
        for module in group:
            module.requires_grad_(False)


def real(name: str, **options) -> nn.Module:
    torch.manual_seed(0)
    return api.build(name, device="cpu", init=True, **options)


def ours_by_part(result) -> dict[str, int]:
    parts = {b.name: b.activations_saved_bytes for b in result.blocks}
    parts["stem"] = result.stages[0].activations_saved_bytes
    parts["head"] = result.stages[-1].activations_saved_bytes
    return {k: v for k, v in parts.items() if v}


# --- saved for backward: exact, per block and in total ----------------------------------------------

TRAINING = [
    ("resnet50", 64, 64, 1, "float32", 0),  # plain
    ("resnet50d", 64, 64, 1, "float32", 0),  # ResNet-D: deep stem, avg-pool shortcut
    ("resnet50_vd", 64, 64, 2, "float32", 0),  # Paddle's vd: every stage's first block projects
    ("resnext50_32x4d", 64, 64, 1, "float32", 0),
    ("resnet50@os8", 64, 64, 1, "float32", 0),  # dilated, output stride 8
    ("resnet50_vd@os16,grid=1-2-4", 64, 64, 1, "float32", 0),  # multi-grid
    ("resnet50d@os16", 97, 131, 1, "float32", 0),  # same-padded avg-pool shortcut, odd sizes
    ("resnet18", 97, 131, 2, "float32", 0),  # basic blocks, odd sizes, batch 2
    ("resnet50_va", 33, 47, 1, "float32", 0),  # stride on the 1x1
    ("resnet18@classes=0", 64, 64, 1, "float32", 0),  # no classifier
    ("resnet50", 64, 64, 1, "float32", 1),  # frozen stem
    ("resnet50_vd", 64, 64, 1, "float32", 2),  # frozen stem and layer1
    ("resnet18", 64, 64, 2, "float32", 5),  # the whole trunk frozen: only the classifier saves
    ("resnet50d@os16", 64, 64, 2, "bfloat16", 0),  # autocast
    ("resnet18", 64, 64, 1, "float16", 0),
    ("resnet50", 64, 64, 1, "bfloat16", 2),
]


@pytest.mark.parametrize("name, h, w, batch, dtype, freeze_at", TRAINING)
def test_saved_bytes_equal_what_autograd_saves(name, h, w, batch, dtype, freeze_at):
    model = quick(name).train()
    freeze_parts(model, freeze_at)
    measured = saved_by_part(model, torch.randn(batch, 3, h, w), None if dtype == "float32" else dtype)
    _, result = api.memory(name, (h, w), batch, dtype, freeze_at=freeze_at)
    assert result.complete and not result.uncounted
    assert ours_by_part(result) == measured  # every block, the stem and the head, to the byte
    assert result.activations_saved_bytes == sum(measured.values())
    stages = {s.name: s.activations_saved_bytes for s in result.stages}
    for stage, saved in stages.items():
        assert saved == sum(v for k, v in measured.items() if k == stage or k.startswith(stage + "."))


# --- the grown family: gates, anti-aliasing, other norms and stem pools, pre-activation ----------------


def quick(name: str) -> nn.Module:
    """A real CPU model of one of our names, its weights filled with a constant instead of drawn:
    what autograd saves and what a forward holds depend on shapes, not values (and the biggest of
    these models draw their weights for seconds)."""
    model = api.build(name, device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.01)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
    return model


# Every natively built name of the "timm variants" and combinations: (h, w, batch, dtype, freeze_at)
# of a training forward, and (h, w, batch, dtype) of an inference forward, on the same model. Sizes
# an avg-pool anti-aliased net cannot take (an odd map into AvgPool2d(2)) are replaced by 96x160.
GROWN = [
    ("resnet10t", (97, 131, 2, "float32", 0), (97, 131, 1, "float32")),  # tiered stem, basic blocks
    ("resnet14t", (64, 64, 1, "bfloat16", 1), None),
    ("resnet26t", (64, 64, 2, "float32", 0), None),
    ("resnet50t", (97, 131, 1, "float32", 2), None),
    ("resnet50_gn", (97, 131, 1, "bfloat16", 0), (64, 64, 2, "float32")),  # group norm
    ("seresnet50", (64, 64, 2, "float32", 0), (97, 131, 1, "bfloat16")),  # squeeze-excitation
    ("seresnet152d", (64, 64, 1, "float32", 0), None),
    ("seresnext50_32x4d", (97, 131, 1, "bfloat16", 0), None),
    ("seresnext101_32x8d", (64, 64, 1, "float32", 1), None),
    ("ecaresnet26t", (97, 131, 2, "bfloat16", 0), (97, 131, 2, "float32")),  # ECA
    ("ecaresnet50d", (64, 64, 1, "float32", 1), None),
    ("ecaresnet101d", (64, 64, 1, "bfloat16", 0), None),
    ("resnetaa50d", (96, 160, 2, "bfloat16", 0), (96, 160, 1, "float32")),  # avg anti-aliasing
    ("resnetaa101d", (64, 64, 1, "float32", 0), None),
    ("resnetblur50", (97, 131, 1, "bfloat16", 1), (64, 64, 1, "float32")),  # blur pools, stem and blocks
    ("seresnextaa101d_32x8d", (64, 64, 1, "bfloat16", 2), None),
    ("resnetrs50", (97, 131, 2, "float32", 0), (64, 64, 2, "bfloat16")),  # ResNet-RS: conv stem pool, SE
    ("resnetrs101", (64, 64, 1, "bfloat16", 1), None),
    ("resnetv2_50", (97, 131, 1, "bfloat16", 0), (97, 131, 2, "float32")),  # pre-activation
    ("resnetv2_50d", (64, 64, 2, "float32", 1), (64, 64, 1, "bfloat16")),
    ("resnetv2_101", (64, 64, 1, "float32", 2), None),
    ("resnet101_vd@attn=eca,aa=blur", (97, 131, 1, "bfloat16", 1), (97, 131, 1, "float32")),
    ("resnet50@norm=gn", (64, 64, 2, "bfloat16", 1), None),
    ("resnet50@norm=frozen_bn", (97, 131, 2, "bfloat16", 0), (97, 131, 2, "float32")),  # frozen BN
    ("resnet50@norm=frozen_bn", (64, 64, 1, "float32", 1), (64, 64, 1, "bfloat16")),
    ("resnet101_va@stem_pool=caffe", (97, 131, 1, "float32", 1), (97, 131, 2, "float32")),  # Caffe's pool
    ("resnet18@attn=se,aa=avg", (64, 64, 2, "bfloat16", 0), (64, 64, 2, "float32")),
    ("resnetrs50@aa=blur", (64, 64, 1, "bfloat16", 0), None),  # blur inside the conv stem pool
    ("resnet50d@attn=se,norm=frozen_bn", (64, 64, 1, "bfloat16", 0), (64, 64, 1, "float32")),
    ("resnetv2_50@norm=frozen_bn", (64, 64, 1, "bfloat16", 0), (64, 64, 2, "float32")),
    ("resnetv2_50d@norm=gn", (97, 131, 1, "float32", 0), (97, 131, 1, "float32")),
]


@pytest.mark.parametrize("name, training, inference", GROWN, ids=[f"{g[0]}-{i}" for i, g in enumerate(GROWN)])
def test_the_grown_family_saves_and_peaks_as_measured(name, training, inference):
    model = quick(name).train()
    h, w, batch, dtype, freeze_at = training
    freeze_parts(model, freeze_at)
    measured = saved_by_part(model, torch.randn(batch, 3, h, w), None if dtype == "float32" else dtype)
    _, result = api.memory(name, (h, w), batch, dtype, freeze_at=freeze_at)
    assert result.complete and not result.uncounted
    assert ours_by_part(result) == measured  # every block, the stem and the head, to the byte
    if inference is None:
        return
    h, w, batch, dtype = inference
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    model = model.eval().to(dt)
    peak = inference_peak(model, torch.randn(batch, 3, h, w, dtype=dt))
    _, inferred = api.memory(name, (h, w), batch, dtype, inference=True)
    assert inferred.forward_peak_bytes == peak
    weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    assert inferred.params_bytes + inferred.buffers_bytes == weights  # frozen norms' buffers, blur filters


def test_a_users_resnet_with_other_class_names_and_relus_not_in_place(tmp_path):
    # a ReLU that is not in place saves a new tensor instead of the batch norm's output: the same bytes
    source = tmp_path / "net.py"
    source.write_text(USER_MODEL)
    name = f"{source}:Trunk"
    loaded = api.load(name, device="cpu", trust_code=True)
    model = loaded.module.train()
    measured = saved_by_part(model, torch.randn(2, 3, 40, 56))
    _, result = api.memory(name, (40, 56), 2, trust_code=True)
    assert result.complete and ours_by_part(result) == measured
    _, inferred = api.memory(name, (40, 56), 2, inference=True, trust_code=True)
    assert inferred.forward_peak_bytes is None and not inferred.complete  # its forward() is not known


USER_MODEL = textwrap.dedent(
    """
    import torch.nn as nn

    class Squeeze(nn.Module):
        expansion = 4

        def __init__(self, cin, planes, stride, act=nn.ReLU):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.act = act()
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
            ) if stride != 1 or cin != planes * 4 else None

        def forward(self, x):
            y = self.act(self.bn1(self.conv1(x)))
            y = self.act(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return self.act(y + (x if self.downsample is None else self.downsample(x)))

    class Trunk(nn.Module):
        def __init__(self, width=8, act=nn.ReLU):
            super().__init__()
            self.conv1 = nn.Conv2d(3, width, 3, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.act = nn.ReLU()
            self.layer1 = nn.Sequential(Squeeze(width, width, 1), Squeeze(width * 4, width, 1, act))
            self.layer2 = nn.Sequential(Squeeze(width * 4, width * 2, 2))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(width * 8, 10)

        def forward(self, x):
            x = self.act(self.bn1(self.conv1(x)))
            x = self.layer2(self.layer1(x))
            return self.fc(self.pool(x).flatten(1))

    def silu():
        return Trunk(act=nn.SiLU)
    """
)


USER_LAYOUTS = textwrap.dedent(
    """
    import torch.nn as nn
    from resnet_inspect.model.layers import SqueezeExcite

    class Block(nn.Module):
        def __init__(self, c, norm_last=True, gate=None):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c) if norm_last else nn.Identity()
            self.se = gate
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu((out if self.se is None else self.se(out)) + x)

    class Trunk(nn.Module):
        def __init__(self, block, head_norm=False):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.relu = nn.ReLU(inplace=True)
            self.layer1 = nn.Sequential(block, Block(16))
            self.norm = nn.BatchNorm2d(16) if head_norm else nn.Identity()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = self.layer1(self.relu(self.bn1(self.conv1(x))))
            return self.fc(self.pool(self.norm(x)).flatten(1))

    def no_last_norm():  # conv, bn, ReLU, conv, + x: the second conv's output is the sum's, then saved by nobody
        return Trunk(Block(16, norm_last=False))

    def norm_in_head():  # a BN after the last block, and no ReLU after it
        return Trunk(Block(16), head_norm=True)

    def silu_gate():  # an SE whose hidden activation is SiLU, which saves its input
        gate = SqueezeExcite(16, 4)
        gate.act = nn.SiLU()
        return Trunk(Block(16, gate=gate))

    def plain():
        return Trunk(Block(16))
    """
)


def test_layouts_no_rule_describes_are_reported_not_guessed(tmp_path):
    source = tmp_path / "layouts.py"
    source.write_text(USER_LAYOUTS)
    _, plain = api.memory(f"{source}:plain", 32, trust_code=True)
    assert plain.complete
    _, result = api.memory(f"{source}:no_last_norm", 32, trust_code=True)
    assert result.uncounted == ("layer1.0 (layers not laid out in conv + norm pairs: ReLU placement unknown)",)
    _, result = api.memory(f"{source}:norm_in_head", 32, trust_code=True)
    assert result.uncounted == (
        "head (a norm other than a pre-activation network's final one: ReLU placement unknown)",
    )
    _, result = api.memory(f"{source}:silu_gate", 32, trust_code=True)
    assert result.uncounted == ("layer1.0.se.act (SiLU: inside a gate, beyond what its rule describes)",)


def test_a_gate_whose_forward_is_not_known_leaves_the_peak_unknown():
    # a subclass of our SE is read as one (same forward), but how its forward() holds tensors is not
    # known from its class, so the inference peak is not claimed; what it saves still is
    from resnet_inspect.model.layers import SqueezeExcite
    from resnet_inspect.records.behaviour import forward_style
    from resnet_inspect.records.walker import walk

    class Gate(SqueezeExcite):
        pass

    model = api.build("seresnet18")
    assert forward_style(model, walk(model)) == "nested"
    model.layer1[0].se.__class__ = Gate
    record = walk(model)
    assert record.blocks[0].attention == "se" and forward_style(model, record) is None


def test_layers_no_rule_describes_are_reported_not_counted(tmp_path):
    source = tmp_path / "net.py"
    source.write_text(USER_MODEL)
    _, result = api.memory(f"{source}:silu", 64, trust_code=True)
    assert not result.complete
    assert any("layer1.1.act (SiLU" in item for item in result.uncounted)
    _, frozen = api.memory(f"{source}:silu", 64, freeze_at=2, trust_code=True)  # frozen layer1 runs without a graph
    assert frozen.complete


def test_a_rule_that_does_not_say_what_it_saves_makes_the_op_uncounted(monkeypatch):
    monkeypatch.setitem(rules.RULES, "avgpool", replace(rules.RULES["avgpool"], saved=None))
    result = memory(records_of("resnet50d"), 64, 64)
    assert not result.complete
    assert [u.split(" ")[0] for u in result.uncounted] == [f"layer{s}.0.downsample.0" for s in (2, 3, 4)]


# --- a closed form, at sizes too large to run ---------------------------------------------------------


def up(x: int, s: int) -> int:
    return -(-x // s)


def hand_saved_bottleneck_resnet(layers, h, w, n, output_stride=32, classes=1000, e=4, se=False):
    """What a torchvision-style bottleneck ResNet (7x7 stem, 1x1-conv shortcuts) saves, written from
    the per-op rules: conv keeps its input, BN its input and 2 float32 per channel, the in-place
    ReLUs the BN outputs and the block outputs, max-pool its input and int64 indices, fc its input.
    With `se`, squeeze-excitation (C -> C/16 -> C) after bn3: its product keeps bn3's output, and
    fc1's pooled input, the hidden ReLU output and the sigmoid's gate are kept too."""
    h1, w1 = up(h, 2), up(w, 2)
    h2, w2 = up(h1, 2), up(w1, 2)
    total = 4 * n * 3 * h * w + 2 * e * n * 64 * h1 * w1 + 8 * n * 64 * h2 * w2 + 8 * 64  # stem
    total += e * n * 64 * h2 * w2  # the max-pool output, saved by layer1.0
    hh, ww, cin, stride = h2, w2, 64, 4
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        s = 1 if stage == 0 or stride >= output_stride else 2
        stride *= s
        width, out = planes, planes * 4
        for i in range(blocks):
            ho, wo = (up(hh, s), up(ww, s)) if i == 0 else (hh, ww)
            total += e * n * (2 * width * hh * ww + 2 * width * ho * wo + 2 * out * ho * wo) + 8 * (2 * width + out)
            if i == 0:
                total += e * n * out * ho * wo + 8 * out  # the shortcut's BN input and statistics
            if se:
                total += e * n * out * ho * wo + e * n * (2 * out + out // 16)
            hh, ww, cin = ho, wo, out
    return total + (e * n * cin if classes else 0)


def hand_saved_preact_resnet(layers, h, w, n, classes=1000, e=4):
    """What a pre-activation bottleneck ResNet (He et al. 2016b as timm's ResNetV2: 7x7 stem without a
    norm, BN-ReLU before every conv, 1x1-conv shortcuts on norm1's output, nothing after the sum, a
    final BN-ReLU, a 1x1-conv classifier) saves. Each block keeps its input (norm1's) and statistics,
    norm1's ReLU output, conv1's and conv2's outputs (norm2's and norm3's inputs) and the ReLUs after
    them; conv3's output only goes into the sum."""
    h1, w1 = up(h, 2), up(w, 2)
    h2, w2 = up(h1, 2), up(w1, 2)
    total = 4 * n * 3 * h * w + e * n * 64 * h1 * w1 + 8 * n * 64 * h2 * w2  # image, max-pool input, indices
    hh, ww, cin = h2, w2, 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        for i in range(blocks):
            s = 2 if stage and i == 0 else 1
            ho, wo = up(hh, s), up(ww, s)
            total += e * n * (2 * cin * hh * ww + 2 * planes * hh * ww + 2 * planes * ho * wo) + 8 * (cin + 2 * planes)
            hh, ww, cin = ho, wo, planes * 4
    return total + e * n * 2 * cin * hh * ww + 8 * cin + (e * n * cin if classes else 0)  # final norm, fc


@pytest.mark.parametrize(
    "name, layers, h, w, n, os_",
    [
        ("resnet101@os8", (3, 4, 23, 3), 769, 769, 8, 8),
        ("resnet50", (3, 4, 6, 3), 224, 224, 1, 32),
        ("resnet152@os16", (3, 8, 36, 3), 1025, 2049, 4, 16),
    ],
)
def test_saved_bytes_equal_a_closed_form(name, layers, h, w, n, os_):
    # padding = dilation keeps a 3x3's size, and the 1x1 stride-1 conv of layer1 does too
    result = memory(records_of(name), h, w, n)
    assert result.activations_saved_bytes == hand_saved_bottleneck_resnet(layers, h, w, n, os_)


@pytest.mark.parametrize("h, w, n", [(224, 224, 1), (769, 1025, 8)])
def test_gates_and_pre_activation_equal_a_closed_form(h, w, n):
    assert memory(records_of("seresnet50"), h, w, n).activations_saved_bytes == hand_saved_bottleneck_resnet(
        (3, 4, 6, 3), h, w, n, se=True
    )
    assert memory(records_of("resnetv2_101"), h, w, n).activations_saved_bytes == hand_saved_preact_resnet(
        (3, 4, 23, 3), h, w, n
    )


def test_resnet50_at_224_equals_the_measured_figure_of_the_research_notes():
    # hooks on a real forward, torch 2.13 CPU (also the closed form above): 86,121,984 bytes
    assert memory(records_of("resnet50"), 224, 224).activations_saved_bytes == 86_121_984


def test_a_huge_input_allocates_nothing():
    record = records_of("resnet152@os8")
    tracemalloc.start()
    training = memory(record, 16384, 16384, 256, budget=80 * 10**9)
    inference = memory(record, 16384, 16384, 256, inference=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20
    assert training.activations_saved_bytes > 2**40 and training.max_batch == 0
    assert inference.forward_peak_bytes > 2**40


# --- inference: the forward peak ------------------------------------------------------------------------

INFERENCE = [
    ("resnet18", 64, 64, 1, "float32"),
    ("resnet50", 97, 131, 2, "float32"),
    ("resnet50d@os16", 97, 131, 1, "float32"),  # the same-padded pool's copy
    ("resnext50_32x4d", 64, 64, 2, "float32"),
    ("resnet50@os8", 64, 64, 1, "float32"),
    ("resnet50", 64, 64, 1, "bfloat16"),
]


@pytest.mark.parametrize("name, h, w, batch, dtype", INFERENCE)
def test_forward_peak_equals_the_storages_alive_at_once(name, h, w, batch, dtype):
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    model = quick(name).eval().to(dt)
    measured = inference_peak(model, torch.randn(batch, 3, h, w, dtype=dt))
    _, result = api.memory(name, (h, w), batch, dtype, inference=True)
    assert result.forward_peak_bytes == measured
    assert result.forward_peak_bytes == max(s.forward_peak_bytes for s in result.stages)
    weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    assert result.params_bytes + result.buffers_bytes == weights
    assert result.total_bytes == weights + measured


# --- parameters, gradients, optimizer state: after a real step ------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw"])
@pytest.mark.parametrize("freeze_at", [0, 2])
def test_gradients_and_optimizer_state_after_a_real_step(optimizer, freeze_at):
    model = real("resnet18").train()
    freeze_parts(model, freeze_at)
    trainable = [p for p in model.parameters() if p.requires_grad]
    make = {
        "sgd": lambda: torch.optim.SGD(trainable, lr=0.1),
        "momentum": lambda: torch.optim.SGD(trainable, lr=0.1, momentum=0.9),
        "adam": lambda: torch.optim.Adam(trainable),
        "adamw": lambda: torch.optim.AdamW(trainable),
    }[optimizer]()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    make.step()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    # Adam's per-parameter `step` counter is a 4-byte scalar kept on the CPU (docs/conventions.md)
    state = sum(
        t.numel() * t.element_size()
        for per_param in make.state.values()
        for key, t in per_param.items()
        if torch.is_tensor(t) and key != "step"
    )
    _, result = api.memory("resnet18", 32, 2, optimizer=optimizer, freeze_at=freeze_at)
    assert result.grads_bytes == grads
    assert result.optimizer_bytes == state
    assert result.params_bytes == sum(p.numel() * p.element_size() for p in model.parameters())
    assert result.buffers_bytes == sum(b.numel() * b.element_size() for b in model.buffers())
    assert sum(s.total_bytes for s in result.stages) == result.total_bytes  # the rows add up


# --- the budget ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [("24GiB", 24 * 2**30), ("80GB", 80 * 10**9), ("512MiB", 512 * 2**20), ("1.5 GiB", 3 * 2**29), ("4096", 4096)],
)
def test_sizes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["24G", "GiB", "-1GiB", "1e3GB", "24 XB", "0GiB", ""])
def test_malformed_sizes_are_refused(text):
    with pytest.raises(InspectError, match="budget"):
        parse_bytes(text)


@pytest.mark.parametrize(
    "options, param",
    [
        ({"dtype": "float64"}, "dtype"),
        ({"optimizer": "lion"}, "optimizer"),
        ({"budget": 0}, "budget"),
        ({"budget": "lots"}, "budget"),
        ({"freeze_at": 6}, "freeze_at"),
    ],
)
def test_bad_api_arguments_name_their_parameter(options, param):
    with pytest.raises(InspectError) as error:
        api.memory("resnet50", **options)
    assert error.value.params == (param,)


def test_the_biggest_batch_that_fits():
    record = records_of("resnet101@os8")
    one = memory(record, 769, 769, 1)
    two = memory(record, 769, 769, 2)
    per_image = two.total_bytes - one.total_bytes  # the total grows linearly with the batch
    budget = 24 * 2**30
    expected = (budget - (one.total_bytes - per_image)) // per_image
    result = memory(record, 769, 769, 8, budget=budget)
    assert result.max_batch == expected == 5
    assert memory(record, 769, 769, expected).total_bytes <= budget < memory(record, 769, 769, expected + 1).total_bytes


# --- the command -------------------------------------------------------------------------------------------


def test_json_fields_and_the_rows_add_up():
    data = cli_json("memory", "resnet50", "--input", "97x131", "--batch", "2", "--optimizer", "adamw")
    assert data["schema"] == "resnet-inspect/memory/1"
    parts = ("params_bytes", "buffers_bytes", "grads_bytes", "optimizer_bytes", "activations_saved_bytes")
    assert data["total_bytes"] == sum(data[key] for key in parts)
    assert data["activations_saved_bytes"] == 49_095_496  # hooks, torch 2.13 CPU (research notes)
    assert data["optimizer_bytes"] == 2 * data["grads_bytes"] == 2 * 4 * 25_557_032
    assert [s["name"] for s in data["stages"]] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert sum(s["total_bytes"] for s in data["stages"]) == data["total_bytes"]
    assert (
        sum(b["activations_saved_bytes"] for b in data["blocks"])
        + data["stages"][0]["activations_saved_bytes"]
        + data["stages"][-1]["activations_saved_bytes"]
        == data["activations_saved_bytes"]
    )
    largest = max(data["stages"], key=lambda s: s["activations_saved_bytes"])
    assert data["largest_stage"]["name"] == largest["name"]
    assert data["largest_stage"]["share_of_total"] == largest["activations_saved_bytes"] / data["total_bytes"]
    assert data["complete"] and data["uncounted"] == []


def test_table_markdown_and_csv():
    table = cli_run(
        "memory", "resnet101", "--output-stride", "8", "--input", "769", "--batch", "8", "--budget", "24GiB"
    )
    assert "largest stage: layer3" in table.output and "within 24.00 GiB: batch 5" in table.output
    firsts = ("parameters", "buffers", "gradients", "optimizer", "activations", "stem", "layer3", "head", "total")
    rows = [line for line in table.output.splitlines() if line.split(" ")[0] in firsts]
    assert len(rows) == 10 and all(len(line) <= 80 for line in rows)  # both tables fit a terminal
    markdown = cli_run("memory", "resnet18", "--per", "block", "--format", "markdown").output
    assert "| layer4.1 |" in markdown and "| head |" in markdown
    csv = cli_run("memory", "resnet18", "resnet50", "--format", "csv").output.splitlines()
    assert csv[0].startswith("model,name,activations_saved_bytes")
    assert len(csv) == 1 + 2 * 7


def test_inference_view():
    data = cli_json("memory", "resnet50", "--inference", "--input", "224")
    assert data["mode"] == "inference" and data["grads_bytes"] == data["optimizer_bytes"] == 0
    assert data["forward_peak_bytes"] == 11_841_536 and data["forward_peak_at"] == "layer1.2.bn3"
    assert data["total_bytes"] == data["params_bytes"] + data["buffers_bytes"] + data["forward_peak_bytes"]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["resnet50", "--budget", "24G"], "--budget must be a size like"),
        (["resnet50", "--inference", "--freeze-at", "1"], "--freeze-at applies to training"),
        (["resnet50", "--inference", "--optimizer", "adam"], "--optimizer applies to training"),
        (["resnet50", "--freeze-at", "7"], "--freeze-at must be 0 to 5"),
        (["resnet50", "--input", "0x5"], "--input must be positive"),
        (["resnet50", "--batch", "0"], "--batch must be at least 1"),
        (["resnet50", "--plot", "memory.jpg"], "--plot writes PNG, SVG or PDF"),
        ([], "name at least one model"),
    ],
)
def test_bad_input_is_one_line(args, fragment):
    result = cli_run("memory", *args, ok=False)
    assert result.exit_code == 2 and fragment in result.output, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_memory_picture(tmp_path):
    pytest.importorskip("matplotlib")
    from test_plots_detection import png_size

    path = tmp_path / "memory.png"
    cli_run("memory", "resnet50", "resnet50@os8", "--input", "512", "--budget", "24GiB", "--plot", str(path))
    assert png_size(path) == (1000, 500)


# --- bench: the prediction beside the measurement --------------------------------------------------------


def test_bench_reports_the_prediction():
    data = cli_json("bench", "resnet18", "--input", "32", "--batch", "2", "--warmup", "0", "--iters", "1")
    _, predicted = api.memory("resnet18", 32, 2, inference=True)
    assert data["predicted_bytes"] == predicted.total_bytes


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_max_allocated_is_at_least_the_prediction():
    args = ("--device", "cuda", "--input", "224", "--batch", "8", "--warmup", "1", "--iters", "2")
    data = cli_json("bench", "resnet50", *args)
    # the prediction counts tensors; CUDA adds workspaces and rounds every block up
    assert data["predicted_bytes"] <= data["peak_memory_bytes"] < 2 * data["predicted_bytes"] + 2**30


# --- torchvision and timm, with their own forward() ------------------------------------------------------


@pytest.mark.reference
@pytest.mark.parametrize("name", ["torchvision:resnet50", "torchvision:resnext50_32x4d", "torchvision:resnet18"])
def test_torchvision_models(name):
    reference("torchvision")
    check_library_model(name, 97, 131, 2)


@pytest.mark.reference
@pytest.mark.parametrize("name", ["timm:resnet50d", "timm:resnet50d@os16", "timm:resnet26", "timm:resnet34d"])
def test_timm_models(name):
    reference("timm")
    check_library_model(name, 97, 131, 2)


@pytest.mark.reference
@pytest.mark.parametrize(
    "name, h, w",
    [
        ("timm:seresnet50", 97, 131),  # timm's SEModule holds the excitation and the gate while it multiplies
        ("timm:ecaresnet26t", 97, 131),
        ("timm:resnetblur50", 97, 131),
        ("timm:resnetaa50d", 96, 160),  # AvgPool2d(2) anti-aliasing takes no odd map
        ("timm:resnetrs50", 64, 64),
        ("timm:resnet50_gn", 97, 131),
        ("timm:seresnextaa101d_32x8d", 64, 64),
        ("timm:resnetv2_50", 97, 131),  # pre-activation: timm's forward() holds conv1's output longer than ours
        ("timm:resnetv2_50d", 64, 64),
    ],
)
def test_timm_models_with_gates_anti_aliasing_norms_and_pre_activation(name, h, w):
    reference("timm")
    check_library_model(name, h, w, 2, "bfloat16")


def check_library_model(name, h, w, batch, autocast=None):
    torch.manual_seed(0)
    model = api.load(name, device="cpu", trust_code=True).module.train()
    for module in model.modules():  # torchvision-style initialisation, for realistic activations
        if isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
    measured = saved_by_part(model, torch.randn(batch, 3, h, w))
    _, result = api.memory(name, (h, w), batch, trust_code=True)
    assert result.complete and ours_by_part(result) == measured
    if autocast:
        measured = saved_by_part(model, torch.randn(batch, 3, h, w), autocast)
        assert ours_by_part(api.memory(name, (h, w), batch, autocast, trust_code=True)[1]) == measured
    model.eval()
    _, inferred = api.memory(name, (h, w), batch, inference=True, trust_code=True)
    assert inferred.style == "sequential"
    assert inferred.forward_peak_bytes == inference_peak(model, torch.randn(batch, 3, h, w))
    weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    assert inferred.params_bytes + inferred.buffers_bytes == weights


def user_model(tmp_path, code: str, factory: str) -> tuple[str, nn.Module]:
    """The name of `factory` in a file holding `code`, and its model built with seed 0, in train mode."""
    source = tmp_path / "user.py"
    source.write_text(code)
    name = f"{source}:{factory}"
    torch.manual_seed(0)
    return name, api.load(name, device="cpu", trust_code=True).module.train()


FROZEN_TORCHVISION = textwrap.dedent(
    """
    from torchvision.models import resnet18
    from torchvision.ops import FrozenBatchNorm2d

    def frozen():
        return resnet18(norm_layer=FrozenBatchNorm2d)
    """
)


@pytest.mark.reference
def test_torchvisions_frozen_batch_norm(tmp_path):
    # x * scale + shift from buffers: the product keeps the scale (C float32), not its input, and the
    # ReLU after it keeps its output; the detection setting of every norm frozen, trained convs
    reference("torchvision")
    name, model = user_model(tmp_path, FROZEN_TORCHVISION, "frozen")
    for dtype in (None, "bfloat16"):
        measured = saved_by_part(model, torch.randn(2, 3, 97, 131), dtype)
        _, result = api.memory(name, (97, 131), 2, dtype or "float32", trust_code=True)
        assert result.complete and ours_by_part(result) == measured
    _, inferred = api.memory(name, (97, 131), 2, inference=True, trust_code=True)
    assert inferred.style == "sequential"  # torchvision's classes, whoever builds them
    # while a frozen norm runs, its product x * scale lives beside its output (and scale and shift)
    assert inferred.forward_peak_bytes == inference_peak(model.eval(), torch.randn(2, 3, 97, 131))
    weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    assert inferred.params_bytes + inferred.buffers_bytes == weights


def test_autocast_saves_a_cast_of_every_trainable_conv_and_linear_weight():
    data = cli_json("memory", "resnet18", "--dtype", "bfloat16", "--freeze-at", "2")
    model = real("resnet18")
    trained = [model.layer2, model.layer3, model.layer4, model.fc]
    weights = sum(m.weight.numel() for part in trained for m in part.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert data["autocast"] and data["weight_copies_bytes"] == 2 * weights
    assert data["params_bytes"] == 4 * sum(p.numel() for p in model.parameters())  # float32 stays the master copy


SAME_PADDED_TIMM = textwrap.dedent(
    """
    import timm
    import torch.nn as nn
    from timm.layers.conv2d_same import Conv2dSame
    from timm.layers.pool2d_same import MaxPool2dSame

    def same_padded():  # timm's resnet26d with TF "same" convs and max-pool, as tf_ ports build them
        model = timm.create_model("resnet26d")
        for parent in list(model.modules()):
            for name, child in parent.named_children():
                if isinstance(child, nn.Conv2d):  # 1x1 convs too: F.pad copies even for no padding
                    setattr(parent, name, Conv2dSame(child.in_channels, child.out_channels,
                        child.kernel_size, child.stride, groups=child.groups, bias=child.bias is not None))
                if isinstance(child, nn.MaxPool2d):
                    setattr(parent, name, MaxPool2dSame(child.kernel_size, child.stride))
        return model
    """
)


@pytest.mark.reference
def test_same_padded_convs_and_pools_keep_their_padded_copies(tmp_path):
    # F.pad returns a new tensor even where the padding is zero: the conv (or its autocast cast) and
    # the max-pool keep that copy, not their input
    reference("timm")
    from timm.layers.conv2d_same import Conv2dSame

    name, model = user_model(tmp_path, SAME_PADDED_TIMM, "same_padded")
    assert sum(isinstance(m, Conv2dSame) for m in model.modules()) > 20
    for h, w, dtype in ((97, 131, None), (64, 64, None), (97, 131, "bfloat16")):
        measured = saved_by_part(model, torch.randn(2, 3, h, w), dtype)
        _, result = api.memory(name, (h, w), 2, dtype or "float32", trust_code=True)
        assert result.complete and ours_by_part(result) == measured
    _, inferred = api.memory(name, (97, 131), 2, inference=True, trust_code=True)
    assert inferred.forward_peak_bytes == inference_peak(model.eval(), torch.randn(2, 3, 97, 131))


@pytest.mark.reference
def test_a_dropout_applied_in_forward_is_reported_and_without_it_the_count_is_exact():
    # legacy SENet's forward_head calls F.dropout(p=0.2) before its classifier: no module shows it,
    # yet in training it keeps a mask (and the classifier a new input)
    timm = reference("timm")
    torch.manual_seed(0)
    model = timm.create_model("legacy_seresnet18").train()
    _, result = api.memory("timm:legacy_seresnet18", 64, 2)
    assert not result.complete and result.uncounted == ("SENet.drop_rate (0.2: a dropout in forward(), keeps a mask)",)
    assert sum(saved_by_part(model, torch.randn(2, 3, 64, 64)).values()) > result.activations_saved_bytes
    model = timm.create_model("legacy_seresnet18", drop_rate=0.0).train()
    _, result = api.memory("timm:legacy_seresnet18@drop_rate=0", 64, 2)
    assert result.complete and ours_by_part(result) == saved_by_part(model, torch.randn(2, 3, 64, 64))
