"""Counts per state per group (``--summary --by``): by process, local port, remote host, or
the part of a connection's life the state belongs to."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tcpstates.model.i18n import N_, _
from tcpstates.model.sockets import Socket, owner_of
from tcpstates.model.states import TcpState

S = TcpState

# The parts of a connection's life, in the order a connection passes them, with what they mean.
STATE_GROUPS: dict[str, tuple[str, frozenset[TcpState]]] = {
    N_("listening"): (N_("servers waiting for connections"), frozenset({S.LISTEN})),
    N_("handshake"): (
        N_("connections being opened"),
        frozenset({S.SYN_SENT, S.SYN_RECV, S.NEW_SYN_RECV}),
    ),
    N_("open"): (N_("connections carrying data"), frozenset({S.ESTABLISHED})),
    N_("we closed first"): (
        N_("this end closed first and waits for the peer, then lingers in TIME_WAIT"),
        frozenset({S.FIN_WAIT1, S.FIN_WAIT2, S.CLOSING, S.TIME_WAIT}),
    ),
    N_("peer closed first"): (
        N_("the peer closed; this end's application must close (CLOSE_WAIT) or has (LAST_ACK)"),
        frozenset({S.CLOSE_WAIT, S.LAST_ACK}),
    ),
    N_("other"): (
        N_("not connected: bound, closed, or unknown"),
        frozenset({S.CLOSE, S.BOUND_INACTIVE, S.UNKNOWN}),
    ),
}
_GROUP_OF = {state: name for name, (_, states) in STATE_GROUPS.items() for state in states}


def state_group(state: TcpState) -> str:
    return _GROUP_OF.get(state, "other")


KEYS: dict[str, Callable[[Socket], str]] = {
    "process": lambda sock: owner_of(sock).text,
    "local-port": lambda sock: str(sock.local_port),
    "remote": lambda sock: sock.remote_address if sock.remote_port else "*",
    "state-group": lambda sock: state_group(sock.state),
}
BY = tuple(KEYS)


@dataclass(frozen=True, slots=True)
class Group:
    key: str
    counts: dict[str, int]  # state name -> sockets, largest first

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self, by: str) -> dict[str, Any]:
        data: dict[str, Any] = {by: self.key, "total": self.total, "states": self.counts}
        if by == "state-group":
            data["meaning"] = _(STATE_GROUPS[self.key][0])
        return data


def group_sockets(sockets: Iterable[Socket], by: str) -> list[Group]:
    """Groups largest first; a tie goes by the group's name so the order is stable."""
    key_of = KEYS[by]
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for sock in sockets:
        counts[key_of(sock)][sock.state_name] += 1
    groups = [Group(key, dict(c.most_common())) for key, c in counts.items()]
    return sorted(groups, key=lambda g: (-g.total, g.key))
