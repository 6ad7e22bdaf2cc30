"""The console script: the command line, with an interrupt during its own start-up (importing click
and the package) ending as quietly as one during a command: status 130."""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point."""
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        raise SystemExit(130) from None
    run()
