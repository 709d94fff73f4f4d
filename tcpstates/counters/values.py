"""The kernel's counters as rows: since boot, or what changed over an interval.

nstat reads the same files and keeps a history file to show changes since its last run; a
history file written by root where others can write is a hazard, and an interval says the same
thing without one: read, wait, read again.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from tcpstates.counters.meanings import CONSTANTS, GAUGES, MEANINGS
from tcpstates.model.errors import ExitStatus, TcpstatesError
from tcpstates.sources.kernel import KernelState

# The groups in the order netstat -s prints them: /proc/net/snmp's, then /proc/net/netstat's.
GROUP_ORDER = ("Ip", "Icmp", "IcmpMsg", "Tcp", "Udp", "UdpLite", "TcpExt", "IpExt", "MPTcpExt")
DEFAULT_GROUPS = frozenset({"Tcp", "TcpExt"})  # without a PATTERN: TCP's


@dataclass(frozen=True, slots=True)
class Row:
    name: str  # as nstat prints it: TcpExtListenOverflows
    value: int  # now
    delta: int | None = None  # over the interval; None without one, and for a gauge
    rate: float | None = None  # delta per second
    gauge: bool = False  # a level or a constant (GAUGES): never a change or a rate

    @property
    def meaning(self) -> str | None:
        """The English line (a message id; the renderer translates it), where one is written."""
        return MEANINGS.get(self.name)


@dataclass(frozen=True, slots=True)
class Reading:
    rows: tuple[Row, ...]
    since: str  # what the totals count since, in words (Scope.since)
    scope: str  # host, namespace, unsure, capture
    seconds: float | None = None  # the interval measured; None: totals only


class NoSuchCounter(TcpstatesError):
    status = ExitStatus.ERROR


def nstat_values(kernel: KernelState) -> dict[str, int]:
    """Every counter under nstat's name, groups in netstat -s's order, each in the kernel's."""
    rank = {group: i for i, group in enumerate(GROUP_ORDER)}
    keyed = sorted(
        enumerate(kernel.counters.items()),
        key=lambda item: (rank.get(item[1][0].partition(".")[0], len(rank)), item[0]),
    )
    return {name.replace(".", "", 1): value for _, (name, value) in keyed}


def wanted(names: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The names ``patterns`` select (shell globs, any case, as nstat's but forgiving of case);
    TCP's without a pattern. A pattern that selects nothing is an error: a name mistyped."""
    if not patterns:
        return [n for n in names if _group(n) in DEFAULT_GROUPS]
    lowered = {n: n.lower() for n in names}
    chosen: set[str] = set()
    for pattern in patterns:
        found = fnmatch.filter(lowered.values(), pattern.lower())
        if not found:
            raise NoSuchCounter(
                f"no counter matches {pattern!r} (tcpstates counters -z '*' lists them all)"
            )
        chosen.update(found)
    return [n for n in names if lowered[n] in chosen]


def _group(name: str) -> str:
    return max((g for g in GROUP_ORDER if name.startswith(g)), key=len, default="")


def rows(
    before: dict[str, int] | None,
    now: dict[str, int],
    names: Sequence[str],
    seconds: float | None,
    shown: frozenset[str] = frozenset(),
    zeros: bool = False,
) -> tuple[Row, ...]:
    """A row for each of ``names``; without ``zeros`` those with nothing to say (a total of
    0, no change over the interval, a constant) are left out, unless named whole in ``shown``."""
    result = []
    for name in names:
        gauge = name in GAUGES
        row = Row(name, now[name], gauge=gauge)
        if before is not None and seconds and not gauge and name in before:
            delta = max(0, now[name] - before[name])  # a counter only shrinks by wrapping
            row = Row(name, now[name], delta, delta / seconds)
        quiet = name in CONSTANTS or (row.delta if row.delta is not None else row.value) == 0
        if zeros or not quiet or name in shown:
            result.append(row)
    return tuple(result)
