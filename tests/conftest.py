"""Shared test helpers: the CLI runner, a model's records and costs, golden files, and the
`reference` marker for tests that need torchvision or timm (CI runs them in a second venv)."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

GOLDEN = Path(__file__).parent / "golden"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="Rewrite tests/golden/ from the current output.")


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch):
    """Output as to a file or a pipe (no width), whatever COLUMNS the shell running the tests has."""
    monkeypatch.delenv("COLUMNS", raising=False)


def pytest_configure(config):
    config.addinivalue_line("markers", "reference: compares with torchvision or timm themselves (needs them installed)")


def cli_run(*args: str, ok: bool = True):
    """Invoke the command line; with `ok`, fail the test unless it exits 0."""
    from resnet_inspect.cli import cli

    result = CliRunner().invoke(cli, list(args))
    if ok:
        assert result.exit_code == 0, result.output
    return result


def cli_json(*args: str):
    """Invoke a command with --json and parse its output."""
    return json.loads(cli_run(*args, "--json").output)


def analysed(name: str, height: int, width: int | None = None, batch: int = 1):
    """Costs of one of our names at an input, through build -> walk -> costs."""
    from resnet_inspect.model.build import build
    from resnet_inspect.model.names import resolve
    from resnet_inspect.numbers.costs import costs
    from resnet_inspect.records.walker import walk

    return costs(walk(build(resolve(name)), name), height, width or height, batch)


def records_of(name: str):
    """The walked records of one of our names."""
    from resnet_inspect.model.build import build
    from resnet_inspect.model.names import resolve
    from resnet_inspect.records.walker import walk

    return walk(build(resolve(name)), name)


@pytest.fixture
def golden(request):
    """compare(name, text): the text equals tests/golden/<name> (rewritten with --update-golden)."""

    def compare(name: str, text: str) -> None:
        path = GOLDEN / name
        if request.config.getoption("--update-golden"):
            path.write_text(text)
        assert path.exists(), f"no golden file {path}: run pytest --update-golden"
        assert text == path.read_text(), f"{name} differs from tests/golden/{name}"

    return compare


def reference(module: str):
    """Import a reference library (torchvision, timm) or skip the test; in CI, where
    RESNET_INSPECT_REQUIRE_REFERENCES=1, a missing library fails the test instead of skipping it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("RESNET_INSPECT_REQUIRE_REFERENCES") == "1":
            raise
        pytest.skip(f"needs {module.split('.')[0]} (the reference venv of .ci/run has it)")
