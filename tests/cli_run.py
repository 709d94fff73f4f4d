"""Run tcpstates as a user does: a separate process, its own exit status, stdout and stderr."""

from __future__ import annotations

import subprocess
import sys


def run_cli(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m tcpstates ARGS`` with ``stdin`` as its standard input (empty by default)."""
    return subprocess.run(
        [sys.executable, "-m", "tcpstates", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
