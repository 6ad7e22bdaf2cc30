"""The family's building layers: convs and norms made without initialisation, timm's same-padded pool,
the attention gates (squeeze-excitation, ECA), the anti-aliasing blur pool, a frozen batch norm and
the pre-activation norm-acts. Names and state-dict entries follow timm's, so checkpoints load.

Layers are created without their default initialisation (`make`): the model is built on the meta
device, where initialising would only cost time, and `build.init_weights` gives real weights when
asked. Nothing process-wide is patched, so building is safe from any number of threads.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import same_padding
from .spec import GN_GROUPS

Layer = TypeVar("Layer", bound=nn.Module)


def _skip_reset(self: nn.Module) -> None:
    return None


@functools.cache
def _uninitialised(cls: type) -> type:
    return type(cls.__name__, (cls,), {"reset_parameters": _skip_reset})


def make(cls: type[Layer], *args: Any, **kwargs: Any) -> Layer:
    """`cls(*args, **kwargs)` without its default weight initialisation.

    The layer is constructed as a subclass whose `reset_parameters` does nothing, then given back its
    own class: the result is an ordinary `cls` instance, and no class other threads use is touched.
    """
    layer = _uninitialised(cls)(*args, **kwargs)
    layer.__class__ = cls
    return layer


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


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine terms, all buffers (torchvision's, for detection
    backbones): y = (x - mean) / sqrt(var + eps) * weight + bias."""

    def __init__(self, num_features: int, eps: float = 1e-5, device: Any = None) -> None:
        super().__init__()
        self.num_features, self.eps = num_features, eps
        for name, fill in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((num_features,), fill, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The affine form of a batch norm in eval mode."""
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


class BatchNormReLU(nn.BatchNorm2d):
    """Batch norm then ReLU, one module (a pre-activation block's norm; timm's BatchNormAct2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn(x))."""
        return F.relu(super().forward(x), inplace=True)


class GroupNormReLU(nn.GroupNorm):
    """Group norm then ReLU, one module (timm's GroupNormAct)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(gn(x))."""
        return F.relu(super().forward(x), inplace=True)


class SqueezeExcite(nn.Module):
    """Squeeze-excitation (Hu et al. 2018), as timm's SEModule: the input times a per-channel gate
    computed from its global average: sigmoid(fc2(relu(fc1(mean))))."""

    def __init__(self, channels: int, hidden: int, device: Any = None) -> None:
        super().__init__()
        self.fc1 = make(nn.Conv2d, channels, hidden, 1, device=device)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = make(nn.Conv2d, hidden, channels, 1, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x * gate(x)."""
        return x * self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))).sigmoid()


class EfficientChannelAttention(nn.Module):
    """ECA (Wang et al. 2020), as timm's EcaModule: a 1-D conv of kernel k across the pooled channels
    makes the per-channel gate."""

    def __init__(self, kernel: int, device: Any = None) -> None:
        super().__init__()
        self.conv = make(nn.Conv1d, 1, 1, kernel, padding=(kernel - 1) // 2, bias=False, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x * sigmoid(conv1d(mean over the map))."""
        gate = self.conv(x.mean((2, 3)).unsqueeze(1)).sigmoid()
        return x * gate.view(x.shape[0], -1, 1, 1)


class BlurPool2d(nn.Module):
    """Anti-aliasing blur pool (Zhang 2019), as timm's: reflect padding, then a fixed binomial
    filt x filt depthwise conv with the stride. The filter is a buffer outside the state dict."""

    def __init__(self, channels: int, stride: int = 2, filt_size: int = 3, device: Any = None) -> None:
        super().__init__()
        self.channels, self.stride, self.filt_size = channels, stride, filt_size
        self.padding = [((stride - 1) + (filt_size - 1)) // 2] * 4
        self.register_buffer("filt", torch.empty(channels, 1, filt_size, filt_size, device=device), persistent=False)
        self.reset_filter()

    def reset_filter(self) -> None:
        """The binomial filter, e.g. [1, 2, 1] x [1, 2, 1] / 16 for size 3 (a no-op on meta)."""
        if self.filt.is_meta:
            return
        coeffs = torch.tensor([math.comb(self.filt_size - 1, k) for k in range(self.filt_size)], dtype=torch.float32)
        coeffs = coeffs / coeffs.sum()
        with torch.no_grad():
            self.filt.copy_((coeffs[:, None] * coeffs[None, :]).expand_as(self.filt))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Blur, then subsample."""
        return F.conv2d(F.pad(x, self.padding, mode="reflect"), self.filt, stride=self.stride, groups=self.channels)


@dataclass(frozen=True)
class Factory:
    """Makes the layers of one network: on one device, with one kind of norm."""

    device: Any = None
    norm_kind: str = "bn"

    def conv(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1
    ) -> nn.Conv2d:
        """A bias-free conv padded to keep the size (padding = dilation x (kernel - 1) / 2)."""
        padding = dilation * (kernel - 1) // 2
        return make(nn.Conv2d, in_ch, out_ch, kernel, stride, padding, dilation, groups, bias=False, device=self.device)

    def norm(self, channels: int, act: bool = False) -> nn.Module:
        """The network's norm (batch, group of 32, frozen batch), with the ReLU inside when `act`."""
        if self.norm_kind == "gn":
            return make(GroupNormReLU if act else nn.GroupNorm, GN_GROUPS, channels, device=self.device)
        if self.norm_kind == "frozen_bn":
            norm = FrozenBatchNorm2d(channels, device=self.device)
            return nn.Sequential(norm, nn.ReLU(inplace=True)) if act else norm
        return make(BatchNormReLU if act else nn.BatchNorm2d, channels, device=self.device)

    def linear(self, in_features: int, out_features: int) -> nn.Linear:
        """A classifier."""
        return make(nn.Linear, in_features, out_features, device=self.device)

    def attention(self, kind: str, channels: int, size: int) -> nn.Module | None:
        """Squeeze-excitation (size: squeezed channels), ECA (size: kernel), or none."""
        if kind == "se":
            return SqueezeExcite(channels, size, device=self.device)
        if kind == "eca":
            return EfficientChannelAttention(size, device=self.device)
        return None

    def anti_alias(self, kind: str, channels: int, stride: int) -> nn.Module:
        """The pool that carries a stride instead of a conv: timm's blur pool, or its AvgPool2d(stride)."""
        if kind == "blur":
            return BlurPool2d(channels, stride, device=self.device)
        return nn.AvgPool2d(stride)
