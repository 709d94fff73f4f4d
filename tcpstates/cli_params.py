"""Option values shared by the commands: states, networks and ports, parsed once each."""

from __future__ import annotations

from collections.abc import Sequence

import click

from tcpstates.query import Network, parse_network
from tcpstates.states import TcpState, UnknownStateError, parse_states

PORT = click.IntRange(0, 65535)


def states_option(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> frozenset[TcpState]:
    try:
        return parse_states(values)
    except UnknownStateError as e:
        raise click.BadParameter(str(e)) from None


def network_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Network | None:
    if value is None:
        return None
    try:
        return parse_network(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
