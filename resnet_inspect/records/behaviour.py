"""What the memory view needs to know about a module beyond its ops, read off the module's types:
how its forward() holds tensors (which decides the inference peak), and the leaves whose autograd
saves differ from their kind's rule, or that the walker skips although they save something. Those are
reported by `memory`, never guessed."""

from __future__ import annotations

from typing import Literal

from torch import nn

from .readers import read, reader_for
from .types import NetRecord, Op

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
    "resnet_inspect.model.preact.PreActResNet": "nested",
    "resnet_inspect.model.preact.PreActBlock": "nested",
    "timm.models.resnetv2.ResNetV2": "sequential",
    "timm.models.resnetv2.PreActBottleneck": "sequential",
    "timm.models.resnetv2.PreActBasic": "sequential",
}
# Layers whose forward() holds tensors in a way the inference peak depends on, and the styles whose
# description covers them (numbers/memory.py: our SE holds the gate while it multiplies, timm's the
# excitation too; the others hold the same in both).
LAYER_STYLES: dict[str, tuple[Style, ...]] = {
    "resnet_inspect.model.layers.SqueezeExcite": ("nested",),
    "timm.layers.squeeze_excite.SEModule": ("sequential",),
    "resnet_inspect.model.layers.EfficientChannelAttention": ("nested", "sequential"),
    "timm.layers.eca.EcaModule": ("nested", "sequential"),
    "resnet_inspect.model.layers.BlurPool2d": ("nested", "sequential"),
    "timm.layers.blur_pool.BlurPool2d": ("nested", "sequential"),
    "resnet_inspect.model.layers.FrozenBatchNorm2d": ("nested", "sequential"),
    "torchvision.ops.misc.FrozenBatchNorm2d": ("nested", "sequential"),
    "timm.layers.norm_act.FrozenBatchNormAct2d": ("nested", "sequential"),
}
HELD_KINDS = ("se", "eca", "blur", "frozen_bn")

# What a gate (SE, ECA) may hold for its kind's rule to describe it: its convs, a ReLU, the sigmoid,
# identities and a global average pool; any other leaf inside (a norm, another activation, a linear
# layer) saves what the rule does not say.
GATE_PARTS = (nn.Conv2d, nn.Conv1d, nn.ReLU, nn.Sigmoid, nn.Identity, nn.AdaptiveAvgPool2d)
OPTIONAL_GATE_PARTS = frozenset({"timm.layers.activations.Sigmoid"})  # sigmoid, or sigmoid_ on fc2's output
GATE_KINDS = ("se", "eca")
# Skipped by the walker and saving nothing of their own (a ReLU's saved output is the storage of
# what it follows; memory.py places them).
NO_SAVES = (nn.ReLU, nn.Identity, nn.Flatten)
DROPOUTS = (
    "torch.nn.modules.dropout.Dropout",
    "torch.nn.modules.dropout.Dropout2d",
    "timm.layers.drop.DropPath",
    "timm.layers.drop.DropBlock2d",
)


def forward_style(module: nn.Module, record: NetRecord) -> Style | None:
    """'nested' or 'sequential' when the trunk, every block and every layer whose forward() the peak
    depends on (gates, blur pools, frozen norms) are classes we know, else None."""
    style = STYLES.get(_dotted(type(module)))
    for block in record.blocks:
        if STYLES.get(_dotted(type(module.get_submodule(block.name)))) != style:
            return None
    ops = (*record.stem.ops, *(op for b in record.blocks for op in (*b.main, *b.shortcut)), *record.head)
    for op in ops:
        if op.kind in HELD_KINDS and style not in LAYER_STYLES.get(_dotted(type(module.get_submodule(op.name))), ()):
            return None
    return style


def _inactive(leaf: nn.Module) -> bool:
    """A dropout that drops nothing (probability 0) is the identity in training too."""
    probability = getattr(leaf, "p", getattr(leaf, "drop_prob", None))
    return probability is not None and float(probability) == 0.0


def _gates(module: nn.Module) -> list[str]:
    """Names of the modules read whole as a gate (SE, ECA)."""
    gates = []
    for name, child in module.named_modules():
        op = read(name, child)
        if isinstance(op, Op) and op.kind in GATE_KINDS:
            gates.append(name)
    return gates


def foreign_leaves(module: nn.Module) -> tuple[str, ...]:
    """'name (Type: why)' of every leaf whose saved tensors no rule describes."""
    gates = _gates(module)
    found = [
        f"{gate} (a gate that adds a max-pool: beyond what its rule describes)"
        for gate in gates
        if getattr(module.get_submodule(gate), "add_maxpool", False)
    ]
    for name, leaf in module.named_modules():
        if next(leaf.children(), None) is not None:
            continue
        kind = _dotted(type(leaf))
        reader = reader_for(leaf)
        if any(name.startswith(gate + ".") for gate in gates):
            known = isinstance(leaf, GATE_PARTS) or kind in OPTIONAL_GATE_PARTS
            if not known or (type(leaf) in (nn.Conv2d, nn.Conv1d) and leaf.groups != 1):
                found.append(f"{name} ({type(leaf).__name__}: inside a gate, beyond what its rule describes)")
        elif reader == "ignore" and not isinstance(leaf, NO_SAVES):
            if kind in DROPOUTS or isinstance(leaf, nn.modules.dropout._DropoutNd):
                if not _inactive(leaf):
                    found.append(f"{name} ({type(leaf).__name__}: keeps a mask)")
            else:
                found.append(f"{name} ({type(leaf).__name__}: an activation other than ReLU)")
    # timm's convention: a `drop_rate` with no dropout module is one its forward() applies with
    # F.dropout, unseen by any module walk (legacy SENet's 0.2 before its classifier, by default)
    for name, sub in module.named_modules():
        rate = getattr(sub, "drop_rate", 0.0)
        if not isinstance(rate, (int, float)) or rate <= 0:
            continue
        if not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in sub.modules()):  # else reported above
            found.append(f"{name or type(sub).__name__}.drop_rate ({rate}: a dropout in forward(), keeps a mask)")
    return tuple(found)
