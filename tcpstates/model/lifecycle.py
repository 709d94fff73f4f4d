"""The TCP state machine as data: RFC 9293 section 3.3.2, plus what Linux adds.

Explanations, the diagram, tracing and diagnosis all read these tables; none keeps a copy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tcpstates.model.i18n import N_
from tcpstates.model.states import TcpState

S = TcpState


class Side(enum.Enum):
    """Which end of a connection takes a transition."""

    ACTIVE_OPENER = N_("active opener (the client, which called connect())")
    PASSIVE_OPENER = N_("passive opener (the server, which called listen() and accept())")
    ACTIVE_CLOSER = N_("active closer (the end that sent FIN first)")
    PASSIVE_CLOSER = N_("passive closer (the end that received FIN first)")
    SIMULTANEOUS = N_("both ends, when their FINs cross (simultaneous close)")
    EITHER = N_("either end")


@dataclass(frozen=True, slots=True)
class Transition:
    """One arrow of the state machine. ``event`` is what causes it and what is sent, in the
    RFC's notation ("rcv FIN / snd ACK"); ``sends`` is the segment sent ("ACK"), if any."""

    source: TcpState
    target: TcpState
    event: str
    side: Side
    linux_only: bool = False
    sends: str | None = None


TRANSITIONS: tuple[Transition, ...] = (
    # Opening
    Transition(S.CLOSE, S.LISTEN, N_("listen()"), Side.PASSIVE_OPENER),
    Transition(S.CLOSE, S.SYN_SENT, N_("connect() / snd SYN"), Side.ACTIVE_OPENER, sends="SYN"),
    Transition(
        S.LISTEN, S.SYN_RECV, N_("rcv SYN / snd SYN,ACK"), Side.PASSIVE_OPENER, sends="SYN,ACK"
    ),
    Transition(
        S.LISTEN,
        S.NEW_SYN_RECV,
        N_("rcv SYN / snd SYN,ACK"),
        Side.PASSIVE_OPENER,
        linux_only=True,
        sends="SYN,ACK",
    ),
    Transition(S.LISTEN, S.CLOSE, N_("close()"), Side.PASSIVE_OPENER),
    Transition(
        S.SYN_SENT, S.ESTABLISHED, N_("rcv SYN,ACK / snd ACK"), Side.ACTIVE_OPENER, sends="ACK"
    ),
    Transition(
        S.SYN_SENT,
        S.SYN_RECV,
        N_("rcv SYN / snd SYN,ACK (simultaneous open)"),
        Side.EITHER,
        sends="SYN,ACK",
    ),
    Transition(S.SYN_SENT, S.CLOSE, N_("close(), or SYN retries exhausted"), Side.ACTIVE_OPENER),
    Transition(S.SYN_RECV, S.ESTABLISHED, N_("rcv ACK of SYN"), Side.PASSIVE_OPENER),
    Transition(
        S.NEW_SYN_RECV,
        S.ESTABLISHED,
        N_("rcv ACK of SYN (child socket queued for accept())"),
        Side.PASSIVE_OPENER,
        linux_only=True,
    ),
    Transition(S.SYN_RECV, S.FIN_WAIT1, N_("close() / snd FIN"), Side.PASSIVE_OPENER, sends="FIN"),
    Transition(
        S.SYN_RECV, S.CLOSE, N_("rcv RST, or SYN,ACK retries exhausted"), Side.PASSIVE_OPENER
    ),
    # Closing: the end that sends FIN first
    Transition(
        S.ESTABLISHED,
        S.FIN_WAIT1,
        N_("close() or shutdown() / snd FIN"),
        Side.ACTIVE_CLOSER,
        sends="FIN",
    ),
    Transition(S.FIN_WAIT1, S.FIN_WAIT2, N_("rcv ACK of FIN"), Side.ACTIVE_CLOSER),
    Transition(
        S.FIN_WAIT1, S.TIME_WAIT, N_("rcv FIN,ACK / snd ACK"), Side.ACTIVE_CLOSER, sends="ACK"
    ),
    Transition(S.FIN_WAIT2, S.TIME_WAIT, N_("rcv FIN / snd ACK"), Side.ACTIVE_CLOSER, sends="ACK"),
    Transition(
        S.FIN_WAIT2,
        S.CLOSE,
        N_("tcp_fin_timeout expires (orphaned socket only)"),
        Side.ACTIVE_CLOSER,
        linux_only=True,
    ),
    Transition(S.TIME_WAIT, S.CLOSE, N_("timeout = 2MSL (60 s on Linux)"), Side.ACTIVE_CLOSER),
    # Closing: simultaneous
    Transition(S.FIN_WAIT1, S.CLOSING, N_("rcv FIN / snd ACK"), Side.SIMULTANEOUS, sends="ACK"),
    Transition(S.CLOSING, S.TIME_WAIT, N_("rcv ACK of FIN"), Side.SIMULTANEOUS),
    # Closing: the end that receives FIN first
    Transition(
        S.ESTABLISHED, S.CLOSE_WAIT, N_("rcv FIN / snd ACK"), Side.PASSIVE_CLOSER, sends="ACK"
    ),
    Transition(S.CLOSE_WAIT, S.LAST_ACK, N_("close() / snd FIN"), Side.PASSIVE_CLOSER, sends="FIN"),
    Transition(S.LAST_ACK, S.CLOSE, N_("rcv ACK of FIN"), Side.PASSIVE_CLOSER),
    # Aborts
    Transition(S.ESTABLISHED, S.CLOSE, N_("rcv RST, or abort / snd RST"), Side.EITHER, sends="RST"),
    Transition(
        S.CLOSE,
        S.BOUND_INACTIVE,
        N_("bind() without listen() or connect()"),
        Side.EITHER,
        linux_only=True,
    ),
)


def transitions_into(state: TcpState) -> tuple[Transition, ...]:
    return tuple(t for t in TRANSITIONS if t.target is state)


def transitions_out_of(state: TcpState) -> tuple[Transition, ...]:
    return tuple(t for t in TRANSITIONS if t.source is state)


def transition(source: TcpState, target: TcpState) -> Transition:
    """The one transition from ``source`` to ``target``; KeyError if the RFC has none."""
    for t in TRANSITIONS:
        if t.source is source and t.target is target:
            return t
    raise KeyError(f"no transition {source.name} -> {target.name}")


def sides(state: TcpState) -> tuple[Side, ...]:
    """Which ends of a connection can be in ``state``, from the transitions that lead there."""
    return tuple(dict.fromkeys(t.side for t in transitions_into(state)))


@dataclass(frozen=True, slots=True)
class Step:
    """One moment of a scenario: an end ("a" or "b") takes a transition."""

    end: str
    transition: Transition


@dataclass(frozen=True, slots=True)
class Scenario:
    """A story of two ends, a (left) and b (right), told one transition at a time."""

    name: str
    title: str
    a_start: TcpState
    b_start: TcpState
    steps: tuple[Step, ...]
    story: str = ""  # the seed's telling of it

    def timeline(self) -> list[tuple[Step, TcpState, TcpState]]:
        """Each step with the states of a and b after it."""
        a, b = self.a_start, self.b_start
        rows = []
        for step in self.steps:
            if step.end == "a":
                a = step.transition.target
            else:
                b = step.transition.target
            rows.append((step, a, b))
        return rows


def _steps(*moves: tuple[str, TcpState, TcpState]) -> tuple[Step, ...]:
    return tuple(Step(end, transition(src, dst)) for end, src, dst in moves)


# The two lives of a connection that the seed document walks through, and the opening before them.
SCENARIOS: dict[str, Scenario] = {
    "open": Scenario(
        "open",
        N_("b listens, a connects: the three-way handshake"),
        S.CLOSE,
        S.CLOSE,
        _steps(
            ("b", S.CLOSE, S.LISTEN),
            ("a", S.CLOSE, S.SYN_SENT),
            ("b", S.LISTEN, S.SYN_RECV),
            ("a", S.SYN_SENT, S.ESTABLISHED),
            ("b", S.SYN_RECV, S.ESTABLISHED),
        ),
        N_(
            "Both programs set up a socket. b listens (LISTEN). a sends a connection request"
            " (SYN) and enters SYN_SENT; b receives it, answers SYN,ACK and enters SYN_RECV."
            " a acknowledges the answer and is ESTABLISHED; when that ACK reaches b, b is"
            " ESTABLISHED too, and they do their business."
        ),
    ),
    "close": Scenario(
        "close",
        N_("a closes first, then b: the normal close"),
        S.ESTABLISHED,
        S.ESTABLISHED,
        _steps(
            ("a", S.ESTABLISHED, S.FIN_WAIT1),
            ("b", S.ESTABLISHED, S.CLOSE_WAIT),
            ("a", S.FIN_WAIT1, S.FIN_WAIT2),
            ("b", S.CLOSE_WAIT, S.LAST_ACK),
            ("a", S.FIN_WAIT2, S.TIME_WAIT),
            ("b", S.LAST_ACK, S.CLOSE),
            ("a", S.TIME_WAIT, S.CLOSE),
        ),
        N_(
            "a wants to close the connection and enters FIN_WAIT1. b receives the FIN, sends"
            " ACK (a then enters FIN_WAIT2) and enters CLOSE_WAIT; b's application closes too,"
            " b tells a with its own FIN and enters LAST_ACK. a acknowledges it and enters"
            " TIME_WAIT, and b enters CLOSE. a waits a while for anything still in the network,"
            " then enters CLOSE."
        ),
    ),
    # Both FINs leave, but one reaches its peer first: a gets b's FIN while its own is still
    # unacknowledged (CLOSING), and the ACK of b's FIN reaches b before a's FIN does
    # (FIN_WAIT2). That is what a real kernel does on loopback, where segments are processed
    # one at a time; only when both FINs are in flight at once do both ends pass through
    # CLOSING (RFC 9293, Figure 13).
    "simultaneous-close": Scenario(
        "simultaneous-close",
        N_("a and b close at once: b's FIN reaches a before the ACK of a's own FIN"),
        S.ESTABLISHED,
        S.ESTABLISHED,
        _steps(
            ("a", S.ESTABLISHED, S.FIN_WAIT1),
            ("b", S.ESTABLISHED, S.FIN_WAIT1),
            ("a", S.FIN_WAIT1, S.CLOSING),
            ("b", S.FIN_WAIT1, S.FIN_WAIT2),
            ("b", S.FIN_WAIT2, S.TIME_WAIT),
            ("a", S.CLOSING, S.TIME_WAIT),
            ("a", S.TIME_WAIT, S.CLOSE),
            ("b", S.TIME_WAIT, S.CLOSE),
        ),
        N_(
            "a and b both decide to close. a is in FIN_WAIT1 and, instead of the ACK from b,"
            " receives b's FIN (b wants to close too): a enters CLOSING. a still waits for the"
            " ACK of its own FIN; once it arrives, a enters TIME_WAIT as usual. b got a's ACK"
            " of its FIN first, so it went the usual way through FIN_WAIT2. Only when both FINs"
            " are in flight at the same moment do both ends pass through CLOSING (RFC 9293,"
            " Figure 13)."
        ),
    ),
}
