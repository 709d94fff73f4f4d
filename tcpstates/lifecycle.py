"""The TCP state machine as data: RFC 9293 section 3.3.2, plus what Linux adds.

Explanations, the diagram, tracing and diagnosis all read these tables; none keeps a copy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tcpstates.states import TcpState

S = TcpState


class Side(enum.Enum):
    """Which end of a connection takes a transition."""

    ACTIVE_OPENER = "active opener (the client, which called connect())"
    PASSIVE_OPENER = "passive opener (the server, which called listen() and accept())"
    ACTIVE_CLOSER = "active closer (the end that sent FIN first)"
    PASSIVE_CLOSER = "passive closer (the end that received FIN first)"
    SIMULTANEOUS = "both ends, when their FINs cross (simultaneous close)"
    EITHER = "either end"


@dataclass(frozen=True, slots=True)
class Transition:
    source: TcpState
    target: TcpState
    event: str
    side: Side
    linux_only: bool = False


TRANSITIONS: tuple[Transition, ...] = (
    # Opening
    Transition(S.CLOSE, S.LISTEN, "listen()", Side.PASSIVE_OPENER),
    Transition(S.CLOSE, S.SYN_SENT, "connect() / snd SYN", Side.ACTIVE_OPENER),
    Transition(S.LISTEN, S.SYN_RECV, "rcv SYN / snd SYN,ACK", Side.PASSIVE_OPENER),
    Transition(
        S.LISTEN, S.NEW_SYN_RECV, "rcv SYN / snd SYN,ACK", Side.PASSIVE_OPENER, linux_only=True
    ),
    Transition(S.LISTEN, S.CLOSE, "close()", Side.PASSIVE_OPENER),
    Transition(S.SYN_SENT, S.ESTABLISHED, "rcv SYN,ACK / snd ACK", Side.ACTIVE_OPENER),
    Transition(S.SYN_SENT, S.SYN_RECV, "rcv SYN / snd SYN,ACK (simultaneous open)", Side.EITHER),
    Transition(S.SYN_SENT, S.CLOSE, "close(), or SYN retries exhausted", Side.ACTIVE_OPENER),
    Transition(S.SYN_RECV, S.ESTABLISHED, "rcv ACK of SYN", Side.PASSIVE_OPENER),
    Transition(
        S.NEW_SYN_RECV,
        S.ESTABLISHED,
        "rcv ACK of SYN (child socket queued for accept())",
        Side.PASSIVE_OPENER,
        linux_only=True,
    ),
    Transition(S.SYN_RECV, S.FIN_WAIT1, "close() / snd FIN", Side.PASSIVE_OPENER),
    Transition(S.SYN_RECV, S.CLOSE, "rcv RST, or SYN,ACK retries exhausted", Side.PASSIVE_OPENER),
    # Closing: the end that sends FIN first
    Transition(S.ESTABLISHED, S.FIN_WAIT1, "close() or shutdown() / snd FIN", Side.ACTIVE_CLOSER),
    Transition(S.FIN_WAIT1, S.FIN_WAIT2, "rcv ACK of FIN", Side.ACTIVE_CLOSER),
    Transition(S.FIN_WAIT1, S.TIME_WAIT, "rcv FIN,ACK / snd ACK", Side.ACTIVE_CLOSER),
    Transition(S.FIN_WAIT2, S.TIME_WAIT, "rcv FIN / snd ACK", Side.ACTIVE_CLOSER),
    Transition(
        S.FIN_WAIT2,
        S.CLOSE,
        "tcp_fin_timeout expires (orphaned socket only)",
        Side.ACTIVE_CLOSER,
        linux_only=True,
    ),
    Transition(S.TIME_WAIT, S.CLOSE, "timeout = 2MSL (60 s on Linux)", Side.ACTIVE_CLOSER),
    # Closing: simultaneous
    Transition(S.FIN_WAIT1, S.CLOSING, "rcv FIN / snd ACK", Side.SIMULTANEOUS),
    Transition(S.CLOSING, S.TIME_WAIT, "rcv ACK of FIN", Side.SIMULTANEOUS),
    # Closing: the end that receives FIN first
    Transition(S.ESTABLISHED, S.CLOSE_WAIT, "rcv FIN / snd ACK", Side.PASSIVE_CLOSER),
    Transition(S.CLOSE_WAIT, S.LAST_ACK, "close() / snd FIN", Side.PASSIVE_CLOSER),
    Transition(S.LAST_ACK, S.CLOSE, "rcv ACK of FIN", Side.PASSIVE_CLOSER),
    # Aborts
    Transition(S.ESTABLISHED, S.CLOSE, "rcv RST, or abort / snd RST", Side.EITHER),
    Transition(
        S.CLOSE,
        S.BOUND_INACTIVE,
        "bind() without listen() or connect()",
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
    name: str
    title: str
    a_start: TcpState
    b_start: TcpState
    steps: tuple[Step, ...]

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
        "b listens, a connects: the three-way handshake",
        S.CLOSE,
        S.CLOSE,
        _steps(
            ("b", S.CLOSE, S.LISTEN),
            ("a", S.CLOSE, S.SYN_SENT),
            ("b", S.LISTEN, S.SYN_RECV),
            ("a", S.SYN_SENT, S.ESTABLISHED),
            ("b", S.SYN_RECV, S.ESTABLISHED),
        ),
    ),
    "close": Scenario(
        "close",
        "a closes first, then b: the normal close",
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
    ),
    "simultaneous-close": Scenario(
        "simultaneous-close",
        "a and b close at once: their FINs cross, both pass through CLOSING",
        S.ESTABLISHED,
        S.ESTABLISHED,
        _steps(
            ("a", S.ESTABLISHED, S.FIN_WAIT1),
            ("b", S.ESTABLISHED, S.FIN_WAIT1),
            ("a", S.FIN_WAIT1, S.CLOSING),
            ("b", S.FIN_WAIT1, S.CLOSING),
            ("a", S.CLOSING, S.TIME_WAIT),
            ("b", S.CLOSING, S.TIME_WAIT),
            ("a", S.TIME_WAIT, S.CLOSE),
            ("b", S.TIME_WAIT, S.CLOSE),
        ),
    ),
}
