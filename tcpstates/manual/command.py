"""``tcpstates help [TOPIC]``: show a manual page, whatever MANPATH says."""

from __future__ import annotations

from typing import Any

import click

from tcpstates.cli.requests import HelpRequest
from tcpstates.manual.topics import TOPICS


@click.command("help")
@click.argument(
    "topic", type=click.Choice(TOPICS), required=False, default=TOPICS[0], metavar="[TOPIC]"
)
@click.pass_context
def help_command(ctx: click.Context, /, **params: Any) -> int:
    """Show the manual page of TOPIC (default: tcpstates) through man and its pager.

    The pages are installed with tcpstates; this finds them where man would not (a venv whose
    bin is not on PATH). Without man, the page is printed as text.
    """
    from tcpstates.cli.dispatch import execute

    return execute(ctx, HelpRequest, params)
