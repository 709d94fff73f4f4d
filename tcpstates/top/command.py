"""``tcpstates top``: the options; the screen is top/app.py, opened by top/run.py."""

from __future__ import annotations

from typing import Any

import click

from tcpstates.cli.options import interval_option, lang_option, place_options, socket_filters
from tcpstates.cli.requests import TopRequest

EPILOG = """\b
Keys:
  /        filter: state:close-wait port:8080 process:nginx (the options'
           names without dashes; a bare word is a process name)
  s, r     sort by the next column, reverse the order (or click a header);
           State sorts the largest pile first
  i, Enter the selected socket's story: what happened, what comes next
  e        the selected socket's state: the manual's words, the diagram
           with live counts
  1 to 5   only the sockets in that state of the history strip
  f        doctor's findings on what is shown; Enter on one filters to
           its sockets
  k, K     destroy the selected socket, or every one shown (root; asks)
  Esc      close the filter bar or the side panel
  q        quit

\b
Marks, for one refresh: + appeared, ~ changed state, - vanished.

\b
Examples:
  tcpstates top                          every TCP socket, live
  tcpstates top -s close-wait --port 8080
  tcpstates top --netns-pid 4242         a container's sockets"""


@click.command(epilog=EPILOG)
@socket_filters("Only listening sockets (LISTEN; UNCONN for UDP).")
@click.option(
    "--interval",
    type=float,
    default=None,
    callback=interval_option,
    metavar="SECONDS",
    help="Read again every SECONDS (default 2).",
)
@click.option("--no-owners", is_flag=True, help="Do not look up owning processes (faster).")
@place_options(*TopRequest.REFUSED)  # its --help offers none it would refuse
@lang_option
@click.pass_context
def top(ctx: click.Context, /, **params: Any) -> int:
    """An interactive view: watch, sort, filter, explain and kill in one screen.

    The sockets are read again every --interval seconds, as --watch reads them: from this
    network namespace, the one --netns or --netns-pid names, or every one (--all-netns).
    Needs Textual (pip install 'tcpstates[top]') and a terminal.
    """
    from tcpstates.cli.dispatch import execute

    return execute(ctx, TopRequest, params)
