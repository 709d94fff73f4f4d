"""Sockets from the kernel's sock_diag netlink interface (inet_diag), standard library only.

This is how ss reads sockets: the kernel sends binary records, skips states nobody asked for (the
state bitmask), and never formats text. Each record is decoded with one ``struct`` call straight
out of a reused receive buffer. The wire protocol itself is in inet_diag.py.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from tcpstates.model.errors import SourceError
from tcpstates.model.query import Network, Query
from tcpstates.model.sockets import Socket, new_socket
from tcpstates.model.states import TcpState
from tcpstates.sources import inet_diag as diag
from tcpstates.sources.base import TIMERS, Reading
from tcpstates.sources.inet_diag import dump, dump_packed
from tcpstates.sources.owners import Owner, scan_owners

_INODES = diag.INODES
_PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
_STATES = [TcpState(code) for code in range(256)]


def state_mask(states: frozenset[TcpState]) -> int:
    """The kernel's idiag_states bitmask for ``states`` (empty: every state but BOUND_INACTIVE).

    >>> hex(state_mask(frozenset({TcpState.TIME_WAIT}))), hex(state_mask(frozenset()))
    ('0x40', '0x1ffe')
    """
    if not states:
        return diag.ALL_STATES
    mask = 0
    for state in states:
        mask |= 1 << state.value
    if mask & (1 << TcpState.SYN_RECV):
        mask |= 1 << TcpState.NEW_SYN_RECV  # pending connections live as request sockets
    return mask


class NetlinkSource:
    name = "netlink"
    why = "the fastest source: the kernel filters by state"
    counts_queues = True  # count() can add up queued bytes on the way (metrics)

    def read(self, query: Query, owners: bool = False) -> Reading:
        if not owners:
            return Reading(self._sockets(query, None))
        # Dump first, then look only for the owners of what the kernel sent: a TIME_WAIT
        # listing needs no /proc scan at all, since no process holds those sockets.
        # The records wait in their binary form, back to back: a tenth of the memory of tuples.
        mask, program = state_mask(query.states), _program(query)
        dumps = [
            (proto, dump_packed(protocol, family, mask, program))
            for proto, protocol, family in _dumps(query)
        ]
        wanted = {inode for _, packed in dumps for (inode,) in _INODES.iter_unpack(packed)} - {0}
        scan = scan_owners("/proc", wanted)
        sockets = (
            sock
            for proto, packed in dumps
            for sock in _decode(diag.RECORD.iter_unpack(packed), proto, scan.by_inode)
        )
        return Reading(sockets, scan.hidden_processes)

    def probe(self) -> None:
        """Raise SourceError unless this kernel answers sock_diag dumps."""
        for _ in diag.batches(socket.IPPROTO_TCP, socket.AF_INET, 0):
            pass

    def count(self, query: Query, queues: list[int] | None = None) -> Counter[tuple[str, TcpState]]:
        """Sockets per (protocol, state); the kernel filters, we read one byte a socket.

        ``queues``, a [rx, tx] list, gets the TCP sockets' queued bytes added to it.
        """
        counts: Counter[tuple[str, TcpState]] = Counter()
        mask = state_mask(query.states)
        for proto, protocol, family in _dumps(query):
            tcp_queues = queues if proto == "tcp" else None
            for code, n in diag.count_states(protocol, family, mask, tcp_queues).items():
                counts[proto, _STATES[code]] += n
        return counts

    def _sockets(self, query: Query, owners: dict[int, Owner] | None) -> Iterator[Socket]:
        for proto, records in self._dumps(query):
            yield from _decode(records, proto, owners)

    def _dumps(self, query: Query) -> Iterator[tuple[str, Iterator[tuple[Any, ...]]]]:
        mask, program = state_mask(query.states), _program(query)
        for proto, protocol, family in _dumps(query):
            yield proto, dump(protocol, family, mask, program)


def _program(query: Query) -> bytes:
    """The query's ports and addresses as a program the kernel runs on each socket, as ss hands
    it ``sport = :N``: a listing of one peer on a host of 100,000 sockets then decodes, and
    looks owners up for, that peer's sockets alone. The query still checks every record after
    (a kernel may refuse the program)."""
    parts = []
    if query.port is not None:
        parts.append(diag.either(diag.local_port(query.port), diag.remote_port(query.port)))
    if query.sport is not None:
        parts.append(diag.local_port(query.sport))
    if query.dport is not None:
        parts.append(diag.remote_port(query.dport))
    if query.local is not None:
        parts.append(diag.local_address(*_host(query.local)))
    if query.remote is not None:
        parts.append(diag.remote_address(*_host(query.remote)))
    return diag.all_of(parts)


def _host(network: Network) -> tuple[int, int, bytes]:
    family = socket.AF_INET if network.version == 4 else socket.AF_INET6
    return family, network.prefixlen, network.network_address.packed


def _dumps(query: Query) -> Iterator[tuple[str, int, int]]:
    """(protocol name, IPPROTO_*, AF_*) for each dump the query needs; AF_UNSPEC: both at once."""
    families = [_FAMILIES[f] for f in (4, 6) if f in query.families]
    for proto in ("tcp", "udp"):
        if proto in query.protos:
            protocol = _PROTOCOLS[proto]
            yield from ((proto, protocol, af) for af in diag.dump_families(protocol, families))


def _decode(
    records: Iterable[tuple[Any, ...]], proto: str, owners: dict[int, Owner] | None
) -> Iterator[Socket]:
    # 100,000 records: everything looked up once, and new_socket's arguments given by position
    # (sockets.FIELDS order), which costs a fifth less than by keyword.
    ntohs, inet6, states, timers, make = socket.ntohs, socket.AF_INET6, _STATES, TIMERS, new_socket
    owners = owners or {}
    # Address text by raw bytes, per family: IPv4's 0.0.0.0 and IPv6's :: are the same 16 bytes.
    by_family: dict[int, dict[bytes, str]] = {socket.AF_INET: {}, inet6: {}}
    for (_, _, _, _, _, family, code, timer_code, retrans, sport, dport, src, dst,
         _, expires, rqueue, wqueue, uid, inode) in records:  # fmt: skip
        owner = owners.get(inode)
        timer = timers.get(timer_code)
        names = by_family.get(family, {})  # another family: _name refuses it
        yield make(
            proto,
            6 if family == inet6 else 4,
            names.get(src) or _name(names, family, src),
            ntohs(sport),
            names.get(dst) or _name(names, family, dst),
            ntohs(dport),
            states[code],
            rqueue,
            wqueue,
            uid,
            inode,
            owner.pid if owner else None,
            owner.process if owner else None,
            timer,
            expires if timer else None,
            retrans,
        )


def _name(names: dict[bytes, str], family: int, raw: bytes) -> str:
    if family not in (socket.AF_INET, socket.AF_INET6):
        raise SourceError(f"netlink sock_diag: a record of address family {family}")
    text = socket.inet_ntop(family, raw[:4] if family == socket.AF_INET else raw)
    names[raw] = text
    return text
