"""Counts per state per group (``--summary --by``): by process, local port, remote host, or
the part of a connection's life the state belongs to."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tcpstates.model.i18n import _
from tcpstates.model.sockets import Socket, owner_of
from tcpstates.model.states import Phase, TcpState, state_name

KEYS: dict[str, Callable[[Socket], str]] = {
    "process": lambda sock: owner_of(sock).text,
    "local-port": lambda sock: str(sock.local_port),
    "remote": lambda sock: sock.remote_address if sock.remote_port else "*",
    "state-group": lambda sock: sock.state.phase.value,
}
BY = tuple(KEYS)
_PHASES = {phase.value: phase for phase in Phase}


@dataclass(frozen=True, slots=True)
class Group:
    key: str
    counts: dict[tuple[str, TcpState], int]  # (protocol, state) -> sockets, in the order seen

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def states(self) -> list[tuple[str, TcpState, int]]:
        """(name, state, sockets), largest first (a tie: the first seen first). One name is one
        entry: TCP's and UDP's ESTABLISHED count together, UDP's CLOSE is UNCONN apart."""
        named: dict[str, tuple[TcpState, int]] = {}
        for (proto, state), n in self.counts.items():
            name = state_name(state, proto)
            named[name] = state, n + named.get(name, (state, 0))[1]
        return sorted(((name, s, n) for name, (s, n) in named.items()), key=lambda e: -e[2])

    def as_dict(self, by: str) -> dict[str, Any]:
        states = {name: n for name, _state, n in self.states()}
        data: dict[str, Any] = {by: self.key, "total": self.total, "states": states}
        if by == "state-group":
            data["meaning"] = _(_PHASES[self.key].meaning)
        return data


def group_sockets(sockets: Iterable[Socket], by: str) -> list[Group]:
    """Groups largest first; a tie goes by the group's name so the order is stable."""
    key_of = KEYS[by]
    counts: dict[str, Counter[tuple[str, TcpState]]] = defaultdict(Counter)
    for sock in sockets:
        counts[key_of(sock)][sock.proto, sock.state] += 1
    groups = [Group(key, dict(c)) for key, c in counts.items()]
    return sorted(groups, key=lambda g: (-g.total, g.key))
