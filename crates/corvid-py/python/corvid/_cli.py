"""The `corvid` console script: the native command line (generate, serve, bench, cpu),
run in this process by the extension module, so the wheel holds one copy of the engine."""

from __future__ import annotations

import signal
import sys

from . import _corvid


def main() -> None:
    """Runs `corvid` with this process's arguments and exits with its status."""
    # Ctrl-C behaves as for the native binary: `serve` drains on its own handler, the
    # other commands stop at once (Python's handler would only run after they return).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(_corvid.run_cli(["corvid", *sys.argv[1:]]))
