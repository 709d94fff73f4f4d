"""``tcpstates counters``: the options; reading and showing them is counters/run.py."""

from __future__ import annotations

from typing import Any

import click

from tcpstates.cli.options import (
    color_option,
    format_option,
    interval_option,
    lang_option,
    no_pager_option,
    place_options,
)
from tcpstates.cli.requests import CountersRequest

EPILOG = """\b
PATTERN is a counter's name as nstat prints it (TcpExtListenOverflows), or
a shell glob over those names ('TcpExt*Syn*', '*Retrans*'), in any case.
Without one: the Tcp and TcpExt groups. Counters at 0 (with --interval:
that did not change) are left out unless -z, or named whole.

\b
A network namespace's counters are its own, zero when it was made: read
with --netns they count since then, not since boot.

\b
Examples:
  tcpstates counters                         TCP's counters since boot
  tcpstates counters --interval 5            what changed in 5 s, per second
  tcpstates counters 'TcpExtListen*' 'TcpExtSyncookies*' --interval 1
  tcpstates counters --netns prod -o json    a namespace's, for a script"""


@click.command(epilog=EPILOG)
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...")
@click.option(
    "--interval",
    type=float,
    callback=interval_option,
    metavar="SECONDS",
    help="Read twice, SECONDS apart, and show each counter's change and rate per second"
    " besides its total. Default: totals only.",
)
@click.option("-z", "--zeros", is_flag=True, help="Show the counters at 0 (or unchanged) too.")
@format_option(CountersRequest.FORMATS)
@place_options(*CountersRequest.REFUSED)  # its --help offers none it would refuse
@color_option
@no_pager_option
@lang_option
@click.pass_context
def counters(ctx: click.Context, /, **params: Any) -> int:
    """The kernel's TCP counters, as nstat shows them, with what each means.

    From /proc/net/snmp and /proc/net/netstat of this network namespace, the one --netns or
    --netns-pid names, or a directory --save wrote (--from). Totals, or with --interval what
    changed and how fast: what is happening now, not since boot.
    """
    from tcpstates.cli.dispatch import execute

    return execute(ctx, CountersRequest, params)
