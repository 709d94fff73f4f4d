"""TCP states: the kernel's codes, their names in every tool, and what they mean.

One enum, two lookups: ``TcpState(0x0A)`` from the kernel, ``TcpState["LISTEN"]`` by netstat
name. Everything said about a state (its spellings, its description, its phase) lives here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Phase(enum.Enum):
    """Where a state sits in a connection's life; the table colours rows by it."""

    HANDSHAKE = "handshake"
    OPEN = "open"
    WE_CLOSED = "we closed first"
    PEER_CLOSED = "peer closed first"
    LISTENING = "listening"
    INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class StateInfo:
    ss_name: str
    phase: Phase
    description: str
    from_manual: bool = True


class TcpState(enum.IntEnum):
    """The kernel's TCP state codes, from include/net/tcp_states.h.

    /proc/net/tcp prints them in hex (``0A`` is LISTEN); sock_diag reports them as numbers.
    Any code the kernel may add later maps to UNKNOWN instead of failing.
    """

    UNKNOWN = 0
    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECV = 3
    FIN_WAIT1 = 4
    FIN_WAIT2 = 5
    TIME_WAIT = 6
    CLOSE = 7
    CLOSE_WAIT = 8
    LAST_ACK = 9
    LISTEN = 10
    CLOSING = 11
    NEW_SYN_RECV = 12
    BOUND_INACTIVE = 13

    @classmethod
    def _missing_(cls, value: object) -> TcpState:
        return cls.UNKNOWN

    @property
    def info(self) -> StateInfo:
        return _INFO[self]

    @property
    def description(self) -> str:
        return _INFO[self].description

    @property
    def ss_name(self) -> str:
        return _INFO[self].ss_name

    @property
    def phase(self) -> Phase:
        return _INFO[self].phase


# The descriptions are the netstat(8) manual's, verbatim (whitespace reflowed); the two states
# the manual does not know are described in our own words and flagged as such.
_INFO: dict[TcpState, StateInfo] = {
    TcpState.ESTABLISHED: StateInfo(
        "ESTAB", Phase.OPEN, "The socket has an established connection."
    ),
    TcpState.SYN_SENT: StateInfo(
        "SYN-SENT",
        Phase.HANDSHAKE,
        "The socket is actively attempting to establish a connection.",
    ),
    TcpState.SYN_RECV: StateInfo(
        "SYN-RECV",
        Phase.HANDSHAKE,
        "A connection request has been received from the network.",
    ),
    TcpState.FIN_WAIT1: StateInfo(
        "FIN-WAIT-1",
        Phase.WE_CLOSED,
        "The socket is closed, and the connection is shutting down.",
    ),
    TcpState.FIN_WAIT2: StateInfo(
        "FIN-WAIT-2",
        Phase.WE_CLOSED,
        "Connection is closed, and the socket is waiting for a shutdown from the remote end.",
    ),
    TcpState.TIME_WAIT: StateInfo(
        "TIME-WAIT",
        Phase.WE_CLOSED,
        "The socket is waiting after close to handle packets still in the network.",
    ),
    TcpState.CLOSE: StateInfo("UNCONN", Phase.INACTIVE, "The socket is not being used."),
    TcpState.CLOSE_WAIT: StateInfo(
        "CLOSE-WAIT",
        Phase.PEER_CLOSED,
        "The remote end has shut down, waiting for the socket to close.",
    ),
    TcpState.LAST_ACK: StateInfo(
        "LAST-ACK",
        Phase.PEER_CLOSED,
        "The remote end has shut down, and the socket is closed. Waiting for acknowledgement.",
    ),
    TcpState.LISTEN: StateInfo(
        "LISTEN",
        Phase.LISTENING,
        "The socket is listening for incoming connections. Such sockets are not included in"
        " the output unless you specify the --listening (-l) or --all (-a) option.",
    ),
    TcpState.CLOSING: StateInfo(
        "CLOSING",
        Phase.WE_CLOSED,
        "Both sockets are shut down but we still don't have all our data sent.",
    ),
    TcpState.NEW_SYN_RECV: StateInfo(
        "NEW-SYN-RECV",
        Phase.HANDSHAKE,
        "Linux-internal: a lightweight request socket for a connection whose handshake is not"
        " yet complete. The kernel reports it as SYN_RECV (03 in /proc/net/tcp), so tools"
        " rarely show this code.",
        from_manual=False,
    ),
    TcpState.BOUND_INACTIVE: StateInfo(
        "BOUND-INACTIVE",
        Phase.INACTIVE,
        "Linux-internal: the socket is bound to a port but neither listening nor connected;"
        " only sock_diag (Linux 6.5 and later) reports it.",
        from_manual=False,
    ),
    TcpState.UNKNOWN: StateInfo("UNKNOWN", Phase.INACTIVE, "The state of the socket is unknown."),
}

# The state names a UDP socket is shown with: the kernel reuses TCP's codes for UDP, and a bound
# but unconnected UDP socket is "CLOSE" only in the kernel's eyes. ss calls it UNCONN.
UDP_NAMES: dict[TcpState, str] = {TcpState.CLOSE: "UNCONN"}


def state_name(state: TcpState, proto: str) -> str:
    """The netstat name of ``state`` for ``proto`` ("tcp" or "udp").

    >>> state_name(TcpState.CLOSE, "udp"), state_name(TcpState.CLOSE, "tcp")
    ('UNCONN', 'CLOSE')
    """
    return _NAMES.get((proto, state)) or state.name


# Looked up once per row of a 100,000-row listing: a dict, not a branch and an enum lookup.
_NAMES: dict[tuple[str, TcpState], str] = {
    **{("tcp", s): s.name for s in TcpState},
    **{("udp", s): UDP_NAMES.get(s, s.name) for s in TcpState},
}


_ALL = frozenset(TcpState) - {TcpState.UNKNOWN}

# ss(8)'s state groups, with ss's own definitions (misc/ss.c, ss_parse_state).
GROUPS: dict[str, frozenset[TcpState]] = {
    "all": _ALL,
    "connected": _ALL - {TcpState.LISTEN, TcpState.CLOSE},
    "synchronized": _ALL - {TcpState.LISTEN, TcpState.CLOSE, TcpState.SYN_SENT},
    "bucket": frozenset({TcpState.SYN_RECV, TcpState.TIME_WAIT}),
    "big": _ALL - {TcpState.SYN_RECV, TcpState.TIME_WAIT},
}

# Spellings other than the netstat name and ss's short name: ss's long filter names
# (`ss state listening`), the RFC's SYN-RECEIVED, and UDP's UNCONN.
_ALIASES: dict[str, TcpState] = {
    "ESTAB": TcpState.ESTABLISHED,
    "SYNRCV": TcpState.SYN_RECV,
    "SYNRECEIVED": TcpState.SYN_RECV,
    "CLOSED": TcpState.CLOSE,
    "UNCONN": TcpState.CLOSE,
    "UNCONNECTED": TcpState.CLOSE,
    "LISTENING": TcpState.LISTEN,
}


class UnknownStateError(ValueError):
    """Raised for a state name no tool uses; the message lists the valid ones."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(f"unknown state {text!r}; valid: {', '.join(valid_names())}")


def _key(text: str) -> str:
    # TIME_WAIT, time-wait, Time_Wait and TIMEWAIT all mean the same to a person.
    return text.strip().upper().replace("-", "").replace("_", "")


def _build_lookup() -> dict[str, TcpState]:
    lookup: dict[str, TcpState] = {}
    for state in TcpState:
        lookup[_key(state.name)] = state
        lookup[_key(state.ss_name)] = state
        lookup[_key("TCP_" + state.name)] = state
    lookup.update({_key(alias): state for alias, state in _ALIASES.items()})
    return lookup


_LOOKUP = _build_lookup()


def parse_state(text: str) -> TcpState:
    """One state from any spelling a user may type.

    >>> parse_state("time-wait"), parse_state("ESTAB"), parse_state("fin_wait_2")
    (<TcpState.TIME_WAIT: 6>, <TcpState.ESTABLISHED: 1>, <TcpState.FIN_WAIT2: 5>)
    """
    state = _LOOKUP.get(_key(text))
    if state is None:
        raise UnknownStateError(text)
    return state


def parse_states(texts: Iterable[str]) -> frozenset[TcpState]:
    """The union of several states or ss groups (``all``, ``connected``, ...)."""
    result: set[TcpState] = set()
    for text in texts:
        group = GROUPS.get(text.strip().lower())
        result |= group if group is not None else {parse_state(text)}
    return frozenset(result)


def valid_names() -> list[str]:
    """What --state accepts, as shown in errors and --help: netstat names, then groups."""
    return [state.name for state in TcpState] + ["UNCONN", *GROUPS]
