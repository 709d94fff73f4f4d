"""``tcpstates counters`` for a place: read, wait and read again when asked, then show."""

from __future__ import annotations

import time
from collections.abc import Sequence

from tcpstates.counters.values import NoSuchCounter, Reading, nstat_values, rows, wanted
from tcpstates.model.errors import ExitStatus
from tcpstates.model.place import Place
from tcpstates.render.output import Output


def counters(
    place: Place,
    patterns: Sequence[str],
    interval: float | None,
    zeros: bool,
    out: Output,
    fmt: str | None,
) -> int:
    """Show ``place``'s counters: totals, or with ``interval`` the change over it as well."""
    from tcpstates.counters.render import show
    from tcpstates.sources.place import kernel_of

    kernel, known = kernel_of(place)
    for problem in kernel.problems:
        out.say(problem)
    if not known or not kernel.counters:
        raise NoSuchCounter("no counters to read there (/proc/net/netstat and snmp are missing)")
    before: dict[str, int] | None = None
    seconds = None
    if interval:
        before = nstat_values(kernel)
        started = time.monotonic()
        time.sleep(interval)
        kernel, _ = kernel_of(place)
        seconds = time.monotonic() - started
    now = nstat_values(kernel)
    names = wanted(list(now), patterns)
    typed = {pattern.lower() for pattern in patterns}
    whole = frozenset(n for n in names if n.lower() in typed)  # named whole: shown at 0 too
    reading = Reading(
        rows(before, now, names, seconds, whole, zeros),
        kernel.scope.since(),
        kernel.scope.value,
        seconds,
    )
    show(reading, out, out.resolve_format(fmt))
    return ExitStatus.OK
