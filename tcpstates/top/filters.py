"""What is typed into top's filter bar, as the Query the command line would build.

The words are the command line's options without their dashes, so that nothing new is learnt:
``state:close-wait port:8080 process:nginx`` filters as ``-s close-wait --port 8080 --process
nginx`` does. A word without a key is a process name (a glob, as --process takes). The typed
filter narrows what the command line asked to read; it never widens it.
"""

from __future__ import annotations

import shlex

from tcpstates.model.i18n import _
from tcpstates.model.query import Query, parse_network
from tcpstates.model.record import replace
from tcpstates.model.states import GROUPS, TcpState, UnknownStateError, parse_states

KEYS = ("state", "port", "sport", "dport", "local", "remote", "pid", "process")
_ALIASES = {"s": "state", "p": "process"}


class FilterError(ValueError):
    """A filter that cannot be read; its message is one line for the filter bar."""


def parse_filter(text: str, base: Query) -> Query:
    """``base`` narrowed by the words of ``text``.

    >>> q = parse_filter("state:close-wait port:8080 nginx", Query())
    >>> sorted(s.name for s in q.states), q.port, q.process
    (['CLOSE_WAIT'], 8080, 'nginx')
    >>> parse_filter("colour:red", Query())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tcpstates.top.filters.FilterError: colour: no such key; keys: state port sport dport ...
    """
    fields: dict[str, object] = {}
    states: list[str] = []
    for word in text.split():
        key, colon, value = word.partition(":")
        if not colon:
            key, value = "process", word
        key = _ALIASES.get(key.lower(), key.lower())
        if key not in KEYS:
            raise FilterError(
                _("{key}: no such key; keys: {keys}").format(key=key, keys=" ".join(KEYS))
            )
        if not value:
            raise FilterError(_("{key}: needs a value ({key}:VALUE)").format(key=key))
        if key == "state":
            states += value.split(",")
        else:
            fields[key] = _value(key, value)
    if states:
        fields["states"] = _narrowed(base.states, _states(states))
    return replace(base, **fields)


def _value(key: str, value: str) -> object:
    if key in ("port", "sport", "dport", "pid"):
        if not value.isdecimal() or (key != "pid" and int(value) > 65535):
            wrong = _("{word}: not a pid") if key == "pid" else _("{word}: not a port, 0 to 65535")
            raise FilterError(wrong.format(word=f"{key}:{value}"))
        return int(value)
    if key in ("local", "remote"):
        try:
            return parse_network(value)
        except ValueError as e:
            raise FilterError(f"{key}:{value}: {e}") from None
    return value  # process: a glob


def _states(texts: list[str]) -> frozenset[TcpState]:
    try:
        return parse_states(texts)
    except UnknownStateError as e:
        groups = ", ".join(GROUPS)
        why = f"no such state (a name such as close-wait, or {groups})"
        raise FilterError(f"state:{e.text}: {why}") from None


def _narrowed(read: frozenset[TcpState], typed: frozenset[TcpState]) -> frozenset[TcpState]:
    """The typed states within those read (every state when none was given)."""
    return typed & read if read else typed


# The command line's filter options, and the key each is in the filter bar.
_OPTIONS = {
    "-s": "state",
    "--state": "state",
    "--port": "port",
    "--sport": "sport",
    "--dport": "dport",
    "--local": "local",
    "--remote": "remote",
    "--pid": "pid",
    "--process": "process",
}


def from_command(command: str) -> str:
    """The filter bar's words for the sockets a tcpstates command line selects (what a doctor
    finding says to run next): its filter options, the rest (--summary, kill) left out.

    >>> from_command("tcpstates kill -s close-wait --pid 812 --dry-run")
    'state:close-wait pid:812'
    """
    words = shlex.split(command)
    found = [f"{_OPTIONS[a]}:{b}" for a, b in zip(words, words[1:], strict=False) if a in _OPTIONS]
    return " ".join(found)
