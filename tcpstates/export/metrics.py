"""Socket counts as metric families for Prometheus and OpenMetrics, as plain data.

``collect(source, selection)`` returns the families; ``render/openmetrics.py`` turns them into
text for ``-o openmetrics`` and every ``export`` (``metrics_server.py`` serves that text for
``export --listen``). Nothing here formats text or reads /proc itself.

The default families come from the sources' per-state counts (netlink: one byte a socket, no
records), so a scrape costs what ``--summary`` costs. Only the opt-in breakdowns (``by``) and row
filters build records, and only ``by=("process",)`` looks up owners.
"""

from __future__ import annotations

import enum
import heapq
import re
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tcpstates.model.query import Query
from tcpstates.model.record import replace
from tcpstates.model.sockets import KERNEL_OWNER, UNSEEN_OWNER, Socket
from tcpstates.model.states import TcpState, state_name
from tcpstates.sources.base import select
from tcpstates.summary.counts import TCP_STATES, UDP_STATES
from tcpstates.summary.groups import KEYS, METRIC_BY, GroupKey

if TYPE_CHECKING:
    from tcpstates.sources.base import Source

# node_exporter's tcpstat collector (collector/tcpstat_linux.go): one gauge, IPv4 and IPv6 TCP
# summed, the kernel's states 1-11 in lower case (TCP_STATES, the summary's), and only the states
# that have sockets (its counts live in a Go map, so a state with none has no series). Same name,
# help and values here, so dashboards and alerts written for node_exporter work unchanged.
NODE_METRIC = "node_tcp_connection_states"
NODE_HELP = "Number of connection states."

DEFAULT_MAX_SERIES = 1000
OVERFLOW = "(other)"  # the label value that stands for every folded group; no port or comm name


class MetricType(enum.Enum):
    GAUGE = "gauge"  # the socket counts: levels that go up and down
    # The kernel's counters, as node_exporter's netstat collector exposes them: untyped, since
    # a few of them are levels (Tcp_CurrEstab). OpenMetrics spells it unknown, Prometheus's text
    # format untyped (render.exposition).
    UNKNOWN = "unknown"


Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    labels: Labels
    value: float


@dataclass(frozen=True, slots=True)
class MetricFamily:
    name: str  # the full name, unit suffix included (OpenMetrics requires it to end in the unit)
    help: str
    type: MetricType
    samples: tuple[Sample, ...]
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Breakdown:
    """An opt-in family: sockets per state per group of ``by`` (summary/groups.py's engine), a
    group being one value of ``label``."""

    by: GroupKey[Any]
    help: str

    @property
    def name(self) -> str:
        return f"tcpstates_sockets_by_{self.label}"

    @property
    def label(self) -> str:
        return self.by.name.replace("-", "_")  # local-port -> local_port

    @property
    def value(self) -> Callable[[Any], str]:
        """A group (``by.of`` of a socket) as the label value."""
        assert self.by.label is not None  # METRIC_BY holds only keys with a label
        return self.by.label

    def key(self, sock: Socket) -> str:
        """The socket's group, as the label value."""
        return self.value(self.by.of(sock))


_HELP = {
    "local-port": "Sockets per local port and state; the largest ports first, the rest in (other).",
    "process": f"Sockets per owning process name and state; {KERNEL_OWNER.label}: no process"
    f" holds the socket (TIME_WAIT, not yet accepted), {UNSEEN_OWNER.label}: its owner could"
    " not be seen.",
}
BREAKDOWNS: dict[str, Breakdown] = {name: Breakdown(KEYS[name], _HELP[name]) for name in METRIC_BY}
BY = METRIC_BY


@dataclass(frozen=True, slots=True)
class Selection:
    """What to count (``query``), which breakdowns to add, and their cap on label sets each."""

    query: Query = field(default_factory=Query)
    by: tuple[str, ...] = ()
    max_series: int = DEFAULT_MAX_SERIES

    def __post_init__(self) -> None:
        unknown = [b for b in self.by if b not in BREAKDOWNS]
        if unknown:
            raise ValueError(f"cannot break down by {unknown[0]!r}; valid: {', '.join(BY)}")
        if self.max_series < 1:
            raise ValueError(f"max_series must be at least 1, not {self.max_series}")


# (proto, family, state) -> sockets
Tally = Counter[tuple[str, int, TcpState]]
# (proto, group, state) -> sockets, for one breakdown
Groups = Counter[tuple[str, str, TcpState]]


def collect(
    source: Source,
    selection: Selection,
    *,
    ephemeral_ports: int | None = None,
    kernel_counters: Mapping[str, int] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[MetricFamily, ...]:
    """Every family for ``selection``, read from ``source`` once.

    ``ephemeral_ports`` (the usable size of ip_local_port_range) and ``kernel_counters``
    (``Group.Name`` -> value, sources/kernel.py) are passed in rather than read here, so this
    module stays free of /proc and a capture can supply its own.
    """
    started = clock()
    query = selection.query
    breakdowns = [BREAKDOWNS[b] for b in selection.by]
    queues: list[int] | None = [0, 0]  # TCP's queued bytes, rx and tx, where the source has them
    tally = None if breakdowns else _count_fast(source, query, queues)
    groups: dict[str, Groups] = {}
    if tally is None:
        tally, groups = _count_records(source, query, breakdowns, queues)
    elif not getattr(source, "counts_queues", False):
        queues = None
    families = [*_node_family(query, tally, queues), _sockets_family(query, tally)]
    if breakdowns:
        dropped: list[Sample] = []
        for breakdown in breakdowns:
            family, folded = _breakdown_family(breakdown, groups[breakdown.name], selection)
            families.append(family)
            dropped.append(Sample((("metric", breakdown.name),), folded))
        families.append(
            MetricFamily(
                "tcpstates_series_dropped",
                f"Label sets folded into the {OVERFLOW} series of a breakdown because of"
                f" the cap of {selection.max_series} label sets (--max-series).",
                MetricType.GAUGE,
                tuple(dropped),
            )
        )
    families.extend(netstat_families(kernel_counters))
    if ephemeral_ports is not None:
        families.append(
            MetricFamily(
                "tcpstates_ephemeral_ports",
                "Usable local ports for outgoing connections: the size of"
                " net.ipv4.ip_local_port_range less net.ipv4.ip_local_reserved_ports.",
                MetricType.GAUGE,
                (Sample((), ephemeral_ports),),
            )
        )
    families.append(
        MetricFamily(
            "tcpstates_scrape_duration_seconds",
            "Time taken to read and count the sockets for this exposition.",
            MetricType.GAUGE,
            (Sample((), round(clock() - started, 6)),),
            unit="seconds",
        )
    )
    return tuple(families)


# node_exporter's netstat collector's default --collector.netstat.fields, over Group_Name. Its
# Ip6, Icmp6 and Udp6 fields come from /proc/net/snmp6, which is not read here.
NETSTAT_FIELDS = re.compile(
    r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)"
    r"|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts|TCPOFOQueue|TCPRcvQDrop)"
    r"|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)"
    r"|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
)


def netstat_families(counters: Mapping[str, int] | None) -> Iterable[MetricFamily]:
    """The kernel's counters that node_exporter's netstat collector publishes, as it names them
    (``node_netstat_TcpExt_ListenOverflows``, help "Statistic TcpExtListenOverflows."), so its
    dashboards and alerts read tcpstates' exposition unchanged."""
    for key, value in (counters or {}).items():
        group, _, name = key.partition(".")
        field = f"{group}_{name}"
        if NETSTAT_FIELDS.match(field):
            yield MetricFamily(
                f"node_netstat_{field}",
                f"Statistic {group}{name}.",
                MetricType.UNKNOWN,
                (Sample((), value),),
            )


def named(families: Iterable[MetricFamily], names: Collection[str]) -> tuple[MetricFamily, ...]:
    """The families among ``families`` that ``names`` asks for; all of them when it is empty.

    This is Prometheus's ``/metrics?name[]=...`` filter, as prometheus_client applies it to a
    registry. Every family here is a gauge or untyped, whose samples carry the family's name,
    so a family is wanted when its name is.
    """
    if not names:
        return tuple(families)
    return tuple(family for family in families if family.name in names)


def _count_fast(source: Source, query: Query, queues: list[int] | None) -> Tally | None:
    """Counts without records, where the source can count and nothing filters rows.

    One count per family, since counts come summed over families; that is the same number of
    kernel dumps as one count of both (the source dumps each family separately anyway).
    """
    count = getattr(source, "count", None)
    if count is None or query.filters_rows:
        return None
    tally: Tally = Counter()
    with_queues = getattr(source, "counts_queues", False)
    for family in sorted(query.families):
        one = replace(query, families=frozenset({family}))
        counts: Counter[tuple[str, TcpState]] = (
            count(one, queues=queues) if with_queues else count(one)
        )
        for (proto, state), n in counts.items():
            tally[proto, family, state] += n
    return tally


def _count_records(
    source: Source, query: Query, breakdowns: list[Breakdown], queues: list[int] | None
) -> tuple[Tally, dict[str, Groups]]:
    owners = query.needs_owners or any(b.by.needs_owners for b in breakdowns)
    reading = source.read(query, owners=owners)
    tally: Tally = Counter()
    groups: dict[str, Groups] = {b.name: Counter() for b in breakdowns}
    keyed = [(b.by.of, b.value, groups[b.name]) for b in breakdowns]  # looked up once
    for sock in select(reading, query):
        tally[sock.proto, sock.family, sock.state] += 1
        if queues is not None and sock.proto == "tcp":
            queues[0] += sock.recv_q or 0
            queues[1] += sock.send_q or 0
        for group_of, value, counts in keyed:
            counts[sock.proto, value(group_of(sock)), sock.state] += 1
    return tally, groups


def state_label(state: TcpState, proto: str) -> str:
    """The state as a label value: node_exporter's spelling (the netstat name in lower case).

    >>> state_label(TcpState.FIN_WAIT1, "tcp"), state_label(TcpState.CLOSE, "udp")
    ('fin_wait1', 'unconn')
    """
    return state_name(state, proto).lower()


def _node_family(query: Query, tally: Tally, queues: list[int] | None) -> Iterable[MetricFamily]:
    if "tcp" not in query.protos:
        return ()
    counts: Counter[TcpState] = Counter()
    for (proto, _, state), n in tally.items():
        if proto == "tcp":
            counts[state] += n
    samples = tuple(
        Sample((("state", state_label(state, "tcp")),), counts[state])
        for state in TCP_STATES
        if counts[state]
    )
    if queues is not None:  # node_exporter's two byte sums, in the same metric as it has them
        rx, tx = queues
        samples += (Sample((("state", "rx_queued_bytes"),), rx),)
        samples += (Sample((("state", "tx_queued_bytes"),), tx),)
    return (MetricFamily(NODE_METRIC, NODE_HELP, MetricType.GAUGE, samples),)


def _sockets_family(query: Query, tally: Tally) -> MetricFamily:
    """Every state for every protocol and family, zeros included: stable series for alerts."""
    samples = []
    for proto in ("tcp", "udp"):
        if proto not in query.protos:
            continue
        listed = [s for s in (TCP_STATES if proto == "tcp" else UDP_STATES) if query.wants_state(s)]
        seen = sorted({s for p, _, s in tally if p == proto} - set(listed))
        for family in sorted(query.families):
            for state in [*listed, *seen]:
                labels = (
                    ("proto", proto),
                    ("family", f"ipv{family}"),
                    ("state", state_label(state, proto)),
                )
                samples.append(Sample(labels, tally[proto, family, state]))
    return MetricFamily(
        "tcpstates_sockets",
        "Sockets per protocol, address family and state (a v4-mapped address is ipv6).",
        MetricType.GAUGE,
        tuple(samples),
    )


def _breakdown_family(
    breakdown: Breakdown, counts: Groups, selection: Selection
) -> tuple[MetricFamily, int]:
    """The family and how many label sets were folded into the overflow series."""
    kept, overflow, folded = cap_series(counts, selection.max_series)
    samples = [
        Sample(
            (("proto", proto), (breakdown.label, group), ("state", state_label(state, proto))),
            n,
        )
        for (proto, group, state), n in [*kept, *overflow]
    ]
    family = MetricFamily(breakdown.name, breakdown.help, MetricType.GAUGE, tuple(samples))
    return family, folded


Series = list[tuple[tuple[str, str, TcpState], int]]


def cap_series(counts: Groups, max_series: int) -> tuple[Series, Series, int]:
    """Keep whole groups, largest first, while their label sets fit in ``max_series``.

    A group is kept with all its states or not at all, so a kept group's numbers are whole.
    The first group that does not fit, and every smaller one, is folded into one OVERFLOW group
    per protocol and state (not counted against the cap: at most a dozen label sets). Returns
    (kept series, overflow series, label sets folded).

    >>> c = Counter({("tcp", "80", TcpState.LISTEN): 1, ("tcp", "80", TcpState.ESTABLISHED): 5,
    ...              ("tcp", "22", TcpState.LISTEN): 1})
    >>> kept, overflow, folded = cap_series(c, 2)
    >>> [(k[1], k[2].name, n) for k, n in kept], [(k[1], n) for k, n in overflow], folded
    ([('80', 'ESTABLISHED', 5), ('80', 'LISTEN', 1)], [('(other)', 1)], 1)
    """
    totals: Counter[str] = Counter()
    width: Counter[str] = Counter()  # label sets per group
    for (_, group, _), n in counts.items():
        totals[group] += n
        width[group] += 1
    # Every group has at least one label set, so no more than max_series groups can be kept:
    # rank only those candidates (there may be tens of thousands of client ports).
    candidates = heapq.nsmallest(max_series, totals, key=lambda g: (-totals[g], _natural(g)))
    rank: dict[str, int] = {}
    used = 0
    for group in candidates:
        if used + width[group] > max_series:
            break
        rank[group] = len(rank)
        used += width[group]
    kept: Series = []
    spill: Counter[tuple[str, str, TcpState]] = Counter()
    for (proto, group, state), n in counts.items():
        if group in rank:
            kept.append(((proto, group, state), n))
        else:
            spill[proto, OVERFLOW, state] += n
    kept.sort(key=lambda item: (rank[item[0][1]], item[0][0], item[0][2]))
    overflow: Series = sorted(spill.items(), key=lambda item: (item[0][0], item[0][2]))
    return kept, overflow, len(counts) - used


def _natural(group: str) -> tuple[int, int, str]:
    """Ties in size go by port number (numerically), else by name."""
    return (0, int(group), "") if group.isascii() and group.isdigit() else (1, 0, group)
