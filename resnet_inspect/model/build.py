"""NetSpec -> nn.Module on a device: where the module lives, and its initial weights."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import InspectError
from ..machine import available_bytes
from .layers import BlurPool2d, FrozenBatchNorm2d
from .preact import PreActResNet
from .resnet import ResNet
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


def init_weights(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """torchvision's initialisation: Kaiming-normal convs (fan_out), norms weight 1 and bias 0, the
    default for linear layers and 1-D convs (ECA), a frozen batch norm as the identity; random draws
    come from `generator` when given (torch's global generator is then left alone)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.Linear, nn.Conv1d)):
                _torch_default(m, generator)
            elif isinstance(m, FrozenBatchNorm2d):
                for name, fill in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
                    getattr(m, name).fill_(fill)


def _torch_default(layer: nn.Linear | nn.Conv1d, generator: torch.Generator | None) -> None:
    """torch's own reset_parameters for these layers (weight and bias uniform in +-1/sqrt(fan_in)),
    drawn from `generator`."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    if layer.bias is not None:
        fan_in = math.prod(layer.weight.shape[1:])
        bound = 1 / math.sqrt(fan_in) if fan_in else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def _constants(model: nn.Module) -> None:
    """Buffers that are part of the architecture, not of the weights (the blur filters)."""
    for m in model.modules():
        if isinstance(m, BlurPool2d):
            m.reset_filter()


def build(spec: NetSpec, device: str = "meta", init: bool = False) -> nn.Module:
    """The module for `spec` on `device`; weights are left uninitialised unless `init` (the layers are
    created on the meta device, so inspecting never pays for initialisation)."""
    target = check_device(device)
    model = (PreActResNet if spec.preact else ResNet)(spec, device="meta")
    if target.type == "meta":
        return model  # nothing will run: train/eval mode is moot, and setting it costs a walk
    check_fits(model, target)
    return materialise(model, target, init).eval()


def materialise(model: nn.Module, device: torch.device, init: bool = True) -> nn.Module:
    """A meta-built model on a real device: memory for every tensor, the architecture's constant
    buffers filled in, and torchvision's initialisation when `init`."""
    model = model.to_empty(device=device)
    _constants(model)
    if init:
        init_weights(model)
    return model


def tensor_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def check_fits(model: nn.Module, device: torch.device) -> None:
    """InspectError, with the estimate, when the weights cannot fit in `device`'s free memory."""
    need, free = tensor_bytes(model), available_bytes(device)
    if need > free:
        raise InspectError(f"the weights need {need / 2**30:.2f} GiB but {device} has {free / 2**30:.2f} GiB free")
