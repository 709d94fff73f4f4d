"""``tcpstates trace``: stream TCP state transitions from the kernel's tracepoint."""

from __future__ import annotations

from typing import Any

import click

from tcpstates.cli.options import (
    endpoint_filters,
    format_option,
    place_options,
    seconds_option,
    state_option,
    wide_option,
)
from tcpstates.cli.requests import TraceRequest


@click.command(
    epilog="""\b
Needs root (tracefs). The process shown holds the socket, where it still
exists when the event is read; else the task on the CPU at the transition
(none in softirq context). TIME_WAIT is never traced: the kernel swaps in a
timewait socket, and the full socket reports FIN_WAIT2 (or CLOSING) -> CLOSE.

\b
Only the transitions of one network namespace are shown: the one tcpstates
runs in (under ip netns exec X, X's), or the one --netns or --netns-pid
names; --all-netns shows every namespace's, each with its Netns. Each event
is placed by its task (in process context), its connection's earlier events,
or a lookup of its socket inside each namespace; one whose socket was gone
before it could be placed is left out and counted on stderr at the end.
PIDs are as tcpstates's /proc shows them (on the host: the host's pids).

\b
Each trace makes its own instance, instances/tcpstates-PID-TOKEN, and holds
its trace_pipe open; --cleanup (and each start) removes only the instances
no running trace holds, so traces in other PID namespaces are left alone.
Lines it cannot parse (a process may name itself anything) are skipped and
counted on stderr; the trace goes on.

\b
On a terminal narrower than an event's line, the event takes more than one:
time, OLD -> NEW, ms and owner, then its ends indented under them. Piped,
or with -W, one line each.

\b
Examples:
  tcpstates trace                        every transition until Ctrl-C
  tcpstates trace -s close-wait --port 8080
  tcpstates trace -o jsonl --duration 10
  tcpstates trace --netns-pid 4242       a container's transitions
  tcpstates trace --cleanup              remove instances a killed run left""",
)
@state_option("Only transitions into or out of STATE; repeat for several.")
@endpoint_filters
@format_option(TraceRequest.FORMATS, default="plain", help="Output format.")
@wide_option
@click.option(
    "--duration",
    type=float,
    callback=seconds_option,
    metavar="SECONDS",
    help="Stop after SECONDS.",
)
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="Stop after N transitions.")
@click.option(
    "--cleanup",
    is_flag=True,
    help="Remove the tracing instances no running trace holds (left by killed runs), then exit.",
)
@place_options(*TraceRequest.REFUSED)  # its --help offers none it would refuse
@click.pass_context
def trace(ctx: click.Context, /, **params: Any) -> int:
    """Stream TCP state transitions as they happen (sock:inet_sock_set_state)."""
    from tcpstates.cli.dispatch import execute
    from tcpstates.cli.requests import CleanupRequest, TraceRequest

    return execute(ctx, CleanupRequest if params["cleanup"] else TraceRequest, params)
