"""Which source reads this system's sockets: the one asked for, or the fastest that works."""

from __future__ import annotations

import os

from tcpstates.model.errors import SourceError
from tcpstates.sources.base import SOURCE_NAMES, Source


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
    raise SourceError(f"unknown source {name!r}; valid: {', '.join(SOURCE_NAMES)}")


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
