"""The columns of a socket listing, shared by the Rich table and the plain text renderer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from tcpstates.model.record import Record
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
    scoped_prefix,
)
from tcpstates.model.states import TcpState, state_name
from tcpstates.render import units
from tcpstates.render.safe import safe

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from typing import Literal

KERNEL = OWNER_SPELLINGS[OwnerKind.KERNEL].cell  # the Process cell of a socket no process holds
UNSEEN = "-"  # a value the source could not give: a queue, or the pid of an owner not seen


class Column(Record):
    header: str
    align: Literal["left", "right"]
    short: str = ""  # a shorter header that says the same, for a table fitted to a terminal
    option: str = ""  # the option that adds it, where one adds several: how a footer names them
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
# --timers, as ss -o: the timer running, its time left, and its retransmissions.
TIMER = Column("Timer", "left", option="--timers")
# -i: a compact choice of tcp_info (JSON carries all of it).
RTT = Column("RTT/var ms", "right", short="RTT ms", option="-i")
CWND = Column("Cwnd", "right", option="-i")
RETRANS = Column("Retrans", "right", option="-i")  # segments retransmitted unacked / in all
DELIVERY = Column("Delivery", "right", option="-i")  # the delivery rate
IDLE = Column("Idle", "right", option="-i")  # since data last moved, either way
INFO = (RTT, CWND, RETRANS, DELIVERY, IDLE)
# -m: received bytes held / the receive buffer, queued to send / the send buffer, drops.
RMEM = Column("Rmem/buf", "right", short="Rmem", option="-m")
WMEM = Column("Wmem/buf", "right", short="Wmem", option="-m")
DROPS = Column("Drops", "right", option="-m")
MEMORY = (RMEM, WMEM, DROPS)
DETAIL_COLUMNS = (TIMER, *INFO, *MEMORY)
CGROUP = Column("Cgroup", "left", keep_end=True)  # --cgroup


class Names(Record):
    """-r: the names the Local and Peer cells show instead of numbers, where one is known.

    ``hosts`` may be a dict that fills while a --watch runs (sources/names.py's HostNames);
    its names come from DNS, that is from anyone, and are escaped when shown.
    """

    hosts: Mapping[str, str]  # address -> host name
    services: Mapping[tuple[str, int], str]  # (protocol, port) -> service name

    def endpoint(self, proto: str, address: str, port: int) -> str:
        """``localhost:ssh``, ``[::1]:8080``, ``0.0.0.0:*``: a name in place of each number
        that has one, as ss -r writes them.

        >>> Names({"127.0.0.1": "localhost"}, {("tcp", 22): "ssh"}).endpoint("tcp", "127.0.0.1", 22)
        'localhost:ssh'
        >>> Names({}, {("udp", 53): "domain"}).endpoint("tcp", "::1", 53)
        '[::1]:53'
        """
        host = self.hosts.get(address)
        service = self.services.get((proto, port)) or (str(port) if port else "*")
        return (address_prefix(address) if host is None else safe(host) + ":") + service

    def numeric_hosts(self) -> Names:
        """The same names for ports, and every host as its address."""
        return Names({}, self.services)


class Layout(Record):
    """Which optional columns a listing shows."""

    proto: bool = False
    owners: bool = True
    # Network namespace inode -> how to show it; a Netns column leads when set.
    netns_labels: Mapping[int, str] | None = None
    extended: bool = False  # -e: the Uid and Inode columns
    header: bool = True  # -H: none
    details: Details = NO_DETAILS  # -i, -m, --timers, --cgroup: their columns
    names: Names | None = None  # -r: names for addresses and ports

    @property
    def columns(self) -> tuple[Column, ...]:
        lead = (NETNS,) * (self.netns_labels is not None) + (PROTO,) * self.proto
        details = self.details
        chosen = (TIMER,) * details.timers + INFO * details.info + MEMORY * details.memory
        tail = (CGROUP,) * details.cgroup
        return lead + BASE + (UID, INODE) * self.extended + chosen + OWNER * self.owners + tail

    @property
    def state_index(self) -> int:
        return (self.netns_labels is not None) + self.proto

    def cells(self, sock: Socket) -> tuple[str, ...]:
        return self.row_maker()(sock)

    def rows(self, sockets: Iterable[Socket]) -> list[tuple[str, ...]]:
        """The cells of every socket: 100,000 rows, so what repeats is formatted once."""
        return list(map(self.row_maker(), sockets))

    def row_maker(self) -> Callable[[Socket], tuple[str, ...]]:
        """A function from a socket to its cells; with -r, its ends named where they can be."""
        numeric = self.numeric_row_maker()
        names = self.names
        if names is None:
            return numeric
        local = self.state_index + BASE.index(LOCAL)
        # (proto, address, port) -> its cell: a server's end repeats on each of its connections.
        endpoints: dict[tuple[str, str, int], str] = {}

        def endpoint(key: tuple[str, str, int]) -> str:
            text = endpoints[key] = names.endpoint(*key)
            return text

        def named(sock: Socket) -> tuple[str, ...]:
            cells = numeric(sock)
            mine = (sock.proto, sock.local_address, sock.local_port)
            peer = (sock.proto, sock.remote_address, sock.remote_port)
            return (
                *cells[:local],
                endpoints.get(mine) or endpoint(mine),
                endpoints.get(peer) or endpoint(peer),
                *cells[local + 2 :],
            )

        return named

    def numeric_row_maker(self) -> Callable[[Socket], tuple[str, ...]]:
        """A function from a socket to its cells, remembering the address and owner text it made.

        Addresses, owners and state names repeat from row to row; a listing's cost is in
        formatting them afresh for each row (a third of it at 100,000 rows).
        """
        prefixes: dict[str, str] = {}  # address -> "address:" or "[address]:"
        owners: dict[tuple[int, str | None, int], tuple[str, str]] = {}
        names, lead_proto, labels, show_owners, extended, cgroups = (
            STATE_NAMES,
            self.proto,
            self.netns_labels,
            self.owners,
            self.extended,
            self.details.cgroup,
        )
        detailed = detail_cells(self.details)

        def prefix(address: str) -> str:
            text = prefixes[address] = address_prefix(address)
            return text

        shown: dict[int, str] = {}  # namespace inode -> its label, escaped: names are anyone's

        def label(netns: int) -> str:
            text = shown[netns] = safe(labels.get(netns, str(netns)) if labels else str(netns))
            return text

        # (local, remote, interface, v6only) -> the two prefixes, for the few sockets with an
        # interface or v6only off (listeners, link-local ends): the rest never look here.
        scoped: dict[tuple[str, str, str | None, bool | None], tuple[str, str]] = {}

        def scoped_prefixes(sock: Socket) -> tuple[str, str]:
            key = (sock.local_address, sock.remote_address, sock.interface, sock.v6only)
            found = scoped.get(key)
            if found is None:
                interface = None if sock.interface is None else safe(sock.interface)
                dual = sock.v6only is False
                found = scoped[key] = (
                    scoped_prefix(sock.local_address, interface, dual),
                    scoped_prefix(sock.remote_address, None, dual),  # ss: on the local end only
                )
            return found

        paths: dict[str | None, tuple[str]] = {None: (UNSEEN,)}  # path -> its cell, escaped

        def cgroup(path: str) -> tuple[str]:
            cell = paths[path] = (safe(path),)  # a path is named by whoever made the cgroup
            return cell

        def with_cgroup(sock: Socket) -> tuple[str, ...]:
            return row(sock) + (paths.get(sock.cgroup) or cgroup(sock.cgroup or ""))

        def holder_cells(key: tuple[int, str | None, int]) -> tuple[str, str]:
            pid, process, more = key
            text = owners[key] = owner_cells(owner(pid, process), more)
            return text

        def row(sock: Socket) -> tuple[str, ...]:
            port, peer_port = sock.local_port, sock.remote_port
            if sock.interface is None and sock.v6only is not False:
                local = prefixes.get(sock.local_address) or prefix(sock.local_address)
                peer = prefixes.get(sock.remote_address) or prefix(sock.remote_address)
            else:
                local, peer = scoped_prefixes(sock)
            cells: tuple[str, ...] = (
                names[sock.proto][sock.state],
                UNSEEN if sock.recv_q is None else str(sock.recv_q),
                UNSEEN if sock.send_q is None else str(sock.send_q),
                local + (str(port) if port else "*"),
                peer + (str(peer_port) if peer_port else "*"),
            )
            if lead_proto:
                cells = (sock.proto, *cells)
            if labels is not None:
                netns = sock.netns or 0
                cells = (shown.get(netns) or label(netns), *cells)
            if extended:
                cells += (UNSEEN if sock.uid is None else str(sock.uid), str(sock.inode or 0))
            if detailed is not None:
                cells += detailed(sock)
            if not show_owners:
                return cells
            if sock.pid is None:
                return cells + (KERNEL_OWNED_CELLS if sock.inode == 0 else UNSEEN_OWNER_CELLS)
            holders = sock.holders
            more = 0 if holders is None or len(holders) < 2 else others(holders)
            key = (sock.pid, sock.process, more)
            return cells + (owners.get(key) or holder_cells(key))

        return with_cgroup if cgroups else row  # a listing without --cgroup pays nothing


# proto -> state -> the name a listing shows (UDP's CLOSE is UNCONN); a socket's own state_name.
STATE_NAMES: dict[str, dict[TcpState, str]] = {
    proto: {state: state_name(state, proto) for state in TcpState} for proto in ("tcp", "udp")
}
# The other way: the state a State cell names (UNCONN: UDP's CLOSE), to colour it by.
STATE_OF_NAME: dict[str, TcpState] = {
    name: state for names in STATE_NAMES.values() for state, name in names.items()
}


def detail_cells(details: Details) -> Callable[[Socket], tuple[str, ...]] | None:
    """A function from a socket to the cells of the detail columns ``details`` asks for."""
    parts = [
        part
        for wanted, part in (
            (details.timers, timer_cells),
            (details.info, info_cells),
            (details.memory, memory_cells),
        )
        if wanted
    ]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return lambda sock: tuple(cell for part in parts for cell in part(sock))


def timer_cells(sock: Socket) -> tuple[str]:
    """``keepalive,119min,0`` as ss -o writes inside ``timer:(...)``; ``-`` when none runs."""
    if sock.timer is None:
        return (UNSEEN,)
    left = "" if sock.timer_ms is None else units.timer_left(sock.timer_ms)
    return (f"{sock.timer},{left},{sock.retransmits or 0}",)


_NO_INFO = (UNSEEN,) * len(INFO)


def info_cells(sock: Socket) -> tuple[str, ...]:
    info = sock.info
    if info is None:
        return _NO_INFO
    rtt = UNSEEN if info.rtt_ms is None else f"{info.rtt_ms:g}/{info.rttvar_ms or 0:g}"
    retrans = f"{info.retrans_segs or 0}/{info.retrans_total or 0}"
    delivery = UNSEEN if not info.delivery_rate_bps else units.rate(info.delivery_rate_bps)
    quiet = [t for t in (info.last_data_sent_ms, info.last_data_recv_ms) if t is not None]
    idle = units.duration(min(quiet)) if quiet else UNSEEN
    return (rtt, _number(info.cwnd_segs), retrans, delivery, idle)


_NO_MEMORY = (UNSEEN,) * len(MEMORY)


def memory_cells(sock: Socket) -> tuple[str, ...]:
    memory = sock.memory
    if memory is None:
        return _NO_MEMORY
    size = units.size
    return (
        f"{size(memory.rmem_alloc_bytes)}/{size(memory.rcvbuf_bytes)}",
        f"{size(memory.wmem_queued_bytes)}/{size(memory.sndbuf_bytes)}",
        str(memory.drops),
    )


def _number(value: int | None) -> str:
    return UNSEEN if value is None else str(value)


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


def more_suffix_length(cell: str) -> int:
    """How long the ``+N`` at the end of a Process cell is (0: none), for a cut to keep it.

    >>> more_suffix_length("nginx +12"), more_suffix_length("nginx")
    (4, 0)
    """
    # Not a regular expression, to keep re out of a listing's imports (see states.is_state_code).
    _, plus, count = cell.rpartition(" +")
    if plus and count[:1] in _NONZERO and _DIGITS.issuperset(count):
        return len(plus) + len(count)
    return 0


_NONZERO = frozenset("123456789")
_DIGITS = frozenset("0123456789")


def others(holders: tuple[Holder, ...]) -> int:
    """How many processes besides the first hold a socket (fds of one process count once).

    >>> others((Holder(812, "nginx", 3), Holder(812, "nginx", 7), Holder(813, "nginx", 3)))
    1
    """
    return len({holder.pid for holder in holders}) - 1


# The PID and Process cells of a socket no process holds, and of one whose holder is unseen.
KERNEL_OWNED_CELLS = owner_cells(KERNEL_OWNER)
UNSEEN_OWNER_CELLS = owner_cells(UNSEEN_OWNER)
