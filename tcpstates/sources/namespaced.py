"""Sockets of other network namespaces: another source read from inside each, tagged with it.

Each namespace is entered once, read without owners, and left; then one /proc scan finds the
owners of all of them together (socket inodes and /proc/*/fd are host-wide), instead of one
scan per namespace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from tcpstates.errors import SourceError
from tcpstates.netns import Namespace, entered
from tcpstates.query import Query
from tcpstates.sockets import Socket
from tcpstates.sources import Reading, Source
from tcpstates.sources.owners import scan_owners
from tcpstates.states import TcpState


class NamespacedSource:
    def __init__(self, namespaces: list[Namespace], open_inner: Callable[[], Source]) -> None:
        self.namespaces = namespaces
        self._open_inner = open_inner
        self.name = "netns"
        self.why = "sockets read inside " + ", ".join(ns.label for ns in namespaces)

    def one_by_one(self) -> list[NamespacedSource]:
        """A source for each namespace, for per-namespace summaries."""
        return [NamespacedSource([ns], self._open_inner) for ns in self.namespaces]

    def read(self, query: Query, owners: bool = False) -> Reading:
        sockets: list[Socket] = []
        for namespace in self.namespaces:
            sockets.extend(_tagged(self._read_one(namespace, query), namespace.inode))
        if not owners:
            return Reading(iter(sockets))
        scan = scan_owners("/proc", {s.inode for s in sockets if s.inode} or set())
        for sock in sockets:
            owner = scan.by_inode.get(sock.inode or 0)
            if owner is not None:
                _fill(sock, "pid", owner.pid)
                _fill(sock, "process", owner.process)
        return Reading(iter(sockets), scan.hidden_processes)

    def count(self, query: Query) -> Counter[tuple[str, TcpState]]:
        counts: Counter[tuple[str, TcpState]] = Counter()
        for namespace in self.namespaces:
            try:
                with entered(namespace):
                    inner = self._open_inner()
                    count = getattr(inner, "count", None)
                    if count is not None:
                        counts.update(count(query))
                        continue
            except SourceError:
                if namespace.pid is None:
                    raise
            counts.update((s.proto, s.state) for s in self._read_one(namespace, query))
        return counts

    def _read_one(self, namespace: Namespace, query: Query) -> list[Socket]:
        try:
            with entered(namespace):
                # Drained inside: a netlink dump is answered by the namespace it was opened in.
                return list(self._open_inner().read(query, owners=False).sockets)
        except SourceError:
            if namespace.pid is None:
                raise
        # Not allowed in (not root): a process's /proc/PID/net shows its namespace's tables,
        # and those are readable by anyone unless /proc hides the process.
        from tcpstates.sources.procfs import ProcfsSource

        return list(ProcfsSource(f"/proc/{namespace.pid}").read(query, owners=False).sockets)


def _tagged(sockets: Iterable[Socket], inode: int) -> Iterator[Socket]:
    for sock in sockets:
        _fill(sock, "netns", inode)
        yield sock


def _fill(sock: Socket, name: str, value: object) -> None:
    # Records are frozen for their readers; these were made by the source for us a moment ago
    # and nobody else holds them yet, so completing them in place is safe and spares a copy
    # (dataclasses.replace costs microseconds a record at 100k records).
    object.__setattr__(sock, name, value)
