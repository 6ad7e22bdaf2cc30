"""Issue 14, the everyday experience: a comparison table of several models, tables whose rows add up
to their totals (checked against published figures and the module's own parameter count), tables that
fit an 80-column terminal without cutting a cell, rf --input, help that shows its choices, and the
effective-field forward that stops at its stage. Expectations are derived by hand here."""

import fnmatch
import io
import json
import re

import pytest
from click.testing import CliRunner

from resnet_inspect.cli import cli

from conftest import cli_json, cli_run


def run(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env or {})


# torchvision's model tables: parameters and "GFLOPS" (multiply-accumulates at 224x224)
PUBLISHED = {
    "resnet50": (25_557_032, 4.089),
    "resnet101": (44_549_160, 7.801),
    "resnext50_32x4d": (25_028_904, 4.230),
    "wide_resnet50_2": (68_883_240, 11.398),
}


def plain_bottleneck_field(layers):
    """The theoretical receptive field of the last stage of a torchvision bottleneck ResNet, by the
    Distill recurrence: the 7x7/2 stem gives 7 (jump 2), the 3x3/2 max-pool 11 (jump 4); each
    bottleneck's 3x3 adds 2 x the jump it sees, and the first block of stages 2-4 doubles the jump
    after its 3x3 (the 1x1s add nothing; the shortcut's field is inside the main path's)."""
    size, jump = 11, 4
    for stage, blocks in enumerate(layers):
        for index in range(blocks):
            size += 2 * jump
            if index == 0 and stage > 0:
                jump *= 2
    return size, jump


# --- the comparison view ------------------------------------------------------------------------


CHOICE = ("resnet50", "resnet50_vd", "resnext50_32x4d", "wide_resnet50_2")


def test_several_names_give_one_table_a_row_per_model():
    out = cli_run("flops", *CHOICE).output
    lines = out.splitlines()
    assert lines[0] == "4 models at 224x224, batch 1"
    rows = [line.split() for line in lines if line.split() and line.split()[0] in CHOICE]
    assert [r[0] for r in rows] == list(CHOICE)  # one row each, in the order given
    assert "per stage" not in out  # no per-model reports
    for row in rows:
        if row[0] in PUBLISHED:
            params, gmacs = PUBLISHED[row[0]]
            assert row[1:3] == [f"{params:,}", f"{gmacs:.3f}"]
            assert row[-3:] == ["32", "2048x7x7", str(plain_bottleneck_field((3, 4, 6, 3))[0])]


def test_comparison_json_keeps_the_list_of_flops_documents():
    data = cli_json("flops", *CHOICE)
    assert isinstance(data, list) and [d["model"] for d in data] == list(CHOICE)
    for doc in data:
        assert doc["schema"] == "resnet-inspect/flops/1" and "stages" in doc  # the fields consumers had
        assert doc["feature_map"] == [2048, 7, 7]
        assert doc["receptive_field"]["stage"] == "layer4" and doc["receptive_field"]["stride"] == 32
    # ResNet-D's deep stem: three 3x3 convs (/2, 1, 1) = 7 at jump 2 like the 7x7, then the 3x3/2 pool;
    # its avg-pool shortcuts see half a jump further than the 1x1/2 (docs/conventions.md), +4 at the end
    size, _ = plain_bottleneck_field((3, 4, 6, 3))
    assert {d["model"]: d["receptive_field"]["size"] for d in data} == {
        "resnet50": size,
        "resnet50_vd": size + 4,
        "resnext50_32x4d": size,
        "wide_resnet50_2": size,
    }


def test_comparison_csv_and_markdown():
    rows = list(__import__("csv").DictReader(io.StringIO(cli_run("flops", *CHOICE, "--format", "csv").output)))
    assert [r["model"] for r in rows] == list(CHOICE)
    for r in rows:
        if r["model"] in PUBLISHED:
            assert int(r["params"]) == PUBLISHED[r["model"]][0]
            assert round(int(r["macs"]) / 1e9, 3) == PUBLISHED[r["model"]][1]
            assert int(r["flops"]) == 2 * int(r["macs"])
    (title, header, rows), *_ = markdown_tables(cli_run("flops", *CHOICE, "--format", "markdown").output)
    assert title == "4 models at 224x224, batch 1" and [r[0] for r in rows] == list(CHOICE)
    assert header[-1] == "receptive field"


def test_sort_orders_by_a_column_smallest_first():
    data = cli_json("flops", *CHOICE, "--sort", "macs")
    assert [d["model"] for d in data] == ["resnet50", "resnext50_32x4d", "resnet50_vd", "wide_resnet50_2"]
    data = cli_json("flops", *CHOICE, "--sort", "params")
    assert [d["params"] for d in data] == sorted(PUBLISHED[n][0] if n in PUBLISHED else 25_576_264 for n in CHOICE)
    result = run("flops", "resnet50", "--sort", "macs")
    assert result.exit_code == 2 and "--sort orders the comparison table" in result.output


EXPECTED_RESNET_D = {  # timm's d and Paddle's _vd names among the registered ones (docs/variants.md)
    "resnet18d",
    "resnet26d",
    "resnet34d",
    "resnet50d",
    "resnet101d",
    "resnet152d",
    "resnet200d",
    "resnet18_vd",
    "resnet34_vd",
    "resnet50_vd",
    "resnet101_vd",
    "resnet152_vd",
    "resnet200_vd",
}


def test_patterns_filter_the_zoo_and_the_list():
    listed = [row["name"] for row in cli_json("list")]
    expected = [n for n in listed if fnmatch.fnmatchcase(n, "resnet*d")]
    assert set(expected) >= EXPECTED_RESNET_D
    assert [row["name"] for row in cli_json("list", "resnet*d")] == expected
    data = cli_json("flops", "resnet*d")
    assert [d["model"] for d in data] == expected
    assert all(d["receptive_field"] is not None for d in data)
    # a pattern with overrides: every match at output stride 16
    data = cli_json("flops", "wide_*@os16")
    assert [d["model"] for d in data] == ["wide_resnet50_2@os16", "wide_resnet101_2@os16"]
    assert {d["output_stride"] for d in data} == {16}
    for args in (["flops", "nothing*"], ["list", "nothing*"]):
        result = run(*args)
        assert result.exit_code == 2 and result.output.startswith("Error: 'nothing*' matches no registered name")


def test_a_pattern_is_never_a_name():
    from resnet_inspect.model.names import REGISTRY, is_pattern

    assert not any(is_pattern(name) for name in REGISTRY)  # so no registered name is read as a pattern
    assert is_pattern("resnet*d") and is_pattern("resnet5?@os8") and is_pattern("resnet[15]0")
    assert not is_pattern("resnet50@os8") and not is_pattern("nets/[a].py:make") and not is_pattern("timm:resnet*")


def test_the_zoo_has_a_receptive_field_column():
    out = cli_run("flops").output
    assert "receptive field" in out or "RF" in out
    resnet101 = next(line.split() for line in out.splitlines() if line.startswith("resnet101 "))
    assert resnet101[-1] == str(plain_bottleneck_field((3, 4, 23, 3))[0])


def test_one_name_keeps_its_report_and_several_with_per_give_reports():
    out = cli_run("flops", "resnet50").output
    assert "per stage" in out and "models at" not in out
    both = cli_json("flops", "resnet50", "resnet50_vd", "--per", "block")
    assert [len(d["blocks"]) for d in both] == [16, 16]


# --- rows that add up ---------------------------------------------------------------------------

COUNTED = {"params", "MACs", "FLOPs", "activations", "parameters"}
TOTALS = {"total", "base", "head per RoI", "backbone"}


def markdown_tables(text):
    """(title, header, rows) of every table of a markdown document."""
    tables, title, lines = [], "", text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("### "):
            title = lines[i][4:]
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|-"):
            header = split_row(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("| "):
                rows.append(split_row(lines[i]))
                i += 1
            tables.append((title, header, rows))
            title = ""
            continue
        i += 1
    return tables


def split_row(line):
    cells = re.split(r"(?<!\\) \| ", line.strip()[2:-2])
    return [cell.replace("\\|", "|").strip() for cell in cells]


def number(cell):
    return int(cell.replace(",", "")) if cell else 0


def assert_rows_add_up(markdown):
    """Every table whose last row is a total: each counted column's rows sum to it. Returns the totals."""
    totals = []
    for title, header, rows in markdown_tables(markdown):
        if not rows or rows[-1][0] not in TOTALS:
            continue
        *parts, total = rows
        for i, name in enumerate(header):
            if name in COUNTED:
                assert sum(number(r[i]) for r in parts) == number(total[i]), (title, name)
        totals.append((title, dict(zip(header, total))))
    assert totals, "no table with a total"
    return totals


def module_params(name):
    import resnet_inspect as ri

    return sum(p.numel() for p in ri.build(name).parameters())


@pytest.mark.parametrize("per", ["stage", "block", "layer"])
@pytest.mark.parametrize("name", ["resnext50_32x4d", "resnet101"])
def test_flops_rows_add_up_to_published_totals(name, per):
    markdown = cli_run("flops", name, "--per", per, "--format", "markdown").output
    (_, total), *_ = assert_rows_add_up(markdown)
    params, gmacs = PUBLISHED[name]
    assert number(total["params"]) == params == module_params(name)
    assert round(number(total["MACs"]) / 1e9, 3) == gmacs
    first, last = ("| conv1 |", "| fc |") if per == "layer" else ("| stem |", "| head |")
    assert first in markdown and last in markdown


def test_the_issues_per_block_example_now_adds_up():
    data = cli_json("flops", "resnext50_32x4d", "--per", "block")
    blocks = sum(b["macs"] for b in data["blocks"])
    assert blocks == 4_110_417_920  # the issue's sum without stem and head
    markdown = cli_run("flops", "resnext50_32x4d", "--per", "block", "--format", "markdown").output
    (_, total), *_ = assert_rows_add_up(markdown)
    assert number(total["MACs"]) == 4_230_479_872


def test_show_parts_add_up_to_the_header():
    markdown = cli_run("show", "resnext50_32x4d", "--format", "markdown").output
    header = int(
        re.search(r"^## resnext50_32x4d  ([0-9,]+) parameters", markdown, re.MULTILINE).group(1).replace(",", "")
    )
    stages = [
        int(n.replace(",", "")) for n in re.findall(r"^### layer\d: .*, ([0-9,]+) parameters", markdown, re.MULTILINE)
    ]
    head = int(re.search(r"^### head: ([0-9,]+) parameters", markdown, re.MULTILINE).group(1).replace(",", ""))
    stem = next(number(rows[0][-1]) for title, _, rows in markdown_tables(markdown) if title == "stem")
    assert sum(stages) + stem == 22_979_904  # the issue: without the head the parts fall short
    assert head == 2048 * 1000 + 1000  # avgpool + fc 2048 -> 1000
    assert stem + sum(stages) + head == header == PUBLISHED["resnext50_32x4d"][0] == module_params("resnext50_32x4d")
    for title, _, rows in markdown_tables(markdown):  # each stage's blocks add up to its title
        if title.startswith("layer"):
            assert sum(number(r[10]) for r in rows) == int(title.rsplit(", ", 1)[1].split()[0].replace(",", ""))


def test_split_and_freeze_tables_add_up():
    args = ("flops", "resnet101", "--split", "c4", "--input", "600x1000", "--freeze-at", "2")
    for per in ("stage", "block"):
        totals = assert_rows_add_up(cli_run(*args, "--per", per, "--format", "markdown").output)
        assert {title for title, _ in totals} >= {
            "",
            f"base per {per}, once per batch",
            f"head per {per}, one RoI",
            "freeze_at 2 (detectron2): the backbone (stem + stages), not the classifier",
        }
    backbone = dict(totals)["freeze_at 2 (detectron2): the backbone (stem + stages), not the classifier"]
    assert number(backbone["parameters"]) == PUBLISHED["resnet101"][0] - (2048 * 1000 + 1000)


def test_no_classifier_no_head_row():
    out = cli_run("flops", "resnet50", "--num-classes", "0", "--per", "block").output
    assert not any(line.startswith("head") for line in out.splitlines())
    assert "no head row: no classifier, only a global pool to 2048x1x1" in out
    markdown = cli_run("flops", "resnet50", "--num-classes", "0", "--format", "markdown").output
    (_, total), *_ = assert_rows_add_up(markdown)
    assert number(total["params"]) == PUBLISHED["resnet50"][0] - (2048 * 1000 + 1000)
    data = cli_json("flops", "resnet50", "--num-classes", "0")
    assert data["stages"][-1]["name"] == "head" and data["stages"][-1]["output"] == [2048, 1, 1]  # JSON keeps it
    show = cli_run("show", "resnet50", "--num-classes", "0").output
    assert not re.search(r"^head: [0-9,]+ parameters", show, re.MULTILINE)
    assert "no head: no classifier, only a global pool (num_classes 0)" in show


# --- terminals as people have them ----------------------------------------------------------------

VIEWS = [
    ["show", "resnext50_32x4d"],
    ["show", "resnet50_vd", "--input", "1024", "--output-stride", "8", "--freeze-at", "2"],
    ["show", "seresnextaa101d_32x8d", "--input", "512"],
    ["flops", "resnext50_32x4d", "--per", "block"],
    ["flops", "resnet101", "--input", "1024x2048", "--output-stride", "8"],
    ["flops", "resnet50", "--per", "layer"],
    ["flops", *CHOICE],
    ["flops"],
    ["flops", "resnet101", "--split", "c4", "--input", "600x1000", "--per", "block", "--freeze-at", "2"],
    ["rf", "resnet50_vd", "--output-stride", "8", "--input", "769"],
    ["diff", "resnet50", "resnext101_64x4d"],
    ["list"],
    ["export-keys", "seresnextaa101d_32x8d"],
    ["memory", "resnet101", "--output-stride", "8", "--input", "769", "--batch", "8", "--budget", "24GiB"],
    ["memory", "resnet50", "--inference", "--per", "block"],
]
PERCENT = re.compile(r"^[0-9.]+%$")


@pytest.mark.parametrize("args", VIEWS, ids=lambda a: " ".join(a[:3]))
def test_every_table_fits_80_columns_without_cutting_a_cell(args):
    out = run(*args, env={"COLUMNS": "80"})
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in out.output
    markdown = run(*args, "--format", "markdown").output
    dropped = re.search(r"left out to fit 80 columns: (.*)", out.output.replace("\n  ", " "))
    for title, header, rows in markdown_tables(markdown):
        if title:  # a title breaks only between phrases: each comma-separated piece stays on one line
            for piece in re.split(r"(?<=,) ", title):
                assert any(piece in line for line in lines), (title, piece)
        for row in rows:
            key = row[0]
            for name, cell in zip(header, row):
                if not cell or PERCENT.match(cell) or name == "what changes":
                    continue  # shares print as bars; diff's change column may wrap between changes
                if dropped and f"{name} (" in dropped.group(1):
                    continue
                assert any(cell in line and key in line for line in lines), (args, key, name, cell)


def test_full_tables_when_not_a_terminal():
    out = run("flops", "resnet101", "--input", "1024x2048", "--output-stride", "8", "--per", "block").output
    lines = out.splitlines()
    assert max(len(line) for line in lines) > 80  # nothing squeezed, nothing wrapped
    header = next(line for line in lines if line.startswith("name "))
    assert header.split() == ["name", "params", "MACs", "FLOPs", "activations", "output", "stride", "MACs", "share"]
    assert "left out" not in out and "(continued)" not in out


def test_a_checkpoint_mismatch_table_on_stderr_is_never_cut(tmp_path):
    import torch

    import resnet_inspect as ri

    state = ri.build("resnet18", device="cpu").state_dict()
    state["layer4.1.bn2.a_rather_long_name_nobody_would_shorten.running_var"] = state.pop("layer4.1.bn2.running_var")
    state["layer4.0.conv1.weight"] = torch.zeros(512, 256, 3, 1)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    result = CliRunner().invoke(cli, ["show", "resnet18", "--weights", str(path)])
    assert result.exit_code == 2
    assert "…" not in result.stderr
    for text in (
        "layer4.1.bn2.a_rather_long_name_nobody_would_shorten.running_var",
        "layer4.1.bn2.running_var",
        "512x256x3x3",
        "512x256x3x1",
    ):
        assert text in result.stderr


def test_the_layout_engine_on_a_table_too_wide_for_any_trick():
    from rich.console import Console

    from resnet_inspect.output.document import Document, Table, counted, plain
    from resnet_inspect.output.render import print_rich

    columns = (plain("name"), *(counted(f"count {i}", optional="spare" if i == 0 else "") for i in range(8)))
    table = Table("a table, wider than a terminal, with a title that has to break between its phrases", columns)
    for r in range(3):
        table.add(f"row{r}", *(10**12 + i for i in range(8)))
    console = Console(width=80, file=io.StringIO(), color_system=None)
    print_rich(Document([table]), console, 80)
    text = console.file.getvalue()
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in text
    assert "(continued)" in text and "left out to fit 80 columns: count 0 (spare)" in text.replace("\n  ", " ")
    for i in range(1, 8):  # every kept cell whole, beside its row's name
        assert sum(1 for line in lines if line.startswith("row0") and f"{10**12 + i:,}" in line) == 1


def test_a_paragraph_breaks_between_phrases_and_a_long_phrase_between_words():
    from resnet_inspect.output.render import wrap_phrases

    short = "first phrase, second phrase; third"
    assert wrap_phrases(short, 20) == ["first phrase,", "  second phrase;", "  third"]
    # 'alpha (beta gamma delta epsilon zeta)' is 37 cells, longer than a line of 30: it alone breaks
    # between words, and the next phrase goes on filling the line it ends on
    text = "one, alpha (beta gamma delta epsilon zeta), two, three"
    lines = wrap_phrases(text, 30)
    assert lines == ["one, alpha (beta gamma delta", "  epsilon zeta), two, three"]
    assert " ".join(line.strip() for line in lines) == text


def test_legend_under_show():
    out = cli_run("show", "resnet50_vd").output.replace("\n  ", " ")
    for symbol in ("stride 2@3x3: stride 2 on the 3x3", "conv/2: 1x1 conv with stride 2", "base_width: width x 64"):
        assert symbol in out
    assert "attn/aa" not in out and "cum:" not in out  # only what the tables show
    out = cli_run("show", "seresnextaa101d_32x8d", "--input", "512").output.replace("\n  ", " ")
    for symbol in (
        "attn/aa: the block's attention and anti-aliasing",
        "se: squeeze-excitation",
        "avgpool: a 2x2 average pool after the 3x3 carries the stride (2@avgpool)",
        "output: the block's output C x H x W; cum: its cumulative stride",
    ):
        assert symbol in out
    assert "| 2@avgpool |" in cli_run("show", "seresnextaa101d_32x8d", "--format", "markdown").output


# --- options that mean what a user expects --------------------------------------------------------


def test_rf_input_reports_what_the_centre_unit_covers():
    # resnet18 by hand (Distill): stem 7x7/2 p3 -> size 7, jump 2, left -3; max-pool 3/2 p1 -> 11, 4, -5;
    # layer1 (four 3x3 at jump 4) -> 43, left -21; layer2: 3x3/2 -> 51, jump 8, left -25; 3x3 -> 67,
    # left -33 (the 1x1/2 shortcut's 43 from -21 lies inside); block 2 -> 99, left -49; layer3 the same
    # way -> 147 from -73, then 211 from -105, jump 16.
    # At 128x512 layer3's map is 8x32 (64x256, 32x128, 16x64, 8x32); its centre unit (3, 15) sees rows
    # 3*16-105 = -57 .. 153 and columns 15*16-105 = 135 .. 345: clipped 0..127 x 135..345 = 128 x 211.
    data = cli_json("rf", "resnet18", "--input", "128x512")
    assert data["input"] == [128, 512]
    layer3 = next(c for c in data["coverage"] if c["name"] == "layer3")
    assert layer3["map"] == [8, 32] and layer3["unit"] == [3, 15]
    assert layer3["box"] == [-57, 135, 153, 345] and layer3["clipped"] == [0, 135, 127, 345]
    assert layer3["covered"] == [128, 211]
    assert layer3["image_fraction"] == pytest.approx(128 * 211 / (128 * 512))
    assert layer3["inside_fraction"] == pytest.approx(128 * 211 / (211 * 211))
    table = cli_run("rf", "resnet18", "--input", "128x512").output
    row = next(line.split() for line in table.splitlines() if line.startswith("layer3 ") and "8x32" in line)
    assert row == ["layer3", "8x32", "3,15", "-57..153", "x", "135..345", "128x211", "41.2%", "60.7%"]


def test_rf_input_on_a_squeeze_excitation_net_is_the_whole_image():
    data = cli_json("rf", "seresnet50", "--input", "224")
    layer4 = next(c for c in data["coverage"] if c["name"] == "layer4")
    assert layer4["global"] and layer4["covered"] == [224, 224] and layer4["image_fraction"] == 1.0


def test_help_shows_choices_and_puts_a_commands_own_options_first():
    for command in ("show", "flops", "rf", "diff", "bench", "memory", "export-keys"):
        text = run(command, "--help").output
        own, shared = text.index("\nOptions:"), text.index("\nModel options")
        assert own < shared < text.index("--layers")
        assert "--output-stride [8|16|32]" in text
    assert "--stage [layer1|layer2|layer3|layer4]" in run("rf", "--help").output
    flops = " ".join(run("flops", "--help").output.split())
    assert "--sort COLUMN Order the comparison table by COLUMN, smallest first: name, params, macs, flops, " in flops
    assert "activations, output_stride, feature_map, receptive_field." in flops
    assert "\n  NAMES" not in run("flops", "--help").output  # arguments are not listed as options
    bench = run("bench", "--help").output
    assert "--dtype [float32|float16|bfloat16]" in bench and "Weights and inputs in this dtype" in bench


@pytest.mark.parametrize("command", ["", "show", "flops", "rf", "diff", "bench", "memory", "export-keys", "list"])
def test_help_fits_80_columns(command):
    text = run(*filter(None, [command]), "--help", env={"COLUMNS": "80"}).output
    assert max(len(line) for line in text.splitlines()) <= 80


def test_sort_choices_are_the_apis():
    from resnet_inspect import api
    from resnet_inspect.cli import SORT_CHOICES

    assert SORT_CHOICES == api.SORT_KEYS


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["show", "resnet50", "--multi-grid", "1,x", "--output-stride", "8"], "(e.g. 1,2,4 or 1-2-4)"),
        (["show", "resnet50@os8,grid=1-x"], "@grid must be integers separated by ',' or '-' (e.g. 1,2,4 or 1-2-4)"),
        (["show", "resnet50", "--layers", "3,4,x,3"], "(e.g. 3,4,6,3 or 3-4-6-3)"),
    ],
)
def test_list_errors_suggest_either_separator(args, fragment):
    result = run(*args)
    assert result.exit_code == 2 and fragment in result.output


def test_both_multi_grid_spellings_build_the_same_network():
    a = cli_json("show", "resnet101_vd", "--output-stride", "16", "--multi-grid", "1-2-4")
    b = cli_json("show", "resnet101_vd@os16,grid=1,2,4")
    assert [x["dilations"] for x in a["blocks"]] == [x["dilations"] for x in b["blocks"]]
    assert [x["dilation"] for x in a["blocks"][-3:]] == [2, 4, 8]  # Paddle: the stage rate 2 x 1, 2, 4


# --- notes and words for students --------------------------------------------------------------


def test_the_show_header_says_32x4d_only_when_grouped():
    assert "32x4d (32 groups of 4 channels at 64 planes)" in cli_run("show", "resnext50_32x4d").output
    plain = cli_run("show", "resnet50").output.replace("\n  ", " ")
    assert "no groups (plain ResNet), width 64 per 64 planes" in plain and "1x64d" not in plain
    wide = cli_run("show", "wide_resnet50_2").output.replace("\n  ", " ")
    assert "no groups, width 128 per 64 planes (2x wide)" in wide


# --- pictures ------------------------------------------------------------------------------------


def test_the_effective_field_forward_stops_at_its_stage_and_reports_progress():
    import torch

    import resnet_inspect as ri
    from resnet_inspect.measure.erf import effective_field

    torch.manual_seed(0)
    loaded = ri.load("resnet18", device="cpu", init=True)
    record = ri.walk(loaded.module)
    ran = []
    for name in ("layer1", "layer2", "layer3", "layer4", "fc"):
        getattr(loaded.module, name).register_forward_hook(lambda *_, name=name: ran.append(name))
    calls = []
    effective_field(loaded.module, record, "layer2", 64, 64, samples=3, progress=lambda *a: calls.append(a))
    assert set(ran) == {"layer1", "layer2"} and ran.count("layer2") == 3
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_too_many_models_for_one_picture(tmp_path):
    pytest.importorskip("matplotlib")
    result = run("flops", "resnet*", "--plot", str(tmp_path / "x.png"))
    assert result.exit_code == 2 and "--plot draws at most 8 models" in result.output


def test_a_picture_of_the_comparison(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "four.png"
    result = run("flops", *CHOICE, "--plot", str(path))
    assert result.exit_code == 0 and f"wrote {path}" in result.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_wide_input_gives_a_wide_effective_field_picture(tmp_path):
    pytest.importorskip("matplotlib")
    from test_plots_detection import png_size

    path = tmp_path / "wide.png"
    result = run("rf", "resnet18", "--plot", str(path), "--stage", "layer1", "--input", "64x256")
    assert result.exit_code == 0, result.output
    width, height = png_size(path)
    assert width == 600 and height < 400  # no band of white above and below a 1:4 picture


def test_json_of_one_model_has_the_receptive_field_too():
    data = cli_json("flops", "resnet101")
    assert data["receptive_field"] == {
        "stage": "layer4",
        "size": plain_bottleneck_field((3, 4, 23, 3))[0],
        "stride": 32,
        "global": False,
    }
    report = json.loads(__import__("resnet_inspect").inspect("resnet101").to_json())
    assert report["flops"]["receptive_field"] == data["receptive_field"]


def test_the_width_the_layout_counts_is_the_width_rich_prints():
    from rich.console import Console

    from resnet_inspect import api
    from resnet_inspect.output.costs import costs_document
    from resnet_inspect.output.render import print_rich, table_width

    report = api.inspect("resnet101", (1024, 2048), output_stride=8)
    table = costs_document(report.costs, "block").parts[1]
    for width in (None, 200, 80):
        console = Console(width=width or 80, file=io.StringIO(), color_system=None)
        print_rich(type(costs_document(report.costs))([table]), console, width)
        printed = console.file.getvalue().splitlines()
        assert max(len(line.rstrip()) for line in printed) <= table_width(table, width)
        assert max(len(line) for line in printed) == table_width(table, width)
