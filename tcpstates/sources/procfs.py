"""Sockets from the kernel's text tables: /proc/net/tcp, tcp6, udp and udp6.

The root is a parameter, so the same code reads the live host (``/proc``), another process's
network namespace (``/proc/PID``), or a directory holding copies of the tables from another host.
"""

from __future__ import annotations

import re
import socket
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tcpstates.model.errors import CaptureFormatError, SourceError
from tcpstates.model.query import Query
from tcpstates.model.sockets import NO_DETAILS, Details, Socket, new_socket
from tcpstates.model.states import BY_CODE, TcpState
from tcpstates.sources.base import (
    TIMERS,
    Reading,
    kernel_details_only,
    kernel_interfaces_only,
    unique,
)
from tcpstates.sources.owners import Owner, holders_wanted, scan_owners

# (file name, protocol, family) in the order ss lists them: IPv4 before IPv6.
TABLES: tuple[tuple[str, str, int], ...] = (
    ("tcp", "tcp", 4),
    ("tcp6", "tcp", 6),
    ("udp", "udp", 4),
    ("udp6", "udp", 6),
)


_USER_HZ_MS = 10  # tm->when is in clock ticks (USER_HZ = 100 on Linux)


def decode_address(text: str, byteorder: str = sys.byteorder) -> tuple[str, int]:
    """Decode one ``ADDRESS:PORT`` field as the kernel prints it.

    The kernel prints each 32-bit word of the address as a native-endian integer, so on a
    little-endian host the bytes of every word come out reversed; the port is big-endian text.

    >>> decode_address("0500000A:0016", "little")
    ('10.0.0.5', 22)
    >>> decode_address("0A000005:0016", "big")
    ('10.0.0.5', 22)
    >>> decode_address("0000000000000000FFFF00000100007F:1F90", "little")
    ('::ffff:127.0.0.1', 8080)
    >>> decode_address("00000000000000000000000001000000:0050", "little")
    ('::1', 80)
    """
    return _endpoint(text, {}, byteorder)


def _address(hex_address: str, byteorder: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        family = socket.AF_INET
    elif len(raw) == 16:
        family = socket.AF_INET6
    else:
        raise ValueError(f"address {hex_address!r} is neither 8 nor 32 hex digits")
    if byteorder == "little":
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(family, raw)


class ProcfsSource:
    """Reads the tables under ``root/net`` (or directly under ``root`` for a capture)."""

    name = "procfs"
    why = "asked for with --source procfs"

    def __init__(self, root: str | Path = "/proc", byteorder: str = sys.byteorder) -> None:
        self.root = Path(root)
        self.byteorder = byteorder
        # Only a live /proc has owners here; a capture's inodes belong to another host.
        self.live = self.root.parts[:2] == ("/", "proc")

    def table_path(self, name: str) -> Path:
        net = self.root / "net" / name
        return net if net.exists() else self.root / name

    def read(self, query: Query, owners: bool = False, details: Details = NO_DETAILS) -> Reading:
        kernel_details_only(self.name, details)
        kernel_interfaces_only(self.name, query)
        if not self.table_path("tcp").exists() and not self.table_path("udp").exists():
            raise SourceError(f"no /proc/net tables under {self.root}")
        if not owners or not self.live:
            return Reading(self._sockets(query, None))
        # Socket inodes are global to the host, so the host's /proc answers for any namespace.
        holders = holders_wanted(query, details)
        scan = scan_owners("/proc", holders=holders)
        sockets = self._sockets(query, scan.by_inode)
        return Reading(scan.fill_holders(sockets, details.holders), scan.hidden_processes)

    def count(self, query: Query) -> Counter[tuple[str, TcpState]]:
        """Sockets per (protocol, state), each socket once, from the few columns that say so."""
        counts: Counter[tuple[str, TcpState]] = Counter()
        for path, proto, lines in self._tables(query):
            codes = Counter(row[2] for row in _unique_rows(proto, lines))
            for code, n in codes.items():
                if code in ("", "st"):  # a blank line; a header ("sl local_address ... st")
                    continue
                state = BY_CODE[_hex([code], 0, 0xFF, path, 0, code)]
                if query.wants_state(state):
                    counts[proto, state] += n
        return counts

    def _sockets(self, query: Query, owners: dict[int, Owner] | None) -> Iterator[Socket]:
        for path, proto, lines in self._tables(query):
            # A live table is read a page at a time and may repeat a socket; a capture is
            # a copy of such reads, so it may too.
            yield from unique(parse_table(lines, proto, query, owners, path, self.byteorder))

    def _tables(self, query: Query) -> Iterator[tuple[str, str, TextIO]]:
        """(path, protocol, open file) for each table the query needs."""
        for name, proto, family in TABLES:
            if proto not in query.protos or family not in query.families:
                continue
            path = self.table_path(name)
            try:
                with open(path, encoding="ascii", errors="replace") as f:
                    yield str(path), proto, f
            except FileNotFoundError:
                continue  # IPv6 disabled, or a capture without this table
            except PermissionError as e:
                raise SourceError(f"cannot read {path}: permission denied") from e


# A socket line as the kernel prints it, for TCP (net/ipv4/tcp_ipv4.c get_tcp4_sock and
# net/ipv6/tcp_ipv6.c get_tcp6_sock) and UDP (net/ipv4/udp.c udp4_format_sock, net/ipv6/datagram.c
# __ip6_dgram_sock_seq_show): "%4d: %08X:%04X %08X:%04X %02X %08X:%08X %02X:%08lX %08X %5u %8d %lu"
# and more fields nobody reads. Each field below holds exactly the digits those formats give its
# type (a u32 in %08X: 8 hex digits; an unsigned long in %08lX: 8 to 16; %5u: 1 to 10 decimal),
# so what is accepted is what int() turns into a number the kernel could hold: never a sign, an
# underscore, a 0x, spaces inside a number, or 5,000 digits, all of which int() would take.
_H = "[0-9A-Fa-f]"
_D = "[0-9]"
_ADDRESS = rf"({_H}{{8}}|{_H}{{32}}):({_H}{{4}})"


@dataclass(frozen=True, slots=True)
class _Field:
    name: str  # as the header line names it
    pattern: str  # a regular expression for the field; its groups are what parse_table reads
    holds: str  # what the pattern accepts, said for an error message


LINE_FIELDS = (
    _Field("sl", f"{_D}{{1,10}}:", "a decimal slot number and ':'"),
    _Field("local_address", _ADDRESS, "8 or 32 hex digits, ':' and 4 hex digits"),
    _Field("rem_address", _ADDRESS, "8 or 32 hex digits, ':' and 4 hex digits"),
    _Field("st", f"({_H}{{2}})", "2 hex digits"),
    _Field("tx_queue:rx_queue", f"({_H}{{8}}):({_H}{{8}})", "8 hex digits, ':' and 8 more"),
    _Field("tr:tm->when", f"({_H}{{2}}):({_H}{{8,16}})", "2 hex digits, ':' and 8 to 16 more"),
    _Field("retrnsmt", f"({_H}{{8}})", "8 hex digits"),
    _Field("uid", f"({_D}{{1,10}})", "1 to 10 decimal digits"),
    _Field("timeout", f"-?{_D}{{1,10}}", "1 to 10 decimal digits"),
    _Field("inode", f"({_D}{{1,20}})", "1 to 20 decimal digits"),
)
# Spaces only, as the kernel pads them (never a tab); after the inode, what follows is not read.
_LINE = re.compile(" *" + " +".join(f.pattern for f in LINE_FIELDS) + "(?=[ \r\n]|$)")
_STATE_GROUP = 5  # after the two addresses and ports: read first, to skip unwanted states
_MAX_UID = 0xFFFF_FFFF  # uid_t, printed with %5u
_MAX_INODE = 0xFFFF_FFFF_FFFF_FFFF  # unsigned long, printed with %lu


def parse_table(
    lines: Iterable[str],
    proto: str,
    query: Query | None = None,
    owners: dict[int, Owner] | None = None,
    source: str = "<text>",
    byteorder: str = sys.byteorder,
    first_lineno: int = 1,
) -> Iterator[Socket]:
    """Parse the text of one table; a malformed line raises an error naming source and line.

    Every socket line is checked whole, also one the query does not want, so whether a capture
    reads does not depend on the filters given.
    """
    families = query.families if query else frozenset({4, 6})
    wanted = query.states if query else frozenset()
    cache: dict[str, str] = {}
    match = _LINE.match
    for lineno, line in enumerate(lines, first_lineno):
        fields = match(line)
        if fields is None:
            if _is_header_or_blank(line):
                continue  # concatenated captures have several headers
            raise CaptureFormatError(source, lineno, line.rstrip("\n"), _what_is_wrong(line))
        state = BY_CODE[int(fields.group(_STATE_GROUP), 16)]
        if wanted and state not in wanted:
            continue
        try:
            sock = _socket(fields.groups(), proto, state, cache, owners, byteorder)
        except ValueError as e:
            raise CaptureFormatError(source, lineno, line.rstrip("\n"), str(e)) from None
        if sock.family in families:
            yield sock


def _is_header_or_blank(line: str) -> bool:
    return line.split(None, 1)[:1] in ([], ["sl"])


def _what_is_wrong(line: str) -> str:
    """Why ``line`` is not a socket line: the first field out of the kernel's format."""
    fields = line.split()
    for field, text in zip(LINE_FIELDS, fields, strict=False):
        if not re.fullmatch(field.pattern, text):
            return f"{field.name} {text[:40]!r} is not {field.holds}"
    if len(fields) < len(LINE_FIELDS):
        return f"{len(fields)} fields, expected at least {len(LINE_FIELDS)}"
    return "fields apart by other than spaces"


def _unique_rows(proto: str, lines: Iterable[str]) -> Iterator[list[str]]:
    """Each row's fields (local, remote, state, ...) once per socket, by ``sources.identity``'s
    rule spelled on the text: a page-at-a-time read repeats sockets under churn, and counting
    must not count them twice. Splitting the first ten fields costs a third of parsing them."""
    seen: set[object] = set()
    for line in lines:
        fields = line.split(None, 10)[1:10]  # past "sl"; up to the inode
        if len(fields) < 3:
            yield ["", "", ""]  # a blank line: counted as no state, then skipped
            continue
        local, remote, state = fields[0], fields[1], fields[2]
        inode = fields[8] if len(fields) > 8 else "0"
        if proto == "tcp" and not remote.endswith(":0000"):
            key: object = (local, remote)
        elif inode != "0":
            key = inode
        else:
            key = (local, remote, state)
        if key not in seen:
            seen.add(key)
            yield fields


def _hex(fields: list[str], index: int, limit: int, source: str, lineno: int, line: str) -> int:
    text = fields[index] if index < len(fields) else ""
    field = LINE_FIELDS[3]  # only the state column is read this way (ProcfsSource.count)
    if not re.fullmatch(field.pattern, text):
        raise CaptureFormatError(
            source, lineno, line.rstrip("\n"), f"{field.name} {text[:40]!r} is not {field.holds}"
        )
    return int(text, 16)


def _socket(
    groups: tuple[str | Any, ...],
    proto: str,
    state: TcpState,
    cache: dict[str, str],
    owners: dict[int, Owner] | None,
    byteorder: str,
) -> Socket:
    (local_hex, local_port, remote_hex, remote_port, _, tx_queue, rx_queue, timer_code,
     timer_when, retransmits, uid_text, inode_text) = groups  # fmt: skip
    if len(local_hex) != len(remote_hex):
        raise ValueError("local and remote addresses of different families")
    uid, inode = int(uid_text), int(inode_text)
    if uid > _MAX_UID or inode > _MAX_INODE:
        raise ValueError("uid above 2^32-1" if uid > _MAX_UID else "inode above 2^64-1")
    local_address = cache.get(local_hex) or _cached_address(cache, local_hex, byteorder)
    remote_address = cache.get(remote_hex) or _cached_address(cache, remote_hex, byteorder)
    owner = owners.get(inode) if owners and inode else None
    timer = TIMERS.get(int(timer_code, 16))
    # By position, in sockets.FIELDS order: a fifth cheaper than by keyword, per record.
    return new_socket(
        proto,
        4 if len(local_hex) == 8 else 6,
        local_address,
        int(local_port, 16),
        remote_address,
        int(remote_port, 16),
        state,
        int(rx_queue, 16),
        # A listener's backlog limit is not in /proc; tx_queue is always 0 there.
        None if state is TcpState.LISTEN else int(tx_queue, 16),
        uid,
        inode,
        owner.pid if owner else None,
        owner.process if owner else None,
        timer,
        int(timer_when, 16) * _USER_HZ_MS if timer else None,
        int(retransmits, 16),
    )


def _cached_address(cache: dict[str, str], hex_address: str, byteorder: str) -> str:
    address = cache[hex_address] = _address(hex_address, byteorder)
    return address


def _endpoint(field: str, cache: dict[str, str], byteorder: str) -> tuple[str, int]:
    parts = re.fullmatch(_ADDRESS, field)
    if parts is None:
        raise ValueError(f"bad address field {field[:40]!r}")
    hex_address, hex_port = parts.groups()
    address = cache.get(hex_address) or _cached_address(cache, hex_address, byteorder)
    return address, int(hex_port, 16)
