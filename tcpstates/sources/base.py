"""Ways of reading sockets from the kernel, all behind one signature.

``source.read(query, owners)`` returns a ``Reading``: the sockets that pass the query's
protocol, family and state (each source applies those as cheaply as it can) and, when owners
were asked for, how many processes could not be looked into.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator

from tcpstates.model.errors import SourceError
from tcpstates.model.query import Query
from tcpstates.model.record import Record, replace
from tcpstates.model.sockets import NO_DETAILS, Details, Socket


class Reading(Record):
    sockets: Iterator[Socket]
    hidden_processes: int = 0


TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:  # a type only: typing (Protocol) is not loaded to run
    from typing import Protocol

    class Source(Protocol):
        name: str
        why: str  # for -v: why this source was picked

        def read(self, query: Query, owners: bool, details: Details = NO_DETAILS) -> Reading: ...


class DetailsUnavailable(SourceError):
    """The source cannot read the details asked for (only netlink sock_diag can)."""


def kernel_details_only(source: str, details: Details) -> None:
    """Refuse what only netlink sock_diag sends (tcp_info, socket memory) to another source."""
    if details.from_kernel:
        named = ["tcp_info (-i)"] * details.info + ["socket memory (-m)"] * details.memory
        asked = " and ".join(named)
        raise DetailsUnavailable(
            f"{asked}: only netlink sock_diag reports it; the {source} source cannot"
        )


def read_with_details(source: Source, query: Query, owners: bool, details: Details) -> Reading:
    """``details`` where the source can read them, without what only netlink reads where it
    cannot: for what is better with them (ages in doctor and --explain) but not wrong without."""
    try:
        return source.read(query, owners, details)
    except DetailsUnavailable:
        return source.read(query, owners, replace(details, info=False, memory=False))


def kernel_interfaces_only(source: str, query: Query) -> None:
    """Refuse ``ADDR%IF`` to a source that never knows a socket's interface (only netlink's
    idiag_if tells it): its sockets would all fail the filter, silently."""
    if query.interface is not None:
        raise SourceError(
            f"%{query.interface}: only netlink sock_diag tells a socket's interface;"
            f" the {source} source cannot"
        )


# The kernel's timer codes (/proc/net/tcp's "tr", inet_diag's idiag_timer) -> the names ss prints
# (misc/ss.c, tmr_name).
TIMERS: dict[int, str] = {1: "on", 2: "keepalive", 3: "timewait", 4: "persist"}


def select(reading: Reading, query: Query) -> Iterator[Socket]:
    """The sockets of ``reading`` that also pass the rest of ``query``."""
    if query.filters_rows:
        return filter(query.matches, reading.sockets)
    return reading.sockets


def unique(sockets: Iterable[Socket]) -> Iterator[Socket]:
    """Each socket of one namespace once, the first time it is read.

    The kernel hands its tables out a page (or a netlink message) at a time and finds its place
    again by counting; a socket added or removed meanwhile shifts the count, and a socket already
    sent comes again. Under 1,000 connections a second /proc/net/tcp does that in most listings.
    """
    seen: set[Hashable] = set()
    add = seen.add
    for sock in sockets:
        key = identity(sock)
        if key not in seen:
            add(key)
            yield sock


def identity(sock: Socket) -> Hashable:
    """What makes two records of one read the same socket.

    A TCP socket with a peer is in the kernel's established hash, where its four-tuple is one
    socket at any moment: a connection read ESTABLISHED with an inode, then (its owner closed it
    between two pages) FIN_WAIT2 without one, is still one. Sockets without a peer may share
    their ends (SO_REUSEPORT listeners, UDP): their inode tells them apart. A record with
    neither (TIME_WAIT keeps no inode, but has a peer) is known by its ends and state.
    """
    if sock.remote_port and sock.proto == "tcp":
        return (sock.family, sock.local_address, sock.local_port,
                sock.remote_address, sock.remote_port)  # fmt: skip
    if sock.inode:
        return sock.inode
    return (sock.proto, sock.family, sock.local_address, sock.local_port,
            sock.remote_address, sock.remote_port, sock.state)  # fmt: skip
