"""A listing written to a pipe, answered before click is loaded: what scripts and benchmarks run.

Loading click, the command line's requests (19 frozen dataclasses: about 15 ms of generated code)
and the other commands costs about 40 ms before a socket is read, as much as reading 50,000 of
them. ``parse`` takes only the argument lists it understands completely (states, protocols,
families, ports, the formats, ``--no-owners``, ``-n``, ``-H``) and builds the very values the
click command builds (a Query, a format, whether owners and a header are shown); ``run_fast``
hands them to the same library function, listing.run.list_sockets. Anything else, a terminal
(which gets a table and a pager), and any error return None: the click command then answers as
usual. tests/test_fastpath.py holds parse to the click command's request for every argument list
it takes, and both to the same bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tcpstates.model.query import Query

FORMATS = ("plain", "json", "jsonl", "csv")
_FLAGS = {
    "-t": "tcp", "--tcp": "tcp", "-u": "udp", "--udp": "udp",
    "-4": "ipv4", "--ipv4": "ipv4", "-6": "ipv6", "--ipv6": "ipv6",
    "--no-owners": "no_owners", "-n": "numeric", "--numeric": "numeric",
    "-H": "no_header", "--no-header": "no_header",
}  # fmt: skip
_VALUED = {
    "-s": "states", "--state": "states", "--port": "port", "--sport": "sport",
    "--dport": "dport", "-o": "fmt", "--format": "fmt",
}  # fmt: skip
MAX_PORT = 65535


class Plan:
    """What a listing argv asks for: the values the click command puts in its ListRequest."""

    __slots__ = ("query", "fmt", "no_owners", "no_header")

    def __init__(self, query: Query, fmt: str | None, no_owners: bool, no_header: bool) -> None:
        self.query, self.fmt, self.no_owners, self.no_header = query, fmt, no_owners, no_header


def parse(argv: Sequence[str]) -> Plan | None:
    """The plan for ``argv``, or None unless it is a listing made only of what is here."""
    flags: set[str] = set()
    values: dict[str, list[str]] = {}
    args = iter(argv)
    for arg in args:
        name, eq, given = arg.partition("=")
        if arg in _FLAGS:
            flags.add(_FLAGS[arg])
            continue
        if eq and name.startswith("--") and name in _VALUED:
            value: str | None = given
        elif arg in _VALUED:
            value = next(args, None)
        else:
            return None
        if value is None:
            return None  # a missing value is click's to report
        values.setdefault(_VALUED[name if eq else arg], []).append(value)
    return _plan(flags, values)


def _plan(flags: set[str], values: dict[str, list[str]]) -> Plan | None:
    fmt = values.get("fmt", [None])[-1]  # click keeps an option's last value
    if fmt is not None and fmt not in FORMATS:
        return None
    if "no_header" in flags and fmt in ("json", "jsonl"):
        return None  # refused there: click says so
    port, sport, dport = (_port(values.get(name)) for name in ("port", "sport", "dport"))
    if -1 in (port, sport, dport):
        return None
    from tcpstates.model.query import Query
    from tcpstates.model.states import UnknownStateError, parse_states

    try:
        states = parse_states(values.get("states", ()))
    except UnknownStateError:
        return None
    protos = frozenset(p for p in ("tcp", "udp") if p in flags) or frozenset({"tcp"})
    families = frozenset(f for f, flag in ((4, "ipv4"), (6, "ipv6")) if flag in flags)
    query = Query(
        protos=protos, families=families or frozenset({4, 6}), states=states,
        port=port, sport=sport, dport=dport,
    )  # fmt: skip
    return Plan(query, fmt, "no_owners" in flags, "no_header" in flags)


def _port(typed: list[str] | None) -> int | None:
    """The last port typed; None when none was, -1 when it is not one (click says why)."""
    if not typed:
        return None
    text = typed[-1]
    if not (text.isascii() and text.isdigit() and len(text) <= 5) or int(text) > MAX_PORT:
        return -1
    return int(text)


def run_fast(argv: Sequence[str]) -> int | None:
    """The exit status, or None when the click command must answer ``argv`` instead."""
    if sys.stdout.isatty():  # a table, fitted and paged: the click command's
        return None
    plan = parse(argv)
    if plan is None:
        return None
    from tcpstates._fastpath.summary import written
    from tcpstates.listing.run import list_sockets
    from tcpstates.model.errors import TcpstatesError
    from tcpstates.model.place import Place
    from tcpstates.render.output import Output

    out = Output.from_environment()
    try:
        return written(
            lambda: list_sockets(
                plan.query, Place(), out, plan.fmt, not plan.no_owners, False,
                header=not plan.no_header,
            )
        )  # fmt: skip
    except TcpstatesError:
        return None  # nothing written yet (a reading fails before rows are); click says it
