"""The name grammar: what resolves, to what, and what is refused (plus a hypothesis fuzz)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resnet_inspect.errors import InspectError
from resnet_inspect.model.names import REGISTRY, resolve
from resnet_inspect.model.spec import NetSpec


@pytest.mark.parametrize(
    "spelling, canonical",
    [
        ("ResNet50_vd", "resnet50_vd"),
        ("RESNET-50-VD", "resnet50_vd"),
        ("ResNeXt101_vd_64x4d", "resnext101_vd_64x4d"),
        ("resnext101_64x4d_vd", "resnext101_vd_64x4d"),  # both spellings of Paddle's ResNeXt_vd
        ("resnext50-32x4d", "resnext50_32x4d"),
        ("Wide_ResNet50_2", "wide_resnet50_2"),
        ("resnet50_vb", "resnet50"),  # ResNet-B is torchvision's default
        (" resnet18 ", "resnet18"),
    ],
)
def test_spellings_resolve_to_the_same_network(spelling, canonical):
    assert resolve(spelling) == resolve(canonical)


def test_overrides_turn_resnet50_into_resnext50_32x4d():
    assert resolve("resnet50", groups=32, width_per_group=4) == resolve("resnext50_32x4d")
    assert resolve("resnet50@groups=32,width=4") == resolve("resnext50_32x4d")


def test_wide_resnet_is_width_per_group_128():
    # torchvision: wide_resnet50_2 = resnet50 with width_per_group = 64 * 2
    assert resolve("wide_resnet50_2") == resolve("resnet50", width_per_group=128)


@pytest.mark.parametrize(
    "name, block, layers",
    [
        ("resnet10", "basic", (1, 1, 1, 1)),
        ("resnet18", "basic", (2, 2, 2, 2)),
        ("resnet34", "basic", (3, 4, 6, 3)),
        ("resnet26", "bottleneck", (2, 2, 2, 2)),
        ("resnet38", "bottleneck", (3, 3, 3, 3)),
        ("resnet50", "bottleneck", (3, 4, 6, 3)),
        ("resnet101", "bottleneck", (3, 4, 23, 3)),
        ("resnet152", "bottleneck", (3, 8, 36, 3)),
        ("resnet200", "bottleneck", (3, 24, 36, 3)),  # He et al. 2016b / timm
        ("resnet200d", "bottleneck", (3, 24, 36, 3)),
        ("resnet200_vd", "bottleneck", (3, 12, 48, 3)),  # Paddle's table differs
        ("resnext152_vd_32x4d", "bottleneck", (3, 8, 36, 3)),
    ],
)
def test_depth_tables(name, block, layers):
    spec = resolve(name)
    assert (spec.block, spec.layers) == (block, layers)


def test_letters_set_the_documented_knobs():
    vd = resolve("resnet50_vd")
    assert (vd.stem, vd.stem_spec().widths, vd.shortcut, vd.project_first, vd.dilation_style) == (
        "deep",
        (32, 32, 64),
        "avgpool",
        True,
        "paddle",
    )
    d = resolve("resnet50d")
    assert (d.stem, d.stem_spec().widths, d.shortcut, d.project_first, d.dilation_style) == (
        "deep",
        (32, 32, 64),
        "avgpool",
        False,
        "torchvision",
    )
    assert resolve("resnet50c").stem_spec().widths == (32, 32, 64)
    assert resolve("resnet50c").shortcut == "conv"
    assert resolve("resnet50s").stem_spec().widths == (64, 64, 128)
    assert resolve("resnet50_va").stride_at == "1x1"
    assert resolve("resnet50_vc").stem == "deep" and resolve("resnet50_vc").shortcut == "conv"


def test_switching_to_a_deep_stem_uses_the_papers_widths_unless_told():
    assert resolve("resnet50", stem="deep").stem_spec().widths == (32, 32, 64)
    assert resolve("resnet50", stem="deep", stem_width=64).stem_spec().widths == (64, 64, 128)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("resnet5O", "closest: resnet50"),
        ("resnxt50_32x4d", "closest: resnext50_32x4d"),
        ("resnet77", "no stage table for depth 77"),
        ("resnext18_32x4d", "basic blocks"),
        ("wide_resnet18_2", "basic blocks"),
        ("resnet50d_vd", "not both"),
        ("resnet050", "unknown model"),
        ("resnet50@os12", "@os must be 8, 16 or 32"),
        ("resnet50@os", "malformed option"),
        ("resnet50@grid=1-2", "one factor per block of the last stage (3)"),
        ("resnet50@os16,grid=1-x-4", "integers"),
        ("resnet50@grid=1-2-4", "needs output stride 8 or 16"),
        ("resnet50@layers=3-4-6", "4 positive block counts"),
        ("resnet50@groups=0", "at least 1"),
        ("resnet18@groups=32", "@groups, width_per_group do not apply to basic blocks"),
        ("resnet50@os8,os=16", "given twice"),
        ("resnet50@stem=tall", "@stem must be classic, deep or tiered"),
        ("resnet50@classes=-1", "@classes must be a non-negative integer"),
        ("", "unknown model"),
    ],
)
def test_bad_names_raise_one_clear_error(text, fragment):
    with pytest.raises(InspectError, match=None) as error:
        resolve(text)
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_multi_grid_takes_either_separator_in_both_places():
    dashed = resolve("resnet50@os8,grid=1-2-4")
    assert resolve("resnet50@os8,grid=1,2,4") == dashed == resolve("resnet50", output_stride=8, multi_grid=(1, 2, 4))
    assert dashed.multi_grid == (1, 2, 4)


def test_keyword_and_inline_overrides_may_not_disagree():
    assert resolve("resnet50@os8", output_stride=8).output_stride == 8
    with pytest.raises(InspectError, match="given twice"):
        resolve("resnet50@os8", output_stride=16)


def test_every_registered_name_builds_a_plan():
    for name in REGISTRY:
        spec = resolve(name)
        assert len(spec.blocks()) == sum(spec.layers)


NAMEISH = st.from_regex(
    r"\A(resnet|resnext|wide_resnet|ResNeXt|ResNet|res)[0-9]{0,4}[a-z]?(_[0-9]{1,3}x[0-9]{1,3}d)?"
    r"(_v[a-e])?(_[0-9]{1,2})?(@(os[0-9]{1,2}|grid=[0-9-]{0,7}|groups=[0-9]{1,3}|width=[0-9]{1,3})"
    r"(,os[0-9]{1,2})?)?\Z"
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=40), NAMEISH))
def test_fuzz_every_string_resolves_or_raises_our_error(text):
    try:
        spec = resolve(text)
    except InspectError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert isinstance(spec, NetSpec)
        assert len(spec.blocks()) == sum(spec.layers)
