"""The owner scan of a busy host, started before the sockets are read and split over two cores.

A scan is one readlink per open file, nearly all kernel time, and it needs nothing from the
socket dump but the final filter. So a forked child starts at once, while this process dumps
the sockets: it lists every /proc/PID/fd, hands this process its share of the descriptors (a
list of names, so nothing is listed twice), and reads the links of its own, larger share. When
the dump is done, this process reads its share; the two lists are merged, lowest pid first.
If the child fails at any point, the whole scan is done here the plain way.
"""

from __future__ import annotations

import os
import struct
from array import array
from collections.abc import Collection
from typing import BinaryIO

from tcpstates.sources.owners import (
    OwnerMap,
    _child_main,
    _group_by_pid,
    _may_fork,
    _record,
    scan_owners,
)

CHILD_SHARE = 0.6  # the child starts while we dump, so it takes the larger part
WORTH_IT = 4000  # sockets in use below which a fork costs more than it saves
_PREFIX, _START = "socket:[", len("socket:[")
_LENGTH = struct.Struct("=Q")

Work = list[tuple[int, list[str]]]  # (pid, descriptor names)


def start(proc: str = "/proc") -> EarlyScan | None:
    """Start the child now; None when a serial scan after the dump is the better deal."""
    if not _may_fork() or sockets_in_use(proc) < WORTH_IT:
        return None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        _child(proc, write_end)
    os.close(write_end)
    return EarlyScan(proc, pid, os.fdopen(read_end, "rb"))


class EarlyScan:
    def __init__(self, proc: str, child: int, pipe: BinaryIO) -> None:
        self.proc, self.child, self.pipe = proc, child, pipe

    def finish(self, wanted: Collection[int]) -> OwnerMap:
        """The owners of ``wanted``: our share read now, the child's merged in, lowest pid first."""
        try:
            with self.pipe:
                ours = _decode_work(_message(self.pipe))
                pairs = _pairs(self.proc, ours[1:])
                theirs = array("Q")
                theirs.frombytes(_message(self.pipe))
        except (OSError, ValueError, EOFError):
            theirs = None
        _, status = os.waitpid(self.child, 0)
        if theirs is None or os.waitstatus_to_exitcode(status) != 0:
            return scan_owners(self.proc, wanted)  # the child failed: the plain way, here
        wanted = set(wanted)
        result = OwnerMap(hidden_processes=ours[0][0])
        child_pairs = zip(theirs[0::2], theirs[1::2], strict=True)
        found = [(p, inode) for p, inode in [*child_pairs, *pairs] if inode in wanted]
        for pid, inodes in sorted(_group_by_pid(found).items()):
            _record(result, pid, inodes, self.proc)
        return result


def sockets_in_use(proc: str) -> int:
    """TCP and UDP sockets in use, from /proc/net/sockstat: one small read, no dump."""
    try:
        with open(f"{proc}/net/sockstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    total = 0
    for line in lines:
        fields = line.split()
        if fields[:2] in (["TCP:", "inuse"], ["UDP:", "inuse"]) and fields[2].isdigit():
            total += int(fields[2])
    return total


def _child(proc: str, write_end: int) -> None:  # pragma: no cover - runs in the child
    def work() -> list[tuple[int, int]]:
        tables, hidden = _list(proc)
        theirs, ours = split(tables, CHILD_SHARE)
        out = os.fdopen(os.dup(write_end), "wb")
        with out:  # our parent's share first, so it can start as soon as its dump is done
            _send(out, _encode_work(hidden, ours))
        return _pairs(proc, theirs)

    _child_main(work, write_end, framed=True)


def _list(proc: str) -> tuple[Work, int]:
    tables: Work = []
    hidden = 0
    try:
        pids = sorted(int(name) for name in os.listdir(proc) if name.isdigit())
    except OSError:
        return tables, hidden
    for pid in pids:
        try:
            tables.append((pid, os.listdir(f"{proc}/{pid}/fd")))
        except PermissionError:
            hidden += 1
        except OSError:  # exited, or a zombie without a table
            continue
    return tables, hidden


def split(tables: Work, share: float) -> tuple[Work, Work]:
    """The first ``share`` of all descriptors, and the rest, cutting a process's list if need be."""
    total = sum(len(names) for _, names in tables)
    cut_at = round(total * share)
    first: Work = []
    second: Work = []
    taken = 0
    for pid, names in tables:
        cut = max(0, min(len(names), cut_at - taken))
        taken += cut
        if cut:
            first.append((pid, names[:cut]))
        if cut < len(names):
            second.append((pid, names[cut:]))
    return first, second


def _pairs(proc: str, work: Work) -> list[tuple[int, int]]:
    """(pid, socket inode) for every socket among the descriptors of ``work``."""
    pairs: list[tuple[int, int]] = []
    readlink = os.readlink
    for pid, names in work:
        try:
            fd_dir = os.open(f"{proc}/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:  # exited since it was listed
            continue
        try:
            for name in names:
                try:
                    target = readlink(name, dir_fd=fd_dir)
                except OSError:
                    continue
                if target.startswith(_PREFIX):
                    pairs.append((pid, int(target[_START:-1])))
        finally:
            os.close(fd_dir)
    return pairs


def _encode_work(hidden: int, work: Work) -> bytes:
    lines = [str(hidden)] + [f"{pid} {' '.join(names)}" for pid, names in work]
    return "\n".join(lines).encode()


def _decode_work(data: bytes) -> Work:
    """The first entry's pid is the count of hidden processes (its list is empty)."""
    first, *rest = data.decode().split("\n")
    work: Work = [(int(first), [])]
    for line in rest:
        pid, *names = line.split(" ")
        work.append((int(pid), names))
    return work


def _send(out: BinaryIO, data: bytes) -> None:
    out.write(_LENGTH.pack(len(data)) + data)
    out.flush()


def _message(pipe: BinaryIO) -> bytes:
    head = pipe.read(_LENGTH.size)
    if len(head) != _LENGTH.size:
        raise EOFError("the owner scan's child ended early")
    (length,) = _LENGTH.unpack(head)
    data = pipe.read(length)
    if len(data) != length:
        raise EOFError("the owner scan's child ended early")
    return data
