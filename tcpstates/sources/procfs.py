"""Sockets from the kernel's text tables: /proc/net/tcp, tcp6, udp and udp6.

The root is a parameter, so the same code reads the live host (``/proc``), another process's
network namespace (``/proc/PID``), or a directory holding copies of the tables from another host.
"""

from __future__ import annotations

import socket
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from tcpstates.errors import CaptureFormatError, SourceError
from tcpstates.query import Query
from tcpstates.sockets import Socket, new_socket
from tcpstates.sources import TIMERS, Reading, unique
from tcpstates.sources.owners import Owner, scan_owners
from tcpstates.states import TcpState

# (file name, protocol, family) in the order ss lists them: IPv4 before IPv6.
TABLES: tuple[tuple[str, str, int], ...] = (
    ("tcp", "tcp", 4),
    ("tcp6", "tcp", 6),
    ("udp", "udp", 4),
    ("udp6", "udp", 6),
)


_STATES = [TcpState(code) for code in range(256)]
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

    def read(self, query: Query, owners: bool = False) -> Reading:
        if not self.table_path("tcp").exists() and not self.table_path("udp").exists():
            raise SourceError(f"no /proc/net tables under {self.root}")
        if not owners or not self.live:
            return Reading(self._sockets(query, None))
        # Socket inodes are global to the host, so the host's /proc answers for any namespace.
        scan = scan_owners("/proc")
        return Reading(self._sockets(query, scan.by_inode), scan.hidden_processes)

    def count(self, query: Query) -> Counter[tuple[str, TcpState]]:
        """Sockets per (protocol, state), reading nothing but the state column."""
        counts: Counter[tuple[str, TcpState]] = Counter()
        for path, proto, lines in self._tables(query):
            codes = Counter(map(_state_column, lines))
            for code, n in codes.items():
                if code in ("", "st"):  # a blank line; a header ("sl local_address ... st")
                    continue
                state = _STATES[_hex([code], 0, 0xFF, path, 0, code)]
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


def parse_table(
    lines: Iterable[str],
    proto: str,
    query: Query | None = None,
    owners: dict[int, Owner] | None = None,
    source: str = "<text>",
    byteorder: str = sys.byteorder,
    first_lineno: int = 1,
) -> Iterator[Socket]:
    """Parse the text of one table; a malformed line raises an error naming source and line."""
    families = query.families if query else frozenset({4, 6})
    wanted = query.states if query else frozenset()
    cache: dict[str, str] = {}
    for lineno, line in enumerate(lines, first_lineno):
        fields = line.split()
        if not fields or fields[0] == "sl":
            continue  # blank line, or a header (concatenated captures have several)
        state = _STATES[_hex(fields, 3, 0xFF, source, lineno, line)]
        if wanted and state not in wanted:
            continue
        try:
            sock = _socket(fields, proto, state, cache, owners, byteorder)
        except (ValueError, IndexError) as e:
            raise CaptureFormatError(source, lineno, line.rstrip("\n"), str(e)) from None
        if sock.family in families:
            yield sock


def _state_column(line: str) -> str:
    fields = line.split(None, 4)
    return fields[3] if len(fields) > 3 else ""


def _hex(fields: list[str], index: int, limit: int, source: str, lineno: int, line: str) -> int:
    try:
        value = int(fields[index], 16)
    except (ValueError, IndexError):
        raise CaptureFormatError(source, lineno, line.rstrip("\n"), "not a socket line") from None
    if not 0 <= value <= limit:
        raise CaptureFormatError(source, lineno, line.rstrip("\n"), "state out of range")
    return value


def _socket(
    fields: list[str],
    proto: str,
    state: TcpState,
    cache: dict[str, str],
    owners: dict[int, Owner] | None,
    byteorder: str,
) -> Socket:
    if len(fields) < 10:
        raise ValueError(f"{len(fields)} fields, expected at least 10")
    local_address, local_port = _endpoint(fields[1], cache, byteorder)
    remote_address, remote_port = _endpoint(fields[2], cache, byteorder)
    tx_queue, _, rx_queue = fields[4].partition(":")
    timer_code, _, timer_when = fields[5].partition(":")
    inode = int(fields[9])
    owner = owners.get(inode) if owners and inode else None
    timer = TIMERS.get(int(timer_code, 16))
    return new_socket(
        proto=proto,
        family=6 if ":" in local_address else 4,
        local_address=local_address,
        local_port=local_port,
        remote_address=remote_address,
        remote_port=remote_port,
        state=state,
        recv_q=int(rx_queue, 16),
        # A listener's backlog limit is not in /proc; tx_queue is always 0 there.
        send_q=None if state is TcpState.LISTEN else int(tx_queue, 16),
        uid=int(fields[7]),
        inode=inode,
        pid=owner.pid if owner else None,
        process=owner.process if owner else None,
        timer=timer,
        timer_ms=int(timer_when, 16) * _USER_HZ_MS if timer else None,
        retransmits=int(fields[6], 16),
    )


def _endpoint(field: str, cache: dict[str, str], byteorder: str) -> tuple[str, int]:
    hex_address, sep, hex_port = field.partition(":")
    if not sep or len(hex_port) != 4:
        raise ValueError(f"bad address field {field!r}")
    address = cache.get(hex_address)
    if address is None:
        address = cache[hex_address] = _address(hex_address, byteorder)
    return address, int(hex_port, 16)
