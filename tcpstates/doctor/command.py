"""``tcpstates doctor``: read the sockets and the kernel's counters, print findings, worst first."""

from __future__ import annotations

import math
from typing import Any

import click

from tcpstates.cli.options import (
    color_option,
    format_option,
    lang_option,
    no_pager_option,
    place_options,
)
from tcpstates.cli.requests import LOOK_INTERVAL, DoctorRequest

MAX_LOOK_INTERVAL = 60
EPILOG = """\b
Exit status, so that it can gate a script:
  0  nothing critical (warnings and info leave it at 0)
  1  the sockets, or a capture, could not be read
  2  a bad option
  3  a finding is critical

\b
Examples:
  tcpstates doctor
  tcpstates doctor --netns prod       a namespace, with its own settings
  tcpstates doctor --from DIR         a capture --save wrote on another host
  tcpstates doctor -o json | jq '.findings[] | select(.severity != "info")'"""


def look_interval(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Seconds between doctor's two looks: 0 (one look) up to a minute."""
    if math.isfinite(value) and 0 <= value <= MAX_LOOK_INTERVAL:
        return value
    raise click.BadParameter(f"{value:g} is not a number of seconds from 0 to {MAX_LOOK_INTERVAL}")


@click.command(epilog=EPILOG)
@format_option(DoctorRequest.FORMATS)
@click.option(
    "--interval",
    type=float,
    default=LOOK_INTERVAL,
    show_default=True,
    callback=look_interval,
    metavar="SECONDS",
    help="Look twice, SECONDS apart: what grows or stays between the looks (counters' rates,"
    " queues that stay full) is happening now. 0: look once, and skip those checks.",
)
@place_options(*DoctorRequest.REFUSED)  # its --help offers none it would refuse
@color_option
@no_pager_option
@lang_option
@click.pass_context
def doctor(ctx: click.Context, /, **params: Any) -> int:
    """Say why sockets pile up in a state, who holds them, and what to do.

    It reads one place: this namespace, --netns, --netns-pid, or a capture (--from; a directory
    written by --save brings the kernel's settings too, a plain table does not).
    """
    from tcpstates.cli.dispatch import execute
    from tcpstates.cli.requests import DoctorRequest

    return execute(ctx, DoctorRequest, params)
