"""Options shared by the commands (listing, trace, doctor, export): declared and parsed once."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from tcpstates.model.place import READERS
from tcpstates.model.query import End, parse_end
from tcpstates.model.states import GROUPS, TcpState, UnknownStateError, parse_states

PORT = click.IntRange(0, 65535)
FORMATS = ("table", "plain", "json", "jsonl", "csv", "openmetrics")  # -o: each command takes some


def positive_seconds(value: float | None, most: float = float("inf")) -> float | None:
    """A finite number of seconds above 0 and at most ``most``, or a usage error (exit 2).

    click's FloatRange lets nan and inf through, and sleeping that long is an OverflowError
    or a ValueError traceback deep inside a loop.
    """
    if value is None or (math.isfinite(value) and 0 < value <= most):
        return value
    limit = f" and at most {most:g}" if math.isfinite(most) else ""
    raise click.BadParameter(f"{value:g} is not a number of seconds greater than 0{limit}")


def seconds_option(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    return positive_seconds(value)


def interval_option(
    ctx: click.Context, param: click.Parameter, value: float | None
) -> float | None:
    """What repeats every SECONDS (--watch, export --interval): at most a day between two."""
    if value is None:  # not typed: click calls this for every command line, a listing's too
        return None
    from tcpstates.watch.frames import MAX_INTERVAL

    return positive_seconds(value, MAX_INTERVAL)


# ctx.meta (shared by a command and its subcommand): the states -s named one by one, not by a
# group such as ``all``; kill destroys a listener only where LISTEN was named.
NAMED_STATES = "tcpstates.named_states"


def states_option(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> frozenset[TcpState]:
    try:
        states = parse_states(values)
        named = parse_states(v for v in values if v.strip().lower() not in GROUPS)
    except UnknownStateError as e:
        raise click.BadParameter(str(e)) from None
    ctx.meta[NAMED_STATES] = ctx.meta.get(NAMED_STATES, frozenset()) | named
    return states


def state_option(help: str) -> Callable[[F], F]:
    """-s/--state, repeatable, parsed into TcpStates (any tool's spelling, or a group)."""
    return click.option(
        "-s", "--state", "states", multiple=True, callback=states_option, metavar="STATE", help=help
    )


def format_option(
    formats: Sequence[str], default: str | None = None, help: str | None = None
) -> Callable[[F], F]:
    """-o/--format with a command's own list of formats (its request's FORMATS)."""
    return click.option(
        "-o",
        "--format",
        "fmt",
        type=click.Choice(formats),
        default=default,
        show_default=default is not None,
        help=help or "Output format. Default: table on a terminal, plain otherwise.",
    )


def end_option(ctx: click.Context, param: click.Parameter, value: str | None) -> End | None:
    """--local, --remote: ADDR or ADDR%IF (the interface checked once the place is known)."""
    if value is None:
        return None
    try:
        return parse_end(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


F = TypeVar("F", bound=Callable[..., Any])


def endpoint_filters(f: F) -> F:
    """-4, -6, --port, --sport, --dport, --local, --remote: which ends a command looks at."""
    options = (
        click.option("-4", "--ipv4", "ipv4", is_flag=True, help="Only IPv4 sockets."),
        click.option(
            "-6", "--ipv6", "ipv6", is_flag=True, help="Only IPv6 sockets (v4-mapped included)."
        ),
        click.option("--port", type=PORT, help="Local or remote port N."),
        click.option("--sport", type=PORT, help="Local (source) port N."),
        click.option("--dport", type=PORT, help="Remote (destination) port N."),
        click.option(
            "--local",
            callback=end_option,
            metavar="ADDR",
            help="Local address or CIDR block; a v4 one also matches v4-mapped addresses."
            " ADDR%IF: on interface IF too (fe80::1%eth0).",
        ),
        click.option(
            "--remote",
            callback=end_option,
            metavar="ADDR",
            help="Remote address or CIDR block; ADDR%IF as for --local.",
        ),
    )
    for option in reversed(options):  # decorators apply bottom-up; keep the order in --help
        f = option(f)
    return f


def socket_filters(listening: str) -> Callable[[F], F]:
    """-s, -l, -t, -u, the endpoint filters, --pid and --process: everything that selects
    sockets, for the commands that act on a selection of them (the listing's, kill). ``listening``
    is -l's help, which says what -l means there."""
    options = (
        state_option("Only sockets in STATE; repeat for several (their union)."),
        click.option("-l", "--listening", is_flag=True, help=listening),
        click.option("-t", "--tcp", is_flag=True, help="TCP sockets (the default)."),
        click.option("-u", "--udp", is_flag=True, help="UDP sockets; with -t, both."),
        endpoint_filters,
        click.option(
            "--pid",
            type=click.IntRange(min=0),
            help="Only sockets process PID holds (first holder or any other).",
        ),
        click.option(
            "--process",
            metavar="NAME",
            help="Only sockets a process named NAME holds (glob; any holder).",
        ),
    )

    def decorate(f: F) -> F:
        for option in reversed(options):  # decorators apply bottom-up; keep the order in --help
            f = option(f)
        return f

    return decorate


source_option = click.option(
    "--source",
    type=click.Choice(READERS),
    default="auto",
    show_default=True,
    help="Where to read sockets from.",
)


color_option = click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour a table; NO_COLOR in the environment means never.",
)
wide_option = click.option(
    "-W",
    "--wide",
    is_flag=True,
    help="On a terminal, show every column and whole process names: the table (or trace's"
    " event) as wide as its content, even where lines wrap. Without it, it fits the terminal.",
)
verbose_option = click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Say which source was used and why, and which namespaces were left out.",
)


PLACE_OPTIONS = {
    "captures": click.option(
        "--from",
        "captures",
        multiple=True,
        metavar="PATH",
        help="Read captured /proc/net/tcp, tcp6, udp, udp6 text instead of this host: a"
        " directory (--save writes one), files (tables may be concatenated), or - for"
        " standard input; repeatable.",
    ),
    "netns": click.option(
        "--netns",
        metavar="NAME",
        help="Read network namespace NAME (as ip netns names it, /run/netns).",
    ),
    "netns_pid": click.option(
        "--netns-pid",
        type=click.IntRange(min=1),
        metavar="PID",
        help="Read the network namespace process PID is in (a container's).",
    ),
    "all_netns": click.option(
        "--all-netns",
        is_flag=True,
        help="Read every network namespace found through /proc/*/ns/net and /run/netns,"
        " with a Netns column; one that goes away meanwhile is left out (-v says so).",
    ),
    "source": source_option,
    "verbose": verbose_option,
}


def place_options(*refused: str) -> Callable[[F], F]:
    """--from, --netns, --netns-pid, --all-netns, --source and -v: where a command reads.

    A subcommand leaves out those its request refuses (``refused``, parameter names), so its
    --help offers none it would refuse; typed before the subcommand, they are refused in one
    line like any other.
    """

    def decorate(f: F) -> F:
        for name, option in reversed(PLACE_OPTIONS.items()):
            if name not in refused:
                f = option(f)
        return f

    return decorate


lang_option = click.option(
    "--lang",
    type=click.Choice(["en", "id"], case_sensitive=False),
    help="Language of explanations, summaries and findings: en (English) or id (Indonesian)."
    " Default: from LANGUAGE, LC_ALL, LC_MESSAGES or LANG, else English.",
)


# lifecycle.SCENARIOS' names, spelled here so that a listing need not import the state machine
# to build its options (tests/test_imports.py holds the two together).
SCENARIO_NAMES = ("open", "close", "simultaneous-close")


no_pager_option = click.option(
    "--no-pager",
    is_flag=True,
    help="Write to the terminal directly, not through $TCPSTATES_PAGER, $PAGER or less -FRX"
    " (used only on a terminal, for output longer than the screen).",
)
