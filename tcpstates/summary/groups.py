"""Counts per state per group (``--summary --by``): by process, local port, remote host, or
the part of a connection's life the state belongs to."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tcpstates.model.i18n import _
from tcpstates.model.sockets import Socket, owner_of
from tcpstates.model.states import Phase

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
    counts: dict[str, int]  # state name -> sockets, largest first

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self, by: str) -> dict[str, Any]:
        data: dict[str, Any] = {by: self.key, "total": self.total, "states": self.counts}
        if by == "state-group":
            data["meaning"] = _(_PHASES[self.key].meaning)
        return data


def group_sockets(sockets: Iterable[Socket], by: str) -> list[Group]:
    """Groups largest first; a tie goes by the group's name so the order is stable."""
    key_of = KEYS[by]
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for sock in sockets:
        counts[key_of(sock)][sock.state_name] += 1
    groups = [Group(key, dict(c.most_common())) for key, c in counts.items()]
    return sorted(groups, key=lambda g: (-g.total, g.key))
