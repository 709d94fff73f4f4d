"""Sockets of other network namespaces: another source read from inside each, tagged with it.

Each namespace is entered once, read without owners, and left; then one /proc scan finds the
owners of all of them together (socket inodes and /proc/*/fd are host-wide), instead of one
scan per namespace.

The namespaces are looked for again at every read, so a watch follows them as they come and
go. With ``skip_unavailable`` (--all-netns) one that has gone, or cannot be entered, is left out
and named in ``skipped``; otherwise (a namespace asked for by name or pid) that is an error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from tcpstates.model.errors import SourceError
from tcpstates.model.query import Query
from tcpstates.model.sockets import NETNS, NO_DETAILS, Details, Socket
from tcpstates.model.states import TcpState
from tcpstates.sources.base import Reading, kernel_details_only, kernel_interfaces_only
from tcpstates.sources.netns import (
    Found,
    Namespace,
    Skipped,
    Unavailable,
    Why,
    entered,
    still_there,
)
from tcpstates.sources.owners import holders_wanted, scan_owners

T = TypeVar("T")

if TYPE_CHECKING:
    from tcpstates.sources.base import Source


class NamespacedSource:
    name = "netns"

    def __init__(
        self,
        find: Callable[[], Found],
        open_inner: Callable[[], Source],
        *,
        skip_unavailable: bool,
        why: str,
    ) -> None:
        self._find = find
        self._open_inner = open_inner
        self.skip_unavailable = skip_unavailable
        self.why = why
        self.namespaces: tuple[Namespace, ...] = ()  # those the last read went into
        self.skipped: tuple[Skipped, ...] = ()  # those it left out, and why
        # Inode -> label of the last two reads' namespaces. One dict for the source's life: a
        # watch's layout holds it, and a vanished row is drawn a frame after its namespace went.
        self.labels: dict[int, str] = {}

    def one_by_one(self) -> list[NamespacedSource]:
        """A source for each namespace found now, for per-namespace summaries."""
        found = self._find()
        self._remember((), found.skipped)
        return [
            NamespacedSource(
                partial(Found, (ns,)),
                self._open_inner,
                skip_unavailable=self.skip_unavailable,
                why=self.why,
            )
            for ns in found.namespaces
        ]

    def read(self, query: Query, owners: bool = False, details: Details = NO_DETAILS) -> Reading:
        sockets: list[Socket] = []

        def read_one(namespace: Namespace) -> None:
            found = self._read_one(namespace, query, details, owners)
            sockets.extend(_tagged(found, namespace.inode))

        self._each(read_one)
        if not owners:
            return Reading(iter(sockets))
        holders = holders_wanted(query, details)
        scan = scan_owners("/proc", {s.inode for s in sockets if s.inode} or set(), holders)
        for sock in sockets:
            owner = scan.by_inode.get(sock.inode or 0)
            if owner is not None:
                _fill(sock, "pid", owner.pid)
                _fill(sock, "process", owner.process)
        found = iter(sockets)
        return Reading(scan.fill_holders(found, details.holders), scan.hidden_processes)

    def count(self, query: Query) -> Counter[tuple[str, TcpState]]:
        counts: Counter[tuple[str, TcpState]] = Counter()
        self._each(lambda namespace: counts.update(self._count_one(namespace, query)))
        return counts

    def _each(self, visit: Callable[[Namespace], None]) -> None:
        """``visit`` every namespace found now, leaving out (or failing on) the unavailable."""
        found = self._find()
        visited: list[Namespace] = []
        skipped = list(found.skipped)
        for namespace in found.namespaces:
            try:
                visit(namespace)
            except Unavailable as e:
                if not self.skip_unavailable:
                    raise
                skipped.append(Skipped(namespace.label, e.why))
                continue
            visited.append(namespace)
        self._remember(visited, skipped)

    def _remember(self, visited: Iterable[Namespace], skipped: Iterable[Skipped]) -> None:
        labels = {ns.inode: ns.label for ns in self.namespaces}
        self.namespaces = tuple(visited)
        self.skipped = tuple(skipped)
        labels.update((ns.inode, ns.label) for ns in self.namespaces)
        self.labels.clear()
        self.labels.update(labels)

    def _count_one(self, namespace: Namespace, query: Query) -> Counter[tuple[str, TcpState]]:
        def count(inner: Source) -> Counter[tuple[str, TcpState]]:
            counter = getattr(inner, "count", None)
            if counter is not None:
                return counter(query)  # type: ignore[no-any-return]
            return _tally(inner.read(query, owners=False).sockets)

        counts = self._inside(namespace, count)
        return _tally(_read_through_proc(namespace, query)) if counts is None else counts

    def _read_one(
        self, namespace: Namespace, query: Query, details: Details, owners: bool
    ) -> list[Socket]:
        # Drained inside: a netlink dump is answered by the namespace it was opened in. A source
        # that gives no inodes (psutil) finds its owners there, as the scan after could not.
        def read(inner: Source) -> list[Socket]:
            inside = owners and getattr(inner, "OWNERS_WITHOUT_INODES", False)
            return list(inner.read(query, inside, details).sockets)

        sockets = self._inside(namespace, read)
        if sockets is None:
            kernel_details_only("procfs", details)  # not allowed in: /proc/PID/net instead
            kernel_interfaces_only("procfs", query)
            return _read_through_proc(namespace, query)
        return sockets

    def _inside(self, namespace: Namespace, action: Callable[[Source], T]) -> T | None:
        """``action`` on the inner source inside ``namespace``; None where we may not go in
        (not root) but a process of it is known, whose /proc/PID/net can be read instead."""
        try:
            with entered(namespace):
                return action(self._open_inner())
        except Unavailable as e:
            if e.why is not Why.REFUSED or namespace.pid is None:
                raise
        except SourceError:  # the inner source refused (no netlink in there): try /proc
            if namespace.pid is None:
                raise
        return None


def _tally(sockets: Iterable[Socket]) -> Counter[tuple[str, TcpState]]:
    return Counter((s.proto, s.state) for s in sockets)


def _read_through_proc(namespace: Namespace, query: Query) -> list[Socket]:
    """Not allowed in (not root): a process's /proc/PID/net shows its namespace's tables, and
    those are readable by anyone unless /proc hides the process. Only while that pid is still
    in the namespace, before and after: a pid that exited may already name another process."""
    from tcpstates.sources.procfs import ProcfsSource

    gone = Unavailable(f"network namespace {namespace.label}: {Why.GONE.value}", Why.GONE)
    if not still_there(namespace):
        raise gone
    try:
        sockets = list(ProcfsSource(f"/proc/{namespace.pid}").read(query).sockets)
    except SourceError:
        if still_there(namespace):
            raise
        raise gone from None
    if not still_there(namespace):
        raise gone
    return sockets


def _tagged(sockets: Iterable[Socket], inode: int) -> Iterator[Socket]:
    for sock in sockets:
        _fill(sock, NETNS, inode)
        yield sock


def _fill(sock: Socket, name: str, value: object) -> None:
    # Records are frozen for their readers; these were made by the source for us a moment ago
    # and nobody else holds them yet, so completing them in place is safe and spares a copy
    # (dataclasses.replace costs microseconds a record at 100k records).
    object.__setattr__(sock, name, value)
