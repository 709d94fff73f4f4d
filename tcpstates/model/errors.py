"""Exit statuses and the errors a user may see: one line each, never a traceback."""

from __future__ import annotations

import enum
import os
import sys


class ExitStatus(enum.IntEnum):
    """What a script can tell apart without reading the output. 1 and 2 are click's (an error,
    a usage error); a command's verdict about what it looked at has a status of its own, so a
    gate never mistakes "could not read" for "found something"."""

    OK = 0
    ERROR = 1  # a source could not be read, a permission is missing, the output cannot be written
    USAGE = 2  # a bad option value (click's convention)
    FINDINGS = 3  # doctor: a critical finding (a warning leaves the status at 0)
    MISMATCH = 4  # --scenario --live: the kernel reported other states than the scenario's
    INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
    BROKEN_PIPE = 141  # 128 + SIGPIPE, what ss, grep and cat give for `| head`


class TcpstatesError(Exception):
    """An error with a message fit to show as it is, and the status to exit with."""

    status = ExitStatus.ERROR


class UsageError(TcpstatesError):
    """What was typed cannot be done as asked: an option that does not apply, or a bad value."""

    status = ExitStatus.USAGE


class SourceError(TcpstatesError):
    """A source of sockets cannot be read here (missing, no permission, refused)."""


class CaptureFormatError(TcpstatesError):
    """A line of a /proc/net table or a capture of one that cannot be parsed."""

    def __init__(self, source: str, lineno: int, line: str, reason: str) -> None:
        shown = line if len(line) <= 80 else line[:77] + "..."
        super().__init__(f"{source}:{lineno}: {reason}: {shown!r}")
        self.source = source
        self.lineno = lineno


def silence_stdout() -> None:
    """Point stdout at /dev/null, after the reader has gone (``| head``) or the user interrupted,
    so that the interpreter's final flush neither raises again (a traceback) nor blocks."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def output_failed(error: OSError) -> int:
    """Say in one line that stdout could not be written (a full disk: another user can fill
    /tmp under root's ``tcpstates > /tmp/x``), then quiet stdout; the status to exit with."""
    sys.stderr.write(f"tcpstates: cannot write the output: {error.strerror or error}\n")
    silence_stdout()
    return ExitStatus.ERROR
