"""The inet_diag wire protocol: ask the kernel for socket records and find them in its replies.

Light on purpose: the standard library's C modules only (``_socket``, not ``socket``, whose enum
set-up alone costs more than a summary's reading), so that the summary fast path can count
sockets before anything else is loaded. Records are left in the receive buffer; what they mean
is for the callers (sources/netlink.py builds sockets, fastpath.py counts states).

Layouts (include/uapi/linux/netlink.h, inet_diag.h):
  nlmsghdr            len u32, type u16, flags u16, seq u32, pid u32
  inet_diag_req_v2    family u8, protocol u8, ext u8, pad u8, states u32, inet_diag_sockid
  inet_diag_req       family u8, src_len u8, dst_len u8, ext u8, inet_diag_sockid,
                      states u32, dbs u32 (the older request, TCP only)
  inet_diag_sockid    sport be16, dport be16, src be32[4], dst be32[4], if u32, cookie u32[2]
  inet_diag_msg       family u8, state u8, timer u8, retrans u8, inet_diag_sockid,
                      expires u32, rqueue u32, wqueue u32, uid u32, inode u32
"""

from __future__ import annotations

import _socket
import errno
import os
import struct
from collections.abc import Collection, Iterable, Iterator

NETLINK_SOCK_DIAG = 4
TCPDIAG_GETSOCK = 18
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300

AF_UNSPEC, AF_INET, AF_INET6 = _socket.AF_UNSPEC, _socket.AF_INET, _socket.AF_INET6
IPPROTO_TCP, IPPROTO_UDP = _socket.IPPROTO_TCP, _socket.IPPROTO_UDP
# Every state but UNKNOWN (0) and BOUND_INACTIVE (13), which the kernel dumps only when asked
# by name (Linux 6.5+), as ss does; NEW_SYN_RECV (12) holds the pending connections.
ALL_STATES = sum(1 << code for code in range(1, 13))

HEADER = struct.Struct("=IHHII")
_LENGTH_AND_TYPE = struct.Struct("=IH")  # the start of a header: all a walk needs
_REQUEST = struct.Struct("=IHHIIBBBBI48x")
# inet_diag_req takes AF_UNSPEC, so one walk of the hash tables gives both families;
# inet_diag_req_v2 picks its handler by family and needs a walk per family, as ss does.
_BOTH_REQUEST = struct.Struct("=IHHIIBBBB48xII")
# The v2 request with the socket's identity filled in: a lookup of one socket, not a dump.
_LOOKUP = struct.Struct("=IHHIIBBBBIHH16s16sIII")
_NO_COOKIE = 0xFFFFFFFF  # INET_DIAG_NOCOOKIE: match on addresses and ports alone
# nlmsghdr and inet_diag_msg together, so one unpack decodes a whole record.
RECORD = struct.Struct("=IHHIIBBBBHH16s16sI8xIIIII")
FAMILY_OFFSET = HEADER.size  # inet_diag_msg.idiag_family
STATE_OFFSET = HEADER.size + 1  # inet_diag_msg.idiag_state
_ERROR = struct.Struct("=i")
_QUEUES = struct.Struct("=II")  # idiag_rqueue, idiag_wqueue
_QUEUES_OFFSET = HEADER.size + 4 + 48 + 4  # after state bytes, the socket id and idiag_expires
# Just idiag_inode, read from each packed record (its last four bytes).
INODES = struct.Struct(f"={RECORD.size - 4}xI")
_RECV_BUFFER = 256 * 1024

# Filters the kernel runs on each socket before sending it (include/uapi/linux/inet_diag.h):
# a program of inet_diag_bc_op {code u8, yes u8, no u16}, attached to the request as the
# INET_DIAG_REQ_BYTECODE attribute. Each op jumps ``yes`` or ``no`` bytes ahead; landing exactly
# on the end accepts the socket, jumping 4 bytes past it rejects it.
INET_DIAG_REQ_BYTECODE = 1
BC_JMP, BC_S_COND, BC_D_COND, BC_DEV_COND, BC_S_EQ, BC_D_EQ = 1, 7, 8, 9, 11, 12
_OP = struct.Struct("=BBH")
_HOSTCOND = struct.Struct("=BBxxi")  # family, prefix_len, port (-1: any); the address follows
_ATTRIBUTE = struct.Struct("=HH")  # nlattr: len, type
_IFINDEX = struct.Struct("=I")

Batch = tuple[bytearray, list[int]]  # a receive buffer and the offsets of its records


def local_port(port: int) -> bytes:
    """A program accepting sockets whose local port is ``port`` (Linux 4.16 and later)."""
    return _port_is(BC_S_EQ, port)


def remote_port(port: int) -> bytes:
    return _port_is(BC_D_EQ, port)


def local_address(family: int, prefix_len: int, raw: bytes) -> bytes:
    """Sockets whose local address is in ``raw``/``prefix_len`` (AF_INET: v4-mapped ones too)."""
    return _address_in(BC_S_COND, family, prefix_len, raw)


def remote_address(family: int, prefix_len: int, raw: bytes) -> bytes:
    return _address_in(BC_D_COND, family, prefix_len, raw)


def on_device(index: int) -> bytes:
    """A program accepting sockets whose idiag_if is interface ``index`` (ss's ``dev``)."""
    # The comparison, then the index: match, go to the end; else jump 4 past it (reject).
    return _OP.pack(BC_DEV_COND, 8, 12) + _IFINDEX.pack(index)


def either(first: bytes, second: bytes) -> bytes:
    """first OR second: where first would accept, jump over second to the end.

    >>> either(local_port(22), remote_port(22)).hex()
    '0b080c000000160001040c000c080c0000001600'
    """
    return first + _OP.pack(BC_JMP, 4, len(second) + 4) + second


def all_of(programs: Iterable[bytes]) -> bytes:
    """first AND second AND ...: each one's accept falls into the next, every reject still
    rejects (ss's ssfilter_patch); empty when there are none."""
    joined = b""
    for program in programs:
        joined = _relocate_rejects(joined, len(program)) + program
    return joined


def _port_is(code: int, port: int) -> bytes:
    # The comparison, then an op whose ``no`` holds the port: match, go to the end (accept);
    # else jump 4 past it (reject).
    return _OP.pack(code, 8, 12) + _OP.pack(0, 0, port)


def _address_in(code: int, family: int, prefix_len: int, raw: bytes) -> bytes:
    # The op, then inet_diag_hostcond (port -1: any) and the address.
    size = _OP.size + _HOSTCOND.size + len(raw)
    return _OP.pack(code, size, size + 4) + _HOSTCOND.pack(family, prefix_len, -1) + raw


def _relocate_rejects(program: bytes, growth: int) -> bytes:
    """``program`` with its jumps to reject (4 past its end) moved ``growth`` bytes further."""
    ops = bytearray(program)
    offset, left = 0, len(program)
    while left > 0:
        code, yes, no = _OP.unpack_from(ops, offset)
        if no == left + 4:
            _OP.pack_into(ops, offset, code, yes, no + growth)
        offset, left = offset + yes, left - yes
    return bytes(ops)


def dump_families(protocol: int, families: Collection[int]) -> list[int]:
    """The ``family`` of each dump that covers ``families`` (AF_INET, AF_INET6), in order.

    TCP takes both in one dump (AF_UNSPEC, one walk); UDP needs one dump per family.
    """
    wanted = [af for af in (AF_INET, AF_INET6) if af in families]
    if protocol == IPPROTO_TCP and len(wanted) == 2:
        return [AF_UNSPEC]
    return wanted


def dump(
    protocol: int, family: int, mask: int, program: bytes = b""
) -> Iterator[tuple[object, ...]]:
    """Every inet_diag record the kernel sends for one protocol and family, as raw tuples.

    With AF_UNSPEC the IPv4 records come first, then the IPv6 ones, as two dumps would give them.
    ``program`` (built from local_port, either, all_of ...) is run by the kernel on each socket.
    An IPv6 record's nlmsg_type carries its v6only (``V6ONLY_OF_TYPE``).
    """
    if family == AF_UNSPEC:
        yield from RECORD.iter_unpack(dump_packed(protocol, family, mask, program))
        return
    unpack_record = RECORD.unpack_from
    v6only_sent = family == AF_INET6 and mask & _V6ONLY_STATES_MASK
    for buffer, offsets in batches(protocol, family, mask, program):
        for offset in offsets:
            if v6only_sent and buffer[offset + STATE_OFFSET] in _V6ONLY_STATES:
                _mark_v6only(buffer, offset)
            yield unpack_record(buffer, offset)


# Extensions asked for in a request's ext byte: bit (attribute type - 1). The kernel then
# sends each as an attribute after the record (include/uapi/linux/inet_diag.h).
INET_DIAG_INFO, INET_DIAG_CONG, INET_DIAG_SKMEMINFO = 2, 4, 7
INET_DIAG_SKV6ONLY, INET_DIAG_CGROUP_ID = 11, 21  # sent unasked, where the kernel has them
_ATTRIBUTES_OFFSET = HEADER.size + 72  # after nlmsghdr and inet_diag_msg


def extension_bits(*types: int) -> int:
    """The request's ext byte asking for attributes ``types``.

    >>> extension_bits(INET_DIAG_INFO, INET_DIAG_CONG, INET_DIAG_SKMEMINFO)
    74
    """
    bits = 0
    for kind in types:
        bits |= 1 << (kind - 1)
    return bits


def dump_detailed(
    protocol: int, family: int, mask: int, ext: int, program: bytes = b""
) -> Iterator[tuple[tuple[object, ...], dict[int, bytes]]]:
    """Every record of one dump with its attributes (type -> payload), ``ext`` the extensions
    asked for. Slower than ``dump`` by the attribute walk: only for what only they hold."""
    unpack_record = RECORD.unpack_from
    for buffer, offsets in batches(protocol, family, mask, program, ext):
        for offset in offsets:
            record = unpack_record(buffer, offset)
            length: int = record[0]
            yield record, attributes(buffer, offset + _ATTRIBUTES_OFFSET, offset + length)


def attributes(buffer: bytes | bytearray, start: int, end: int) -> dict[int, bytes]:
    """The netlink attributes between ``start`` and ``end``: type -> payload (a copy).

    An attribute that claims to run past ``end`` ends the walk: the kernel never sends one.
    """
    found: dict[int, bytes] = {}
    unpack, header = _ATTRIBUTE.unpack_from, _ATTRIBUTE.size
    while start + header <= end:
        length, kind = unpack(buffer, start)
        if length < header or start + length > end:
            break
        found[kind & 0x3FFF] = bytes(buffer[start + header : start + length])
        start += (length + 3) & ~3
    return found


def dump_packed(protocol: int, family: int, mask: int, program: bytes = b"") -> bytearray:
    """Every record of one dump, each cut to ``RECORD.size`` bytes and packed back to back.

    IPv4 records first, then IPv6, whichever order the kernel's hash walk met them in. The
    attributes are cut off, all but one: an IPv6 listener's or unconnected socket's v6only,
    which its packed nlmsg_type carries (``V6ONLY_OF_TYPE``).
    """
    packed = bytearray()
    for part in packed_reads(protocol, family, mask, program):
        packed += part
    return packed


def packed_reads(
    protocol: int, family: int, mask: int, program: bytes = b""
) -> Iterator[bytearray]:
    """``dump_packed``'s records in parts, as the reads come: each read's IPv4 records,
    then every IPv6 one (so that, joined, they are ``dump_packed``'s)."""
    ipv6 = bytearray()
    size, at_family, at_state = RECORD.size, FAMILY_OFFSET, STATE_OFFSET
    # Only those states have the attribute: their state byte is read for IPv6 records alone,
    # and not at all when the dump cannot hold them (an established listing).
    v6only_states = _V6ONLY_STATES if mask & _V6ONLY_STATES_MASK else b""
    for buffer, offsets in batches(protocol, family, mask, program):
        ipv4 = bytearray()
        for offset in offsets:
            if buffer[offset + at_family] != AF_INET6:
                ipv4 += buffer[offset : offset + size]
                continue
            if buffer[offset + at_state] in v6only_states:
                _mark_v6only(buffer, offset)
            ipv6 += buffer[offset : offset + size]
        if ipv4:
            yield ipv4
    if ipv6:
        yield ipv6


# INET_DIAG_SKV6ONLY comes with IPv6 sockets in LISTEN (10) and CLOSE (7) alone
# (inet_diag_msg_attrs_fill). A record cut to RECORD.size loses it; its nlmsg_type, the same
# for every record of a dump and of no use once the record is cut, carries it instead.
_V6ONLY_STATES = bytes((7, 10))
_V6ONLY_STATES_MASK = (1 << 7) | (1 << 10)
_DUAL_STACK_TYPE, _V6ONLY_TYPE = 0xFFF0, 0xFFF1  # no message type the kernel sends here
V6ONLY_OF_TYPE: dict[int, bool] = {_DUAL_STACK_TYPE: False, _V6ONLY_TYPE: True}
_TYPE = struct.Struct("=H")
_TYPE_OFFSET = 4  # nlmsghdr.nlmsg_type


def _mark_v6only(buffer: bytearray, offset: int) -> None:
    """Write the v6only attribute of the record at ``offset`` into its nlmsg_type, in place.

    Its attributes are walked only as far as INET_DIAG_SKV6ONLY, the second the kernel puts
    (after INET_DIAG_SHUTDOWN), and nothing is copied: a host with many IPv6 UDP sockets has
    as many records to walk.
    """
    end = offset + _LENGTH_AND_TYPE.unpack_from(buffer, offset)[0]
    start, unpack = offset + _ATTRIBUTES_OFFSET, _ATTRIBUTE.unpack_from
    while start + _ATTRIBUTE.size < end:
        length, kind = unpack(buffer, start)
        if length < _ATTRIBUTE.size or start + length > end:
            return
        if kind & 0x3FFF == INET_DIAG_SKV6ONLY and length > _ATTRIBUTE.size:
            v6only = buffer[start + _ATTRIBUTE.size]
            _TYPE.pack_into(
                buffer, offset + _TYPE_OFFSET, _V6ONLY_TYPE if v6only else _DUAL_STACK_TYPE
            )
            return
        start += (length + 3) & ~3


def count_states(
    protocol: int, family: int, mask: int, queues: list[int] | None = None
) -> dict[int, int]:
    """State code -> sockets, reading one byte of each record and decoding nothing else.

    With ``queues`` ([rx, tx]), also add up every socket's receive and send queue in bytes, as
    node_exporter reports them; a second loop over the batch, so plain counts do not pay for it.
    """
    counts = [0] * 256
    unpack_queues = _QUEUES.unpack_from
    for buffer, offsets in batches(protocol, family, mask):
        for offset in offsets:
            counts[buffer[offset + STATE_OFFSET]] += 1
        if queues is not None:
            for offset in offsets:
                rx, tx = unpack_queues(buffer, offset + _QUEUES_OFFSET)
                queues[0] += rx
                queues[1] += tx
    return {code: n for code, n in enumerate(counts) if n}


def batches(
    protocol: int, family: int, mask: int, program: bytes = b"", ext: int = 0
) -> Iterator[Batch]:
    """The reads of one dump; AF_UNSPEC (TCP only) dumps IPv4 and IPv6 in one walk.

    ``program`` only spares sending what the caller does not want: a kernel that refuses it
    (port equality came in Linux 4.16) sends everything, and the caller filters as before.
    ``ext`` asks for attributes (extension_bits).
    """
    if family == AF_UNSPEC:
        if protocol != IPPROTO_TCP:
            raise ValueError("only TCP dumps both families at once")
        yield from _both_families(mask, program, ext)
        return
    request = _REQUEST.pack(
        _REQUEST.size + _attribute_size(program), SOCK_DIAG_BY_FAMILY,
        NLM_F_REQUEST | NLM_F_DUMP, 1, 0, family, protocol, ext, 0, mask,
    ) + _attribute(program)  # fmt: skip
    sock = _diag_socket()
    first = _first_read(sock, request)
    if program and _refused(first):
        sock.close()
        yield from batches(protocol, family, mask, ext=ext)
        return
    yield from _receive(sock, first)


def _both_families(mask: int, program: bytes, ext: int = 0) -> Iterator[Batch]:
    """Both families of TCP in one walk of the kernel's tables, where two dumps walk them twice.

    A kernel that refuses the old request (its reply starts with an error) gets the two dumps.
    """
    request = _BOTH_REQUEST.pack(
        _BOTH_REQUEST.size + _attribute_size(program), TCPDIAG_GETSOCK,
        NLM_F_REQUEST | NLM_F_DUMP, 1, 0, AF_UNSPEC, 0, 0, ext, mask, 0,
    ) + _attribute(program)  # fmt: skip
    sock = _diag_socket()
    first = _first_read(sock, request)
    if not _refused(first):
        yield from _receive(sock, first)
        return
    sock.close()
    for family in (AF_INET, AF_INET6):
        yield from batches(IPPROTO_TCP, family, mask, program, ext)


def _refused(first: tuple[bytearray, int]) -> bool:
    """Whether a dump's first read is the kernel's error instead of records."""
    buffer, size = first
    return size >= HEADER.size and _LENGTH_AND_TYPE.unpack_from(buffer)[1] == NLMSG_ERROR


def _attribute(program: bytes) -> bytes:
    """The request's INET_DIAG_REQ_BYTECODE attribute; nothing without a program."""
    if not program:
        return b""
    return _ATTRIBUTE.pack(_ATTRIBUTE.size + len(program), INET_DIAG_REQ_BYTECODE) + program


def _attribute_size(program: bytes) -> int:
    return _ATTRIBUTE.size + len(program) if program else 0


def _diag_socket() -> _socket.socket:
    try:
        return _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except OSError as e:
        raise _source_error(f"netlink sock_diag unavailable: {os.strerror(e.errno or 0)}") from e


def open_diag_socket() -> _socket.socket:
    """A sock_diag netlink socket: it answers for the network namespace it is opened in."""
    return _diag_socket()


def _first_read(sock: _socket.socket, request: bytes) -> tuple[bytearray, int]:
    """Send ``request`` and read the first reply; closes ``sock`` if either fails."""
    try:
        sock.send(request)
        buffer = bytearray(_RECV_BUFFER)
        return buffer, sock.recv_into(buffer)
    except BaseException:
        sock.close()
        raise


def _receive(sock: _socket.socket, first: tuple[bytearray, int]) -> Iterator[Batch]:
    """Per read: the buffer and the offsets of its inet_diag records. Owns ``sock``: closes it.

    A batch must be consumed before asking for the next one: its buffer is then read into
    again. Batches rather than single records: a generator step per record cost a third of
    a per-state count. A dump longer than one read is read ahead (``_ReadAhead``).
    """
    buffer, size = first
    try:
        offsets, done = _parsed(buffer, size)
    except BaseException:
        sock.close()
        raise
    if done:  # most hosts: the whole dump in one read, and no thread
        sock.close()
        yield buffer, offsets
        return
    ahead = _ReadAhead(sock)
    try:
        yield buffer, offsets
        while not done:
            buffer, size = ahead.next(buffer)
            offsets, done = _parsed(buffer, size)
            yield buffer, offsets
    finally:
        ahead.stop()


def _parsed(buffer: bytearray, size: int) -> tuple[list[int], bool]:
    if size == 0:
        raise _source_error("netlink sock_diag: the kernel ended the dump without NLMSG_DONE")
    return parse_chunk(buffer, size)


_DONE_SIZE = HEADER.size + 4  # NLMSG_DONE and its int: the last message of a dump's last read
_END = None  # what the reading thread sends when it has stopped


def _looks_done(buffer: bytearray, size: int) -> bool:
    """Whether a read ends as a dump's last does, judged by its last 20 bytes alone."""
    if size < _DONE_SIZE:
        return True  # nothing more will come: the caller says what is wrong with it
    return _LENGTH_AND_TYPE.unpack_from(buffer, size - _DONE_SIZE) == (_DONE_SIZE, NLMSG_DONE)


class _ReadAhead:
    """The reads of a dump made on a second thread, each while this one parses the last.

    The kernel walks its tables during each read, with the GIL released, so on two cores the
    walk and our work on the records overlap: the dump of a TIME_WAIT listing of 20,000 of
    100,000 sockets takes 25.7 ms read in turn (19 of them in reads) and 23.2 read ahead
    (tests/test_inet_diag.py holds the batches to those of reads in turn).

    The thread only reads: a read that ends with NLMSG_DONE ends it. Should that be a
    record's bytes, not the end, ``next`` reads the rest itself; should the end ever not be
    seen, the thread's read wakes every ``_WAKE`` seconds to see that it was told to stop.
    Three buffers go round (this thread's, the one read into, a spare). The socket is closed
    by whichever side lets go of it last: closed while the other still reads, that read could
    land in whatever file had reused the descriptor.
    """

    _WAKE = 1.0

    def __init__(self, sock: _socket.socket) -> None:
        # Here, not above: _queue costs 0.5 ms to load, paid only by a dump of several reads.
        from _queue import SimpleQueue
        from _thread import allocate_lock, start_new_thread

        self._sock, self._stopped, self._ended = sock, False, False
        self._free: SimpleQueue[bytearray | None] = SimpleQueue()
        self._filled: SimpleQueue[tuple[bytearray, int] | BaseException | None] = SimpleQueue()
        self._holding, self._lock = 2, allocate_lock()
        sock.settimeout(self._WAKE)
        for _ in range(2):
            self._free.put(bytearray(_RECV_BUFFER))
        start_new_thread(self._read, ())

    def next(self, consumed: bytearray) -> tuple[bytearray, int]:
        """The next read (buffer, size), for a buffer this thread is done with."""
        if not self._ended:
            self._free.put(consumed)
            item = self._filled.get()
            if isinstance(item, tuple):
                return item
            if item is not _END:
                raise item  # as it would have been raised by reading here
            self._ended = True  # where it stopped, the dump only seemed done
            consumed = bytearray(_RECV_BUFFER)
        while True:
            try:
                return consumed, self._sock.recv_into(consumed)
            except TimeoutError:
                continue  # mid-dump the kernel always answers; _WAKE is for the thread

    def stop(self) -> None:
        self._stopped = True
        self._free.put(None)
        self._let_go()

    def _read(self) -> None:
        try:
            while (buffer := self._free.get()) is not None and not self._stopped:
                size = self._recv(buffer)
                if size is None:
                    return
                self._filled.put((buffer, size))
                if _looks_done(buffer, size):
                    return
        except BaseException as e:
            self._filled.put(e)
        finally:
            self._filled.put(_END)
            self._let_go()

    def _recv(self, buffer: bytearray) -> int | None:
        while True:
            try:
                return self._sock.recv_into(buffer)
            except TimeoutError:
                if self._stopped:
                    return None

    def _let_go(self) -> None:
        with self._lock:
            self._holding -= 1
            last = self._holding == 0
        if last:
            self._sock.close()


def parse_chunk(buffer: bytes | bytearray, size: int) -> tuple[list[int], bool]:
    """The offsets of the inet_diag records in one read, and whether the dump is done.

    Anything the kernel would never send (a length shorter than a header, or running past the
    read) raises SourceError rather than being guessed at.
    """
    record_size, header_size = RECORD.size, HEADER.size
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
            raise _source_error("netlink sock_diag: truncated message from the kernel")
        if length >= record_size:
            offsets.append(offset)
        offset += (length + 3) & ~3
    return offsets, False


class Lookup:
    """A sock_diag socket kept open to look up one TCP socket at a time, by its ends.

    A netlink socket answers for the network namespace it was opened in, wherever it is used
    from afterwards: open one inside each namespace (``netns.entered``) and keep it. Asking
    costs two system calls, where opening a socket per question cost two more.
    """

    def __init__(self) -> None:
        self._sock = _diag_socket()  # SourceError where netlink is refused
        self._sock.settimeout(1.0)  # the kernel answers at once; never hang on it
        self._seq = 0

    def inode(
        self, family: int, local: str, local_port: int, remote: str, remote_port: int
    ) -> int | None:
        """The inode of the TCP socket with exactly these ends: 0 for one that no file holds
        (a timewait or request socket, an orphan), None for no such socket (any more).

        ``family`` is 4 or 6. The kernel's answer is checked against the ends asked for: a
        listener's lookup may otherwise be answered by a wildcard listener on the same port.
        """
        af = AF_INET6 if family == 6 else AF_INET
        try:
            ends = (
                _socket.htons(local_port), _socket.htons(remote_port),
                _raw_address(af, local), _raw_address(af, remote),
            )  # fmt: skip
        except (OSError, ValueError, OverflowError):
            return None  # not an address of this family: nothing can have it
        self._seq = self._seq % 0xFFFFFFFF + 1
        request = _LOOKUP.pack(
            _LOOKUP.size, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, self._seq, 0,
            af, IPPROTO_TCP, 0, 0, 0xFFFFFFFF, *ends, 0, _NO_COOKIE, _NO_COOKIE,
        )  # fmt: skip
        try:
            self._sock.send(request)
            reply = self._reply()
        except OSError:
            return None
        if (
            len(reply) < RECORD.size
            or _LENGTH_AND_TYPE.unpack_from(reply)[1] != SOCK_DIAG_BY_FAMILY
        ):
            return None  # NLMSG_ERROR: no such socket
        record = RECORD.unpack_from(reply)
        if record[9:13] != ends:
            return None
        inode: int = record[-1]
        return inode

    def _reply(self) -> bytes:
        """The answer to the last question; a late answer to an earlier one is passed over."""
        for _ in range(8):
            reply = self._sock.recv(8192)
            if len(reply) >= HEADER.size and HEADER.unpack_from(reply)[3] == self._seq:
                return reply
        return b""

    def close(self) -> None:
        self._sock.close()


def _raw_address(af: int, text: str) -> bytes:
    return _socket.inet_pton(af, text).ljust(16, b"\0")


def _raise_error(buffer: bytes | bytearray, offset: int, length: int) -> None:
    if length < HEADER.size + _ERROR.size or offset + HEADER.size + _ERROR.size > len(buffer):
        raise _source_error("netlink sock_diag: truncated error message from the kernel")
    (code,) = _ERROR.unpack_from(buffer, offset + HEADER.size)
    if code == 0:
        return
    reason = errno.errorcode.get(-code, str(-code))
    raise _source_error(f"netlink sock_diag refused the dump: {os.strerror(-code)} ({reason})")


def _source_error(message: str) -> Exception:
    # Imported here: tcpstates.model.errors loads enum, which the fast path does not otherwise need.
    from tcpstates.model.errors import SourceError

    return SourceError(message)
