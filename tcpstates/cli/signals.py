"""SIGTERM handled like Ctrl-C, for the commands that run until stopped (trace, export, --watch).

A service manager stops with SIGTERM, a person with Ctrl-C; both must unwind the same way, so
that a tracing instance or a temporary file is removed, a terminal gets its cursor back, and
the exit is a clean one.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises KeyboardInterrupt; the previous handler comes back after."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
