"""`memory` against what torch really does: the bytes autograd saves, seen by
torch.autograd.graph.saved_tensors_hooks on a real CPU training forward (unique storages, parameters
and buffers excluded, each charged to the part that saves it first); the inference peak, seen by a
dispatch mode that follows every storage's life; gradients and optimizer state after a real step;
and a closed form written in this file for sizes too large to run."""

import contextlib
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
HEAD_CHILDREN = ("avgpool", "fc", "global_pool", "head", "norm")


# --- the measurements -------------------------------------------------------------------------------


def part_of(module_name: str) -> str:
    """stem / layerS.B / head, from a module's qualified name (torchvision's, timm's and our names)."""
    bits = module_name.split(".")
    if bits[0].startswith("layer"):
        return ".".join(bits[:2])
    if bits[0] == "stages":  # ResNetV2's stages.S.blocks.B
        return ".".join(bits[:4])
    return "head" if bits[0] in HEAD_CHILDREN else "stem"


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
    """detectron2's freeze_at: the stem (every top-level child before layer1) and the first stages
    stop training (BN stays in train mode, as a plain BatchNorm2d)."""
    children = list(model.named_children())
    if children[1][0] == "stages":  # ResNetV2: stem, stages.0..3
        groups = [[children[0][1]]] + [[stage] for stage in children[1][1]]
    else:
        first = next(i for i, (name, _) in enumerate(children) if name.startswith("layer"))
        groups = [[m for _, m in children[:first]]] + [[m] for name, m in children[first:] if name.startswith("layer")]
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
    # the family beyond: attention gates, anti-aliasing, group norm, the RS stem, pre-activation
    ("seresnet50", 64, 64, 2, "float32", 0),
    ("seresnext50_32x4d@os8", 97, 131, 1, "float32", 0),
    ("ecaresnet26t", 64, 64, 2, "float32", 2),
    ("resnetblur50@os16", 64, 64, 1, "float32", 0),
    ("resnetblur18", 97, 131, 2, "float32", 0),
    ("resnetaa50d@os8", 64, 64, 2, "float32", 1),
    ("resnet50_gn@os8", 64, 64, 1, "float32", 2),
    ("resnetrs50", 97, 131, 2, "float32", 3),
    ("resnetv2_50d", 97, 131, 1, "float32", 0),
    ("resnetv2_18@norm=gn", 64, 64, 2, "float32", 0),
    ("resnetv2_101@os16", 64, 64, 1, "float32", 2),
    ("resnet18@attn=eca,aa=blur", 64, 64, 2, "float32", 0),
    ("resnet101_va@stem_pool=caffe", 97, 131, 1, "float32", 0),
]


@pytest.mark.parametrize("name, h, w, batch, dtype, freeze_at", TRAINING)
def test_saved_bytes_equal_what_autograd_saves(name, h, w, batch, dtype, freeze_at):
    model = real(name).train()
    freeze_parts(model, freeze_at)
    measured = saved_by_part(model, torch.randn(batch, 3, h, w), None if dtype == "float32" else dtype)
    _, result = api.memory(name, (h, w), batch, dtype, freeze_at=freeze_at)
    assert result.complete and not result.uncounted
    assert ours_by_part(result) == measured  # every block, the stem and the head, to the byte
    assert result.activations_saved_bytes == sum(measured.values())
    stages = {s.name: s.activations_saved_bytes for s in result.stages}
    for stage, saved in stages.items():
        assert saved == sum(v for k, v in measured.items() if k == stage or k.startswith(stage + "."))


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


def hand_saved_bottleneck_resnet(layers, h, w, n, output_stride=32, classes=1000, e=4):
    """What a torchvision-style bottleneck ResNet (7x7 stem, 1x1-conv shortcuts) saves, written from
    the per-op rules: conv keeps its input, BN its input and 2 float32 per channel, the in-place
    ReLUs the BN outputs and the block outputs, max-pool its input and int64 indices, fc its input."""
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
            hh, ww, cin = ho, wo, out
    return total + (e * n * cin if classes else 0)


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
    model = real(name).eval().to(dt)
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


def check_library_model(name, h, w, batch):
    torch.manual_seed(0)
    model = api.load(name, device="cpu").module.train()
    for module in model.modules():  # torchvision-style initialisation, for realistic activations
        if isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
    measured = saved_by_part(model, torch.randn(batch, 3, h, w))
    _, result = api.memory(name, (h, w), batch)
    assert result.complete and ours_by_part(result) == measured
    model.eval()
    _, inferred = api.memory(name, (h, w), batch, inference=True)
    assert inferred.style == "sequential"
    assert inferred.forward_peak_bytes == inference_peak(model, torch.randn(batch, 3, h, w))


@pytest.mark.reference
def test_frozen_batch_norm_is_reported():
    # x * scale + shift from buffers: the product keeps the scale, not the input, so the batch-norm
    # rule does not hold (the walker itself cannot read torchvision's FrozenBatchNorm2d yet)
    torchvision = reference("torchvision")
    from resnet_inspect.records.behaviour import foreign_leaves

    model = torchvision.models.resnet18(norm_layer=torchvision.ops.FrozenBatchNorm2d)
    found = foreign_leaves(model)
    assert len(found) == 20 and found[0] == "bn1 (FrozenBatchNorm2d: keeps its scale, not its input)"


def test_autocast_saves_a_cast_of_every_trainable_conv_and_linear_weight():
    data = cli_json("memory", "resnet18", "--dtype", "bfloat16", "--freeze-at", "2")
    model = real("resnet18")
    trained = [model.layer2, model.layer3, model.layer4, model.fc]
    weights = sum(m.weight.numel() for part in trained for m in part.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert data["autocast"] and data["weight_copies_bytes"] == 2 * weights
    assert data["params_bytes"] == 4 * sum(p.numel() for p in model.parameters())  # float32 stays the master copy


def test_kinds_measured_in_float32_only_are_reported_under_autocast():
    _, result = api.memory("seresnet50", 64, 1, "bfloat16")
    assert not result.complete and any("layer1.0.se" in item for item in result.uncounted)


def test_our_frozen_batch_norm_is_reported():
    # x * scale + shift keeps the scale, not the input: not the batch-norm rule, so not counted
    _, result = api.memory("resnet50@norm=frozen_bn", 64, 1)
    assert not result.complete and any("FrozenBatchNorm2d" in item for item in result.uncounted)


@pytest.mark.reference
@pytest.mark.parametrize(
    "name", ["seresnet50", "ecaresnet26t", "resnetblur50", "resnetaa50d", "resnetv2_50d", "resnet50_gn"]
)
def test_timms_attention_anti_aliased_and_pre_activation_models(name):
    timm = reference("timm")
    torch.manual_seed(0)
    model = timm.create_model(name).train()
    measured = saved_by_part(model, torch.randn(2, 3, 64, 64))
    _, result = api.memory(f"timm:{name}", 64, 2)
    assert result.complete and result.activations_saved_bytes == sum(measured.values())
