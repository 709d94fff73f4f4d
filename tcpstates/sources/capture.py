"""Sockets from captured text of /proc/net/tcp, tcp6, udp and udp6 (``--from``).

A host with nothing installed can still be read: ``cat /proc/net/tcp /proc/net/tcp6`` over ssh
gives text this module parses. The input may be a directory (as ``--save`` writes it, or any
directory holding files named tcp, tcp6, udp, udp6), files, or standard input, each holding one
table or several concatenated: every header line starts a table, and the header says which
(UDP's has the extra ``ref pointer drops`` columns; the address width tells IPv4 from IPv6).
"""

from __future__ import annotations

import os
import stat
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from tcpstates.errors import CaptureFormatError, SourceError
from tcpstates.query import Query
from tcpstates.sockets import Socket
from tcpstates.sources import Reading
from tcpstates.sources.procfs import ProcfsSource, parse_table
from tcpstates.states import TcpState

MAX_BYTES = 1 << 30  # 1 GiB: far above 1M sockets of text, and a bound on /dev/zero
STDIN = "-"


class CaptureSource:
    name = "capture"

    def __init__(self, paths: Sequence[str], stdin: BinaryIO | None = None) -> None:
        self.paths = list(paths)
        self._stdin = stdin
        self.why = "captured tables from " + ", ".join(
            "standard input" if p == STDIN else p for p in self.paths
        )

    def read(self, query: Query, owners: bool = False) -> Reading:
        # A capture's inodes belong to the host it came from: no owners can be found here.
        # Read whole before anything is printed, so that a bad line stops the command with
        # its error alone rather than after half a listing.
        return Reading(iter(list(self._sockets(query))))

    def count(self, query: Query) -> Counter[tuple[str, TcpState]]:
        return Counter((s.proto, s.state) for s in self._sockets(query))

    def _sockets(self, query: Query) -> Iterator[Socket]:
        for path in self.paths:
            if path != STDIN and os.path.isdir(path):
                yield from ProcfsSource(path).read(query).sockets
            else:
                shown = "standard input" if path == STDIN else path
                yield from _parse_text(_read_text(path, self._stdin), shown, query)


def _read_text(path: str, stdin: BinaryIO | None) -> str:
    if path == STDIN:
        stream = stdin or sys.stdin.buffer
        if stream.isatty():
            raise SourceError("--from -: standard input is a terminal; pipe a capture into it")
        data = stream.read(MAX_BYTES + 1)
        shown = "standard input"
    else:
        data = _read_file(path)
        shown = path
    if len(data) > MAX_BYTES:
        raise SourceError(f"{shown}: more than {MAX_BYTES >> 20} MiB; not a socket table")
    if b"\0" in data:
        raise CaptureFormatError(shown, data[: data.index(b"\0")].count(b"\n") + 1, "", "NUL byte")
    return data.decode("ascii", errors="replace")


def _read_file(path: str) -> bytes:
    try:
        # O_NONBLOCK: a FIFO nobody writes to must not hang the open; it reads as empty.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except PermissionError:
        raise SourceError(f"{path}: permission denied") from None
    except OSError as e:
        raise SourceError(f"{path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISFIFO(mode):
            raise SourceError(f"{path}: not a regular file or a pipe")
        # Reading may block again: a pipe with a writer (ssh, <(...)) delivers as it comes,
        # and one without a writer reads as empty at once, which is an error, not "no sockets".
        os.set_blocking(fd, True)
        data = f.read(MAX_BYTES + 1) or b""
        if not data and stat.S_ISFIFO(mode):
            raise SourceError(f"{path}: a FIFO with nothing to read (no writer)")
        return data


def _parse_text(text: str, source: str, query: Query) -> Iterator[Socket]:
    lines = text.splitlines()
    for start, end, proto in _tables(lines, source):
        if proto in query.protos:
            table = lines[start:end]
            yield from parse_table(table, proto, query, None, source, first_lineno=start + 1)


def _tables(lines: list[str], source: str) -> list[tuple[int, int, str]]:
    """(first line, end, protocol) of each table: a header line starts one."""
    starts = [i for i, line in enumerate(lines) if line.split()[:1] == ["sl"]]
    first_text = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first_text is None:
        return []  # empty input: no sockets
    if not starts or first_text < starts[0]:
        reason = "text before the first table header" if starts else "no /proc/net table header"
        raise CaptureFormatError(source, first_text + 1, lines[first_text], reason)
    ends = [*starts[1:], len(lines)]
    return [
        (start, end, "udp" if "drops" in lines[start].split() else "tcp")
        for start, end in zip(starts, ends, strict=True)
    ]
