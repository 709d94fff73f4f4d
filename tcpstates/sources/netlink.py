"""Sockets from the kernel's sock_diag netlink interface (inet_diag), standard library only.

This is how ss reads sockets: the kernel sends binary records, skips states nobody asked for (the
state bitmask), and never formats text. Each record is decoded with one ``struct`` call straight
out of a reused receive buffer. The wire protocol itself is in inet_diag.py.
"""

from __future__ import annotations

import _socket as socket  # socket.py would load selectors too: 2 ms for nothing here
from collections import Counter
from collections.abc import Collection, Iterable, Iterator

from tcpstates.model.errors import SourceError
from tcpstates.model.query import Query
from tcpstates.model.record import Record
from tcpstates.model.sockets import NO_DETAILS, Details, Socket, new_socket
from tcpstates.model.states import BY_CODE, TcpState
from tcpstates.sources import inet_diag as diag
from tcpstates.sources.base import TIMERS, Reading
from tcpstates.sources.inet_diag import dump, dump_packed, packed_reads

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from typing import Any

    from tcpstates.model.query import Network
    from tcpstates.sources.destroy import Handle
    from tcpstates.sources.owners import Owner, OwnerMap

    _Rows = Iterable[tuple[tuple[Any, ...], dict[int, bytes]]]  # records and their attributes

_INODES = diag.INODES
_PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
_SYN_RECV = TcpState.SYN_RECV.value  # how the kernel reports a request socket (NEW_SYN_RECV)
_LISTEN_MASK = 1 << TcpState.LISTEN
_HELD_BY_NONE = frozenset({TcpState.TIME_WAIT})  # the kernel's alone: no process has an fd
# A listener's possible local addresses, as idiag_src holds them (an IPv4 one in 4 bytes).
_ANY4, _ANY6 = bytes(4), bytes(16)
_MAPPED = bytes(10) + b"\xff\xff"  # ::ffff:0:0/96, IPv4 addresses as an IPv6 socket has them
_MAPPED_ANY = _MAPPED + _ANY4
# Where a record tuple (inet_diag.RECORD) holds what a listener is matched on.
_FAMILY, _STATE, _SPORT, _SRC, _UID, _INODE = 5, 6, 9, 11, 17, 18


class RawReading(Record):
    """A read's records before they are sockets: per dump, its protocol's name and its records
    (inet_diag.RECORD tuples); the owners found for them, None when not asked for."""

    dumps: list[tuple[str, Iterator[tuple[Any, ...]]]]
    owners: OwnerMap | None


def _owners_of(wanted: Inodes, query: Query, details: Details) -> OwnerMap | None:
    """The owners of the ``wanted`` sockets; None when there is none to look for (a listing of
    TIME_WAIT alone), which spares it loading the scan too."""
    if not wanted:
        return None
    from tcpstates.sources.owners import holders_wanted, scan_owners

    return scan_owners("/proc", wanted, holders_wanted(query, details))


class Inodes(Collection[int]):
    """The inodes in packed dumps but 0 (the sockets a process may hold): what an owner scan
    looks for. The set is made only when asked whether it holds one: a scan of 100,000
    sockets is split in two and, unless it reads every holder, asks only how many there are
    (the set took 6 MB through the scan, while a --watch holds its last reading)."""

    __slots__ = ("_packed", "_count", "_set")

    def __init__(self, packed: list[bytearray]) -> None:
        self._packed = packed
        self._count: int | None = None
        self._set: set[int] | None = None

    def __iter__(self) -> Iterator[int]:
        for packed in self._packed:
            for (inode,) in _INODES.iter_unpack(packed):
                if inode:
                    yield inode

    def __len__(self) -> int:
        if self._count is None:
            self._count = sum(1 for _ in self)
        return self._count

    def __contains__(self, inode: object) -> bool:
        if self._set is None:
            self._set = set(self)
        return inode in self._set


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
    # Sends each socket's cgroup (5.7+): --cgroup needs no owners to fall back on.
    gives_cgroups = True

    def read(self, query: Query, owners: bool = False, details: Details = NO_DETAILS) -> Reading:
        if details.from_kernel or details.cgroup:  # the cgroup id is an attribute too
            return _read_detailed(query, owners, details)
        raw = self.records(query, owners, details)
        scan = raw.owners
        by_inode = scan.by_inode if scan is not None else None
        sockets = (sock for proto, rows in raw.dumps for sock in decode(rows, proto, by_inode))
        if scan is None:
            return Reading(sockets)
        return Reading(scan.fill_holders(sockets, details.holders), scan.hidden_processes)

    def records(
        self, query: Query, owners: bool, details: Details = NO_DETAILS, *, streamed: bool = False
    ) -> RawReading:
        """What ``read`` decodes into sockets: the records of each dump, undecoded, and the
        owners of their sockets (with ``owners``). listing/packed.py makes rows of them.

        ``streamed``: when no owners are looked for (none asked, or TIME_WAIT alone, which no
        process holds), hand each read's records on as it comes, so that the caller's work on
        them overlaps the kernel's on the next (inet_diag._ReadAhead): a TIME_WAIT listing of
        20,000 of 100,000 sockets took 86 ms, and 79 streamed. A failed read then fails midway
        through the records: only for a caller that writes nothing before it has them all.
        """
        if not owners or (streamed and query.states == _HELD_BY_NONE):
            return RawReading(list(self._dumps(query, streamed)), None)
        # Dump first, then look only for the owners of what the kernel sent: a TIME_WAIT
        # listing needs no /proc scan at all, since no process holds those sockets.
        # The records wait in their binary form, back to back: a tenth of the memory of tuples.
        mask, program = state_mask(query.states), _program(query)
        dumps = [
            (proto, dump_packed(protocol, family, mask, program))
            for proto, protocol, family in _dumps(query)
        ]
        scan = _owners_of(Inodes([packed for _, packed in dumps]), query, details)
        listeners = _Listeners(query.sport)
        return RawReading([(proto, listeners.records(packed)) for proto, packed in dumps], scan)

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
                counts[proto, BY_CODE[code]] += n
        return counts

    def _dumps(
        self, query: Query, streamed: bool = False
    ) -> Iterator[tuple[str, Iterator[tuple[Any, ...]]]]:
        mask, program = state_mask(query.states), _program(query)
        listeners = _Listeners(query.sport)
        for proto, protocol, family in _dumps(query):
            if proto == "tcp" and streamed:
                yield proto, listeners.streamed(packed_reads(protocol, family, mask, program))
            elif proto == "tcp":  # packed, to find its request sockets at once (no slower)
                yield proto, listeners.records(dump_packed(protocol, family, mask, program))
            else:  # UDP has no request sockets
                yield proto, dump(protocol, family, mask, program)


def read_handles(query: Query, owners: bool) -> tuple[list[tuple[Socket, Handle]], int]:
    """The sockets of ``query``'s states, protocols and families, each with the handle that
    names it to SOCK_DESTROY (sources/destroy.py), and how many processes could not be looked
    into for owners. Nothing else of ``query`` is applied here (``Query.matches``).

    One dump per protocol and family, as a listing reads them: a record's socket id (cookie
    included) sits in its packed bytes, so a socket and its handle come from the same record,
    and a connection that ends and whose ends a new one takes is never confused with it.
    Drain it in the namespace it reads: names of interfaces are looked up there.
    """
    from tcpstates.sources.destroy import RECORD_SOCKIDS, Handle  # kill's alone: not a listing's

    mask, program = state_mask(query.states), _program(query)
    dumps = [
        (proto, protocol, dump_packed(protocol, family, mask, program))
        for proto, protocol, family in _dumps(query)
    ]
    scan = None
    if owners:
        scan = _owners_of(Inodes([packed for *_, packed in dumps]), query, NO_DETAILS)
    listeners = _Listeners(query.sport)
    found: list[tuple[Socket, Handle]] = []
    for proto, protocol, packed in dumps:
        sockets: Iterable[Socket] = decode(
            listeners.records(packed), proto, scan.by_inode if scan else None
        )
        if scan is not None:
            sockets = scan.fill_holders(sockets, every=False)
        ids = RECORD_SOCKIDS.iter_unpack(packed)
        found += [
            (sock, Handle(family, protocol, sockid))
            for sock, (family, sockid) in zip(sockets, ids, strict=True)
        ]
    return found, scan.hidden_processes if scan else 0


class _Listeners:
    """The uids of a read's TCP listeners, for its request sockets.

    The kernel sends a request socket (a connection in SYN_RECV that accept() has not taken
    yet) with uid 0 and inode 0 meaning "not filled in" (inet_req_diag_fill); /proc/net/tcp
    prints its listener's uid (get_openreq4), which the accepted socket inherits from the
    listener. The listeners are dumped once, at the first request socket of the read: inside
    the namespace being read, since a netlink socket answers for the one it was opened in.
    """

    def __init__(self, sport: int | None) -> None:
        # A request socket's local port is its listener's: --sport narrows this dump too.
        self._program = b"" if sport is None else diag.local_port(sport)
        self._uids: dict[tuple[int, bytes, int], int] | None = None

    def records(self, packed: bytearray) -> Iterator[tuple[Any, ...]]:
        """The records of a packed dump, a request socket's uid its listener's (None if that
        has closed since). Only request sockets are unpacked one by one: a dump without any
        (every UDP one) costs one slice of its state bytes."""
        states = packed[diag.STATE_OFFSET :: diag.RECORD.size]
        if _SYN_RECV not in states:
            return diag.RECORD.iter_unpack(packed)
        return self._completed(packed, states)

    def streamed(self, parts: Iterable[bytearray]) -> Iterator[tuple[Any, ...]]:
        """``records`` of each part of a packed dump as it comes (inet_diag.packed_reads)."""
        for part in parts:
            yield from self.records(part)

    def _completed(self, packed: bytearray, states: bytearray) -> Iterator[tuple[Any, ...]]:
        record_at, size, view = diag.RECORD.unpack_from, diag.RECORD.size, memoryview(packed)
        start, at = 0, states.find(_SYN_RECV)
        while at >= 0:
            record = record_at(packed, at * size)
            completed = self.completed(record)
            if completed is not record:
                yield from diag.RECORD.iter_unpack(view[start * size : at * size])
                yield completed
                start = at + 1
            at = states.find(_SYN_RECV, at + 1)
        yield from diag.RECORD.iter_unpack(view[start * size :])

    def completed(self, record: tuple[Any, ...]) -> tuple[Any, ...]:
        """A record in SYN_RECV with its listener's uid where the kernel left it blank (a
        request socket: no inode, uid 0); a full socket in SYN_RECV (a Fast Open child not yet
        accepted) has its own, and comes back as it was."""
        if record[_INODE] or record[_UID]:
            return record
        uid = self.uid(record[_FAMILY], record[_SRC], record[_SPORT])
        return (*record[:_UID], uid, *record[_UID + 1 :])

    def uid(self, family: int, src: bytes, port: int) -> int | None:
        """The uid of the listener on ``src`` (a record's idiag_src) and ``port`` (its raw
        idiag_sport), bound there or to a wildcard that covers it; None when there is none."""
        if self._uids is None:
            self._uids = _listener_uids(self._program)
        for address in _listening_addresses(family, src):
            uid = self._uids.get((family, address, port))
            if uid is not None:
                return uid
        return None


def _read_detailed(query: Query, owners: bool, details: Details) -> Reading:
    """A reading with what only the records' attributes hold (tcp_info, memory, the cgroup id):
    each record is walked, which the plain reading spares itself."""
    asked = (diag.INET_DIAG_INFO, diag.INET_DIAG_CONG) * details.info
    asked += (diag.INET_DIAG_SKMEMINFO,) * details.memory
    ext, mask, program = diag.extension_bits(*asked), state_mask(query.states), _program(query)
    dumps: list[tuple[str, _Rows]] = [
        (proto, diag.dump_detailed(protocol, family, mask, ext, program))
        for proto, protocol, family in _dumps(query)
    ]
    scan = None
    if owners:  # the owners of what was sent: every record first (without, they stream)
        from tcpstates.sources.owners import holders_wanted, scan_owners

        dumps = [(proto, list(rows)) for proto, rows in dumps]
        wanted = {record[_INODE] for _, rows in dumps for record, _ in rows} - {0}
        scan = scan_owners("/proc", wanted, holders_wanted(query, details))
    listeners = _Listeners(query.sport)
    # Here: a listing without details loads neither.
    from tcpstates.sources.cgroups import CgroupPaths
    from tcpstates.sources.details import complete

    cgroups = CgroupPaths() if details.cgroup else None
    by_inode = scan.by_inode if scan else None

    def sockets() -> Iterator[Socket]:
        for proto, rows in dumps:
            # decode takes a record and yields its socket in step: the record's attributes
            # wait in ``found`` meanwhile, so one decode (and its address cache) serves all.
            found: list[dict[int, bytes]] = []
            for sock in decode(_records(rows, listeners, found), proto, by_inode):
                complete(sock, found.pop(), details, cgroups)
                yield sock

    if scan is None:
        return Reading(sockets())
    return Reading(scan.fill_holders(sockets(), details.holders), scan.hidden_processes)


def _records(
    rows: Iterable[tuple[tuple[Any, ...], dict[int, bytes]]],
    listeners: _Listeners,
    found: list[dict[int, bytes]],
) -> Iterator[tuple[Any, ...]]:
    """The records of ``rows``, each one's attributes put in ``found`` as it is taken."""
    for record, attributes_of in rows:
        found.append(attributes_of)
        yield listeners.completed(record) if record[_STATE] == _SYN_RECV else record


def _listener_uids(program: bytes) -> dict[tuple[int, bytes, int], int]:
    """(family, local address, raw port) -> uid of every TCP listener, both families."""
    packed = dump_packed(socket.IPPROTO_TCP, socket.AF_UNSPEC, _LISTEN_MASK, program)
    uids = {}
    for record in diag.RECORD.iter_unpack(packed):
        family, src = record[_FAMILY], record[_SRC]
        address = src[:4] if family == socket.AF_INET else src
        uids[family, address, record[_SPORT]] = record[_UID]
    return uids


def _listening_addresses(family: int, src: bytes) -> tuple[bytes, ...]:
    """Where the listener of a request socket to ``src`` may be bound, most specific first.

    A request socket has its listener's family (inet_reqsk_alloc): an IPv4 client of a
    dual-stack ``::`` listener makes an AF_INET6 request to ``::ffff:a.b.c.d``, which an
    IPv6 socket bound to ``::ffff:0.0.0.0`` would also have taken.

    >>> v4 = bytes([127, 0, 0, 1])
    >>> [socket.inet_ntop(socket.AF_INET, a) for a in _listening_addresses(socket.AF_INET, v4)]
    ['127.0.0.1', '0.0.0.0']
    >>> mapped = _listening_addresses(socket.AF_INET6, _MAPPED + v4)
    >>> [socket.inet_ntop(socket.AF_INET6, a) for a in mapped]
    ['::ffff:127.0.0.1', '::ffff:0.0.0.0', '::']
    """
    if family == socket.AF_INET:
        return src[:4], _ANY4
    if src.startswith(_MAPPED):
        return src, _MAPPED_ANY, _ANY6
    return src, _ANY6


def _program(query: Query) -> bytes:
    """The query's ports, addresses and interface as a program the kernel runs on each socket,
    as ss hands it ``sport = :N``: a listing of one peer on a host of 100,000 sockets then
    decodes, and looks owners up for, that peer's sockets alone. The query still checks every
    record after (a kernel may refuse the program)."""
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
    if query.interface is not None and (index := _interface_index(query.interface)):
        parts.append(diag.on_device(index))
    return diag.all_of(parts)


def _interface_index(name: str) -> int | None:
    """Interface ``name``'s index here: the program is made inside the namespace being read.
    None where it has no such interface: then no socket of it matches, as Query says."""
    try:
        return socket.if_nametoindex(name)
    except (OSError, ValueError):
        return None


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


def decode(
    records: Iterable[tuple[Any, ...]], proto: str, owners: dict[int, Owner] | None
) -> Iterator[Socket]:
    """The sockets of ``records`` (inet_diag.RECORD tuples of protocol ``proto``), each with
    its owner in ``owners`` (by inode)."""
    # 100,000 records: everything looked up once, and new_socket's arguments given by position
    # (sockets.FIELDS order), which costs a fifth less than by keyword.
    inet6, states, timers, make = socket.AF_INET6, BY_CODE, TIMERS, new_socket
    v6only_of = diag.V6ONLY_OF_TYPE
    owners = owners or {}
    # Address text by raw bytes, per family: IPv4's 0.0.0.0 and IPv6's :: are the same 16 bytes.
    by_family: dict[int, dict[bytes, str]] = {socket.AF_INET: {}, inet6: {}}
    interfaces: dict[int, str] = {}  # index -> name, asked here: in the namespace being read
    # Raw port -> its number, one int object each: 100,000 sockets made 200,000 ints of 28
    # bytes where at most 65,536 differ, 4 MB of each reading a --watch holds two of. A
    # lookup costs what socket.ntohs does.
    ports: dict[int, int] = {}
    for (_, kind, _, _, _, family, code, timer_code, retrans, sport, dport, src, dst,
         index, expires, rqueue, wqueue, uid, inode) in records:  # fmt: skip
        owner = owners.get(inode)
        timer = timers.get(timer_code)
        names = by_family.get(family, {})  # another family: _name refuses it
        yield make(
            proto,
            6 if family == inet6 else 4,
            names.get(src) or _name(names, family, src),
            ports.get(sport) or _port(ports, sport),
            names.get(dst) or _name(names, family, dst),
            ports.get(dport) or _port(ports, dport),
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
            (interfaces.get(index) or _interface(interfaces, index)) if index else None,
            v6only_of.get(kind),
        )


def _port(ports: dict[int, int], raw: int) -> int:
    number = ports[raw] = socket.ntohs(raw)
    return number


def _interface(interfaces: dict[int, str], index: int) -> str:
    """The name of interface ``index`` (idiag_if: the device the socket is bound to, or a
    link-local end's scope) in the namespace this thread is in, as ss shows it; an index
    that has no name (the device went meanwhile) as its number."""
    try:
        name = socket.if_indextoname(index)
    except OSError:
        name = str(index)
    interfaces[index] = name
    return name


def _name(names: dict[bytes, str], family: int, raw: bytes) -> str:
    if family not in (socket.AF_INET, socket.AF_INET6):
        raise SourceError(f"netlink sock_diag: a record of address family {family}")
    text = socket.inet_ntop(family, raw[:4] if family == socket.AF_INET else raw)
    names[raw] = text
    return text
