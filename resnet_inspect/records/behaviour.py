"""What the memory view needs to know about a module beyond its ops, read off the module's types:
how its forward() holds tensors (which decides the inference peak), and the leaves whose autograd
saves differ from their kind's rule, or that the walker skips although they save something. Those are
reported by `memory`, never guessed."""

from __future__ import annotations

from typing import Literal

from torch import nn

from .readers import reader_for
from .types import NetRecord

Style = Literal["nested", "sequential"]


def _dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# Trunk and block classes whose forward() we know line by line (numbers/memory.py describes each style).
STYLES: dict[str, Style] = {
    "resnet_inspect.model.resnet.ResNet": "nested",
    "resnet_inspect.model.resnet.Bottleneck": "nested",
    "resnet_inspect.model.resnet.BasicBlock": "nested",
    "torchvision.models.resnet.ResNet": "sequential",
    "torchvision.models.resnet.Bottleneck": "sequential",
    "torchvision.models.resnet.BasicBlock": "sequential",
    "timm.models.resnet.ResNet": "sequential",
    "timm.models.resnet.Bottleneck": "sequential",
    "timm.models.resnet.BasicBlock": "sequential",
}

# Read as a batch norm, but computed as x * scale + shift from buffers: the multiplication keeps the
# scale, not the input, and under autocast the result is float32.
FROZEN_NORMS = frozenset(
    {
        "torchvision.ops.misc.FrozenBatchNorm2d",
        "resnet_inspect.model.layers.FrozenBatchNorm2d",
        "timm.layers.norm.FrozenBatchNorm2d",
        "timm.layers.norm_act.FrozenBatchNorm2d",
    }
)
# Skipped by the walker and saving nothing of their own (a ReLU's saved output is the storage of
# what it follows; memory.py places them).
NO_SAVES = (nn.ReLU, nn.Identity, nn.Flatten)
DROPOUTS = (
    "torch.nn.modules.dropout.Dropout",
    "torch.nn.modules.dropout.Dropout2d",
    "timm.layers.drop.DropPath",
    "timm.layers.drop.DropBlock2d",
)


# The op kinds whose tensors' lifetimes the inference simulation follows (numbers/memory.py).
PLAIN_KINDS = frozenset({"conv", "bn", "linear", "maxpool", "avgpool", "avgpool_same", "adaptive_avgpool"})


def forward_style(module: nn.Module, record: NetRecord) -> Style | None:
    """'nested' or 'sequential' when the trunk and every block are classes we know and hold only
    plain layers (no attention gate, anti-aliasing or group norm), else None."""
    ops = (*record.stem.ops, *(op for b in record.blocks for op in (*b.main, *b.shortcut)), *record.head)
    if any(op.kind not in PLAIN_KINDS for op in ops):
        return None
    style = STYLES.get(_dotted(type(module)))
    for block in record.blocks:
        if STYLES.get(_dotted(type(module.get_submodule(block.name)))) != style:
            return None
    return style


def _inactive(leaf: nn.Module) -> bool:
    """A dropout that drops nothing (probability 0) is the identity in training too."""
    probability = getattr(leaf, "p", getattr(leaf, "drop_prob", None))
    return probability is not None and float(probability) == 0.0


def foreign_leaves(module: nn.Module) -> tuple[str, ...]:
    """'name (Type: why)' of every leaf whose saved tensors no rule describes (leaves inside a
    composite read whole, a squeeze-excitation's sigmoid say, are its rule's business)."""
    found = []
    whole: list[str] = []  # composites read as one op, with children (SE, ECA, norm-acts)
    for name, leaf in module.named_modules():
        if any(name.startswith(prefix + ".") for prefix in whole):
            continue
        if next(leaf.children(), None) is not None:
            if reader_for(leaf) not in (None, "ignore"):
                whole.append(name)
            continue
        kind = _dotted(type(leaf))
        reader = reader_for(leaf)
        if kind in FROZEN_NORMS:
            found.append(f"{name} ({type(leaf).__name__}: keeps its scale, not its input)")
        elif reader == "ignore" and not isinstance(leaf, NO_SAVES):
            if kind in DROPOUTS or isinstance(leaf, nn.modules.dropout._DropoutNd):
                if not _inactive(leaf):
                    found.append(f"{name} ({type(leaf).__name__}: keeps a mask)")
            else:
                found.append(f"{name} ({type(leaf).__name__}: an activation other than ReLU)")
    return tuple(found)
