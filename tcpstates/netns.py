"""Network namespaces: find them, and step into one to read its sockets.

Every container and pod has its own network namespace, with its own sockets, ports and
/proc/net tables; the same address and port can exist in several at once. A namespace is known
by the inode of its /proc/PID/ns/net file; ``ip netns`` also gives some of them names under
/run/netns. Sockets are read from inside (``setns``), so netlink and /proc/net answer for that
namespace; owners need nothing special, since socket inodes and /proc/*/fd are host-wide.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass

from tcpstates.errors import SourceError

RUN_NETNS = "/run/netns"
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True, slots=True)
class Namespace:
    inode: int
    path: str  # a file that refers to it: /run/netns/NAME or /proc/PID/ns/net
    name: str | None = None  # from /run/netns
    pid: int | None = None  # the lowest pid in it, when one was seen

    @property
    def label(self) -> str:
        """How a listing names it: the inode, then the name or a process in it."""
        if self.name:
            return f"{self.inode} ({self.name})"
        if self.pid is not None:
            return f"{self.inode} (pid {self.pid})"
        return str(self.inode)


def current(proc: str = "/proc") -> Namespace:
    path = f"{proc}/self/ns/net"
    return Namespace(os.stat(path).st_ino, path, pid=os.getpid())


def by_name(name: str) -> Namespace:
    if "/" in name or name in ("", ".", ".."):
        raise SourceError(f"not a network namespace name: {name!r}")
    path = f"{RUN_NETNS}/{name}"
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        raise SourceError(f"no network namespace named {name!r} in {RUN_NETNS}") from None
    except OSError as e:
        raise SourceError(f"cannot open {path}: {e.strerror}") from None
    return Namespace(inode, path, name=name)


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
    return Namespace(inode, path, name=_names(proc).get(inode), pid=pid)


def all_namespaces(proc: str = "/proc") -> list[Namespace]:
    """Every distinct network namespace with a process in it or a name, each once, by inode.

    Found through /proc/*/ns/net, so Docker's and Kubernetes' namespaces are included, not only
    those ``ip netns`` named. Needs root to see other users' processes' namespaces.
    """
    names = _names(proc)
    found: dict[int, Namespace] = {}
    for pid in _pids(proc):
        path = f"{proc}/{pid}/ns/net"
        try:
            inode = os.stat(path).st_ino
        except OSError:  # exited, or not ours to look at
            continue
        if inode not in found:
            found[inode] = Namespace(inode, path, names.get(inode), pid)
    for inode, name in names.items():
        if inode not in found:
            found[inode] = Namespace(inode, f"{RUN_NETNS}/{name}", name)
    return sorted(found.values(), key=lambda ns: ns.inode)


def _pids(proc: str) -> list[int]:
    try:
        return sorted(int(name) for name in os.listdir(proc) if name.isdigit())
    except OSError:
        return []


def _names(proc: str) -> dict[int, str]:
    try:
        entries = sorted(os.listdir(RUN_NETNS))
    except OSError:
        return {}
    names: dict[int, str] = {}
    for name in entries:
        with contextlib.suppress(OSError):
            names.setdefault(os.stat(f"{RUN_NETNS}/{name}").st_ino, name)
    return names


@contextlib.contextmanager
def entered(namespace: Namespace) -> Iterator[None]:
    """Run the body inside ``namespace`` (this thread), and come back whatever happens."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        if os.fstat(home).st_ino == namespace.inode:
            yield  # already there: no privilege needed
            return
        try:
            target = os.open(namespace.path, os.O_RDONLY)
        except OSError as e:
            raise SourceError(f"cannot open {namespace.path}: {e.strerror}") from None
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


def _setns(fd: int, what: str) -> None:
    setns = getattr(os, "setns", None)  # Python 3.12+
    try:
        if setns is not None:
            setns(fd, CLONE_NEWNET)
        else:
            _libc_setns(fd)
    except PermissionError:
        raise SourceError(f"entering {what} needs root (CAP_SYS_ADMIN)") from None
    except OSError as e:
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
