"""Models from elsewhere (torchvision, timm, the user's own files), checkpoints, and the Python API."""

import json
import os
import pickle
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import resnet_inspect as ri
from resnet_inspect.cli import cli

from conftest import reference


def run(*args):
    return CliRunner().invoke(cli, list(args))


# --- a ResNet-like module with other class names ---------------------------------------------------

USER_MODEL = textwrap.dedent(
    """
    import torch.nn as nn

    class Squeeze(nn.Module):  # a bottleneck under another name
        expansion = 4

        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.act = nn.ReLU()
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
            ) if stride != 1 or cin != planes * 4 else None

        def forward(self, x):
            y = self.act(self.bn1(self.conv1(x)))
            y = self.act(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return self.act(y + (x if self.downsample is None else self.downsample(x)))

    class Trunk(nn.Module):
        def __init__(self, width=8):
            super().__init__()
            self.conv1 = nn.Conv2d(3, width, 3, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.act = nn.ReLU()
            self.layer1 = nn.Sequential(Squeeze(width, width, 1), Squeeze(width * 4, width, 1))
            self.layer2 = nn.Sequential(Squeeze(width * 4, width * 2, 2))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(width * 8, 10)

        def forward(self, x):
            x = self.act(self.bn1(self.conv1(x)))
            return self.fc(self.flatten(self.avgpool(self.layer2(self.layer1(x)))))

    def make(width=8):
        return Trunk(width)

    instance = Trunk(4)

    class Plain(nn.Module):  # no residual blocks at all
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))

        def forward(self, x):
            return self.head(self.pool(self.features(x)))

    def plain():
        return Plain()

    def broken():
        raise RuntimeError("no GPU here")
    """
)


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "usernet.py"
    path.write_text(USER_MODEL)
    return str(path)


def test_a_users_file_is_walked(user_file):
    data = json.loads(run("show", f"{user_file}:make@width=16", "--format", "json").output)
    assert data["spec"] is None and data["model"] == f"{user_file}:make@width=16"
    assert data["stem"]["convs"] == ["3x3/2"] and data["stem"]["widths"] == [16]
    first, second, third = data["blocks"]
    assert (first["inplanes"], first["planes"], first["width"], first["outplanes"]) == (16, 16, 16, 64)
    assert first["downsample"] == {"kind": "conv", "stride": 1} and second["downsample"] is None
    assert (third["stride"], third["stride_at"], third["outplanes"]) == (2, "3x3", 128)
    # 1x1 16->16, 3x3 16->16, 1x1 16->64, projection 16->64, BN 2 per channel
    assert first["params"] == 16 * 16 + 16 * 16 * 9 + 16 * 64 + 16 * 64 + 2 * (16 + 16 + 64 + 64)


def test_a_module_attribute_and_a_package_module(user_file, tmp_path, monkeypatch):
    assert json.loads(run("show", f"{user_file}:instance", "--format", "json").output)["stem"]["widths"] == [4]
    monkeypatch.syspath_prepend(str(tmp_path))
    data = json.loads(run("flops", "usernet:make", "--input", "32", "--json").output)
    # stem: 16x16 outputs x 8 channels x 3 x 9; fc 32 -> 10
    assert data["stages"][0]["macs"] == 16 * 16 * 8 * 3 * 9
    assert data["stages"][-1]["macs"] == 64 * 10


def test_user_code_failures_are_one_line(user_file):
    for args, fragment in (
        ([f"{user_file}:broken"], "could not be built: RuntimeError: no GPU here"),
        ([f"{user_file}:missing"], "has no attribute 'missing'"),
        (["/nonexistent/net.py:make"], "no such file"),
        ([f"{user_file}:instance@width=3"], "takes no @options"),
        ([f"{user_file}:make", "--layers", "1,1,1,1"], "--layers only apply to resnet-inspect's own names"),
    ):
        result = run("show", *args)
        assert result.exit_code == 2, result.output
        assert fragment in result.output and result.output.count("\n") == 1


def test_a_module_that_is_not_a_resnet(user_file):
    result = run("show", f"{user_file}:plain")
    assert result.exit_code == 2 and "does not read as a ResNet: expected top-level containers" in result.output
    # flops still works: conv 3->8 at 32x32, conv 8->16 at 16x16, linear 16->4
    data = json.loads(run("flops", f"{user_file}:plain", "--input", "32", "--json").output)
    assert data["macs"] == 32 * 32 * 8 * 3 * 9 + 16 * 16 * 16 * 8 * 9 + 16 * 4
    assert [s["name"] for s in data["stages"]] == ["features", "pool", "head"]
    assert data["stages"][0]["output"] == [16, 16, 16]
    assert "not a ResNet" in run("flops", f"{user_file}:plain", "--input", "32").output


def test_missing_library_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    monkeypatch.setitem(sys.modules, "timm", None)
    for name, library in (("torchvision:resnet50", "torchvision"), ("timm:resnet50d@os8", "timm")):
        result = run("show", name)
        assert result.exit_code == 2
        assert f"{library} is not installed (pip install {library})" in result.output


# --- torchvision and timm, when installed ------------------------------------------------------------


def _same_records(ours, theirs):
    strip = lambda r: [
        (
            b.name,
            b.type,
            b.inplanes,
            b.planes,
            b.width,
            b.outplanes,
            b.stride,
            b.stride_at,
            b.dilations,
            b.groups,
            b.base_width,
            b.downsample,
            b.params,
        )
        for b in r.blocks
    ]
    return strip(ours) == strip(theirs) and ours.stem == theirs.stem


@pytest.mark.reference
@pytest.mark.parametrize("name, os_", [("resnet50", 32), ("resnext50_32x4d", 16), ("resnet101", 8), ("resnet18", 32)])
def test_torchvision_models_read_like_ours(name, os_):
    reference("torchvision")
    theirs = ri.inspect(f"torchvision:{name}@os{os_}", input=(97, 131))
    ours = ri.inspect(f"{name}@os{os_}", input=(97, 131))
    assert _same_records(ours.record, theirs.record)
    assert (ours.params, ours.macs, ours.stages, ours.receptive_fields.stages) == (
        theirs.params,
        theirs.macs,
        theirs.stages,
        theirs.receptive_fields.stages,
    )


@pytest.mark.reference
@pytest.mark.parametrize("name, os_", [("resnet50d", 8), ("resnet50d", 16), ("resnet18d", 32), ("resnext50d_32x4d", 8)])
def test_timm_models_read_like_ours(name, os_):
    reference("timm")
    theirs = ri.inspect(f"timm:{name}@os{os_}", input=(97, 131))
    ours = ri.inspect(f"{name}@os{os_}", input=(97, 131))
    assert theirs.unrecognised == ()
    assert _same_records(ours.record, theirs.record)
    assert (ours.params, ours.macs, ours.receptive_fields.stages) == (
        theirs.params,
        theirs.macs,
        theirs.receptive_fields.stages,
    )


# --- checkpoints -------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    model = ri.build("resnet18", device="cpu", init=True)

    def save(obj, name="ckpt.pth"):
        path = tmp_path / name
        torch.save(obj, path)
        return str(path)

    return model, save


def test_round_trip_of_our_own_state_dict(saved):
    model, save = saved
    path = save(model.state_dict())
    loaded = ri.load("resnet18", weights=path)
    assert loaded.checkpoint.matches and loaded.checkpoint.loaded == len(model.state_dict())
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.module.state_dict().items()):
        assert torch.equal(a, b), k
    result = run("show", "resnet18", "--weights", path, "--format", "json")
    assert result.exit_code == 0 and f"loaded {len(model.state_dict())} tensors" in result.output


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3},
        lambda sd: {"model": {f"backbone.{k}": v for k, v in sd.items()}},
    ],
)
def test_wrapped_and_prefixed_checkpoints(saved, wrap):
    model, save = saved
    report = ri.load("resnet18", weights=save(wrap(model.state_dict()))).checkpoint
    assert report.matches and report.stripped in (("module.",), ("backbone.",))


def test_a_mismatch_is_a_table_and_exit_2_unless_non_strict(saved):
    model, save = saved
    state = model.state_dict()
    state.pop("fc.bias")
    state["extra.weight"] = torch.zeros(3)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = save(state)
    result = run("show", "resnet18", "--weights", path)
    assert result.exit_code == 2
    assert "1 missing, 1 unexpected, 1 with another shape" in result.output
    assert "fc.bias" in result.output and "64x64x3x3" in result.output and "64x64x1x1" in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: ")
    relaxed = run("show", "resnet18", "--weights", path, "--non-strict", "--format", "json")
    assert relaxed.exit_code == 0 and "3 keys not loaded" in relaxed.output


def test_unreadable_files_are_refused(tmp_path, saved):
    model, save = saved
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(Path(save(model.state_dict())).read_bytes()[:5000])
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    for path, fragment in (
        (truncated, "not a readable PyTorch checkpoint"),
        (text, "not a readable PyTorch checkpoint"),
        (tmp_path / "absent.pth", "no such checkpoint file"),
    ):
        result = run("show", "resnet18", "--weights", str(path))
        assert result.exit_code == 2 and fragment in result.output and result.output.count("\n") == 1


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    Exploit.marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": Exploit()}, f, protocol=2)
    result = run("show", "resnet18", "--weights", str(path))
    assert result.exit_code == 2 and "refused" in result.output
    assert not Exploit.marker.exists()


# --- export-keys and the Python API -------------------------------------------------------------------


def test_export_keys():
    keys = json.loads(run("export-keys", "resnet18", "--json").output)
    assert keys[0] == {
        "name": "conv1.weight",
        "shape": [64, 3, 7, 7],
        "kind": "parameter",
        "dtype": "float32",
    }
    assert keys[1]["name"] == "bn1.weight" and keys[3] == {
        "name": "bn1.running_mean",
        "shape": [64],
        "kind": "buffer",
        "dtype": "float32",
    }
    assert keys[-1]["name"] == "fc.bias" and sum(k["kind"] == "parameter" for k in keys) == 62
    assert "conv1.0.weight" in run("export-keys", "resnet50d").output


def test_python_api():
    model = ri.build("resnet50_vd", output_stride=8)
    assert isinstance(model, nn.Module) and model.layer4[0].conv2.dilation == (4, 4)
    report = ri.inspect("resnet101@os8", input=(513, 513))
    assert report.output_stride == 8 and report.stages[4].output == (2048, 65, 65)
    assert report.blocks[0].downsample.kind == "conv"
    data = json.loads(report.to_json())
    assert data["flops"]["macs"] == report.macs and data["show"]["params"] == 44_549_160
    assert data["rf"]["stages"][-1]["size"] == report.receptive_fields.stages[-1].size
    by_module = ri.inspect(ri.build("resnet18"), input=224)
    assert round(by_module.macs / 1e9, 3) == 1.814
    d = ri.diff("resnet50", "resnet50_vd")
    assert not d.identical and d.summary[0].delta == 19_232
