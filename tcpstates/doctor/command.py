"""``tcpstates doctor``: read the sockets and the kernel's counters, print findings, worst first."""

from __future__ import annotations

from typing import Any

import click

from tcpstates.cli.options import (
    color_option,
    format_option,
    lang_option,
    no_pager_option,
    place_options,
)
from tcpstates.cli.requests import DoctorRequest

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


@click.command(epilog=EPILOG)
@format_option(DoctorRequest.FORMATS)
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
