"""The slow path, on real tensors: fvcore's own count, for `flops --count fvcore` and the tests.

fvcore traces a real forward pass (it fails on meta tensors), so this allocates the model and one
input on a real device. Imported only when asked for.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ..errors import InspectError
from ..records.types import NetRecord


def fvcore_count(model: nn.Module, record: NetRecord, height: int, width: int, batch: int = 1) -> dict[str, Any]:
    """fvcore FlopCountAnalysis on one real input: total, by operator, by stage, unsupported ops."""
    from fvcore.nn import FlopCountAnalysis

    device = next(model.parameters()).device
    if device.type == "meta":
        raise InspectError("must be cpu or cuda, not meta: fvcore counts on a real forward pass", "device")
    x = torch.zeros(batch, record.stem.in_ch, height, width, device=device)
    analysis = FlopCountAnalysis(model.eval(), x)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's own use of deprecated torch.jit APIs
        total = int(analysis.total())
        by_module = analysis.by_module()
        by_operator = {name: int(v) for name, v in analysis.by_operator().items()}
    children = [name for name, _ in model.named_children()]
    stage_at = [children.index(s) for s in record.stages]
    head = sum(int(by_module.get(name, 0)) for name in children[stage_at[-1] + 1 :])
    stages = {s: int(by_module.get(s, 0)) for s in record.stages}
    stem = total - head - sum(stages.values())
    return {
        "total": total,
        "by_operator": by_operator,
        "stages": {"stem": stem, **stages, "head": head},
        "unsupported": sorted(analysis.unsupported_ops()),
    }
