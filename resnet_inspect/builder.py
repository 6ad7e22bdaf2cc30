"""NetSpec -> nn.Module: the only file that constructs layers.

Module and parameter names are torchvision's (conv1, bn1, layer1..4, downsample.0/.1, fc); the deep
stem and the avg-pool shortcut use timm's (conv1.0..6, downsample.0 pool, .1 conv, .2 bn), so that
state dicts of both load with strict=True into the model of the same name.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InspectError
from .spec import BlockSpec, NetSpec, ShortcutSpec, StemSpec

DEVICES = ("meta", "cpu", "cuda")


class SamePadAvgPool2d(nn.AvgPool2d):
    """Average pool after TensorFlow-style "same" zero padding, the odd pixel padded bottom/right
    (timm's AvgPool2dSame, used in the avg-pool shortcut of a dilated stage)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad to "same", then average."""
        pads = []
        for size, k, s in reversed(list(zip(x.shape[-2:], self.kernel_size, self.stride))):
            total = same_padding(int(size), k, s)
            pads += [total // 2, total - total // 2]
        x = F.pad(x, pads)
        return F.avg_pool2d(x, self.kernel_size, self.stride, 0, self.ceil_mode, self.count_include_pad)


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> int:
    """Total padding that makes a window op give ceil(size / stride) outputs (TF "SAME")."""
    return max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def _shortcut(in_ch: int, out_ch: int, shortcut: ShortcutSpec, dd: dict[str, Any]) -> nn.Sequential:
    if shortcut.kind == "conv":
        return nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 1, stride=shortcut.stride, bias=False, **dd), nn.BatchNorm2d(out_ch, **dd)
        )
    pool: nn.Module
    if shortcut.pool == "avg":
        pool = nn.AvgPool2d(2, shortcut.stride, ceil_mode=True, count_include_pad=False)
    elif shortcut.pool == "avg_same":
        pool = SamePadAvgPool2d((2, 2), (1, 1), ceil_mode=True, count_include_pad=False)
    else:
        pool = nn.Identity()
    return nn.Sequential(pool, nn.Conv2d(in_ch, out_ch, 1, bias=False, **dd), nn.BatchNorm2d(out_ch, **dd))


class BasicBlock(nn.Module):
    """Two 3x3 convs (the first carries the stride) plus the shortcut."""

    expansion = 1

    def __init__(self, b: BlockSpec, dd: dict[str, Any]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            b.in_ch, b.planes, 3, b.stride, padding=b.first_dilation, dilation=b.first_dilation, bias=False, **dd
        )
        self.bn1 = nn.BatchNorm2d(b.planes, **dd)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(b.planes, b.planes, 3, padding=b.dilation, dilation=b.dilation, bias=False, **dd)
        self.bn2 = nn.BatchNorm2d(b.planes, **dd)
        self.downsample = _shortcut(b.in_ch, b.out_ch, b.shortcut, dd) if b.shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped, dilated), 1x1 expand; the stride on the 3x3 or on the first 1x1."""

    expansion = 4

    def __init__(self, b: BlockSpec, dd: dict[str, Any]) -> None:
        super().__init__()
        stride_1x1, stride_3x3 = (b.stride, 1) if b.stride_at == "1x1" else (1, b.stride)
        self.conv1 = nn.Conv2d(b.in_ch, b.width, 1, stride_1x1, bias=False, **dd)
        self.bn1 = nn.BatchNorm2d(b.width, **dd)
        self.conv2 = nn.Conv2d(
            b.width,
            b.width,
            3,
            stride_3x3,
            padding=b.first_dilation,
            dilation=b.first_dilation,
            groups=b.groups,
            bias=False,
            **dd,
        )
        self.bn2 = nn.BatchNorm2d(b.width, **dd)
        self.conv3 = nn.Conv2d(b.width, b.out_ch, 1, bias=False, **dd)
        self.bn3 = nn.BatchNorm2d(b.out_ch, **dd)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(b.in_ch, b.out_ch, b.shortcut, dd) if b.shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn3(conv3(...conv1(x))) + shortcut(x))."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _stem_conv(stem: StemSpec, dd: dict[str, Any]) -> nn.Module:
    if stem.kind == "classic":
        return nn.Conv2d(3, stem.out_ch, 7, 2, padding=3, bias=False, **dd)
    w0, w1, w2 = stem.widths
    return nn.Sequential(
        nn.Conv2d(3, w0, 3, 2, padding=1, bias=False, **dd),
        nn.BatchNorm2d(w0, **dd),
        nn.ReLU(inplace=True),
        nn.Conv2d(w0, w1, 3, 1, padding=1, bias=False, **dd),
        nn.BatchNorm2d(w1, **dd),
        nn.ReLU(inplace=True),
        nn.Conv2d(w1, w2, 3, 1, padding=1, bias=False, **dd),
    )


class ResNet(nn.Module):
    """The whole family from one NetSpec: stem, layer1..4, global average pool, fc."""

    def __init__(self, spec: NetSpec, device: str | torch.device | None = None) -> None:
        super().__init__()
        dd = {"device": device}
        self.spec = spec
        stem = spec.stem_spec()
        self.conv1 = _stem_conv(stem, dd)
        self.bn1 = nn.BatchNorm2d(stem.out_ch, **dd)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        block_class = Bottleneck if spec.block == "bottleneck" else BasicBlock
        blocks = spec.blocks()
        for stage in range(1, len(spec.layers) + 1):
            stage_blocks = [block_class(b, dd) for b in blocks if b.stage == stage]
            self.add_module(f"layer{stage}", nn.Sequential(*stage_blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        out_ch = blocks[-1].out_ch
        self.fc = nn.Linear(out_ch, spec.num_classes, **dd) if spec.num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk: stem and every stage, before pooling."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in range(1, len(self.spec.layers) + 1):
            x = getattr(self, f"layer{stage}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (or pooled features when num_classes is 0)."""
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))


def check_device(device: str) -> torch.device:
    """A torch.device for 'meta', 'cpu', 'cuda' or 'cuda:N', or InspectError saying why not."""
    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise InspectError(f"unknown device {device!r}: use cpu, cuda, cuda:N or meta")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise InspectError(
                f"--device {device}: CUDA is not available (torch {torch.__version__}, "
                f"built for CUDA: {torch.version.cuda or 'no'})"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise InspectError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
    return torch.device(device)


def init_weights(model: nn.Module) -> None:
    """torchvision's initialisation: Kaiming-normal convs (fan_out), BN weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            m.reset_parameters()


@contextlib.contextmanager
def _no_reset() -> Iterator[None]:
    """Layers skip their default initialisation while built (they are created on the meta device,
    where it would only cost time; `init_weights` gives real ones). Not thread-safe."""
    classes = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)
    own = [cls.__dict__.get("reset_parameters") for cls in classes]  # None: inherited
    for cls in classes:
        cls.reset_parameters = _skip  # type: ignore[method-assign]
    try:
        yield
    finally:
        for cls, method in zip(classes, own):
            if method is None:
                del cls.reset_parameters
            else:
                cls.reset_parameters = method  # type: ignore[method-assign]


def _skip(self: nn.Module) -> None:
    return None


def build(spec: NetSpec, device: str = "meta", init: bool = False) -> ResNet:
    """The module for `spec` on `device`; weights are left uninitialised unless `init` (the
    layers are created on the meta device, so inspecting never pays for initialisation)."""
    target = check_device(device)
    with _no_reset():
        model = ResNet(spec, device="meta")
    if target.type == "meta":
        return model  # nothing will run: train/eval mode is moot, and setting it costs a walk
    check_fits(model, target)
    model = model.to_empty(device=target)
    if init:
        init_weights(model)
    return model.eval()


def tensor_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def available_bytes(device: torch.device) -> int:
    """Memory free for new tensors on `device` (CUDA: free device memory; CPU: MemAvailable)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits(model: nn.Module, device: torch.device) -> None:
    """InspectError, with the estimate, when the weights cannot fit in `device`'s free memory."""
    need, free = tensor_bytes(model), available_bytes(device)
    if need > free:
        raise InspectError(
            f"the weights need {need / 2**30:.2f} GiB but {device} has {free / 2**30:.2f} GiB free"
        )
