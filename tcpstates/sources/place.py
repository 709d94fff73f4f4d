"""One way to read a place: the source for this namespace, another, every one, or a capture.

Every command that reads sockets or the kernel's settings opens them here, from the one
``Place`` value the command line built: a command cannot read the host by mistake when a
namespace or a capture was asked for.
"""

from __future__ import annotations

import os

from tcpstates.model.errors import SourceError
from tcpstates.model.place import (
    READERS,
    AllNetns,
    Capture,
    NamedNetns,
    NetnsOfPid,
    Place,
    ThisNamespace,
)

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from tcpstates.model.states import TcpState
    from tcpstates.model.tunables import Setting
    from tcpstates.sources.base import Source
    from tcpstates.sources.kernel import KernelState, Reader, Scope
    from tcpstates.sources.netns import Namespace

    T = TypeVar("T")


def open_place(place: Place) -> Source:
    """The source that reads ``place``'s sockets.

    A namespace named by name or pid is found once, and its going away is an error (exit 1);
    --all-netns looks again at every read and leaves out the ones that went meanwhile.
    """
    where = place.where
    if isinstance(where, Capture):
        from tcpstates.sources.capture import CaptureSource

        return CaptureSource(where.paths)
    if isinstance(where, ThisNamespace):
        return open_source(place.reader)
    from tcpstates.sources import netns
    from tcpstates.sources.namespaced import NamespacedSource

    def inner() -> Source:
        return open_source(place.reader)

    if isinstance(where, AllNetns):
        why = "sockets read inside each namespace found, found again at each read"
        return NamespacedSource(netns.all_namespaces, inner, skip_unavailable=True, why=why)
    namespace = chosen_namespace(place)
    assert namespace is not None
    found = netns.Found((namespace,))
    why = f"sockets read inside {namespace.label}"
    return NamespacedSource(lambda: found, inner, skip_unavailable=False, why=why)


def chosen_namespace(place: Place) -> Namespace | None:
    """The one namespace ``place`` names; None for this one (or for several, or a capture)."""
    from tcpstates.sources import netns

    where = place.where
    if isinstance(where, NamedNetns | NetnsOfPid):
        return netns.named(where)
    return None


def kernel_of(place: Place) -> tuple[KernelState, bool]:
    """The settings and counters of ``place``'s kernel, and whether they could be known at all
    (a capture of tables alone brings none; one whose files were refused said so already).
    For several namespaces, this one's."""
    from tcpstates.sources.kernel import read_kernel

    kernel = _where_the_kernel_is(place, lambda proc, read: read_kernel(proc, read))
    known = bool(kernel.settings or kernel.counters or kernel.problems)
    import dataclasses  # KernelState is a dataclass: settings are not on a listing's path

    return dataclasses.replace(kernel, scope=scope_of(place)), known


def scope_of(place: Place) -> Scope:
    """Whose counters ``place``'s are, which says since when they count (Scope.since)."""
    from tcpstates.sources.kernel import Scope, own_scope

    if isinstance(place.where, Capture):
        return Scope.CAPTURE
    if isinstance(place.where, NamedNetns | NetnsOfPid):
        return Scope.NAMESPACE
    return own_scope()


def settings_of(place: Place, state: TcpState) -> list[Setting]:
    """The settings that govern ``state``, with ``place``'s values (None where unknown)."""
    from tcpstates.sources.kernel import read_settings

    return _where_the_kernel_is(place, lambda proc, read: read_settings(state, proc, read))


def _where_the_kernel_is(place: Place, read: Callable[[str, Reader], T]) -> T:
    """``read(proc, reader)`` where ``place``'s kernel files are.

    A namespace's are read inside it (/proc/net and /proc/sys/net are the namespace's once
    there); a capture's from the directory --save wrote, through the capture opener; a capture
    of tables alone has none, so every file reads as missing.
    """
    from tcpstates.sources.kernel import read_proc_file

    where = place.where
    if isinstance(where, Capture):
        from tcpstates.sources.capture import read_small_capture_file

        directories = [path for path in where.paths if os.path.isdir(path)]
        if not directories:
            return read("", lambda path: None)
        return read(directories[0], read_small_capture_file)
    namespace = chosen_namespace(place)
    if namespace is None:
        return read("/proc", read_proc_file)
    from tcpstates.sources.netns import entered

    with entered(namespace):
        return read("/proc", read_proc_file)


def open_source(name: str = "auto") -> Source:
    """The source called ``name``; ``auto`` picks the fastest that works on this system."""
    if name == "auto":
        return _auto()
    if name == "procfs":
        from tcpstates.sources.procfs import ProcfsSource

        return ProcfsSource()
    if name == "psutil":
        from tcpstates.sources.psutil_source import PsutilSource

        return PsutilSource()
    if name == "netlink":
        from tcpstates.sources.netlink import NetlinkSource

        return NetlinkSource()
    raise SourceError(f"unknown source {name!r}; valid: {', '.join(READERS)}")


def _auto() -> Source:
    """netlink where the kernel answers it, else /proc/net, else psutil (not Linux)."""
    from tcpstates.sources.netlink import NetlinkSource

    netlink = NetlinkSource()
    try:
        netlink.probe()
        return netlink
    except SourceError as e:
        refused = str(e)
    if os.path.exists("/proc/net/tcp"):
        from tcpstates.sources.procfs import ProcfsSource

        procfs = ProcfsSource()
        procfs.why = f"{refused}; falling back to /proc/net"
        return procfs
    from tcpstates.sources.psutil_source import PsutilSource

    return PsutilSource()


def save_place(place: Place, directory: str, replace: bool = False) -> int:
    """Save ``place``'s socket tables and kernel settings to ``directory``; the files written."""
    from tcpstates.sources.netns import current, entered
    from tcpstates.sources.save import save_capture

    namespace = chosen_namespace(place) or current()
    with entered(namespace):  # /proc/self/net is the namespace's once inside
        return save_capture(directory, replace=replace)
