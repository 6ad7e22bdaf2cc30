"""The layers of docs/architecture.md, checked on the source: every import points back up the chain
name -> spec -> module -> records -> numbers -> output, the torch-free layers import no torch, and
`list` and `--help` start without importing torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "resnet_inspect"

# What each part of the package may import from the package (at run time; TYPE_CHECKING blocks are free).
ALLOWED = {
    "errors": set(),
    "geometry": set(),
    "machine": set(),
    "model": {"errors", "geometry", "machine", "model"},
    "records": {"errors", "geometry", "model", "records"},
    "numbers": {"errors", "geometry", "records", "numbers"},
    "measure": {"errors", "geometry", "machine", "model", "records", "numbers", "measure"},
    "output": {"errors", "records", "numbers", "output"},
    "api": {"errors", "geometry", "machine", "model", "records", "numbers", "measure", "output"},
    "cli": {"errors", "api", "output"},
    "console": {"cli"},
}
# Importing these never imports torch (their functions may, when called).
TORCH_FREE = {"errors", "geometry", "machine", "numbers", "output", "records/types", "model/spec", "model/names", "api"}


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _runtime_imports(path: Path, top_level: bool = False) -> list[tuple[str, int]]:
    """(absolute module, line) of every import outside `if TYPE_CHECKING:` blocks (only those run at
    import time when `top_level`, not the ones inside functions)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for n in ast.walk(node)}
        if top_level and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            skipped |= {id(n) for n in ast.walk(node)}
    package_parts = ["resnet_inspect", *path.relative_to(PACKAGE).parent.parts]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
                names = [f"{module}.{a.name}" for a in node.names] if not node.module else [module]
                found += [(name, node.lineno) for name in names]
            else:
                found.append((node.module or "", node.lineno))
    return found


SOURCES = sorted(
    p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in ("__init__.py", "__main__.py")
)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_back_up_the_chain(path):
    layer = _layer(path)
    allowed = ALLOWED[layer]
    for module, line in _runtime_imports(path):
        if not module.startswith("resnet_inspect."):
            continue
        target = module.split(".")[1]
        if target in ("__init__", "__version__"):
            continue
        assert target in allowed, f"{path.relative_to(PACKAGE)}:{line} imports {module} ({layer} may import {allowed})"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_torch_free_layers_import_no_torch(path):
    relative = str(path.relative_to(PACKAGE).with_suffix(""))
    if not any(relative == free or relative.startswith(free + "/") for free in TORCH_FREE):
        return
    for module, line in _runtime_imports(path, top_level=True):
        assert module.split(".")[0] not in ("torch", "torchvision", "timm", "fvcore"), (
            f"{relative}:{line} imports {module}"
        )


def test_list_and_help_start_without_torch():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from resnet_inspect.cli import cli\n"
        "for args in (['list'], ['--help'], ['flops', '--help'], ['list', '--format', 'csv']):\n"
        "    assert CliRunner().invoke(cli, args).exit_code == 0, args\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_every_op_kind_has_exactly_one_rule():
    import typing

    from torch import nn

    from resnet_inspect.numbers.rules import RULES
    from resnet_inspect.records.readers import read
    from resnet_inspect.records.types import OpKind

    assert set(typing.get_args(OpKind)) == set(RULES)
    examples = [
        nn.Conv2d(2, 2, 1),
        nn.Linear(2, 2),
        nn.BatchNorm2d(2),
        nn.GroupNorm(1, 2),
        nn.MaxPool2d(2),
        nn.AvgPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.ZeroPad2d(1),
    ]
    assert {read("x", m).kind for m in examples} <= set(RULES)
