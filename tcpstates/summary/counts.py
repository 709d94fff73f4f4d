"""Per-state counts: the cheapest question, answered without building socket records.

Where the query filters only by protocol, family and state, sources count straight from the
kernel's data (netlink: one byte a socket); otherwise the records are built and counted.
"""

from __future__ import annotations

from collections import Counter

from tcpstates.model.query import Query
from tcpstates.model.record import Record
from tcpstates.model.state_codes import TCP_SUMMARY, UDP_SUMMARY
from tcpstates.model.states import TcpState, state_name
from tcpstates.sources.base import select

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from typing import Any

    from tcpstates.sources.base import Source

# The states a summary always shows, zero or not, so dashboards and scripts see stable keys.
TCP_STATES = tuple(TcpState(code) for code, _ in TCP_SUMMARY)
UDP_STATES = tuple(TcpState(code) for code, _ in UDP_SUMMARY)


class Summary(Record):
    """Sockets per state, per protocol, in a stable order."""

    counts: dict[str, dict[TcpState, int]]  # proto -> state -> count, in the order shown

    @property
    def total(self) -> int:
        return sum(sum(states.values()) for states in self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        """One protocol: state name -> count. Several: protocol -> (state name -> count)."""
        named = {
            proto: {state_name(state, proto): n for state, n in states.items()}
            for proto, states in self.counts.items()
        }
        return next(iter(named.values())) if len(named) == 1 else named


def summarize(source: Source, query: Query) -> Summary:
    count = getattr(source, "count", None)
    if count is not None and not query.filters_rows:
        counts: Counter[tuple[str, TcpState]] = count(query)
    else:
        reading = source.read(query, owners=query.needs_owners)
        counts = Counter((s.proto, s.state) for s in select(reading, query))
    return Summary({proto: _ordered(proto, query, counts) for proto in _protos(query)})


def _protos(query: Query) -> list[str]:
    return [proto for proto in ("tcp", "udp") if proto in query.protos]


def _ordered(
    proto: str, query: Query, counts: Counter[tuple[str, TcpState]]
) -> dict[TcpState, int]:
    shown = [s for s in (TCP_STATES if proto == "tcp" else UDP_STATES) if query.wants_state(s)]
    extra = sorted(s for p, s in counts if p == proto and s not in shown)
    return {s: counts[proto, s] for s in [*shown, *extra]}
