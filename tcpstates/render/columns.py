"""The columns of a socket listing, shared by the Rich table and the plain text renderer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from tcpstates.render.safe import safe
from tcpstates.sockets import Socket

KERNEL = "(kernel)"  # no process holds the socket: TIME_WAIT, orphans, not yet accepted
UNSEEN = "-"  # a process holds it, but we may not see which (or the source cannot tell)


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    align: Literal["left", "right"]


PROTO = Column("Proto", "left")
BASE = (
    Column("State", "left"),
    Column("Recv-Q", "right"),
    Column("Send-Q", "right"),
    Column("Local Address:Port", "left"),
    Column("Peer Address:Port", "left"),
)
OWNER = (Column("PID", "right"), Column("Process", "left"))


NETNS = Column("Netns", "left")


@dataclass(frozen=True, slots=True)
class Layout:
    """Which optional columns a listing shows."""

    proto: bool = False
    owners: bool = True
    # Network namespace inode -> how to show it; a Netns column leads when set.
    netns_labels: Mapping[int, str] | None = None

    @property
    def columns(self) -> tuple[Column, ...]:
        lead = (NETNS,) * (self.netns_labels is not None) + (PROTO,) * self.proto
        return lead + BASE + OWNER * self.owners

    @property
    def state_index(self) -> int:
        return (self.netns_labels is not None) + self.proto

    def cells(self, sock: Socket) -> tuple[str, ...]:
        row: tuple[str, ...] = (
            sock.state_name,
            UNSEEN if sock.recv_q is None else str(sock.recv_q),
            UNSEEN if sock.send_q is None else str(sock.send_q),
            endpoint(sock.local_address, sock.local_port),
            endpoint(sock.remote_address, sock.remote_port),
        )
        if self.proto:
            row = (sock.proto, *row)
        if self.netns_labels is not None:
            netns = sock.netns or 0
            row = (self.netns_labels.get(netns, str(netns)), *row)
        if self.owners:
            row += owner_cells(sock)
        return row


def endpoint(address: str, port: int) -> str:
    """``address:port`` as ss writes it: IPv6 in brackets, no port as ``*``.

    >>> endpoint("::1", 22), endpoint("0.0.0.0", 0)
    ('[::1]:22', '0.0.0.0:*')
    """
    shown_port = str(port) if port else "*"
    if ":" in address:
        return f"[{address}]:{shown_port}"
    return f"{address}:{shown_port}"


def owner_cells(sock: Socket) -> tuple[str, str]:
    if sock.pid is not None:
        return str(sock.pid), safe(sock.process or "?")
    if sock.kernel_owned:
        return UNSEEN, KERNEL
    return UNSEEN, UNSEEN
