"""``tcpstates kill``: the options; selecting and destroying is kill/run.py."""

from __future__ import annotations

from typing import Any

import click

from tcpstates.cli.options import (
    color_option,
    format_option,
    lang_option,
    place_options,
    socket_filters,
    wide_option,
)
from tcpstates.cli.requests import KillRequest

EPILOG = """\b
Listeners (LISTEN; a UDP socket's UNCONN) are destroyed only when their
state is named: -s listen or -l. A group (-s all) does not name it.

\b
What it does: the application gets an error, ECONNABORTED, on its next call
on the socket; the peer gets a RST. It clears a pile, not its cause.

\b
Exit status, so that a script can tell what happened:
  0  every socket matched is gone (destroyed, or closed meanwhile), none
     matched (said on stderr), or --dry-run
  1  none could be destroyed (the kernel refused each: EPERM, EOPNOTSUPP),
     the answer was no, or the sockets could not be read
  2  a bad option, no filter, or no --yes and no terminal to ask on
  3  some were destroyed, the kernel refused others

\b
Examples:
  tcpstates kill -s close-wait --pid 1234 --dry-run   what it would destroy
  tcpstates kill -s close-wait --pid 1234             ask, then destroy
  tcpstates kill --dport 5432 --yes -o json           no question; a report
  tcpstates kill -s listen --sport 8080 --yes         a listener, named"""


@click.command(epilog=EPILOG)
@socket_filters("Listening sockets (LISTEN; UNCONN for UDP), named.")
@click.option("-y", "--yes", is_flag=True, help="Destroy without asking.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="List what would be destroyed, destroy nothing and ask nothing (exit 0).",
)
@format_option(KillRequest.FORMATS)
@place_options(*KillRequest.REFUSED)  # its --help offers none it would refuse
@color_option
@wide_option
@lang_option
@click.pass_context
def kill(ctx: click.Context, /, **params: Any) -> int:
    """Destroy the sockets a filter selects, as ss -K does (root).

    At least one filter is needed: a state, a port, an address, --pid or --process. Without
    --yes it lists them and asks on a terminal; elsewhere it destroys nothing. Each socket is
    reported destroyed, vanished (closed meanwhile) or refused, with the kernel's reason. It
    acts in this network namespace, or the one --netns or --netns-pid names.
    """
    from tcpstates.cli.dispatch import execute

    return execute(ctx, KillRequest, params)
