"""Counts per state per group (``--by``): by process, local port, remote host, or the part of a
connection's life the state belongs to.

The one engine for ``--summary --by`` and for the metrics' breakdowns (``export --by``,
``-o openmetrics --by``): what each way of grouping means is said once, in ``KEYS``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Generic, TypeVar

from tcpstates.model.i18n import _
from tcpstates.model.sockets import Socket, owner_of
from tcpstates.model.states import Phase, TcpState, state_name

V = TypeVar("V", bound=Hashable)


@dataclass(frozen=True, slots=True)
class GroupKey(Generic[V]):
    """One way to group sockets: each socket's group as data, and how a group is written."""

    name: str  # as --by spells it, and the JSON field that holds the group
    of: Callable[[Socket], V]
    text: Callable[[V], str]  # in a table, plain text and JSON (a phase by its untranslated name)
    # As a metric label value; None: metrics do not break down by it (a remote address is a
    # series per peer, and a phase says again what the state label says).
    label: Callable[[V], str] | None = None
    needs_owners: bool = False


_local_port: Callable[[Socket], int] = attrgetter("local_port")  # per socket: no Python call


def _remote(sock: Socket) -> str | None:
    return sock.remote_address if sock.remote_port else None  # None: no peer (LISTEN, UNCONN)


def _remote_text(address: str | None) -> str:
    return "*" if address is None else address  # as ss writes no address


def _phase(sock: Socket) -> Phase:
    return sock.state.phase


KEYS: dict[str, GroupKey[Any]] = {
    key.name: key
    for key in (
        GroupKey("process", owner_of, attrgetter("text"), attrgetter("label"), needs_owners=True),
        GroupKey("local-port", _local_port, str, str),
        GroupKey("remote", _remote, _remote_text),
        GroupKey("state-group", _phase, lambda phase: phase.value),
    )
}
BY = tuple(KEYS)  # --summary --by
METRIC_BY = tuple(name for name, key in KEYS.items() if key.label)  # export --by, -o openmetrics


@dataclass(frozen=True, slots=True)
class Group:
    key: Hashable  # the group as data: an Owner, a port, an address, a Phase
    text: str  # the group as written (GroupKey.text)
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
        data: dict[str, Any] = {by: self.text, "total": self.total, "states": states}
        if isinstance(self.key, Phase):
            data["meaning"] = _(self.key.meaning)
        return data


def group_sockets(sockets: Iterable[Socket], by: str) -> list[Group]:
    """Groups largest first; a tie goes by the group's text so the order is stable."""
    key = KEYS[by]
    key_of = key.of
    counts: dict[Hashable, Counter[tuple[str, TcpState]]] = defaultdict(Counter)
    for sock in sockets:
        counts[key_of(sock)][sock.proto, sock.state] += 1
    groups = [Group(value, key.text(value), dict(c)) for value, c in counts.items()]
    return sorted(groups, key=lambda g: (-g.total, g.text))
