"""The columns of a socket listing, shared by the Rich table and the plain text renderer."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from tcpstates.model.sockets import (
    KERNEL_OWNER,
    NAMELESS,
    NO_DETAILS,
    OWNER_SPELLINGS,
    UNSEEN_OWNER,
    Details,
    Holder,
    Owner,
    OwnerKind,
    Socket,
    address_prefix,
    owner,
)
from tcpstates.model.states import TcpState, state_name
from tcpstates.render.safe import safe

KERNEL = OWNER_SPELLINGS[OwnerKind.KERNEL].cell  # the Process cell of a socket no process holds
UNSEEN = "-"  # a value the source could not give: a queue, or the pid of an owner not seen


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    align: Literal["left", "right"]
    short: str = ""  # a shorter header that says the same, for a table fitted to a terminal


PROTO = Column("Proto", "left")
STATE = Column("State", "left")
RECV_Q = Column("Recv-Q", "right")
SEND_Q = Column("Send-Q", "right")
LOCAL = Column("Local Address:Port", "left", short="Local")
PEER = Column("Peer Address:Port", "left", short="Peer")
UID = Column("Uid", "right")  # -e, as netstat -e and ss -e show them
INODE = Column("Inode", "right")
PID = Column("PID", "right")
PROCESS = Column("Process", "left")
BASE = (STATE, RECV_Q, SEND_Q, LOCAL, PEER)
OWNER = (PID, PROCESS)


NETNS = Column("Netns", "left")


@dataclass(frozen=True, slots=True)
class Layout:
    """Which optional columns a listing shows."""

    proto: bool = False
    owners: bool = True
    # Network namespace inode -> how to show it; a Netns column leads when set.
    netns_labels: Mapping[int, str] | None = None
    extended: bool = False  # -e: the Uid and Inode columns
    header: bool = True  # -H: none
    details: Details = NO_DETAILS  # -i, -m, --timers, --cgroup: their columns

    @property
    def columns(self) -> tuple[Column, ...]:
        lead = (NETNS,) * (self.netns_labels is not None) + (PROTO,) * self.proto
        return lead + BASE + (UID, INODE) * self.extended + OWNER * self.owners

    @property
    def state_index(self) -> int:
        return (self.netns_labels is not None) + self.proto

    def cells(self, sock: Socket) -> tuple[str, ...]:
        return self.row_maker()(sock)

    def rows(self, sockets: Iterable[Socket]) -> list[tuple[str, ...]]:
        """The cells of every socket: 100,000 rows, so what repeats is formatted once."""
        return list(map(self.row_maker(), sockets))

    def row_maker(self) -> Callable[[Socket], tuple[str, ...]]:
        """A function from a socket to its cells, remembering the address and owner text it made.

        Addresses, owners and state names repeat from row to row; a listing's cost is in
        formatting them afresh for each row (a third of it at 100,000 rows).
        """
        prefixes: dict[str, str] = {}  # address -> "address:" or "[address]:"
        owners: dict[tuple[int, str | None, int], tuple[str, str]] = {}
        names, lead_proto, labels, show_owners, extended = (
            _STATE_NAMES,
            self.proto,
            self.netns_labels,
            self.owners,
            self.extended,
        )

        def prefix(address: str) -> str:
            text = prefixes[address] = address_prefix(address)
            return text

        shown: dict[int, str] = {}  # namespace inode -> its label, escaped: names are anyone's

        def label(netns: int) -> str:
            text = shown[netns] = safe(labels.get(netns, str(netns)) if labels else str(netns))
            return text

        def holder_cells(key: tuple[int, str | None, int]) -> tuple[str, str]:
            pid, process, more = key
            text = owners[key] = owner_cells(owner(pid, process), more)
            return text

        def row(sock: Socket) -> tuple[str, ...]:
            port, peer_port = sock.local_port, sock.remote_port
            cells: tuple[str, ...] = (
                names[sock.proto][sock.state],
                UNSEEN if sock.recv_q is None else str(sock.recv_q),
                UNSEEN if sock.send_q is None else str(sock.send_q),
                (prefixes.get(sock.local_address) or prefix(sock.local_address))
                + (str(port) if port else "*"),
                (prefixes.get(sock.remote_address) or prefix(sock.remote_address))
                + (str(peer_port) if peer_port else "*"),
            )
            if lead_proto:
                cells = (sock.proto, *cells)
            if labels is not None:
                netns = sock.netns or 0
                cells = (shown.get(netns) or label(netns), *cells)
            if extended:
                cells += (UNSEEN if sock.uid is None else str(sock.uid), str(sock.inode or 0))
            if not show_owners:
                return cells
            if sock.pid is None:
                return cells + (_KERNEL_OWNED if sock.inode == 0 else _UNSEEN_OWNER)
            holders = sock.holders
            more = 0 if holders is None or len(holders) < 2 else others(holders)
            key = (sock.pid, sock.process, more)
            return cells + (owners.get(key) or holder_cells(key))

        return row


# proto -> state -> the name a listing shows (UDP's CLOSE is UNCONN); a socket's own state_name.
_STATE_NAMES: dict[str, dict[TcpState, str]] = {
    proto: {state: state_name(state, proto) for state in TcpState} for proto in ("tcp", "udp")
}
# The other way: the state a State cell names (UNCONN: UDP's CLOSE), to colour it by.
STATE_OF_NAME: dict[str, TcpState] = {
    name: state for names in _STATE_NAMES.values() for state, name in names.items()
}


def owner_cells(holder: Owner, more: int = 0) -> tuple[str, str]:
    """The PID and Process cells: ``812``, ``nginx``; ``-``, ``(kernel)``; ``-``, ``-``; and
    with ``more`` other processes holding the socket too, ``812``, ``nginx +3``."""
    if holder.kind is OwnerKind.PROCESS:
        return str(holder.pid), safe(holder.process or NAMELESS) + more_suffix(more)
    return UNSEEN, OWNER_SPELLINGS[holder.kind].cell


def more_suffix(more: int) -> str:
    """What follows the first holder's name when ``more`` other processes hold the socket too.

    >>> more_suffix(3), more_suffix(0)
    (' +3', '')
    """
    return f" +{more}" if more else ""


_MORE = re.compile(r" \+[1-9][0-9]*\Z")


def more_suffix_length(cell: str) -> int:
    """How long the ``+N`` at the end of a Process cell is (0: none), for a cut to keep it.

    >>> more_suffix_length("nginx +12"), more_suffix_length("nginx")
    (4, 0)
    """
    found = _MORE.search(cell)
    return len(found.group()) if found else 0


def others(holders: tuple[Holder, ...]) -> int:
    """How many processes besides the first hold a socket (fds of one process count once).

    >>> others((Holder(812, "nginx", 3), Holder(812, "nginx", 7), Holder(813, "nginx", 3)))
    1
    """
    return len({holder.pid for holder in holders}) - 1


_KERNEL_OWNED = owner_cells(KERNEL_OWNER)
_UNSEEN_OWNER = owner_cells(UNSEEN_OWNER)
