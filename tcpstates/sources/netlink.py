"""Sockets from the kernel's sock_diag netlink interface (inet_diag), standard library only.

This is how ss reads sockets: the kernel sends binary records, skips states nobody asked for (the
state bitmask), and never formats text. Each record is decoded with one ``struct`` call straight
out of a reused receive buffer.

Layouts (include/uapi/linux/netlink.h, inet_diag.h):
  nlmsghdr            len u32, type u16, flags u16, seq u32, pid u32
  inet_diag_req_v2    family u8, protocol u8, ext u8, pad u8, states u32, inet_diag_sockid
  inet_diag_sockid    sport be16, dport be16, src be32[4], dst be32[4], if u32, cookie u32[2]
  inet_diag_msg       family u8, state u8, timer u8, retrans u8, inet_diag_sockid,
                      expires u32, rqueue u32, wqueue u32, uid u32, inode u32
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from tcpstates.errors import SourceError
from tcpstates.query import Query
from tcpstates.sockets import Socket, new_socket
from tcpstates.sources import TIMERS, Reading
from tcpstates.sources.owners import Owner, scan_owners
from tcpstates.states import TcpState

NETLINK_SOCK_DIAG = 4
TCPDIAG_GETSOCK = 18
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300

_HEADER = struct.Struct("=IHHII")
_LENGTH_AND_TYPE = struct.Struct("=IH")  # the start of a header: all a walk needs
_REQUEST = struct.Struct("=IHHIIBBBBI48x")
# The older inet_diag_req (TCPDIAG_GETSOCK): family, src_len, dst_len, ext, the socket id, states,
# dbs. Unlike inet_diag_req_v2 it takes AF_UNSPEC, so one walk of the hash tables gives both
# families; v2 picks its handler by family and needs a walk per family, as ss does.
_BOTH_REQUEST = struct.Struct("=IHHIIBBBB48xII")
# The same request with the socket's identity filled in: a lookup of one socket, not a dump.
_LOOKUP = struct.Struct("=IHHIIBBBBIHH16s16sIII")
_NO_COOKIE = 0xFFFFFFFF  # INET_DIAG_NOCOOKIE: match on addresses and ports alone
# nlmsghdr and inet_diag_msg together, so one unpack decodes a whole record.
_RECORD = struct.Struct("=IHHIIBBBBHH16s16sI8xIIIII")
_FAMILY_OFFSET = _HEADER.size  # inet_diag_msg.idiag_family
_ERROR = struct.Struct("=i")
_STATE_OFFSET = _HEADER.size + 1  # inet_diag_msg.idiag_state
_QUEUES = struct.Struct("=II")  # idiag_rqueue, idiag_wqueue
_QUEUES_OFFSET = _HEADER.size + 4 + 48 + 4  # after state bytes, the socket id and idiag_expires
# Just idiag_inode, read from each packed record (its last four bytes).
_INODES = struct.Struct(f"={_RECORD.size - 4}xI")

_PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
_STATES = [TcpState(code) for code in range(256)]
_RECV_BUFFER = 256 * 1024

# BOUND_INACTIVE sockets are only dumped when asked for by name (Linux 6.5+), as ss does.
_DEFAULT_STATES = frozenset(TcpState) - {TcpState.UNKNOWN, TcpState.BOUND_INACTIVE}


def state_mask(states: frozenset[TcpState]) -> int:
    """The kernel's idiag_states bitmask for ``states`` (empty: every state but BOUND_INACTIVE).

    >>> hex(state_mask(frozenset({TcpState.TIME_WAIT})))
    '0x40'
    """
    mask = 0
    for state in states or _DEFAULT_STATES:
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
        mask = state_mask(query.states)
        dumps = [
            (proto, dump_packed(protocol, family, mask))
            for proto, protocol, family in _dumps(query)
        ]
        wanted = {inode for _, packed in dumps for (inode,) in _INODES.iter_unpack(packed)} - {0}
        scan = scan_owners("/proc", wanted)
        sockets = (
            sock
            for proto, packed in dumps
            for sock in _decode(_RECORD.iter_unpack(packed), proto, scan.by_inode)
        )
        return Reading(sockets, scan.hidden_processes)

    def probe(self) -> None:
        """Raise SourceError unless this kernel answers sock_diag dumps."""
        for _ in dump(socket.IPPROTO_TCP, socket.AF_INET, 0):
            pass

    def count(self, query: Query, queues: list[int] | None = None) -> Counter[tuple[str, TcpState]]:
        """Sockets per (protocol, state); the kernel filters, we read one byte a socket.

        ``queues``, a [rx, tx] list, gets the TCP sockets' queued bytes added to it.
        """
        counts: Counter[tuple[str, TcpState]] = Counter()
        mask = state_mask(query.states)
        for proto, protocol, family in _dumps(query):
            tcp_queues = queues if proto == "tcp" else None
            for code, n in count_states(protocol, family, mask, tcp_queues).items():
                counts[proto, _STATES[code]] += n
        return counts

    def _sockets(self, query: Query, owners: dict[int, Owner] | None) -> Iterator[Socket]:
        for proto, records in self._dumps(query):
            yield from _decode(records, proto, owners)

    def _dumps(self, query: Query) -> Iterator[tuple[str, Iterator[tuple[Any, ...]]]]:
        mask = state_mask(query.states)
        for proto, protocol, family in _dumps(query):
            yield proto, dump(protocol, family, mask)


def _dumps(query: Query) -> Iterator[tuple[str, int, int]]:
    """(protocol name, IPPROTO_*, AF_*) for each dump the query needs; AF_UNSPEC: both at once.

    Only TCP has the request that dumps both families in one walk; UDP takes one per family.
    """
    for proto in ("tcp", "udp"):
        families = [_FAMILIES[f] for f in (4, 6) if f in query.families]
        if proto not in query.protos or not families:
            continue
        if proto == "tcp" and len(families) == 2:
            yield proto, socket.IPPROTO_TCP, socket.AF_UNSPEC
        else:
            yield from ((proto, _PROTOCOLS[proto], family) for family in families)


def dump(protocol: int, family: int, mask: int) -> Iterator[tuple[Any, ...]]:
    """Every inet_diag record the kernel sends for one protocol and family, as raw tuples.

    With AF_UNSPEC the IPv4 records come first, then the IPv6 ones, as two dumps would give them.
    """
    if family == socket.AF_UNSPEC:
        yield from _RECORD.iter_unpack(dump_packed(protocol, family, mask))
        return
    unpack_record = _RECORD.unpack_from
    for buffer, offsets in _batches(protocol, family, mask):
        for offset in offsets:
            yield unpack_record(buffer, offset)


def dump_packed(protocol: int, family: int, mask: int) -> bytearray:
    """Every record of one dump, each cut to ``_RECORD.size`` bytes and packed back to back.

    IPv4 records first, then IPv6, whichever order the kernel's hash walk met them in.
    """
    packed = [bytearray(), bytearray()]  # indexed by "is IPv6"
    size, at_family, inet6 = _RECORD.size, _FAMILY_OFFSET, socket.AF_INET6
    for buffer, offsets in _batches(protocol, family, mask):
        for offset in offsets:
            packed[buffer[offset + at_family] == inet6] += buffer[offset : offset + size]
    ipv4, ipv6 = packed
    ipv4 += ipv6
    return ipv4


def count_states(
    protocol: int, family: int, mask: int, queues: list[int] | None = None
) -> Counter[int]:
    """State code -> sockets, reading one byte of each record and decoding nothing else.

    With ``queues`` ([rx, tx]), also add up every socket's receive and send queue in bytes, as
    node_exporter reports them; a second loop over the batch, so plain counts do not pay for it.
    """
    counts = [0] * 256
    unpack_queues = _QUEUES.unpack_from
    for buffer, offsets in _batches(protocol, family, mask):
        for offset in offsets:
            counts[buffer[offset + _STATE_OFFSET]] += 1
        if queues is not None:
            for offset in offsets:
                rx, tx = unpack_queues(buffer, offset + _QUEUES_OFFSET)
                queues[0] += rx
                queues[1] += tx
    return Counter({code: n for code, n in enumerate(counts) if n})


def _batches(protocol: int, family: int, mask: int) -> Iterator[tuple[bytearray, list[int]]]:
    """The reads of one dump; AF_UNSPEC (TCP only) dumps IPv4 and IPv6 in one walk."""
    if family == socket.AF_UNSPEC:
        if protocol != socket.IPPROTO_TCP:
            raise ValueError("only TCP dumps both families at once")
        yield from _both_families(mask)
        return
    with _diag_socket() as sock:
        request = _REQUEST.pack(
            _REQUEST.size, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0,
            family, protocol, 0, 0, mask,
        )  # fmt: skip
        sock.send(request)
        yield from _receive(sock)


def _both_families(mask: int) -> Iterator[tuple[bytearray, list[int]]]:
    """Both families of TCP in one walk of the kernel's tables, where two dumps walk them twice.

    A kernel that refuses the old request (its reply starts with an error) gets the two dumps.
    """
    with _diag_socket() as sock:
        request = _BOTH_REQUEST.pack(
            _BOTH_REQUEST.size, TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0,
            socket.AF_UNSPEC, 0, 0, 0, mask, 0,
        )  # fmt: skip
        sock.send(request)
        batches = _receive(sock)
        try:
            first = next(batches)
        except SourceError:
            first = None
        if first is not None:
            yield first
            yield from batches
            return
    for family in (socket.AF_INET, socket.AF_INET6):
        yield from _batches(socket.IPPROTO_TCP, family, mask)


def _diag_socket() -> socket.socket:
    try:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except OSError as e:
        raise SourceError(f"netlink sock_diag unavailable: {os.strerror(e.errno or 0)}") from e


def _receive(sock: socket.socket) -> Iterator[tuple[bytearray, list[int]]]:
    """Per read: the buffer and the offsets of its inet_diag records.

    The buffer is reused by the next read, so a batch must be consumed before asking for the
    next one. Batches rather than single records: a generator step per record cost a third of
    a per-state count.
    """
    buffer = bytearray(_RECV_BUFFER)
    view = memoryview(buffer)
    while True:
        size = sock.recv_into(view)
        if size == 0:
            raise SourceError("netlink sock_diag: the kernel ended the dump without NLMSG_DONE")
        offsets, done = parse_chunk(buffer, size)
        yield buffer, offsets
        if done:
            return


def parse_chunk(buffer: bytes | bytearray, size: int) -> tuple[list[int], bool]:
    """The offsets of the inet_diag records in one read, and whether the dump is done.

    Anything the kernel would never send (a length shorter than a header, or running past the
    read) raises SourceError rather than being guessed at.
    """
    record_size, header_size = _RECORD.size, _HEADER.size
    unpack_header = _LENGTH_AND_TYPE.unpack_from
    offset = 0
    offsets: list[int] = []
    while offset + header_size <= size:
        length, kind = unpack_header(buffer, offset)
        if kind == NLMSG_DONE:
            return offsets, True
        if kind == NLMSG_ERROR:
            _raise_error(buffer, offset, length)
        if length < header_size or offset + length > size:
            raise SourceError("netlink sock_diag: truncated message from the kernel")
        if length >= record_size:
            offsets.append(offset)
        offset += (length + 3) & ~3
    return offsets, False


def lookup_inode(
    family: int, local: str, local_port: int, remote: str, remote_port: int
) -> int | None:
    """The inode of the one TCP socket with these ends, asked of the kernel directly (no dump).

    None when there is no such socket (any more) or it is not held by a file (inode 0).
    """
    af = _FAMILIES[family]
    request = _LOOKUP.pack(
        _LOOKUP.size, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0,
        af, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF,
        socket.htons(local_port), socket.htons(remote_port),
        _raw_address(af, local), _raw_address(af, remote),
        0, _NO_COOKIE, _NO_COOKIE,
    )  # fmt: skip
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as sock:
            sock.send(request)
            reply = sock.recv(8192)
    except OSError:
        return None
    if len(reply) < _RECORD.size or _LENGTH_AND_TYPE.unpack_from(reply)[1] != SOCK_DIAG_BY_FAMILY:
        return None  # NLMSG_ERROR: no such socket
    (inode,) = _INODES.unpack_from(reply)
    return inode or None


def _raw_address(af: int, text: str) -> bytes:
    return socket.inet_pton(af, text).ljust(16, b"\0")


def _raise_error(buffer: bytes | bytearray, offset: int, length: int) -> None:
    if length < _HEADER.size + _ERROR.size or offset + _HEADER.size + _ERROR.size > len(buffer):
        raise SourceError("netlink sock_diag: truncated error message from the kernel")
    (code,) = _ERROR.unpack_from(buffer, offset + _HEADER.size)
    if code == 0:
        return
    reason = errno.errorcode.get(-code, str(-code))
    raise SourceError(f"netlink sock_diag refused the dump: {os.strerror(-code)} ({reason})")


def _decode(
    records: Iterable[tuple[Any, ...]], proto: str, owners: dict[int, Owner] | None
) -> Iterator[Socket]:
    ntohs, inet6 = socket.ntohs, socket.AF_INET6
    # Address text by raw bytes, per family: IPv4's 0.0.0.0 and IPv6's :: are the same 16 bytes.
    by_family: dict[int, dict[bytes, str]] = {socket.AF_INET: {}, inet6: {}}
    for record in records:
        (_, _, _, _, _, family, code, timer_code, retrans, sport, dport, src, dst,
         _, expires, rqueue, wqueue, uid, inode) = record  # fmt: skip
        owner = owners.get(inode) if owners and inode else None
        state = _STATES[code]
        timer = TIMERS.get(timer_code)
        names = by_family.get(family, {})  # another family: _name refuses it
        yield new_socket(
            proto=proto,
            family=6 if family == inet6 else 4,
            local_address=names.get(src) or _name(names, family, src),
            local_port=ntohs(sport),
            remote_address=names.get(dst) or _name(names, family, dst),
            remote_port=ntohs(dport),
            state=state,
            recv_q=rqueue,
            send_q=wqueue,
            uid=uid,
            inode=inode,
            pid=owner.pid if owner else None,
            process=owner.process if owner else None,
            timer=timer,
            timer_ms=expires if timer else None,
            retransmits=retrans,
        )


def _name(names: dict[bytes, str], family: int, raw: bytes) -> str:
    if family not in (socket.AF_INET, socket.AF_INET6):
        raise SourceError(f"netlink sock_diag: a record of address family {family}")
    text = socket.inet_ntop(family, raw[:4] if family == socket.AF_INET else raw)
    names[raw] = text
    return text
