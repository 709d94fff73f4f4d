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
    # A mask is inherited: started by a process that held SIGTERM or SIGINT back, an exporter
    # would wait in epoll through every stop. Whatever started it, these must reach it.
    held = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
