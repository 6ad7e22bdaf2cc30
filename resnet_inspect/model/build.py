"""NetSpec -> nn.Module on a device: where the module lives, and its initial weights."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InspectError
from ..machine import available_bytes
from .layers import ResNet
from .spec import NetSpec

DEVICES = ("meta", "cpu", "cuda")


def check_device(device: str) -> torch.device:
    """A torch.device for 'meta', 'cpu', 'cuda' or 'cuda:N', or InspectError saying why not."""
    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isascii() or not index.isdigit())):
        raise InspectError(f"must be cpu, cuda, cuda:N or meta, not {device!r}", "device")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise InspectError(
                f"{device}: CUDA is not available (torch {torch.__version__}, built for CUDA: "
                f"{torch.version.cuda or 'no'})",
                "device",
            )
        if index and int(index) >= torch.cuda.device_count():
            raise InspectError(f"{device}: only {torch.cuda.device_count()} CUDA device(s) present", "device")
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


def build(spec: NetSpec, device: str = "meta", init: bool = False) -> ResNet:
    """The module for `spec` on `device`; weights are left uninitialised unless `init` (the layers are
    created on the meta device, so inspecting never pays for initialisation)."""
    target = check_device(device)
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


def check_fits(model: nn.Module, device: torch.device) -> None:
    """InspectError, with the estimate, when the weights cannot fit in `device`'s free memory."""
    need, free = tensor_bytes(model), available_bytes(device)
    if need > free:
        raise InspectError(f"the weights need {need / 2**30:.2f} GiB but {device} has {free / 2**30:.2f} GiB free")
