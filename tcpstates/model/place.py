"""Where sockets are read: this namespace, another one, every one, or a capture; and with what.

A place is what ``--netns``, ``--netns-pid``, ``--all-netns``, ``--from`` and ``--source``
say, as one value: every command that reads sockets opens its source from it
(``sources.place.open_place``), so no command can read the host when a namespace was asked for.
"""

from __future__ import annotations

from tcpstates.model.record import Record

READERS = ("auto", "netlink", "procfs", "psutil")  # --source's choices; auto picks the fastest


class ThisNamespace(Record):
    """The network namespace tcpstates runs in (the host, or the container it runs inside)."""


class NamedNetns(Record):
    name: str  # as ip netns names it, under /run/netns


class NetnsOfPid(Record):
    pid: int  # the namespace this process is in: a container's


class AllNetns(Record):
    """Every namespace found through /proc/*/ns/net and /run/netns, found again at each read."""


class Capture(Record):
    paths: tuple[str, ...]  # files or --save directories; "-" is standard input


Where = ThisNamespace | NamedNetns | NetnsOfPid | AllNetns | Capture


class Place(Record):
    where: Where = ThisNamespace()
    reader: str = "auto"  # one of READERS; a capture is read as text whatever this says

    @property
    def several(self) -> bool:
        """Whether a read may hold sockets of several namespaces (they must be kept apart)."""
        return isinstance(self.where, AllNetns)

    @property
    def arguments(self) -> tuple[str, ...]:
        """The options that name this place again, for a command line to suggest."""
        where = self.where
        if isinstance(where, NamedNetns):
            return ("--netns", where.name)
        if isinstance(where, NetnsOfPid):
            return ("--netns-pid", str(where.pid))
        if isinstance(where, AllNetns):
            return ("--all-netns",)
        if isinstance(where, Capture):
            return tuple(arg for path in where.paths for arg in ("--from", path))
        return ()

    @property
    def named(self) -> bool:
        """Whether the user named this place; a failure to read it is then an error, never a
        fall-back to somewhere else."""
        return not isinstance(self.where, ThisNamespace)

    @property
    def live(self) -> bool:
        """Whether this place is a kernel's, not a capture's."""
        return not isinstance(self.where, Capture)
