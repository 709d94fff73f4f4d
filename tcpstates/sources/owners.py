"""Who holds each socket: one pass over /proc/*/fd, socket inode -> (pid, process name).

A socket shared by several processes (after fork) is attributed to the lowest pid, which is
usually the parent that created it. Processes that vanish mid-scan are skipped; processes whose
file descriptors we may not read are counted, so the caller can say why owners are missing.

The scan is one readlink per open file, nearly all of it kernel time. A large scan is therefore
split with a forked child running on another core: on a two-core machine that halves it.
"""

from __future__ import annotations

import os
import sys
from array import array
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Owner:
    pid: int
    process: str


@dataclass(slots=True)
class OwnerMap:
    """Socket inode -> owner, and how many processes could not be looked into."""

    by_inode: dict[int, Owner] = field(default_factory=dict)
    hidden_processes: int = 0


_SOCKET_PREFIX = "socket:["
# Below this many wanted sockets a fork costs more than the second core saves.
SPLIT_AT = 4000


def scan_owners(proc: str = "/proc", wanted: Collection[int] | None = None) -> OwnerMap:
    """Owners of the sockets in /proc/*/fd; with ``wanted``, stop once all of those are found.

    Sockets without an inode (TIME_WAIT and friends) have no owner to find, so a listing of
    only those costs no scan at all.
    """
    result = OwnerMap()
    if wanted is not None and not wanted:
        return result
    if wanted is not None and len(wanted) >= SPLIT_AT and _may_fork():
        return _scan_split(proc, result)
    remaining = set(wanted) if wanted is not None else None
    for table in _fd_tables(proc, result):
        with table:
            found = _record(result, table.pid, table.socket_inodes(), proc)
        if remaining is not None:
            remaining.difference_update(found)
            if not remaining:
                break
    return result


@dataclass(slots=True)
class _FdTable:
    """One process's open /proc/PID/fd directory and the descriptor names in it."""

    pid: int
    dir_fd: int
    names: list[str]

    def socket_inodes(self, names: list[str] | None = None) -> list[int]:
        # readlink relative to the open directory spares the kernel a path walk per descriptor.
        inodes = []
        readlink, prefix, start, dir_fd = (
            os.readlink,
            _SOCKET_PREFIX,
            len(_SOCKET_PREFIX),
            self.dir_fd,
        )
        for name in self.names if names is None else names:
            try:
                target = readlink(name, dir_fd=dir_fd)
            except OSError:
                continue
            if target.startswith(prefix):
                inodes.append(int(target[start:-1]))
        return inodes

    def __enter__(self) -> _FdTable:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.dir_fd)


def _fd_tables(proc: str, result: OwnerMap) -> Iterator[_FdTable]:
    """Each process's fd table in pid order, opened and listed; counts those we may not read."""
    try:
        entries = os.listdir(proc)
    except OSError:
        return
    for pid in sorted(int(name) for name in entries if name.isdigit()):
        try:
            dir_fd = os.open(f"{proc}/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY)
        except PermissionError:
            result.hidden_processes += 1
            continue
        except OSError:  # the process exited, or is a zombie with no fd table
            continue
        try:
            names = os.listdir(dir_fd)
        except OSError:
            os.close(dir_fd)
            continue
        yield _FdTable(pid, dir_fd, names)


def _record(result: OwnerMap, pid: int, inodes: list[int], proc: str) -> list[int]:
    """Credit ``pid`` with the inodes no lower pid holds; return those."""
    by_inode, found = result.by_inode, []
    owner: Owner | None = None
    for inode in inodes:
        if inode not in by_inode:
            owner = owner or Owner(pid, _process_name(proc, pid))
            by_inode[inode] = owner
            found.append(inode)
    return found


def _may_fork() -> bool:
    # fork copies only the calling thread; with other threads running it is not safe.
    threading = sys.modules.get("threading")
    return (
        hasattr(os, "fork")
        and (os.cpu_count() or 1) > 1
        and (threading is None or threading.active_count() == 1)
    )


def _scan_split(proc: str, result: OwnerMap) -> OwnerMap:
    """The whole scan, the first half of the descriptors read by a forked child meanwhile."""
    tables = list(_fd_tables(proc, result))
    try:
        theirs, ours = _halves(tables)
        child = _Child(lambda: _inodes_of(theirs))
        pairs = _inodes_of(ours)
        child_pairs = child.result()
        if child_pairs is None:  # the child failed: do its half here
            child_pairs = _inodes_of(theirs)
    finally:
        for table in tables:
            os.close(table.dir_fd)
    for pid, inodes in sorted(_group_by_pid(child_pairs + pairs).items()):
        _record(result, pid, inodes, proc)  # in pid order, so the lowest pid wins
    return result


Work = list[tuple[_FdTable, list[str]]]


def _halves(tables: list[_FdTable]) -> tuple[Work, Work]:
    """Split the descriptors in two equal halves, cutting one process's list if need be."""
    half = sum(len(t.names) for t in tables) // 2
    first: Work = []
    second: Work = []
    taken = 0
    for table in tables:
        cut = max(0, min(len(table.names), half - taken))
        taken += cut
        if cut:
            first.append((table, table.names[:cut]))
        if cut < len(table.names):
            second.append((table, table.names[cut:]))
    return first, second


def _inodes_of(work: Work) -> list[tuple[int, int]]:
    return [(table.pid, inode) for table, names in work for inode in table.socket_inodes(names)]


def _group_by_pid(pairs: list[tuple[int, int]]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for pid, inode in pairs:
        grouped.setdefault(pid, []).append(inode)
    return grouped


class _Child:
    """``work`` running in a forked child; ``result()`` waits for its (pid, inode) pairs."""

    def __init__(self, work: Callable[[], list[tuple[int, int]]]) -> None:
        read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the child
            os.close(read_end)
            _child_main(work, write_end)
        os.close(write_end)
        self.pipe = os.fdopen(read_end, "rb")

    def result(self) -> list[tuple[int, int]] | None:
        """The child's pairs, or None if it failed (the caller then does the work itself)."""
        with self.pipe:
            data = self.pipe.read()
        _, status = os.waitpid(self.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or len(data) % 16:
            return None
        numbers = array("Q")
        numbers.frombytes(data)
        return list(zip(numbers[0::2], numbers[1::2], strict=True))


def _child_main(
    work: Callable[[], list[tuple[int, int]]], write_end: int
) -> None:  # pragma: no cover - runs in the child
    status = 1
    try:
        data = array("Q", [n for pair in work() for n in pair]).tobytes()
        with os.fdopen(write_end, "wb") as out:
            out.write(data)
        status = 0
    finally:
        os._exit(status)  # no atexit handlers, no second flush of the parent's buffers


def _process_name(proc: str, pid: int) -> str:
    name = process_name(proc, pid)
    return "?" if name is None else name


def process_name(proc: str, pid: int) -> str | None:
    """A process's name as /proc/PID/comm has it; None where it cannot be read (gone, hidden).

    comm, not cmdline: it is what ss and netstat show, and it is one short read. Only the one
    newline the kernel adds is taken off: a name may end in newlines of its own.
    """
    try:
        with open(f"{proc}/{pid}/comm", "rb") as f:
            return f.read(64).removesuffix(b"\n").decode("utf-8", "backslashreplace")
    except OSError:
        return None
