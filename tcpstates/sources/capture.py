"""Sockets from captured text of /proc/net/tcp, tcp6, udp and udp6 (``--from``).

A host with nothing installed can still be read: ``cat /proc/net/tcp /proc/net/tcp6`` over ssh
gives text this module parses. The input may be a directory (as ``--save`` writes it, or any
directory holding files named tcp, tcp6, udp, udp6), files, or standard input, each holding one
table or several concatenated: every header line starts a table, and the header says which
(UDP's has the extra ``ref pointer drops`` columns; the address width tells IPv4 from IPv6).

Captures come from elsewhere and are read by root, so every file of one goes through one
opener (``open_capture``): a regular file that says how long it is, streamed in lines within
bounds, never a FIFO, a device, /proc/kmsg or a tracefs pipe. Memory grows with the sockets
kept, not with the file. Writing one is in ``tcpstates.sources.save``.
"""

from __future__ import annotations

import os
import stat
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from tcpstates.model.errors import CaptureFormatError, SourceError
from tcpstates.model.query import Query
from tcpstates.model.sockets import NO_DETAILS, Details, Socket
from tcpstates.model.states import TcpState
from tcpstates.sources.base import Reading, kernel_details_only, kernel_interfaces_only
from tcpstates.sources.procfs import TABLES, ProcfsSource, parse_table

# 1 GiB: five million sockets of text (a line is under 200 bytes), and a bound on what any
# input can cost in time.
MAX_BYTES = 1 << 30
# The kernel's lines are under 200 bytes; one this long is not a table, and reading it whole
# is what would cost memory.
MAX_LINE = 4096
CHUNK = 1 << 18  # 256 KiB: as fast as larger chunks, and a small part of the peak
# A kernel setting or counter table (net/netstat: 3 KiB) read whole, as doctor does.
MAX_SMALL_FILE = 1 << 20
STDIN = "-"
STDIN_NAME = "standard input"


class CaptureSource:
    name = "capture"

    def __init__(self, paths: Sequence[str], stdin: BinaryIO | None = None) -> None:
        self.paths = list(paths)
        self._stdin = stdin
        self.why = "captured tables from " + ", ".join(
            STDIN_NAME if p == STDIN else p for p in self.paths
        )

    def read(self, query: Query, owners: bool = False, details: Details = NO_DETAILS) -> Reading:
        kernel_details_only(self.name, details)
        kernel_interfaces_only(self.name, query)
        # A capture's inodes belong to the host it came from: no owners can be found here.
        # Read whole before anything is printed, so that a bad line stops the command with
        # its error alone rather than after half a listing; keep only the sockets asked for.
        sockets = self._sockets(query)
        if query.filters_rows:
            sockets = filter(query.matches, sockets)
        return Reading(iter(list(sockets)))

    def count(self, query: Query) -> Counter[tuple[str, TcpState]]:
        return Counter((s.proto, s.state) for s in self._sockets(query))

    def _sockets(self, query: Query) -> Iterator[Socket]:
        for path in self.paths:
            if path == STDIN:
                stream = self._stdin or sys.stdin.buffer
                _check_stdin(stream)
                yield from _parse_stream(stream, STDIN_NAME, query)
            elif os.path.isdir(path):
                yield from _directory(path, query)
            else:
                with open_capture(path) as stream:
                    yield from _parse_stream(stream, path, query)


def open_capture(path: str, follow: bool = True) -> BinaryIO:
    """Open one file of a capture for reading; anything but a regular file with data is refused
    with one line, before it is opened.

    A path is looked up once: O_PATH opens nothing (no driver's open runs, so a symlink to
    /dev/watchdog or a tape is harmless), fstat says what it is, and only a regular file is then
    opened for reading, through /proc/self/fd, which reopens that same inode. Symlinks are
    followed: a link to a capture file is a capture file. A file that says it is empty is
    refused too: a table always has its header line, and the kernel's own files (/proc/kmsg,
    tracefs's trace_pipe) say 0 and then block or hand out data nobody else will see again.

    ``follow=False`` is for the files found inside a capture directory: ``--save`` never
    writes a link there, and one planted by another user would make root read, and quote in
    an error, a line of a file it points to (/etc/shadow). The reopen does not wait on a file
    lease either: the file's owner could hold one for ``fs.lease-break-time`` (45 s) a file.
    """
    try:
        fd = _open_regular(path, follow)
    except OSError as e:
        raise _open_error(path, e) from None
    return os.fdopen(fd, "rb")


def _open_regular(path: str, follow: bool) -> int:
    nofollow = 0 if follow else os.O_NOFOLLOW
    if sys.platform != "linux":  # no O_PATH: look, open without blocking, and look again
        _check_capture_file(path, os.stat(path))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | nofollow)
        try:
            _check_capture_file(path, os.fstat(fd))
        except SourceError:
            os.close(fd)
            raise
        os.set_blocking(fd, True)
        return fd
    handle = os.open(path, os.O_PATH | os.O_CLOEXEC | nofollow)
    try:
        _check_capture_file(path, os.fstat(handle))
        flags = os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(f"/proc/self/fd/{handle}", flags)
        except BlockingIOError:
            raise SourceError(f"{path}: another process holds a lease on it") from None
    finally:
        os.close(handle)
    os.set_blocking(fd, True)
    return fd


def read_small_capture_file(path: str) -> bytes | None:
    """A capture's kernel setting or counter table, whole; None where the capture has none."""
    if not os.path.lexists(path):
        return None
    with open_capture(path, follow=False) as stream:
        data = stream.read(MAX_SMALL_FILE + 1)
    if len(data) > MAX_SMALL_FILE:
        raise SourceError(f"{path}: more than {MAX_SMALL_FILE >> 20} MiB; not a kernel setting")
    return data


def _check_capture_file(path: str, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(f"{path}: {_kind(info.st_mode)}, not a capture file")
    if info.st_size == 0:
        raise SourceError(
            f"{path}: empty, as kernel files (/proc, tracefs) say; not a capture file"
        )
    if info.st_size > MAX_BYTES:
        raise SourceError(f"{path}: more than {MAX_BYTES >> 20} MiB; not a socket table")


def _check_stdin(stream: BinaryIO) -> None:
    """Standard input may be a pipe (the documented way), a socket or a regular file."""
    if stream.isatty():
        raise SourceError("--from -: standard input is a terminal; pipe a capture into it")
    info = os.fstat(stream.fileno())
    if stat.S_ISREG(info.st_mode):
        _check_capture_file(STDIN_NAME, info)
    elif not (stat.S_ISFIFO(info.st_mode) or stat.S_ISSOCK(info.st_mode)):
        kind = _kind(info.st_mode)
        raise SourceError(f"--from -: standard input is {kind}; pipe a capture into it")


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link (a capture directory holds none)"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _open_error(path: str, error: OSError) -> SourceError:
    if isinstance(error, FileNotFoundError):
        return SourceError(f"{path}: no such file")
    if isinstance(error, PermissionError):
        return SourceError(f"{path}: permission denied")
    return SourceError(f"{path}: {error.strerror}")


def _directory(root: str, query: Query) -> Iterator[Socket]:
    """The tables of a capture directory (``net/tcp`` as --save writes it, or ``tcp``)."""
    where = ProcfsSource(root)
    present = [(str(where.table_path(name)), proto, family) for name, proto, family in TABLES]
    present = [(path, proto, family) for path, proto, family in present if os.path.lexists(path)]
    if not present:
        raise SourceError(f"no /proc/net tables under {root}")
    for path, proto, family in present:
        if proto in query.protos and family in query.families:
            with open_capture(path, follow=False) as stream:
                yield from _parse_stream(stream, path, query)


def _chunks(stream: BinaryIO, source: str) -> Iterator[list[str]]:
    """The lines of ``stream`` as text, without their newlines, a chunk at a time: the file is
    never held whole, and a last line cut short (a half-written capture) is an error, not a
    smaller host. Splitting a chunk at once costs a fraction of reading line by line."""
    total = lineno = 0
    rest = ""  # the start of a line the next chunk goes on with
    while chunk := stream.read(CHUNK):
        total += len(chunk)
        if total > MAX_BYTES:
            raise SourceError(f"{source}: more than {MAX_BYTES >> 20} MiB; not a socket table")
        text = rest + chunk.decode("ascii", "replace")
        if "\0" in text:
            at = lineno + text.count("\n", 0, text.index("\0")) + 1
            raise CaptureFormatError(source, at, "", "NUL byte")
        lines = text.split("\n")
        rest = lines.pop()
        if max(len(rest), max(map(len, lines), default=0)) > MAX_LINE:
            at = next((i for i, line in enumerate(lines) if len(line) > MAX_LINE), len(lines))
            line = lines[at] if at < len(lines) else rest
            raise CaptureFormatError(source, lineno + at + 1, line, f"longer than {MAX_LINE} bytes")
        lineno += len(lines)
        yield lines
    if rest:
        raise CaptureFormatError(source, lineno + 1, rest, "no newline at the end: cut short")


def _parse_stream(stream: BinaryIO, source: str, query: Query) -> Iterator[Socket]:
    """The sockets of the tables in ``stream``, one table after another as their headers come.

    Every table is checked, also one of a protocol the query leaves out: a file is read whole
    or not at all, whatever the filters.
    """
    proto = None  # the table's, once a header has come
    lineno = 0  # lines before this chunk
    for lines in _chunks(stream, source):
        start = 0
        for i, line in enumerate(lines):
            # "sl" is in no socket line, so most lines take this cheap look alone. Only a
            # header that changes the protocol ends a run: parse_table skips the others.
            if "sl" in line and _is_header(line):
                header = "udp" if "drops" in line.split() else "tcp"
                if header != proto:
                    yield from _run(lines[start:i], proto, lineno + start + 1, source, query)
                    start, proto = i, header
        yield from _run(lines[start:], proto, lineno + start + 1, source, query)
        lineno += len(lines)
    if proto is None:
        raise SourceError(f"{source}: empty; no /proc/net table in it")


def _run(
    lines: list[str], proto: str | None, first_lineno: int, source: str, query: Query
) -> Iterator[Socket]:
    """The sockets of consecutive lines of one protocol's tables (None: before any header)."""
    if proto is None:
        _no_header(lines, first_lineno, source)
        return
    sockets = parse_table(lines, proto, query, None, source, first_lineno=first_lineno)
    if proto in query.protos:
        yield from sockets
    else:
        for _ in sockets:
            pass


def _no_header(lines: list[str], first_lineno: int, source: str) -> None:
    """Lines before the first header: blank ones, or an error at the first that is not."""
    for lineno, line in enumerate(lines, first_lineno):
        if line.strip():
            raise CaptureFormatError(source, lineno, line, "not a /proc/net header")


def _is_header(line: str) -> bool:
    return line.split(None, 1)[:1] == ["sl"]
