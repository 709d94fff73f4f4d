"""``--explain ADDRESS:PORT``: each matching socket's state told in its own connection's terms.

Who sent FIN, who must act next, its queues and timer, its owner; each account also carries its
state's general explanation (``explain``), which follows the accounts once per state.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tcpstates.explain.states import Explanation, explain
from tcpstates.model.ages import held_since_peer_closed_ms, left_ms
from tcpstates.model.i18n import N_, _, ngettext
from tcpstates.model.record import as_dict
from tcpstates.model.sockets import Socket, local_end, owner_of, remote_end
from tcpstates.model.states import TcpState
from tcpstates.render.units import duration

S = TcpState
_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+)):(?P<port>[0-9]{1,5})$")

# state -> (what has happened in this connection, who must act next). {local}, {remote},
# {owner}: this socket's ends and its holder.
ACCOUNTS: dict[TcpState, tuple[str, str]] = {
    S.LISTEN: (
        N_("{local} waits for connections; nobody has sent anything"),
        N_("{owner}: accept() the connections queued for it"),
    ),
    S.SYN_SENT: (
        N_("this end ({local}) sent SYN to {remote}; no answer yet"),
        N_("the peer {remote}: answer SYN-ACK (else the kernel retries, then gives up)"),
    ),
    S.SYN_RECV: (
        N_("{remote} sent SYN; this end answered SYN-ACK"),
        N_("the peer {remote}: send the final ACK of the handshake"),
    ),
    S.ESTABLISHED: (
        N_("the connection is open both ways; neither end has sent FIN"),
        N_("either end: send data, or close to start the shutdown"),
    ),
    S.FIN_WAIT1: (
        N_("this end ({local}) closed first and sent FIN; the peer has not acknowledged it"),
        N_("the peer {remote}: acknowledge the FIN (it may be queued behind unsent data)"),
    ),
    S.FIN_WAIT2: (
        N_("this end ({local}) closed first; the peer acknowledged the FIN but has not closed"),
        N_("the peer's application at {remote}: close() its end"),
    ),
    S.TIME_WAIT: (
        N_("both ends have closed; this end closed first, so it keeps the connection's memory"),
        N_("nobody: the kernel drops it when its 60 s are over"),
    ),
    S.CLOSE: (
        N_("the socket is not connected: created, bound, or already closed"),
        N_("its application: connect, listen, or close it"),
    ),
    S.CLOSE_WAIT: (
        N_("the peer {remote} closed first (sent FIN) and this end acknowledged it"),
        N_("{owner}: close() this socket; the kernel never will"),
    ),
    S.LAST_ACK: (
        N_("the peer {remote} closed first; this end then closed and sent its own FIN"),
        N_("the peer {remote}: acknowledge this end's FIN"),
    ),
    S.CLOSING: (
        N_("both ends sent FIN at the same time; this end's FIN is not yet acknowledged"),
        N_("the peer {remote}: acknowledge this end's FIN"),
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
    """``ADDRESS:PORT``, ``[V6]:PORT``, or a local port as ``PORT``, ``:PORT`` or ``*:PORT``;
    None when ``text`` is none of them.

    ``--explain`` looks for a state first, and a state code (``06``, ``0A``: two hex digits
    starting with 0, see ``states.is_state_code``) is one, so ``--explain 06`` is TIME_WAIT
    while ``:6`` is port 6.

    >>> parse_target("8080"), parse_target(":22"), parse_target("*:22")
    (Target(port=8080, address=None), Target(port=22, address=None), Target(port=22, address=None))
    >>> parse_target("[::1]:80"), parse_target("70000"), parse_target(":"), parse_target("nope")
    (Target(port=80, address='::1'), None, None, None)
    """
    if text.startswith((":", "*:")):
        text = text.split(":", 1)[1]
        if not (text.isascii() and text.isdigit()):
            return None
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
    general: Explanation  # the state's own explanation, the same for every socket in it
    age: str | None = None  # how long it has been held, or has left (model/ages.py), in words
    # What its tcp_info says, as sentences: the numbers ss -ti prints, and what they mean.
    health: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        sock, holders = self.socket, self.socket.holders
        owners = None if holders is None else [as_dict(h) for h in holders]
        return {
            "socket": {**sock.as_dict(), "owners": owners},  # as a listing's JSON has them
            "happened": self.happened,
            "next": self.next_step,
            "held_since_peer_closed_ms": held_since_peer_closed_ms(sock),
            "left_ms": left_ms(sock),
            "tcp_info": None if sock.info is None else sock.info.as_dict(),
        }


def account(sock: Socket) -> Account:
    happened, next_step = ACCOUNTS.get(
        sock.state,
        (N_("the kernel reports a state tcpstates does not know"), N_("see the raw state")),
    )
    names = {
        "local": local_end(sock),
        "remote": remote_end(sock),
        "owner": holders_prose(sock),
    }
    general = _general(sock.state)
    happened, next_step = _(happened).format(**names), _(next_step).format(**names)
    return Account(sock, happened, next_step, general, age_words(sock), health_words(sock))


# What a share of the time spent sending, limited by one thing, says (tcp_info's busy and
# limited times). Below half it is noise; above, it is where to look.
LIMITED_SHARE = 0.5


def health_words(sock: Socket) -> tuple[str, ...]:
    """tcp_info in sentences: the round trip and window, then what limits the connection."""
    info = sock.info
    if info is None or info.rtt_ms is None or sock.state is S.LISTEN:
        return ()
    said = [
        _("round trip {rtt} ms (±{var}), window {cwnd} segments, {retrans} retransmitted").format(
            rtt=f"{info.rtt_ms:g}", var=f"{info.rttvar_ms or 0:g}", cwnd=info.cwnd_segs,
            retrans=info.retrans_total or 0,
        )
    ]  # fmt: skip
    if info.retrans_now:
        said.append(
            _("retransmitting now, {n} timeouts in a row: the peer or the path is not answering")
            .format(n=info.retrans_now)
        )  # fmt: skip
    busy = info.busy_ms or 0
    if busy and (info.rwnd_limited_ms or 0) > busy * LIMITED_SHARE:
        said.append(_("held back by the peer's receive window: the peer reads slowly"))
    if busy and (info.sndbuf_limited_ms or 0) > busy * LIMITED_SHARE:
        said.append(_("held back by this socket's send buffer (net.ipv4.tcp_wmem)"))
    if info.notsent_bytes:
        said.append(
            _("{n} bytes written by the application and not sent yet").format(n=info.notsent_bytes)
        )
    return tuple(said)


def age_words(sock: Socket) -> str | None:
    """How long the socket has been held, or has left, as a sentence; None where unknown."""
    held = held_since_peer_closed_ms(sock)
    if held is not None:
        return _(
            "held in CLOSE_WAIT for {age}: the application has not called close() since the"
            " peer left"
        ).format(age=duration(held))
    left = left_ms(sock)
    if left is None:
        return None
    if sock.state is S.FIN_WAIT2:
        line = _("no process holds it; the kernel frees it in {left} (net.ipv4.tcp_fin_timeout)")
    else:
        line = _("the kernel frees it in {left}")
    return line.format(left=duration(left))


def holders_prose(sock: Socket) -> str:
    """Who holds the socket, in a sentence: ``nginx (pid 812)``, or with prefork workers
    holding it too, ``nginx (pid 812) and 3 more processes`` (they all must close it, any of
    them may accept on it)."""
    first = owner_of(sock).prose()
    more = len({holder.pid for holder in sock.holders or ()}) - 1
    if more < 1:
        return first
    text = ngettext("{owner} and {n} more process", "{owner} and {n} more processes", more)
    return text.format(owner=first, n=more)


@functools.cache
def _general(state: TcpState) -> Explanation:
    # A port can have thousands of sockets in a few states; the explanation is a frozen value
    # of the state alone (English until rendered), so it is built once per state.
    return explain(state)


def accounts(sockets: Iterable[Socket], target: Target) -> list[Account]:
    return [account(sock) for sock in sockets if target.matches(sock)]
