"""Who holds each socket: one pass over /proc/*/fd, socket inode -> (pid, process name).

A socket shared by several processes (after fork) has one owner, the lowest pid, which is
usually the parent that created it: that is ``by_inode``. With ``holders`` asked for, the scan
also gives every process and fd that holds each socket (a prefork server's parent and its
workers, a dup()ed descriptor), ordered by pid then fd.

Stopping early: for the owner alone, a scan with ``wanted`` stops once each of those sockets
has been seen, since processes are read in pid order and the first seen is the lowest pid.
Every holder cannot be known without reading every process, so a scan for holders reads them
all, and only a reading that shows holders or matches --pid/--process against them asks for
that (Details.holders, Details.sharers); summaries, doctor and metrics keep the early stop.
What it costs (scan_owners timed alone, best of 21, on 2 cores busy with other work):
with ~100 processes and 3,000 TCP sockets, 45 ms for the owners of all of them, 48 ms with
every holder; a query for one socket of an early pid, 25-29 ms for its owner (stopping
early) against 50-63 ms (every process read). At 38,000 sockets, 171 ms of CPU for the
owners, 181-188 ms with the holders. A Holder record is made only for a socket several fds
hold, unless every socket's are asked for (JSON, CSV).

Processes that vanish mid-scan are skipped; processes whose file descriptors we may not read
are counted, so the caller can say why owners are missing.

The scan is one readlink per open file, nearly all of it kernel time. A large scan is therefore
split with a forked child running on another core: on a two-core machine that halves it. The
child sends back (pid, inode, fd) for each socket descriptor it read, so a split scan gives
the same owners and holders as a plain one.
"""

from __future__ import annotations

import _thread
import os
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator

from tcpstates.model.query import Query
from tcpstates.model.record import Record
from tcpstates.model.sockets import Details, Holder, Socket, new_holder

TYPE_CHECKING = False  # see model/record.py


class Owner(Record):
    pid: int
    process: str


class OwnerMap:
    """Socket inode -> owner (and, when asked for, what every holder needs); how many
    processes could not be looked into. Filled in as a scan goes: not a frozen record."""

    __slots__ = ("by_inode", "hidden_processes", "fds", "shared", "holders_read")

    def __init__(
        self,
        by_inode: dict[int, Owner] | None = None,
        hidden_processes: int = 0,
        holders_read: bool = False,  # whether the scan was for holders (read every process)
    ) -> None:
        self.by_inode = {} if by_inode is None else by_inode
        self.hidden_processes = hidden_processes
        # Scans for holders only. Most sockets have one holder: for those, the owner's fd
        # alone, a Holder record made only if asked for; for the few several fds hold, every
        # holder.
        self.fds: dict[int, int] = {}  # inode -> the owner's (first) fd
        self.shared: dict[int, tuple[Holder, ...]] = {}  # by pid then fd
        self.holders_read = holders_read

    def fill_holders(self, sockets: Iterable[Socket], every: bool) -> Iterator[Socket]:
        """``sockets`` with their holders, where the scan was for holders: with ``every``, on
        each socket (() for one no process holds, inode 0; None for one whose holder was not
        seen); else only on those several fds hold, which is all the table's ``+N`` and --pid
        need (a Holder record for each of 100,000 sockets costs a twentieth of a listing)."""
        if not self.holders_read or not (every or self.shared):
            return iter(sockets)  # nothing to fill: no pass over every socket for nothing
        return self._filled(sockets, every)

    def _filled(self, sockets: Iterable[Socket], every: bool) -> Iterator[Socket]:
        shared, fds, by_inode, make, nobody = (
            self.shared,
            self.fds,
            self.by_inode,
            new_holder,
            (),
        )
        for sock in sockets:
            inode = sock.inode
            # inode 0: no process holds it; None: the source cannot tell.
            found = shared.get(inode) if inode else (nobody if every and inode == 0 else None)
            if found is None and every and inode in fds:
                owner = by_inode[inode]
                found = (make(owner.pid, owner.process, fds[inode]),)
            if found is not None:
                # Made by the source for this reading a moment ago: completed in place.
                object.__setattr__(sock, "holders", found)
            yield sock


def holders_wanted(query: Query, details: Details) -> bool:
    """Whether a reading with owners needs the holders of shared sockets: to show them, or to
    match --pid and --process against any of them (a worker's pid finds the listener its
    parent opened). It then reads every process (see the module's doc)."""
    return details.holders or details.sharers or query.needs_owners


_SOCKET_PREFIX = "socket:["
# Below this many wanted sockets a fork costs more than the second core saves.
SPLIT_AT = 4000
# (inode, fd) of each socket descriptor one process holds.
Held = list[tuple[int, int]]


def scan_owners(
    proc: str = "/proc", wanted: Collection[int] | None = None, holders: bool = False
) -> OwnerMap:
    """Owners of the sockets in /proc/*/fd (only of ``wanted`` ones, when given).

    Without ``holders`` a scan with ``wanted`` stops once each of those is found. Sockets
    without an inode (TIME_WAIT and friends) have no owner to find, so a listing of only
    those costs no scan at all.
    """
    result = OwnerMap(holders_read=holders)
    if wanted is not None and not wanted:
        return result
    if wanted is not None and len(wanted) >= SPLIT_AT and (_may_fork() or _helper is not None):
        return _scan_split(proc, result, wanted, holders)
    remaining = set(wanted) if wanted is not None and not holders else None
    recorder = _Recorder(result, proc, wanted)
    for table in _fd_tables(proc, result):
        with table:
            if holders:
                recorder.record_holders(table.pid, table.socket_fds())
                continue
            found = recorder.record(table.pid, table.socket_inodes())
        if remaining is not None:
            remaining.difference_update(found)
            if not remaining:
                break
    recorder.finish()
    return result


class _FdTable:
    """One process's open /proc/PID/fd directory and the descriptor names in it."""

    __slots__ = ("pid", "dir_fd", "names")

    def __init__(self, pid: int, dir_fd: int, names: list[str]) -> None:
        self.pid, self.dir_fd, self.names = pid, dir_fd, names

    # Two loops, not one with a flag: these run once per open file on the host, and the
    # owner alone needs no fd (a tuple per socket costs a scan a twentieth more).
    def socket_inodes(self, names: list[str] | None = None) -> list[int]:
        """The inode of each socket among ``names`` (all of them by default)."""
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

    def socket_fds(self, names: list[str] | None = None) -> Held:
        """(inode, fd) of each socket among ``names`` (all of them by default)."""
        held = []
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
                held.append((int(target[start:-1]), int(name)))
        return held

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


class _Recorder:
    """Credits what each process holds to ``result``; processes must come in pid order, so
    that the first to hold a socket is its owner (the lowest pid)."""

    def __init__(self, result: OwnerMap, proc: str, wanted: Collection[int] | None) -> None:
        self.result, self.proc, self.wanted = result, proc, wanted

    def record(self, pid: int, inodes: Iterable[int]) -> list[int]:
        """Credit ``pid`` with the sockets no lower pid holds; return those."""
        by_inode, found = self.result.by_inode, []
        owner: Owner | None = None
        for inode in inodes:
            if inode not in by_inode:
                owner = owner or Owner(pid, _process_name(self.proc, pid))
                by_inode[inode] = owner
                found.append(inode)
        return found

    def record_holders(self, pid: int, held: Held) -> None:
        """Credit ``pid`` with the wanted sockets no lower pid holds, and note it as one more
        holder of those a lower pid holds too."""
        by_inode, fds, shared, wanted, make = (
            self.result.by_inode,
            self.result.fds,
            self.result.shared,
            self.wanted,
            new_holder,
        )
        owner: Owner | None = None
        for inode, fd in held:
            if wanted is not None and inode not in wanted:
                continue
            owner = owner or Owner(pid, _process_name(self.proc, pid))
            first = fds.get(inode)
            if first is None:  # the owner: the lowest pid, since processes come in pid order
                by_inode[inode], fds[inode] = owner, fd
                continue
            before = shared.get(inode)
            if before is None:
                was = by_inode[inode]
                before = (make(was.pid, was.process, first),)
            shared[inode] = (*before, make(pid, owner.process, fd))

    def finish(self) -> None:
        """Holders by pid then fd: a process's fds come in the order its fd table lists them,
        and the owner's fd is its first seen, not its lowest."""
        shared, fds = self.result.shared, self.result.fds
        for inode, holders in shared.items():
            shared[inode] = ordered = tuple(sorted(holders, key=_by_pid_fd))
            fds[inode] = ordered[0].fd


def _by_pid_fd(holder: Holder) -> tuple[int, int]:
    return holder.pid, holder.fd


def _may_fork() -> bool:
    # fork copies only the calling thread; with other threads running it is not safe.
    # _thread's count, not threading's: it also counts threads started without threading, as
    # inet_diag's read-ahead is, which can outlive its dump by a read.
    return hasattr(os, "fork") and (os.cpu_count() or 1) > 1 and _thread._count() == 0


def _scan_split(proc: str, result: OwnerMap, wanted: Collection[int], holders: bool) -> OwnerMap:
    """The whole scan, the first half of the descriptors read by a forked child meanwhile."""
    tables = list(_fd_tables(proc, result))
    try:
        theirs, ours = _halves(tables)
        child = _other_core(theirs, proc, holders)
        found = _sockets_of(ours, holders)
        child_found = child.result()
        if child_found is None:  # the child failed: do its half here
            child_found = _sockets_of(theirs, holders)
    finally:
        for table in tables:
            os.close(table.dir_fd)
    recorder = _Recorder(result, proc, wanted)
    for pid, held in sorted(_group_by_pid(child_found, found).items()):
        # In pid order, so the lowest pid wins.
        if holders:
            recorder.record_holders(pid, list(zip(held[0::2], held[1::2], strict=True)))
        else:
            recorder.record(pid, held[0::2])
    recorder.finish()
    return result


Work = list[tuple[_FdTable, list[str]]]
if TYPE_CHECKING:
    # (pid, inode, fd) of each socket descriptor, flat: 24 bytes a socket where a tuple of
    # three ints takes 150, and a --watch of 100,000 sockets scans while it holds a reading.
    Found = array[int]


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


def _sockets_of(work: Work, fds: bool) -> Found:
    """(pid, inode, fd) of the sockets ``work`` names; fd 0 where ``fds`` are not asked for."""
    found: Found = array("Q")
    for table, names in work:
        if fds:
            found.extend(n for inode, fd in table.socket_fds(names) for n in (table.pid, inode, fd))
        else:
            found.extend(n for inode in table.socket_inodes(names) for n in (table.pid, inode, 0))
    return found


def _group_by_pid(*founds: Found) -> dict[int, Found]:
    """pid -> (inode, fd) of each socket it holds, flat."""
    grouped: dict[int, Found] = {}
    for found in founds:
        for pid, inode, fd in zip(found[0::3], found[1::3], found[2::3], strict=True):
            held = grouped.get(pid)
            if held is None:
                held = grouped[pid] = array("Q")
            held.append(inode)
            held.append(fd)
    return grouped


def _other_core(theirs: Work, proc: str, holders: bool) -> _Child | _Asked:
    """``theirs`` being read on the other core: by a child forked now, or, beside threads
    that make a fork unsafe, by the helper forked before them (``ScanHelper``)."""
    if _may_fork():
        return _Child(lambda: _sockets_of(theirs, holders))
    assert _helper is not None
    return _helper.ask(proc, theirs, holders)


class _Child:
    """``work`` running in a forked child; ``result()`` waits for its (pid, inode, fd)s."""

    def __init__(self, work: Callable[[], Found]) -> None:
        read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the child
            os.close(read_end)
            _child_main(work, write_end)
        os.close(write_end)
        self.pipe = os.fdopen(read_end, "rb")

    def result(self) -> Found | None:
        """The child's findings, or None if it failed (the caller then does the work itself)."""
        with self.pipe:
            data = self.pipe.read()
        _, status = os.waitpid(self.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0 or len(data) % 24:
            return None
        found: Found = array("Q")
        found.frombytes(data)
        return found


def _child_main(work: Callable[[], Found], write_end: int) -> None:  # pragma: no cover - child
    status = 1
    try:
        data = work().tobytes()
        with os.fdopen(write_end, "wb") as out:
            out.write(data)
        status = 0
    finally:
        os._exit(status)  # no atexit handlers, no second flush of the parent's buffers


class ScanHelper:
    """A process, forked on entry, that reads the other half of the scans made inside.

    A scan splits by forking a child (``_Child``), and fork is not safe beside threads (it
    copies only the calling thread; a lock another held stays held in the child): so a scan
    made from a screen's worker thread, as ``tcpstates top`` reads, took one core, and a top
    refresh at 50,000 sockets cost 1.5 times a ``--watch`` frame. Entered while this process
    has a single thread, this forks a helper once; each split scan inside then sends it the
    pids and descriptor names of its half, which the helper opens and reads itself and
    answers (pid, inode, fd) for, as the forked child would. It leaves when the request pipe
    closes (the context's exit, or this process's end), and ignores Ctrl-C, which the
    terminal sends to it too: the screen decides when to stop. Where it cannot be forked,
    or dies, or is busy with another thread's scan, the scan reads its half itself
    (tests/test_owners.py holds both to a plain scan).
    """

    def __enter__(self) -> None:
        global _helper
        if _helper is None and _may_fork():
            self._made: _Helper | None = _Helper()
            _helper = self._made
        else:
            self._made = None

    def __exit__(self, *exc: object) -> None:
        global _helper
        if self._made is not None:
            _helper = None
            self._made.close()


_helper: _Helper | None = None


class _Helper:
    """The process ``ScanHelper`` forks, seen from this side: one request at a time."""

    def __init__(self) -> None:
        import signal
        from _thread import allocate_lock

        requests, self._requests = os.pipe()
        self._replies, replies = os.pipe()
        # Ctrl-C held back across the fork: one arriving before the helper ignores it would
        # raise in the helper while it still runs this process's code.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        pid = -1
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the helper
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                _help(requests, replies)
        finally:
            if pid != 0:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        self.pid = pid
        os.close(requests)
        os.close(replies)
        self._busy, self._alive = allocate_lock(), True

    def ask(self, proc: str, theirs: Work, holders: bool) -> _Asked:
        """Ask for ``theirs`` to be read; its answer, or None (then read it here), later."""
        if not self._alive or not self._busy.acquire(blocking=False):
            return _Asked(None)
        import marshal

        request = marshal.dumps((proc, holders, [(t.pid, names) for t, names in theirs]))
        try:
            _send(self._requests, request)
        except OSError:
            return self._dead()
        return _Asked(self)

    def answer(self) -> Found | None:
        try:
            data = _receive(self._replies)
        except OSError:
            data = None
        if data is None or len(data) % 24:
            return self._dead().result()
        self._busy.release()
        found: Found = array("Q")
        found.frombytes(data)
        return found

    def _dead(self) -> _Asked:
        self._alive = False  # and stays busy: nothing is asked of it again
        return _Asked(None)

    def close(self) -> None:
        os.close(self._requests)  # the helper reads the end of its requests, and leaves
        os.close(self._replies)
        os.waitpid(self.pid, 0)


class _Asked:
    """A half asked of the helper; ``result()`` as ``_Child``'s (None: not read there)."""

    def __init__(self, helper: _Helper | None) -> None:
        self._helper = helper

    def result(self) -> Found | None:
        return None if self._helper is None else self._helper.answer()


def _help(requests: int, replies: int) -> None:  # pragma: no cover - runs in the helper
    """The helper's life: read each half asked for, until the requests end."""
    import marshal

    status = 1
    try:
        # Nothing of the screen's: not its terminal, not another descriptor kept open.
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.dup2(requests, 3)
        os.dup2(replies, 4)
        os.closerange(5, os.sysconf("SC_OPEN_MAX"))
        while (request := _receive(3)) is not None:
            proc, holders, work = marshal.loads(request)
            _send(4, _read_half(proc, work, holders).tobytes())
        status = 0
    finally:
        os._exit(status)


def _read_half(proc: str, work: list[tuple[int, list[str]]], holders: bool) -> Found:
    """(pid, inode, fd) of the sockets among the named descriptors of each pid in ``work``."""
    tables: Work = []
    try:
        for pid, names in work:
            try:
                dir_fd = os.open(f"{proc}/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY)
            except OSError:  # gone since it was listed
                continue
            tables.append((_FdTable(pid, dir_fd, names), names))
        return _sockets_of(tables, holders)
    finally:
        for table, _ in tables:
            os.close(table.dir_fd)


_LENGTH = 8  # bytes of the length before each message, little-endian


def _send(fd: int, data: bytes) -> None:
    view = memoryview(len(data).to_bytes(_LENGTH, "little") + data)
    while view:
        view = view[os.write(fd, view) :]


def _receive(fd: int) -> bytes | None:
    """The next message; None where the other side has closed (or broke off mid-message)."""
    head = _read_exactly(fd, _LENGTH)
    return None if head is None else _read_exactly(fd, int.from_bytes(head, "little"))


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts, left = [], size
    while left:
        part = os.read(fd, min(left, 1 << 20))
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


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
