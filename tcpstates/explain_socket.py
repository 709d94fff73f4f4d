"""``--explain ADDRESS:PORT``: each matching socket's state told in its own connection's terms.

Who sent FIN, who must act next, its queues and timer, its owner; the state's general
explanation follows from ``explain``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tcpstates.render.columns import endpoint
from tcpstates.sockets import Socket
from tcpstates.states import TcpState

S = TcpState
_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+)):(?P<port>[0-9]{1,5})$")

# state -> (what has happened in this connection, who must act next). {local}, {remote},
# {owner}: this socket's ends and its holder.
ACCOUNTS: dict[TcpState, tuple[str, str]] = {
    S.LISTEN: (
        "{local} waits for connections; nobody has sent anything",
        "{owner}: accept() the connections queued for it",
    ),
    S.SYN_SENT: (
        "this end ({local}) sent SYN to {remote}; no answer yet",
        "the peer {remote}: answer SYN-ACK (else the kernel retries, then gives up)",
    ),
    S.SYN_RECV: (
        "{remote} sent SYN; this end answered SYN-ACK",
        "the peer {remote}: send the final ACK of the handshake",
    ),
    S.ESTABLISHED: (
        "the connection is open both ways; neither end has sent FIN",
        "either end: send data, or close to start the shutdown",
    ),
    S.FIN_WAIT1: (
        "this end ({local}) closed first and sent FIN; the peer has not acknowledged it",
        "the peer {remote}: acknowledge the FIN (it may be queued behind unsent data)",
    ),
    S.FIN_WAIT2: (
        "this end ({local}) closed first; the peer acknowledged the FIN but has not closed",
        "the peer's application at {remote}: close() its end",
    ),
    S.TIME_WAIT: (
        "both ends have closed; this end closed first, so it keeps the connection's memory",
        "nobody: the kernel drops it when its 60 s are over",
    ),
    S.CLOSE: (
        "the socket is not connected: created, bound, or already closed",
        "its application: connect, listen, or close it",
    ),
    S.CLOSE_WAIT: (
        "the peer {remote} closed first (sent FIN) and this end acknowledged it",
        "{owner}: close() this socket; the kernel never will",
    ),
    S.LAST_ACK: (
        "the peer {remote} closed first; this end then closed and sent its own FIN",
        "the peer {remote}: acknowledge this end's FIN",
    ),
    S.CLOSING: (
        "both ends sent FIN at the same time; this end's FIN is not yet acknowledged",
        "the peer {remote}: acknowledge this end's FIN",
    ),
}
ACCOUNTS[S.NEW_SYN_RECV] = ACCOUNTS[S.SYN_RECV]


@dataclass(frozen=True, slots=True)
class Target:
    """What ``--explain`` was given: an address and port, or a port alone (a local port)."""

    port: int
    address: str | None = None

    def matches(self, sock: Socket) -> bool:
        if self.address is None:
            return sock.local_port == self.port
        return any(
            port == self.port and _same_address(address, self.address)
            for address, port in (
                (sock.local_address, sock.local_port),
                (sock.remote_address, sock.remote_port),
            )
        )


def parse_target(text: str) -> Target | None:
    """``ADDRESS:PORT``, ``[V6]:PORT`` or ``PORT``; None when ``text`` is none of them."""
    if text.isascii() and text.isdigit():  # str.isdigit() also takes "²", which int() refuses
        return Target(int(text)) if int(text) <= 65535 else None
    m = _ENDPOINT.match(text)
    if m is None or int(m["port"]) > 65535:
        return None
    return Target(int(m["port"]), m["v6"] or m["host"])


def _same_address(address: str, wanted: str) -> bool:
    # A v4 address also names its v4-mapped form, as ss shows it for a dual-stack socket.
    return address == wanted or address == f"::ffff:{wanted}"


@dataclass(frozen=True, slots=True)
class Account:
    socket: Socket
    happened: str
    next_step: str

    def as_dict(self) -> dict[str, Any]:
        return {"socket": self.socket.as_dict(), "happened": self.happened, "next": self.next_step}


def account(sock: Socket) -> Account:
    happened, next_step = ACCOUNTS.get(
        sock.state, ("the kernel reports a state tcpstates does not know", "see the raw state")
    )
    names = {
        "local": endpoint(sock.local_address, sock.local_port),
        "remote": endpoint(sock.remote_address, sock.remote_port),
        "owner": _owner(sock),
    }
    return Account(sock, happened.format(**names), next_step.format(**names))


def _owner(sock: Socket) -> str:
    if sock.pid is not None:
        return f"{sock.process} (pid {sock.pid})"
    return "the kernel alone (no process holds it)" if sock.kernel_owned else "its application"


def accounts(sockets: Iterable[Socket], target: Target) -> list[Account]:
    return [account(sock) for sock in sockets if target.matches(sock)]
