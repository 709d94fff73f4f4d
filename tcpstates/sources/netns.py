"""Network namespaces: find them, and step into one to read its sockets.

Every container and pod has its own network namespace, with its own sockets, ports and
/proc/net tables; the same address and port can exist in several at once. A namespace is known
by the inode of its /proc/PID/ns/net file; ``ip netns`` also gives some of them names under
/run/netns. Sockets are read from inside (``setns``), so netlink and /proc/net answer for that
namespace; owners need nothing special, since socket inodes and /proc/*/fd are host-wide.

Namespaces come and go while they are listed: a process exits, ``ip netns del`` unmounts a
name, a file under /run/netns outlives its mount. A namespace is entered only through a file
that is still on nsfs and still has the inode it was found with, so a stale name or a reused
pid is never mistaken for it; what cannot be entered says why (``Unavailable``).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass

from tcpstates.model.errors import SourceError
from tcpstates.model.place import NamedNetns, NetnsOfPid
from tcpstates.sources import cgroups
from tcpstates.sources.owners import process_name

RUN_NETNS = "/run/netns"
CLONE_NEWNET = 0x40000000
INIT_NET_INODE = 0xEFFFFFF9  # PROC_NET_INIT_INO: the host's namespace, on kernels that fix it


class Why(enum.Enum):
    """Why a namespace that was found could not be read."""

    GONE = "it has gone"
    NOT_A_NAMESPACE = "not a network namespace (nothing is mounted on it)"
    REFUSED = "entering it needs root (CAP_SYS_ADMIN)"


class Unavailable(SourceError):
    """A namespace could not be entered; ``why`` says which of the expected ways it failed."""

    def __init__(self, message: str, why: Why) -> None:
        super().__init__(message)
        self.why = why


@dataclass(frozen=True, slots=True)
class Namespace:
    inode: int
    path: str  # a file that refers to it: /run/netns/NAME or /proc/PID/ns/net
    name: str | None = None  # from /run/netns
    pid: int | None = None  # the lowest pid in it, when one was seen
    process: str | None = None  # that pid's name, to tell unnamed namespaces apart
    host: bool = False  # the initial namespace, the host's (that of pid 1)
    # What runs in it, after that pid's cgroup: a unit, a container, a pod (sources/cgroups.py).
    runs: str | None = None

    @property
    def label(self) -> str:
        """How a listing names it: the inode, then its name, ``host``, what runs in it
        (``docker web-1``, ``nginx.service``) or a process in it.

        Names, cgroups and process names are chosen by others: a renderer escapes the label.
        """
        if self.name:
            return f"{self.inode} ({self.name})"
        if self.host:
            return f"{self.inode} (host)"
        if self.runs:
            return f"{self.inode} ({self.runs})"
        if self.pid is not None:
            process = f" {self.process}" if self.process else ""
            return f"{self.inode} (pid {self.pid}{process})"
        return str(self.inode)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A namespace (or a /run/netns entry) left out of a listing, and why."""

    what: str  # its label or path: chosen by others, escaped when shown
    why: Why


@dataclass(frozen=True, slots=True)
class Found:
    """What a search for namespaces found, and the entries it had to pass over."""

    namespaces: tuple[Namespace, ...]
    skipped: tuple[Skipped, ...] = ()


def current(proc: str = "/proc") -> Namespace:
    path = f"{proc}/self/ns/net"
    inode = os.stat(path).st_ino
    return Namespace(inode, path, pid=os.getpid(), host=inode in _host_inodes(proc))


def _host_inodes(proc: str) -> frozenset[int]:
    """The inodes the initial (host) network namespace may have: the number newer kernels
    give it always (PROC_NET_INIT_INO), and that of pid 1's, where we may look (root)."""
    try:
        return frozenset({INIT_NET_INODE, os.stat(f"{proc}/1/ns/net").st_ino})
    except OSError:
        return frozenset({INIT_NET_INODE})


def _runs(pid: int, own: str | None, proc: str) -> str | None:
    """What runs where ``pid`` is, after its cgroup: None where that cgroup names nothing, or
    is this process's own (a namespace made from the same shell or service as we run in is
    told apart better by its pid)."""
    path = cgroups.of_process(pid, proc)
    if path is None or path == own:
        return None
    return cgroups.name(path)


def by_name(name: str) -> Namespace:
    if "/" in name or name in ("", ".", ".."):
        raise SourceError(f"not a network namespace name: {name!r}")
    path = f"{RUN_NETNS}/{name}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SourceError(f"no network namespace named {name!r} in {RUN_NETNS}") from None
    except OSError as e:
        raise SourceError(f"cannot open {path}: {e.strerror}") from None
    if st.st_dev != _nsfs():
        raise SourceError(f"{path}: {Why.NOT_A_NAMESPACE.value}")
    return Namespace(st.st_ino, path, name=name)


def of_pid(pid: int, proc: str = "/proc") -> Namespace:
    path = f"{proc}/{pid}/ns/net"
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        raise SourceError(f"no process {pid}") from None
    except PermissionError:
        raise SourceError(
            f"the network namespace of process {pid} can be read by root only"
        ) from None
    names, _ = _names()
    own = cgroups.of_process(os.getpid(), proc)
    return Namespace(
        inode,
        path,
        name=names.get(inode),
        pid=pid,
        process=process_name(proc, pid),
        host=inode in _host_inodes(proc),
        runs=_runs(pid, own, proc),
    )


def named(where: NamedNetns | NetnsOfPid) -> Namespace:
    """The one namespace --netns or --netns-pid names; SourceError when there is none."""
    if isinstance(where, NamedNetns):
        return by_name(where.name)
    return of_pid(where.pid)


def all_namespaces(proc: str = "/proc") -> Found:
    """Every distinct network namespace with a process in it or a name, each once, by inode.

    Found through /proc/*/ns/net, so Docker's and Kubernetes' namespaces are included, not only
    those ``ip netns`` named. Needs root to see other users' processes' namespaces. A process
    that exits meanwhile is passed over; its namespace is found through another, or has gone.
    """
    names, skipped = _names()
    hosts, own = _host_inodes(proc), cgroups.of_process(os.getpid(), proc)
    pids: dict[int, int] = {}  # inode -> the lowest pid in it
    for pid in _pids(proc):
        try:
            inode = os.stat(f"{proc}/{pid}/ns/net").st_ino
        except OSError:  # exited, or not ours to look at
            continue
        pids.setdefault(inode, pid)
    found = [
        Namespace(
            inode,
            # A name holds its namespace open; a process may exit before we get there.
            f"{RUN_NETNS}/{names[inode]}" if inode in names else f"{proc}/{pid}/ns/net",
            names.get(inode),
            pid,
            None if inode in names else process_name(proc, pid),
            host=inode in hosts,
            runs=None if inode in names or inode in hosts else _runs(pid, own, proc),
        )
        for inode, pid in pids.items()
    ]
    found += [
        Namespace(inode, f"{RUN_NETNS}/{name}", name)
        for inode, name in names.items()
        if inode not in pids
    ]
    return Found(tuple(sorted(found, key=lambda ns: ns.inode)), skipped)


def _pids(proc: str) -> list[int]:
    try:
        return sorted(int(name) for name in os.listdir(proc) if name.isdigit())
    except OSError:
        return []


def listed_names() -> list[str]:
    """The entries of /run/netns, sorted, as ``ip netns list`` shows them; none if it cannot be
    read. A stale entry is among them: only entering one (``by_name``) tells."""
    try:
        return sorted(os.listdir(RUN_NETNS))
    except OSError:
        return []


def _names() -> tuple[dict[int, str], tuple[Skipped, ...]]:
    """/run/netns: inode -> name for the entries that are namespaces, and those that are not."""
    entries = listed_names()
    if not entries:
        return {}, ()
    nsfs = _nsfs()
    names: dict[int, str] = {}
    skipped: list[Skipped] = []
    for name in entries:
        path = f"{RUN_NETNS}/{name}"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            skipped.append(Skipped(path, Why.GONE))  # deleted since the listing
            continue
        except OSError:
            continue
        if st.st_dev != nsfs:  # left behind by a namespace deleted without ip netns
            skipped.append(Skipped(path, Why.NOT_A_NAMESPACE))
            continue
        names.setdefault(st.st_ino, name)
    return names, tuple(skipped)


def _nsfs() -> int:
    """The device of nsfs, where every namespace file lives (and no ordinary file does)."""
    return os.stat("/proc/self/ns/net").st_dev


@contextlib.contextmanager
def entered(namespace: Namespace) -> Iterator[None]:
    """Run the body inside ``namespace`` (this thread), and come back whatever happens.

    Raises ``Unavailable`` when the namespace has gone, its file is no namespace, or entering
    needs a privilege we lack.
    """
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if os.fstat(home).st_ino == namespace.inode:
            yield  # already there: no privilege needed
            return
        target = _open(namespace)
        try:
            _setns(target, f"network namespace {namespace.label}")
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home, "this process's own network namespace")
    finally:
        os.close(home)


def _open(namespace: Namespace) -> int:
    """An fd of ``namespace``'s file, once it is known to be that namespace.

    The path is first opened O_PATH, which reads nothing and cannot block (a FIFO or a device
    put in its place is never opened for reading), checked, then reopened through that handle.
    """
    try:
        handle = os.open(namespace.path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        raise Unavailable(f"{namespace.path}: {Why.GONE.value}", Why.GONE) from None
    except PermissionError:
        raise Unavailable(f"{namespace.path}: {Why.REFUSED.value}", Why.REFUSED) from None
    except OSError as e:
        raise SourceError(f"cannot open {namespace.path}: {e.strerror}") from None
    try:
        st = os.fstat(handle)
        if st.st_dev != _nsfs():
            why = Why.NOT_A_NAMESPACE
            raise Unavailable(f"{namespace.path}: {why.value}", why)
        if st.st_ino != namespace.inode:  # the pid was reused, the name given to another
            raise Unavailable(f"network namespace {namespace.label}: {Why.GONE.value}", Why.GONE)
        return os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(handle)


def still_there(namespace: Namespace, proc: str = "/proc") -> bool:
    """True while ``namespace``'s pid is still a process in it (a pid is reused quickly)."""
    if namespace.pid is None:
        return False
    try:
        return os.stat(f"{proc}/{namespace.pid}/ns/net").st_ino == namespace.inode
    except OSError:
        return False


def _setns(fd: int, what: str) -> None:
    setns = getattr(os, "setns", None)  # Python 3.12+
    try:
        if setns is not None:
            setns(fd, CLONE_NEWNET)
        else:
            _libc_setns(fd)
    except PermissionError:
        raise Unavailable(f"entering {what} needs root (CAP_SYS_ADMIN)", Why.REFUSED) from None
    except OSError as e:
        if e.errno == errno.EINVAL:  # a namespace, but not a network one
            raise Unavailable(f"{what}: {Why.NOT_A_NAMESPACE.value}", Why.NOT_A_NAMESPACE) from None
        raise SourceError(f"cannot enter {what}: {e.strerror}") from None


def _libc_setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise (
            OSError(code, os.strerror(code))
            if code != errno.EPERM
            else PermissionError(code, os.strerror(code))
        )


def has_interface(name: str, where: NamedNetns | NetnsOfPid | None = None) -> bool | None:
    """Whether network namespace ``where`` (None: this one) has an interface ``name``; None
    when that namespace cannot be looked into (gone, or entering it needs root)."""
    import socket  # here: the fast path never asks

    try:
        if where is None:
            socket.if_nametoindex(name)
            return True
        with entered(named(where)):
            socket.if_nametoindex(name)
            return True
    except SourceError:  # Unavailable among them
        return None
    except (OSError, ValueError):  # ENODEV; a NUL in the name
        return False
