"""The columns of a socket listing, shared by the Rich table and the plain text renderer."""

from __future__ import annotations

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
    keep_end: bool = False  # a cut cell keeps its end: a path says most in its last part


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
CGROUP = Column("Cgroup", "left", keep_end=True)  # --cgroup


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
        tail = (CGROUP,) * self.details.cgroup
        return lead + BASE + (UID, INODE) * self.extended + OWNER * self.owners + tail

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
        owners: dict[tuple[int, str | None], tuple[str, str]] = {}
        names, lead_proto, labels, show_owners, extended, cgroups = (
            _STATE_NAMES,
            self.proto,
            self.netns_labels,
            self.owners,
            self.extended,
            self.details.cgroup,
        )

        def prefix(address: str) -> str:
            text = prefixes[address] = address_prefix(address)
            return text

        shown: dict[int, str] = {}  # namespace inode -> its label, escaped: names are anyone's

        def label(netns: int) -> str:
            text = shown[netns] = safe(labels.get(netns, str(netns)) if labels else str(netns))
            return text

        paths: dict[str | None, tuple[str]] = {None: (UNSEEN,)}  # path -> its cell, escaped

        def cgroup(path: str) -> tuple[str]:
            cell = paths[path] = (safe(path),)  # a path is named by whoever made the cgroup
            return cell

        def with_cgroup(sock: Socket) -> tuple[str, ...]:
            return row(sock) + (paths.get(sock.cgroup) or cgroup(sock.cgroup or ""))

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
            key = (sock.pid, sock.process)
            return cells + (owners.get(key) or owners.setdefault(key, owner_cells(owner(*key))))

        return with_cgroup if cgroups else row  # a listing without --cgroup pays nothing


# proto -> state -> the name a listing shows (UDP's CLOSE is UNCONN); a socket's own state_name.
_STATE_NAMES: dict[str, dict[TcpState, str]] = {
    proto: {state: state_name(state, proto) for state in TcpState} for proto in ("tcp", "udp")
}
# The other way: the state a State cell names (UNCONN: UDP's CLOSE), to colour it by.
STATE_OF_NAME: dict[str, TcpState] = {
    name: state for names in _STATE_NAMES.values() for state, name in names.items()
}


def owner_cells(holder: Owner) -> tuple[str, str]:
    """The PID and Process cells: ``812``, ``nginx``; ``-``, ``(kernel)``; ``-``, ``-``."""
    if holder.kind is OwnerKind.PROCESS:
        return str(holder.pid), safe(holder.process or NAMELESS)
    return UNSEEN, OWNER_SPELLINGS[holder.kind].cell


_KERNEL_OWNED = owner_cells(KERNEL_OWNER)
_UNSEEN_OWNER = owner_cells(UNSEEN_OWNER)
