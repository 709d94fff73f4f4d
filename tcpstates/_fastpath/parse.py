"""The argument lists the light front end takes, read into the values the click command builds.

A yes here is a promise that click would build the same values (tests/test_fastpath.py checks
it on generated lists); anything this module is unsure of gets None, and click reads it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs 2 ms to load; mypy reads this name as typing's
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from tcpstates.model.query import End, Query
    from tcpstates.model.sockets import Details

FORMATS = {"listing": ("plain", "json", "jsonl", "csv"), "summary": ("plain", "json", "jsonl")}
# Flags by every spelling (short ones may be combined, as in -tanp), valued options likewise.
_SHORT_FLAGS = {
    "t": "tcp", "u": "udp", "4": "ipv4", "6": "ipv6", "n": "numeric", "H": "no_header",
    "a": "all_states", "l": "listening", "p": "processes", "e": "extended", "i": "info",
    "m": "memory",
}  # fmt: skip
_LONG_FLAGS = {
    "--tcp": "tcp", "--udp": "udp", "--ipv4": "ipv4", "--ipv6": "ipv6", "--numeric": "numeric",
    "--no-header": "no_header", "--all": "all_states", "--listening": "listening",
    "--processes": "processes", "--no-owners": "no_owners", "--summary": "summary",
    "--extended": "extended", "--info": "info", "--memory": "memory", "--timers": "timers",
}  # fmt: skip
_SHORT_VALUED = {"s": "states", "o": "fmt"}
_LONG_VALUED = {
    "--state": "states", "--port": "port", "--sport": "sport", "--dport": "dport",
    "--local": "local", "--remote": "remote", "--format": "fmt",
}  # fmt: skip
# What a summary's request has no field for: click refuses these with it.
_NOT_WITH_SUMMARY = frozenset(
    {"no_owners", "no_header", "processes", "extended", "info", "memory", "timers"}
)
# Columns a record carries always: click refuses them with a record's formats.
_COLUMNS_ONLY = frozenset({"extended", "timers"})
MAX_PORT = 65535
MISSING = "\0"  # an option's value that the argument list ends before (no argument holds NUL)


class Plan:
    """What an argument list asks for: a listing or a summary, and the values of its request."""

    __slots__ = ("summary", "query", "fmt", "flags")

    def __init__(self, summary: bool, query: Query, fmt: str | None, flags: set[str]) -> None:
        self.summary, self.query, self.fmt, self.flags = summary, query, fmt, frozenset(flags)

    @property
    def no_owners(self) -> bool:
        return "no_owners" in self.flags

    @property
    def no_header(self) -> bool:
        return "no_header" in self.flags

    def details(self) -> Details:
        """What a listing reads beyond the record (-i, -m, --timers), as its request says."""
        from tcpstates.model.sockets import Details

        info, memory, timers = (
            "info" in self.flags,
            "memory" in self.flags,
            "timers" in self.flags,
        )
        return Details(info, memory, timers)


def parse(argv: Sequence[str]) -> Plan | None:
    """The plan for ``argv``, or None unless it is a listing or a summary made only of what
    is here."""
    flags: set[str] = set()
    values: dict[str, list[str]] = {}
    for name, value in _words(argv):
        if name is None or value is MISSING:
            return None  # not ours, or a value missing: click says which
        if value is None:
            flags.add(name)
        else:
            values.setdefault(name, []).append(value)
    return _plan(flags, values)


def _words(argv: Sequence[str]) -> Iterator[tuple[str | None, str | None]]:
    """(flag, None) and (option, value) pairs; (None, None) at the first word not understood."""
    args = iter(argv)
    for arg in args:
        if arg.startswith("--"):
            name, eq, given = arg.partition("=")
            if not eq and arg in _LONG_FLAGS:
                yield _LONG_FLAGS[arg], None
            elif name in _LONG_VALUED:
                yield _LONG_VALUED[name], given if eq else next(args, MISSING)
            else:
                yield None, None
        elif arg.startswith("-") and len(arg) > 1:
            yield from _short(arg[1:], args)
        else:
            yield None, None


def _short(letters: str, args: Iterator[str]) -> Iterator[tuple[str | None, str | None]]:
    """-tan, -s LISTEN, -ojson, -tso plain: as click reads a group of short options."""
    for i, letter in enumerate(letters):
        if letter in _SHORT_FLAGS:
            yield _SHORT_FLAGS[letter], None
        elif letter in _SHORT_VALUED:
            yield _SHORT_VALUED[letter], letters[i + 1 :] or next(args, MISSING)
            return
        else:
            yield None, None
            return


def _plan(flags: set[str], values: dict[str, list[str]]) -> Plan | None:
    summary = "summary" in flags
    fmt = values.get("fmt", [None])[-1]  # click keeps an option's last value
    if fmt is not None and fmt not in FORMATS["summary" if summary else "listing"]:
        return None
    if _contradicts(flags, values, summary, fmt):
        return None
    query = _query(flags, values)
    if query is None:
        return None
    return Plan(summary, query, fmt, flags)


def _contradicts(
    flags: set[str], values: dict[str, list[str]], summary: bool, fmt: str | None
) -> bool:
    """Whether click refuses the combination: it then says why, in its words."""
    if "all_states" in flags and ("listening" in flags or "states" in values):
        return True
    if "processes" in flags and "no_owners" in flags:
        return True
    if summary:
        return bool(flags & _NOT_WITH_SUMMARY)
    if fmt in ("json", "jsonl", "csv") and flags & _COLUMNS_ONLY:
        return True
    return "no_header" in flags and fmt in ("json", "jsonl")


def _query(flags: set[str], values: dict[str, list[str]]) -> Query | None:
    from tcpstates.model.query import Query
    from tcpstates.model.states import TcpState, parse_states

    try:  # click says what is wrong with a value: a state, a port, an address
        port, sport, dport = (_port(values.get(name)) for name in ("port", "sport", "dport"))
        local, remote = (_end(values.get(name)) for name in ("local", "remote"))
        states = set(parse_states(values.get("states", ())))
    except ValueError:
        return None
    protos = {p for p in ("tcp", "udp") if p in flags} or {"tcp"}
    if "listening" in flags:
        states |= {TcpState.LISTEN, TcpState.CLOSE} if "udp" in protos else {TcpState.LISTEN}
    families = {f for f, flag in ((4, "ipv4"), (6, "ipv6")) if flag in flags} or {4, 6}
    return Query(
        protos=frozenset(protos), families=frozenset(families), states=frozenset(states),
        port=port, sport=sport, dport=dport,
        local=local.network if local else None, remote=remote.network if remote else None,
    )  # fmt: skip


def _port(typed: list[str] | None) -> int | None:
    """The last port typed, or None when none was."""
    if not typed:
        return None
    text = typed[-1]
    if not (text.isascii() and text.isdigit() and len(text) <= 5) or int(text) > MAX_PORT:
        raise ValueError(text)
    return int(text)


def _end(typed: list[str] | None) -> End | None:
    """The last --local or --remote typed, or None when none was. ADDR%IF is click's: it
    checks that the namespace read has that interface."""
    if not typed:
        return None
    from tcpstates.model.query import parse_end

    end = parse_end(typed[-1])
    if end.interface is not None:
        raise ValueError(typed[-1])
    return end
