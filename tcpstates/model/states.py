"""TCP states: the kernel's codes, their names in every tool, and what they mean.

One enum, two lookups: ``TcpState(0x0A)`` from the kernel, ``TcpState["LISTEN"]`` by netstat
name. Everything said about a state (its spellings, its description, its phase) lives here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from tcpstates.model.i18n import N_
from tcpstates.model.record import Record


class Phase(enum.Enum):
    """The parts of a connection's life, in the order a connection passes them, each with its
    name (the value) and what it means. The table colours rows by them and ``--by
    state-group`` counts by them; every state belongs to one (``TcpState.phase``)."""

    _value_: str
    meaning: str

    LISTENING = N_("listening"), N_("servers waiting for connections")
    HANDSHAKE = N_("handshake"), N_("connections being opened")
    OPEN = N_("open"), N_("connections carrying data")
    WE_CLOSED = (
        N_("we closed first"),
        N_("this end closed first and waits for the peer, then lingers in TIME_WAIT"),
    )
    PEER_CLOSED = (
        N_("peer closed first"),
        N_("the peer closed; this end's application must close (CLOSE_WAIT) or has (LAST_ACK)"),
    )
    INACTIVE = N_("inactive"), N_("not connected: bound, closed, or unknown")

    def __new__(cls, name: str, meaning: str) -> Phase:
        phase = object.__new__(cls)
        phase._value_ = name
        phase.meaning = meaning
        return phase


class StateInfo(Record):
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


# Every byte a state field can hold -> its state, looked up once per record by the sources: an
# index costs 30 ns, TcpState(code) 700 ns. Codes the kernel may add later are UNKNOWN. Built
# from the members: TcpState(code) for the 240 unknown codes would cost 0.7 ms at every start.
_KNOWN = {state.value: state for state in TcpState}
BY_CODE: tuple[TcpState, ...] = tuple(_KNOWN.get(code, TcpState.UNKNOWN) for code in range(256))


# The descriptions are the netstat(8) manual's, verbatim (whitespace reflowed); the two states
# the manual does not know are described in our own words and flagged as such.
_INFO: dict[TcpState, StateInfo] = {
    TcpState.ESTABLISHED: StateInfo(
        "ESTAB", Phase.OPEN, N_("The socket has an established connection.")
    ),
    TcpState.SYN_SENT: StateInfo(
        "SYN-SENT",
        Phase.HANDSHAKE,
        N_("The socket is actively attempting to establish a connection."),
    ),
    TcpState.SYN_RECV: StateInfo(
        "SYN-RECV",
        Phase.HANDSHAKE,
        N_("A connection request has been received from the network."),
    ),
    TcpState.FIN_WAIT1: StateInfo(
        "FIN-WAIT-1",
        Phase.WE_CLOSED,
        N_("The socket is closed, and the connection is shutting down."),
    ),
    TcpState.FIN_WAIT2: StateInfo(
        "FIN-WAIT-2",
        Phase.WE_CLOSED,
        N_("Connection is closed, and the socket is waiting for a shutdown from the remote end."),
    ),
    TcpState.TIME_WAIT: StateInfo(
        "TIME-WAIT",
        Phase.WE_CLOSED,
        N_("The socket is waiting after close to handle packets still in the network."),
    ),
    TcpState.CLOSE: StateInfo("UNCONN", Phase.INACTIVE, N_("The socket is not being used.")),
    TcpState.CLOSE_WAIT: StateInfo(
        "CLOSE-WAIT",
        Phase.PEER_CLOSED,
        N_("The remote end has shut down, waiting for the socket to close."),
    ),
    TcpState.LAST_ACK: StateInfo(
        "LAST-ACK",
        Phase.PEER_CLOSED,
        N_("The remote end has shut down, and the socket is closed. Waiting for acknowledgement."),
    ),
    TcpState.LISTEN: StateInfo(
        "LISTEN",
        Phase.LISTENING,
        N_(
            "The socket is listening for incoming connections. Such sockets are not included in"
            " the output unless you specify the --listening (-l) or --all (-a) option."
        ),
    ),
    TcpState.CLOSING: StateInfo(
        "CLOSING",
        Phase.WE_CLOSED,
        N_("Both sockets are shut down but we still don't have all our data sent."),
    ),
    TcpState.NEW_SYN_RECV: StateInfo(
        "NEW-SYN-RECV",
        Phase.HANDSHAKE,
        N_(
            "Linux-internal: a lightweight request socket for a connection whose handshake is not"
            " yet complete. The kernel reports it as SYN_RECV (03 in /proc/net/tcp), so tools"
            " rarely show this code."
        ),
        from_manual=False,
    ),
    TcpState.BOUND_INACTIVE: StateInfo(
        "BOUND-INACTIVE",
        Phase.INACTIVE,
        N_(
            "Linux-internal: the socket is bound to a port but neither listening nor connected;"
            " only sock_diag (Linux 6.5 and later) reports it."
        ),
        from_manual=False,
    ),
    TcpState.UNKNOWN: StateInfo(
        "UNKNOWN", Phase.INACTIVE, N_("The state of the socket is unknown.")
    ),
}


class Names(Record):
    """One state's name in every vocabulary that has one; None where a vocabulary has none."""

    netstat: str  # TIME_WAIT: netstat, /proc readers, and tcpstates' JSON
    ss: str  # TIME-WAIT, ESTAB, UNCONN
    kernel: str | None  # TCP_TIME_WAIT, include/net/tcp_states.h
    code: int | None  # 6
    proc_hex: str | None  # "06", the st column of /proc/net/tcp
    psutil: str | None  # CONN_TIME_WAIT (psutil's constants stop at CLOSING)
    node_exporter: str | None  # time_wait, node_tcp_connection_states{state="time_wait"}
    rfc9293: str | None  # TIME-WAIT
    windows: str | None  # TimeWait: .NET's TcpState and PowerShell's Get-NetTCPConnection
    windows_mib: str | None  # MIB_TCP_STATE_TIME_WAIT, the iphlpapi.h constant
    windows_code: int | None  # 11: Windows numbers its states differently from Linux


# RFC 9293's name, then Windows': its PascalCase name, the MIB_TCP_STATE_ suffix and number
# (learn.microsoft.com: MIB_TCP_STATE, System.Net.NetworkInformation.TcpState). The two
# Linux-internal states exist in neither.
_FOREIGN: dict[TcpState, tuple[str, str, str, int]] = {
    TcpState.CLOSE: ("CLOSED", "Closed", "CLOSED", 1),
    TcpState.LISTEN: ("LISTEN", "Listen", "LISTEN", 2),
    TcpState.SYN_SENT: ("SYN-SENT", "SynSent", "SYN_SENT", 3),
    TcpState.SYN_RECV: ("SYN-RECEIVED", "SynReceived", "SYN_RCVD", 4),
    TcpState.ESTABLISHED: ("ESTABLISHED", "Established", "ESTAB", 5),
    TcpState.FIN_WAIT1: ("FIN-WAIT-1", "FinWait1", "FIN_WAIT1", 6),
    TcpState.FIN_WAIT2: ("FIN-WAIT-2", "FinWait2", "FIN_WAIT2", 7),
    TcpState.CLOSE_WAIT: ("CLOSE-WAIT", "CloseWait", "CLOSE_WAIT", 8),
    TcpState.CLOSING: ("CLOSING", "Closing", "CLOSING", 9),
    TcpState.LAST_ACK: ("LAST-ACK", "LastAck", "LAST_ACK", 10),
    TcpState.TIME_WAIT: ("TIME-WAIT", "TimeWait", "TIME_WAIT", 11),
}
# Windows' state 12 has no Linux counterpart: the connection's control block is being deleted.
# psutil reports it as DELETE_TCB; tcpstates shows such a socket as CLOSE. Linux's 12 is
# NEW_SYN_RECV, so a bare "12" means different things on the two systems.
WINDOWS_DELETE_TCB = ("DeleteTcb", "DELETE_TCB", 12)

# The classic eleven: the states psutil and node_exporter name (codes 1 to 11).
_CLASSIC = frozenset(TcpState(code) for code in range(1, 12))


def names(state: TcpState) -> Names:
    """Every name of ``state``.

    >>> n = names(TcpState.TIME_WAIT)
    >>> n.ss, n.kernel, n.proc_hex, n.psutil, n.node_exporter, n.windows, n.windows_code
    ('TIME-WAIT', 'TCP_TIME_WAIT', '06', 'CONN_TIME_WAIT', 'time_wait', 'TimeWait', 11)
    """
    known = state is not TcpState.UNKNOWN
    rfc, windows, mib, windows_code = _FOREIGN.get(state, (None, None, None, None))
    return Names(
        netstat=state.name,
        ss=state.ss_name,
        kernel=f"TCP_{state.name}" if known else None,
        code=state.value if known else None,
        proc_hex=f"{state.value:02X}" if known else None,
        psutil=f"CONN_{state.name}" if state in _CLASSIC else None,
        node_exporter=state.name.lower() if state in _CLASSIC else None,
        rfc9293=rfc,
        windows=windows,
        windows_mib=None if mib is None else f"MIB_TCP_STATE_{mib}",
        windows_code=windows_code,
    )


def windows_state(code: int) -> str | None:
    """The Windows name of Windows state number ``code`` (1 to 12), for warnings about clashes."""
    if code == WINDOWS_DELETE_TCB[2]:
        return WINDOWS_DELETE_TCB[0]
    return next((w for _, w, _, c in _FOREIGN.values() if c == code), None)


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


_HEX = frozenset("0123456789abcdefABCDEF")


def _key(text: str) -> str:
    # TIME_WAIT, time-wait, Time_Wait and TIMEWAIT all mean the same to a person.
    return text.strip().upper().replace("-", "").replace("_", "")


def _build_lookup() -> dict[str, TcpState]:
    """Every vocabulary's spellings (see ``Names``), keyed as ``_key`` normalises them."""
    lookup: dict[str, TcpState] = {}
    for state in TcpState:
        n = names(state)
        spellings = [n.netstat, n.ss, n.kernel, n.psutil, n.node_exporter, n.rfc9293]
        spellings += [n.windows, n.windows_mib]
        for spelling in spellings:
            if spelling is not None:
                lookup[_key(spelling)] = state
        if n.code is not None:  # the code as /proc/net/tcp prints it (06, 0A) or as 0x6
            lookup[f"{n.code:02X}"] = state
            lookup[f"0X{n.code:X}"] = state
            lookup[f"0X{n.code:02X}"] = state
    windows, mib, _ = WINDOWS_DELETE_TCB
    for spelling in (windows, f"MIB_TCP_STATE_{mib}"):  # as psutil_source shows it
        lookup[_key(spelling)] = TcpState.CLOSE
    lookup.update({_key(alias): state for alias, state in _ALIASES.items()})
    return lookup


def is_state_code(text: str) -> bool:
    """Whether ``text`` has the form of a state code, not a port: two hex digits starting with
    0 (``06``, ``0A``, as /proc/net/tcp prints them) or ``0x`` and hex digits.

    >>> is_state_code("06"), is_state_code("0a"), is_state_code("0x6"), is_state_code("6")
    (True, True, True, False)
    >>> is_state_code("080"), is_state_code("22")
    (False, False)
    """
    # Not a regular expression: re costs 2.5 ms to load, and nothing else a listing loads needs it.
    text = text.strip()
    if text[:2] in ("0x", "0X"):
        return 1 <= len(text) - 2 <= 2 and _HEX.issuperset(text[2:])
    return len(text) == 2 and text[0] == "0" and text[1] in _HEX


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


def names_starting(prefix: str, groups: bool = True) -> list[str]:
    """The names a shell offers for ``-s PREFIX``: valid_names(), then ss's own spellings
    (ESTAB); one spelling per name as parse_state reads it (any case, - and _ ignored).
    ``--explain`` takes one state, so no groups there.

    >>> names_starting("ti"), names_starting("EST"), names_starting("fin-wait-")
    (['TIME_WAIT'], ['ESTABLISHED', 'ESTAB'], ['FIN_WAIT1', 'FIN_WAIT2'])
    >>> names_starting("b"), names_starting("b", groups=False)
    (['BOUND_INACTIVE', 'bucket', 'big'], ['BOUND_INACTIVE'])
    """
    wanted = _key(prefix)
    seen: set[str] = set()
    found: list[str] = []
    for name in [*valid_names(), *(state.ss_name for state in TcpState)]:
        key = _key(name)
        if key.startswith(wanted) and key not in seen and (groups or name not in GROUPS):
            seen.add(key)
            found.append(name)
    return found
