"""Which options each command takes, derived from its request's fields, and the refusals.

An option applies to a command when the command's request has the field the option fills:
the query options fill ``query``, the place options ``place``, and every other option the
field of its own name. Typed options that do not apply are refused with exit 2 and one line
naming both; options left at their defaults are never refused, so only what was typed counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from tcpstates.cli.requests import Request
from tcpstates.model.errors import UsageError

QUERY_OPTIONS = frozenset(
    {
        "states",
        "listening",
        "tcp",
        "udp",
        "ipv4",
        "ipv6",
        "port",
        "sport",
        "dport",
        "local",
        "remote",
        "pid",
        "process",
    }  # fmt: skip
)
PLACE_OPTIONS = frozenset({"netns", "netns_pid", "all_netns", "captures", "source"})

# Where an option belongs when it applies nowhere near what was typed: said after the refusal.
HINTS = {
    "replace": "it goes with --save DIR",
    "live": "it goes with --scenario NAME",
    "no_owners": "it goes with a listing",
    "wide": "it goes with a listing, --watch, kill or trace on a terminal",
    "max_series": "it goes with export --by",
}


def field_of(option: str) -> str:
    """The request field an option fills."""
    if option in QUERY_OPTIONS:
        return "query"
    if option in PLACE_OPTIONS:
        return "place"
    return option


def field_names(request_type: type[Request]) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(request_type))


def applies(request_type: type[Request], options: Iterable[str]) -> frozenset[str]:
    """Of ``options`` (parameter names), those ``request_type`` has a field for and does not
    refuse whatever the other values are."""
    fields = field_names(request_type)
    return frozenset(o for o in options if field_of(o) in fields and o not in request_type.REFUSED)


def check_fields(
    request_type: type[Request], typed: Mapping[str, Any], flags: Mapping[str, str]
) -> None:
    """Refuse a typed option ``request_type`` has no field for."""
    fields = field_names(request_type) | request_type.IMPLIED
    for name in typed:
        if field_of(name) not in fields:
            _refuse(name, request_type.NAME, HINTS.get(name), flags)


def check_request(request: Request, typed: Mapping[str, Any], flags: Mapping[str, str]) -> None:
    """Refuse what the built request cannot honour: options it refuses, and a format it does
    not write (never a fall-back to another one)."""
    refused = request.refused()
    for name in typed:
        if name in refused:
            _refuse(name, request.NAME, refused[name], flags)
    fmt = typed.get("fmt")
    if fmt is not None and fmt not in request.FORMATS:
        writes = ", ".join(request.FORMATS)
        raise UsageError(f"-o {fmt} does not apply to {request.NAME}; it writes {writes}")
    if "color" in typed and fmt is not None and fmt != "table":
        raise UsageError(f"--color does not apply to -o {fmt}; only a table has colours")
    if "wide" in typed and fmt is not None and fmt != request.FITTED:
        fitted = "a table" if request.FITTED == "table" else f"-o {request.FITTED}"
        raise UsageError(
            f"--wide does not apply to -o {fmt}: only {fitted} is fitted to the terminal"
        )


def _refuse(name: str, command: str, why: str | None, flags: Mapping[str, str]) -> None:
    reason = f": {why}" if why else ""
    raise UsageError(f"{flags.get(name, name)} does not apply to {command}{reason}")


def reference(commands: Iterable[type[Request]], flags: Mapping[str, str]) -> str:
    """The man page's COMMANDS AND OPTIONS section (roff), derived as the refusals are.

    ``flags`` maps every parameter name to the option as typed (``--state``); an option a
    command takes only with another (``--live`` with ``--scenario``) is listed as it applies.
    """
    lines = [
        ".SH COMMANDS AND OPTIONS",
        "Each command takes the options listed under it and refuses any other option typed,",
        "with exit status 2 and one line naming both; options typed before a subcommand's name",
        "go to it the same way. A format it does not write is refused, never replaced.",
        '.\\" Generated from tcpstates/cli/requests.py: pytest tests/test_docs.py --update-golden',
    ]
    for kind in commands:
        taken = sorted(flags[name] for name in applies(kind, flags))
        lines += [".TP", f".B {kind.NAME}".replace("-", "\\-")]
        text = ", ".join(taken) if taken else "none"
        if kind.FORMATS:
            text += "; writes " + ", ".join(kind.FORMATS)
        lines.append(text.replace("-", "\\-") + ".")
    return "\n".join(lines) + "\n"
