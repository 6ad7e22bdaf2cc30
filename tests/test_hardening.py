"""A careful user and an attacker: no user code runs through the API unless asked, nothing is
downloaded, user code cannot corrupt JSON or end the tool, building is safe from many threads."""

import json
import threading

import pytest
import torch
from torch import nn

import resnet_inspect as ri

from conftest import cli_run

USER = """
import sys
import torch.nn as nn

print("hello from the user's module")


def exits():
    sys.exit(3)


def prints():
    print("noise on stdout")
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    return m


def interrupts():
    raise KeyboardInterrupt
"""


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "usercode.py"
    path.write_text(USER)
    return str(path)


def test_the_api_runs_no_user_code_unless_asked(tmp_path):
    marker = tmp_path / "pwned"
    for name in (f"os:system@command=touch {marker}", f"{tmp_path / 'x.py'}:make"):
        with pytest.raises(ri.InspectError, match="whose code would run; pass trust_code=True"):
            ri.inspect(name)
    assert not marker.exists()


def test_user_code_cannot_end_the_tool_or_write_into_json(user_file):
    with pytest.raises(ri.InspectError, match="could not be built: SystemExit: 3"):
        ri.load(f"{user_file}:exits", trust_code=True)
    result = cli_run("flops", f"{user_file}:prints", "--input", "8", "--json")
    data = json.loads(result.stdout)  # the prints went to stderr
    assert data["macs"] == 8 * 8 * 8 * 3 * 9
    assert "noise on stdout" in result.stderr
    with pytest.raises(KeyboardInterrupt):
        ri.load(f"{user_file}:interrupts", trust_code=True)


@pytest.mark.parametrize(
    "name",
    [
        "torchvision:resnet50@weights=DEFAULT",
        "timm:resnet50@pretrained=true",
        "timm:resnet50@pretrained_cfg_overlay=x",
        "torchvision:fasterrcnn_resnet50_fpn@weights_backbone=DEFAULT",
    ],
)
def test_nothing_is_downloaded(name):
    with pytest.raises(ri.InspectError, match="would fetch weights; resnet-inspect never downloads"):
        ri.inspect(name)


def test_building_from_many_threads_leaves_other_layers_alone():
    # Layers are built without their default initialisation by a private subclass, never by patching
    # torch: a plain layer created on another thread meanwhile keeps torch's own initialisation
    stop = threading.Event()
    failures: list[str] = []

    def builder():
        while not stop.is_set():
            ri.build("resnet50")
            model = ri.build("resnet18", device="cpu", init=True)
            if float(model.fc.weight.detach().abs().sum()) == 0:
                failures.append("an initialised build has a zero classifier")

    threads = [threading.Thread(target=builder) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        bound = 1 / 8**0.5  # nn.Linear(8, 8): kaiming-uniform, |w| <= 1 / sqrt(fan_in)
        for _ in range(300):
            layer = nn.Linear(8, 8)
            weights = layer.weight.detach()
            if float(weights.abs().max()) > bound or float(weights.abs().sum()) == 0:
                failures.append(f"a plain nn.Linear came out uninitialised: {weights.abs().max():.3g}")
            conv = nn.Conv2d(4, 4, 3)
            if float(conv.weight.detach().abs().sum()) == 0:
                failures.append("a plain nn.Conv2d came out zero")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert type(ri.build("resnet18").conv1) is nn.Conv2d  # ordinary instances, not subclasses
    assert float(torch.nn.Linear(4, 4).weight.detach().abs().sum()) > 0


class Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


@pytest.fixture
def state(tmp_path):
    model = ri.build("resnet18", device="cpu", init=True)

    def save(tensors, name="ckpt.pth", **options):
        path = tmp_path / name
        torch.save(tensors, path, **options)
        return str(path)

    return model.state_dict(), save


def test_stacked_prefixes_are_stripped(state):
    sd, save = state
    for prefix, stripped in (
        ("module.backbone.", ("module.", "backbone.")),
        ("module.module.", ("module.", "module.")),
    ):
        report = ri.load("resnet18", weights=save({prefix + k: v for k, v in sd.items()})).checkpoint
        assert report.matches and report.stripped == stripped and report.loaded == len(sd)


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda t: t.to(torch.int64), "fc.weight is torch.int64 where the model's is torch.float32"),
        (lambda t: torch.complex(t, t), "fc.weight is torch.complex64"),
        (lambda t: t.to_sparse(), "fc.weight is a torch.sparse_coo tensor, not a dense one"),
        (lambda t: torch.empty(t.shape, device="meta"), "fc.weight holds no data"),
    ],
)
def test_tensors_that_are_not_dense_floats_are_refused(state, change, fragment):
    sd, save = state
    sd = dict(sd)
    sd["fc.weight"] = change(sd["fc.weight"])
    result = cli_run("show", "resnet18", "--weights", save(sd), ok=False)
    assert result.exit_code == 2 and "refused to load" in result.output and fragment in result.output


def test_files_that_are_no_plain_state_dicts(tmp_path, state):
    import pickle
    import zipfile

    import numpy as np

    _, save = state
    protocol4 = tmp_path / "p4.pth"
    protocol4.write_bytes(pickle.dumps({"a": Exploit()}, protocol=4))
    numpy = save({"conv1.weight": np.zeros(3)}, "numpy.pth", _use_new_zipfile_serialization=True)
    plain = save({"conv1.weight": torch.zeros(4)}, "plain.pth")
    deflated = tmp_path / "bomb.pth"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as bomb:
        for item in source.infolist():
            bomb.writestr(item.filename, source.read(item.filename))
    for path, fragment in (
        (protocol4, "refused to load: its pickle uses instructions the safe (weights-only) reader does not accept"),
        (numpy, "holds numpy arrays"),
        (deflated, "refused to load: it has compressed entries"),
        ("/dev/null", "is not a regular file"),
    ):
        result = cli_run("show", "resnet18", "--weights", str(path), ok=False)
        assert result.exit_code == 2 and fragment in result.output and result.output.count("\n") == 1, result.output


@pytest.mark.parametrize(
    "args",
    [
        ("rf", "resnet50_vd", "--output-stride", "8", "--plot", "PLOT", "--input", "8192"),
        ("flops", "resnet18", "--count", "fvcore", "--batch", "1000000"),
    ],
)
def test_real_tensor_runs_that_cannot_fit_are_refused_before_any_work(args, tmp_path):
    import tracemalloc

    args = tuple(str(tmp_path / "x.png") if a == "PLOT" else a for a in args)
    tracemalloc.start()
    result = cli_run(*args, ok=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.exit_code == 2 and "needs about" in result.output and "GiB free" in result.output
    assert result.output.count("\n") == 1 and peak < 64 * 2**20  # refused from the analytic estimate
    assert not (tmp_path / "x.png").exists()


def test_a_seeded_effective_field_leaves_torchs_generator_alone():
    """The seed decides the weights and inputs alone, and the caller's random stream goes on as if
    nothing had run (torch's global generator is never reseeded)."""
    from resnet_inspect import api

    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    _, _, first = api.effective_field("resnet18", "layer1", 32, samples=1, seed=7)
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(99)  # a different global state: the result must not change
    _, _, again = api.effective_field("resnet18", "layer1", 32, samples=1, seed=7)
    assert (first.erf == again.erf).all()
    _, _, other = api.effective_field("resnet18", "layer1", 32, samples=1, seed=8)
    assert not (first.erf == other.erf).all()


def test_private_initialisation_is_torchs_own_for_linear_layers():
    """fc and ECA's Conv1d get torch's documented default, U(+-1/sqrt(fan_in)) for weight and bias."""
    model = ri.build("ecaresnet26t", device="cpu", init=True, seed=3)
    eca = model.layer1[0].se.conv  # in_channels 1, kernel k: fan_in = k
    for layer, fan_in in ((model.fc, 2048), (eca, eca.kernel_size[0])):
        bound = 1 / fan_in**0.5
        for tensor in (layer.weight, layer.bias):
            if tensor is None:
                continue
            top = float(tensor.detach().abs().max())
            assert bound / 2 < top <= bound


PLOT_IN_A_USERS_PROCESS = """
import sys
import matplotlib
from resnet_inspect import api
from resnet_inspect.output.plots import plot_costs, plot_memory
plot_costs([api.inspect("resnet18", input=64).costs], sys.argv[1] + "/costs.png")
plot_memory([api.memory("resnet18", 64)[1]], sys.argv[1] + "/memory.svg")
print(dict.__getitem__(matplotlib.rcParams, "backend"), "matplotlib.pyplot" in sys.modules)
"""


def test_drawing_leaves_the_callers_matplotlib_alone(tmp_path):
    # an application with its own backend (here pdf) keeps it, and gets no pyplot figures of ours
    pytest.importorskip("matplotlib")
    import os
    import subprocess
    import sys

    env = {**os.environ, "MPLBACKEND": "pdf"}
    run = subprocess.run(
        [sys.executable, "-c", PLOT_IN_A_USERS_PROCESS, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["pdf", "False"]
    assert (tmp_path / "costs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "memory.svg").read_text().lstrip().startswith("<?xml")
