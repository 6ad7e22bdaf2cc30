"""Variant names -> NetSpec: the grammar, the registry of listed names, and overrides.

Names are case-insensitive and `-` equals `_`, so Paddle's `ResNet50_vd` and `ResNeXt101_vd_64x4d`
resolve as written. A name may carry overrides after `@`: `resnet101@os8`,
`resnet50_vd@os8,grid=1-2-4`, `resnet50@groups=32,width=4` (docs/cli.md).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InspectError
from .spec import BASIC_DEPTHS, BOTTLENECK_DEPTHS, PADDLE_DEPTHS, RS_DEPTHS, NetSpec

_NUMBER = r"[1-9][0-9]{0,5}"  # no leading zeros ("resnet050" is a typo, not resnet50), no absurd sizes

# What each bag-of-tricks letter (He et al., CVPR 2019) and timm letter changes from torchvision's default.
LETTERS: Mapping[str, dict[str, Any]] = {
    "_va": {"stride_at": "1x1", "convention": "msra"},
    "_vb": {},
    "_vc": {"stem": "deep", "stem_width": 32, "convention": "bag-of-tricks"},
    "_vd": {
        "stem": "deep",
        "stem_width": 32,
        "shortcut": "avgpool",
        "project_first": True,
        "dilation_style": "paddle",
        "convention": "paddle",
    },
    "c": {"stem": "deep", "stem_width": 32, "convention": "timm"},
    "d": {"stem": "deep", "stem_width": 32, "shortcut": "avgpool", "convention": "timm"},
    "s": {"stem": "deep", "stem_width": 64, "convention": "timm"},
    "t": {"stem": "tiered", "stem_width": 32, "shortcut": "avgpool", "convention": "timm"},
}
# timm's prefixes and infixes: attention (Hu et al. 2018; Wang et al. 2020) and anti-aliasing (Zhang 2019).
ATTENTION_PREFIXES: Mapping[str, dict[str, Any]] = {"se": {"attention": "se"}, "eca": {"attention": "eca"}}
ANTI_ALIAS_INFIXES: Mapping[str, dict[str, Any]] = {"aa": {"anti_alias": "avg"}, "blur": {"anti_alias": "blur"}}
# ResNet-RS (Bello et al. 2021) as timm builds it; ResNetV2 (He et al. 2016b) as timm lays it out.
FAMILIES: Mapping[str, dict[str, Any]] = {
    "resnetrs": {
        "stem": "deep",
        "stem_width": 32,
        "stem_pool": "conv",
        "shortcut": "avgpool",
        "attention": "se",
        "attention_reduction": 4,
    },
    "resnetv2": {"preact": True},
}

_GRAMMAR = (
    re.compile(
        rf"(?P<attn>se|eca)?(?P<family>resnet)(?P<aa>aa|blur)?(?P<depth>{_NUMBER})(?P<timm>[cdst]?)"
        rf"(?P<bot>_v[abcd])?(?P<gn>_gn)?"
    ),
    re.compile(
        rf"(?P<attn>se|eca)?(?P<family>resnext)(?P<aa>aa|blur)?(?P<depth>{_NUMBER})(?P<timm>[cdst]?)"
        rf"_(?P<groups>{_NUMBER})x(?P<width>{_NUMBER})d(?P<bot>_v[abcd])?"
    ),
    re.compile(rf"(?P<family>resnetrs)(?P<depth>{_NUMBER})"),
    re.compile(rf"(?P<family>resnetv2)_(?P<depth>{_NUMBER})(?P<timm>[cdst]?)"),
    re.compile(  # Paddle's spelling: resnext50_vd_32x4d
        rf"(?P<family>resnext)(?P<depth>{_NUMBER})(?P<bot>_v[abcd])_(?P<groups>{_NUMBER})x(?P<width>{_NUMBER})d"
    ),
    re.compile(rf"(?P<family>wide_resnet)(?P<depth>{_NUMBER})_(?P<factor>{_NUMBER})"),
)

# The listed names, by where they come from: `resnet-inspect list` and the zoo table. Names of the
# grammar outside these still resolve.
LISTED: dict[str, tuple[str, ...]] = {
    # torchvision.models ("V1.5": stride on the 3x3)
    "torchvision": (
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "resnext50_32x4d",
        "resnext101_32x8d",
        "resnext101_64x4d",
        "wide_resnet50_2",
        "wide_resnet101_2",
    ),
    # bag of tricks letters on torchvision's definition
    "bag-of-tricks": ("resnet50_va", "resnet101_va", "resnet50_vc"),
    "timm": (
        "resnet26",
        "resnet200",
        "resnet18d",
        "resnet26d",
        "resnet34d",
        "resnet50c",
        "resnet50d",
        "resnet50s",
        "resnet101c",
        "resnet101d",
        "resnet101s",
        "resnet152c",
        "resnet152d",
        "resnet152s",
        "resnet200d",
        "resnext50d_32x4d",
        "resnext101_32x4d",
        "resnext101_32x16d",
    ),
    # timm's attention, anti-aliasing, tiered-stem, ResNet-RS, pre-activation and GroupNorm variants
    "timm variants": (
        "resnet10t",
        "resnet14t",
        "resnet26t",
        "resnet50t",
        "resnet50_gn",
        "seresnet50",
        "seresnet152d",
        "seresnext50_32x4d",
        "seresnext101_32x8d",
        "ecaresnet26t",
        "ecaresnet50d",
        "ecaresnet101d",
        "resnetaa50d",
        "resnetaa101d",
        "resnetblur50",
        "seresnextaa101d_32x8d",
        "resnetrs50",
        "resnetrs101",
        "resnetv2_50",
        "resnetv2_50d",
        "resnetv2_101",
    ),
    # PaddleClas / PaddleSeg ResNet_vd and ResNeXt_vd
    "paddle": (
        "resnet18_vd",
        "resnet34_vd",
        "resnet50_vd",
        "resnet101_vd",
        "resnet152_vd",
        "resnet200_vd",
        "resnext50_vd_32x4d",
        "resnext50_vd_64x4d",
        "resnext101_vd_32x4d",
        "resnext101_vd_64x4d",
        "resnext152_vd_32x4d",
        "resnext152_vd_64x4d",
    ),
}
ZOO: tuple[str, ...] = tuple(name for names in LISTED.values() for name in names)
TORCHVISION_NAMES = frozenset(LISTED["torchvision"])
TIMM_PLAIN_NAMES = frozenset({"resnet26", "resnet200", "resnext101_32x4d", "resnext101_32x16d", "resnext101_32x32d"})


def normalize(name: str) -> str:
    """Lower-case, `-` -> `_`, blanks trimmed, and the paper's "ResNet-50" joined to resnet50."""
    key = name.strip().lower().replace("-", "_")
    return re.sub(r"^(resnet|resnext|wide_resnet)_(?=[0-9])", r"\1", key)


def _depth_table(name: str, family: str, depth: int, letter: str) -> tuple[str, tuple[int, ...]]:
    if family == "resnetrs":
        if depth not in RS_DEPTHS:
            raise InspectError(f"{name}: ResNet-RS has depths {', '.join(map(str, RS_DEPTHS))}, not {depth}")
        return "bottleneck", RS_DEPTHS[depth]
    if family == "resnetv2":
        family = "resnet"
    if letter == "_vd" and depth in PADDLE_DEPTHS:
        return "bottleneck", PADDLE_DEPTHS[depth]
    if depth in BASIC_DEPTHS and family == "resnet":
        return "basic", BASIC_DEPTHS[depth]
    if depth in BOTTLENECK_DEPTHS:
        return "bottleneck", BOTTLENECK_DEPTHS[depth]
    if depth in BASIC_DEPTHS:
        raise InspectError(
            f"{name}: depth {depth} uses basic blocks, which take no groups or width "
            f"(torchvision and timm refuse it); {family} needs a bottleneck depth: "
            f"{', '.join(map(str, BOTTLENECK_DEPTHS))}"
        )
    raise InspectError(
        f"{name}: no stage table for depth {depth}: basic {', '.join(map(str, BASIC_DEPTHS))}; "
        f"bottleneck {', '.join(map(str, BOTTLENECK_DEPTHS))}"
    )


def _from_grammar(name: str) -> NetSpec | None:
    for pattern in _GRAMMAR:
        match = pattern.fullmatch(name)
        if match:
            break
    else:
        return None
    parts = match.groupdict()
    timm_letter, bot_letter = parts.get("timm") or "", parts.get("bot") or ""
    if timm_letter and bot_letter:
        raise InspectError(
            f"{name}: use timm's letter ({timm_letter}) or a bag-of-tricks suffix ({bot_letter}), not both"
        )
    letter = timm_letter or bot_letter
    family, depth = parts["family"], int(parts["depth"])
    block, layers = _depth_table(name, family, depth, letter)
    knobs: dict[str, Any] = {"block": block, "layers": layers, "name": name}
    if family == "resnext":
        knobs.update(groups=int(parts["groups"]), width_per_group=int(parts["width"]))
    elif family == "wide_resnet":
        if block == "basic":
            raise InspectError(f"{name}: wide ResNets widen bottlenecks; depth {depth} uses basic blocks")
        knobs.update(width_per_group=64 * int(parts["factor"]))
    knobs.update(LETTERS.get(letter, {}))
    knobs.update(FAMILIES.get(family, {}))
    knobs.update(ATTENTION_PREFIXES.get(parts.get("attn") or "", {}))
    knobs.update(ANTI_ALIAS_INFIXES.get(parts.get("aa") or "", {}))
    if parts.get("gn"):
        knobs["norm"] = "gn"
    timm_only = family in FAMILIES or parts.get("attn") or parts.get("aa") or parts.get("gn")
    if timm_only:
        knobs["convention"] = "timm"
    elif not letter and name not in TORCHVISION_NAMES:  # torchvision's structure, a name it lacks
        knobs["convention"] = "timm" if name in TIMM_PLAIN_NAMES else "generic"
    return NetSpec(**knobs)


def _build_registry() -> dict[str, Callable[[], NetSpec]]:
    registry: dict[str, Callable[[], NetSpec]] = {}
    for name in ZOO:
        if name in registry:
            raise RuntimeError(f"{name} is registered twice")
        spec = _from_grammar(name)
        if spec is None:
            raise RuntimeError(f"{name} does not follow the grammar")
        registry[name] = lambda spec=spec: spec
    return registry


REGISTRY = _build_registry()


def natural_key(name: str) -> list[Any]:
    """Sort key putting resnet18 before resnet101 (numbers compared as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


GLOB = re.compile(r"[*?\[]")


def is_pattern(text: str) -> bool:
    """Whether a name (before its `@` overrides) is a shell-style pattern over the registered names:
    `resnet*d`, `resnet5?`. No registered or grammar name holds `*`, `?` or `[`, so a pattern is never
    a name; a name with `:` (torchvision:, timm:, a file or module) is never a pattern."""
    base = text.partition("@")[0]
    return ":" not in base and bool(GLOB.search(base))


def matching(patterns: list[str] | tuple[str, ...]) -> list[str]:
    """Names and shell-style patterns (fnmatch, case-insensitive, over the registered names, in natural
    order; `@overrides` after a pattern go to every match) -> names, each once, in the order given."""
    registered = sorted(REGISTRY, key=natural_key)
    found: list[str] = []
    for text in patterns:
        if not is_pattern(text):
            found.append(text)
            continue
        pattern, at, options = text.partition("@")
        matches = [n for n in registered if fnmatch.fnmatchcase(n, pattern.strip().lower())]
        if not matches:
            raise InspectError(f"{pattern.strip()!r} matches no registered name (`resnet-inspect list` shows them)")
        found += [n + at + options for n in matches]
    return list(dict.fromkeys(found))


def closest(name: str, n: int = 3) -> list[str]:
    """The registered names nearest to a misspelt one."""
    return difflib.get_close_matches(normalize(name), list(REGISTRY), n=n, cutoff=0.6)


def resolve_name(name: str) -> NetSpec:
    """A variant name (no overrides) -> its NetSpec, or InspectError naming the closest names."""
    key = normalize(name)
    if key in REGISTRY:
        return REGISTRY[key]()
    spec = _from_grammar(key)
    if spec is not None:
        return spec
    hint = closest(key)
    suggestion = f"; closest: {', '.join(hint)}" if hint else "; see `resnet-inspect list`"
    raise InspectError(f"unknown model {name.strip()!r}{suggestion}")


# -- overrides: the one `@key=value` grammar ----------------------------------------------------

OVERRIDE_FIELDS = (
    "layers",
    "groups",
    "width_per_group",
    "stem",
    "stem_width",
    "stem_pool",
    "shortcut",
    "attention",
    "attention_reduction",
    "anti_alias",
    "norm",
    "num_classes",
    "output_stride",
    "multi_grid",
    "dilation_style",
)

_STEM_DEFAULT_WIDTH = {"classic": 64, "deep": 32, "tiered": 32}

INLINE_KEYS = {  # the compact form used after `@` -> NetSpec field
    "os": "output_stride",
    "grid": "multi_grid",
    "layers": "layers",
    "groups": "groups",
    "width": "width_per_group",
    "stem": "stem",
    "stem_width": "stem_width",
    "shortcut": "shortcut",
    "classes": "num_classes",
    "dilation": "dilation_style",
    "stem_pool": "stem_pool",
    "attn": "attention",
    "reduction": "attention_reduction",
    "aa": "anti_alias",
    "norm": "norm",
}
_FIELD_KEYS = {v: k for k, v in INLINE_KEYS.items()}
_INT_FIELDS = {"output_stride", "groups", "width_per_group", "stem_width", "num_classes", "attention_reduction"}
_LIST_FIELDS = {"layers", "multi_grid"}


def parse_options(text: str) -> dict[str, str]:
    """'os8,grid=1-2-4' -> {'os': '8', 'grid': '1-2-4'}: the text after `@`, keys and raw values.

    `osN` is short for `os=N`; a bare number after a value continues it, so `grid=1,2,4` is one list.
    """
    options: dict[str, str] = {}
    last = None
    for item in (i.strip() for i in text.split(",")):
        if re.fullmatch(r"os[0-9]+", item):
            key, value = "os", item[2:]
        elif last is not None and re.fullmatch(r"[0-9]+", item):
            options[last] += "," + item
            continue
        else:
            key, sep, value = item.partition("=")
            if not sep or not key.isidentifier() or not value:
                raise InspectError(f"malformed option {item!r} in @{text}: expected os8 or key=value")
        if key in options:
            raise InspectError(f"option {key!r} given twice in @{text}")
        options[key] = value
        last = key
    return options


def parse_int_list(text: str, param: str) -> tuple[int, ...]:
    """'3,4,6,3' or '3-4-6-3' -> (3, 4, 6, 3): ASCII digits separated by commas or dashes."""
    items = re.split(r"[,-]", text.strip())
    if any(not re.fullmatch(r"0|[1-9][0-9]{0,5}", t.strip()) for t in items):
        example = "3,4,6,3 or 3-4-6-3" if param.lstrip("@") == "layers" else "1,2,4 or 1-2-4"
        raise InspectError(f"must be integers separated by ',' or '-' (e.g. {example}), got {text!r}", param)
    return tuple(int(t) for t in items)


def parse_int(text: str, param: str) -> int:
    """'32' -> 32: ASCII digits only, at most 9 of them (every count this tool takes fits)."""
    if not re.fullmatch(r"0|[1-9][0-9]{0,8}", text.strip()):
        raise InspectError(f"must be a non-negative integer, got {text!r}", param)
    return int(text)


def parse_overrides(text: str) -> dict[str, Any]:
    """'os8,grid=1-2-4' -> {'output_stride': 8, 'multi_grid': (1, 2, 4)}."""
    overrides: dict[str, Any] = {}
    for key, value in parse_options(text).items():
        if key not in INLINE_KEYS:
            raise InspectError(
                f"unknown option {key!r} in @{text}: expected os8|os16|os32 or key=value with key one of "
                f"{', '.join(INLINE_KEYS)}"
            )
        name = INLINE_KEYS[key]
        if name in _LIST_FIELDS:
            overrides[name] = parse_int_list(value, f"@{key}")
        elif name in _INT_FIELDS:
            overrides[name] = parse_int(value, f"@{key}")
        else:
            overrides[name] = value
    return overrides


def apply_overrides(spec: NetSpec, **overrides: Any) -> NetSpec:
    """`spec` with the given knobs changed; None means "as the name says"."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(changes) - set(OVERRIDE_FIELDS))
    if unknown:
        raise InspectError("are not overrides of a NetSpec", tuple(unknown))
    if not changes:
        return spec
    if "stem" in changes and "stem_width" not in changes and changes["stem"] != spec.stem:
        changes["stem_width"] = _STEM_DEFAULT_WIDTH.get(changes["stem"], spec.stem_width)
    for key in _LIST_FIELDS & set(changes):
        changes[key] = tuple(changes[key])
    given = [_format_override(k, changes[k]) for k in OVERRIDE_FIELDS if overrides.get(k) is not None]
    return spec.with_overrides(name=f"{spec.name}@{','.join(given)}", **changes)


def _format_override(field_name: str, value: Any) -> str:
    key = _FIELD_KEYS[field_name]
    if field_name in _LIST_FIELDS:
        return f"{key}=" + "-".join(map(str, value))
    if field_name == "output_stride":
        return f"os{value}"
    return f"{key}={value}"


def resolve(text: str, **overrides: Any) -> NetSpec:
    """'name[@key=value,...]' plus keyword overrides -> NetSpec; the two may not disagree."""
    name, at, options = text.partition("@")
    spec = resolve_name(name)
    inline = parse_overrides(options) if at else {}
    combined = dict(inline)
    for key, value in overrides.items():
        if value is None:
            continue
        if key in inline and _comparable(inline[key]) != _comparable(value):
            raise InspectError(
                f"is given twice with different values ({inline[key]} in {text.strip()!r} and {value})", key
            )
        combined[key] = value
    try:
        return apply_overrides(spec, **combined)
    except InspectError as error:  # name the option the way it was given: @os inline, a keyword otherwise
        if not set(error.params) & set(inline):
            raise
        spelled = tuple(f"@{_FIELD_KEYS[p]}" if p in inline and overrides.get(p) is None else p for p in error.params)
        raise InspectError(error.detail, spelled) from None


def _comparable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
