"""Hand-derived truths, written from the papers' descriptions and torch's documented formulas,
independent of the package: output sizes, MACs and parameter counts of ResNets, and state-dict names."""

from __future__ import annotations

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def conv_out(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    """torch.nn.Conv2d's output length: floor((n + 2p - d(k-1) - 1) / s) + 1."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def pool_out_ceil(n: int, k: int, s: int) -> int:
    """An unpadded pool with ceil_mode=True (the last window must start inside the input)."""
    out = -(-(n - k) // s) + 1
    return out - 1 if (out - 1) * s >= n else out


def conv_macs(h: int, w: int, cin: int, cout: int, k: int, groups: int = 1) -> int:
    """Multiply-accumulates of a k x k conv producing h x w x cout."""
    return h * w * cout * (cin // groups) * k * k


def bn(channels: int) -> int:
    """Parameters of a batch norm: weight and bias."""
    return 2 * channels


def bottleneck_macs(h: int, w: int, cin: int, planes: int, stride: int) -> tuple[int, int, int]:
    """One torchvision bottleneck at h x w input: (MACs, output h, output w)."""
    ho, wo = conv_out(h, 3, stride, 1), conv_out(w, 3, stride, 1)
    out = planes * 4
    macs = h * w * cin * planes + ho * wo * planes * planes * 9 + ho * wo * planes * out
    if stride != 1 or cin != out:
        macs += ho * wo * cin * out
    return macs, ho, wo


def stage_macs(h: int, w: int, cin: int, planes: int, blocks: int, stride: int) -> tuple[int, int, int]:
    """A stage of torchvision bottlenecks: (MACs, output h, output w)."""
    total = 0
    for i in range(blocks):
        macs, h, w = bottleneck_macs(h, w, cin if i == 0 else planes * 4, planes, stride if i == 0 else 1)
        total += macs
    return total, h, w


def hand_stage_macs(
    h,
    w,
    layers,
    *,
    groups=1,
    width_per_group=64,
    deep_stem=None,
    avgpool_shortcut=False,
    stride_on_1x1=False,
    classes=1000,
):
    """MACs per stage of a bottleneck ResNet at h x w, from the papers' description."""
    stages = {}
    if deep_stem:
        a, b, c = deep_stem
        h1, w1 = conv_out(h, 3, 2, 1), conv_out(w, 3, 2, 1)
        stem = conv_macs(h1, w1, 3, a, 3) + conv_macs(h1, w1, a, b, 3) + conv_macs(h1, w1, b, c, 3)
        inplanes = c
    else:
        h1, w1 = conv_out(h, 7, 2, 3), conv_out(w, 7, 2, 3)
        stem = conv_macs(h1, w1, 3, 64, 7)
        inplanes = 64
    stages["stem"] = stem
    h, w = conv_out(h1, 3, 2, 1), conv_out(w1, 3, 2, 1)  # max-pool
    for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        width, out, total = planes * width_per_group // 64 * groups, planes * 4, 0
        for i in range(blocks):
            stride = 2 if i == 0 and index > 0 else 1
            if stride_on_1x1:
                ho, wo = conv_out(h, 1, stride, 0), conv_out(w, 1, stride, 0)
                total += conv_macs(ho, wo, inplanes, width, 1)
            else:
                ho, wo = conv_out(h, 3, stride, 1), conv_out(w, 3, stride, 1)
                total += conv_macs(h, w, inplanes, width, 1)
            total += conv_macs(ho, wo, width, width, 3, groups) + conv_macs(ho, wo, width, out, 1)
            if i == 0:  # every bottleneck stage's first block projects
                if avgpool_shortcut and stride == 2:
                    assert (pool_out_ceil(h, 2, 2), pool_out_ceil(w, 2, 2)) == (ho, wo)
                total += conv_macs(ho, wo, inplanes, out, 1)
            h, w, inplanes = ho, wo, out
        stages[f"layer{index + 1}"] = total
    stages["head"] = inplanes * classes
    return stages


def hand_params(
    layers,
    *,
    bottleneck=True,
    groups=1,
    width_per_group=64,
    deep_stem=None,
    project_first=False,
    classes=1000,
):
    """Parameters of a ResNet written from the paper's description."""
    if deep_stem:
        a, b, c = deep_stem
        total = 3 * a * 9 + bn(a) + a * b * 9 + bn(b) + b * c * 9 + bn(c)
        inplanes = c
    else:
        total = 3 * 64 * 49 + bn(64)
        inplanes = 64
    expansion = 4 if bottleneck else 1
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        out = planes * expansion
        width = planes * width_per_group // 64 * groups if bottleneck else planes
        for i in range(blocks):
            if bottleneck:
                total += inplanes * width + bn(width)
                total += width * (width // groups) * 9 + bn(width)
                total += width * out + bn(out)
            else:
                total += inplanes * planes * 9 + bn(planes) + planes * planes * 9 + bn(planes)
            stride = 2 if (i == 0 and stage > 0) else 1
            if stride != 1 or inplanes != out or (i == 0 and project_first):
                total += inplanes * out + bn(out)
            inplanes = out
    return total + inplanes * classes + classes


def expected_keys(layers, deep_stem=False, avgpool_shortcut=False, bottleneck=True):
    """torchvision's state-dict names (timm's for the deep stem and avg-pool shortcut), written out."""
    keys = []
    if deep_stem:
        keys += [
            "conv1.0.weight",
            *(f"conv1.1.{k}" for k in BN_KEYS),
            "conv1.3.weight",
            *(f"conv1.4.{k}" for k in BN_KEYS),
            "conv1.6.weight",
        ]
    else:
        keys.append("conv1.weight")
    keys += [f"bn1.{k}" for k in BN_KEYS]
    convs = 3 if bottleneck else 2
    for stage, blocks in enumerate(layers, start=1):
        for i in range(blocks):
            prefix = f"layer{stage}.{i}"
            for c in range(1, convs + 1):
                keys.append(f"{prefix}.conv{c}.weight")
                keys += [f"{prefix}.bn{c}.{k}" for k in BN_KEYS]
            if i == 0 and (bottleneck or stage > 1):
                conv, norm = (1, 2) if avgpool_shortcut else (0, 1)
                keys.append(f"{prefix}.downsample.{conv}.weight")
                keys += [f"{prefix}.downsample.{norm}.{k}" for k in BN_KEYS]
    return keys + ["fc.weight", "fc.bias"]
