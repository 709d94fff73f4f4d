"""``tcpstates trace``: stream TCP state transitions from the kernel's tracepoint."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from tcpstates.cli.options import (
    endpoint_filters,
    families,
    netns_options,
    seconds_option,
    states_option,
    where_of,
)
from tcpstates.cli.signals import terminate_as_interrupt
from tcpstates.model.errors import ExitStatus
from tcpstates.model.place import AllNetns, Where
from tcpstates.model.query import Query

if TYPE_CHECKING:
    from tcpstates.trace.places import Placer


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
Examples:
  tcpstates trace                        every transition until Ctrl-C
  tcpstates trace -s close-wait --port 8080
  tcpstates trace -o jsonl --duration 10
  tcpstates trace --netns-pid 4242       a container's transitions
  tcpstates trace --cleanup              remove instances a killed run left""",
)
@click.option(
    "-s",
    "--state",
    "states",
    multiple=True,
    callback=states_option,
    metavar="STATE",
    help="Only transitions into or out of STATE; repeat for several.",
)
@endpoint_filters
@click.option(
    "-o",
    "--format",
    "fmt",
    type=click.Choice(["plain", "jsonl", "csv"]),
    default="plain",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--duration",
    type=float,
    callback=seconds_option,
    metavar="SECONDS",
    help="Stop after SECONDS.",
)
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="Stop after N transitions.")
@netns_options(
    "Trace",
    "Trace every network namespace, with a Netns column (plain); each event's namespace is"
    " in its netns field (jsonl, csv) whatever the place.",
)
@click.option(
    "--cleanup",
    is_flag=True,
    help="Remove the tracing instances no running trace holds (left by killed runs), then exit.",
)
def trace(**options: Any) -> int:
    """Stream TCP state transitions as they happen (sock:inet_sock_set_state)."""
    from tcpstates.render.safe import safe
    from tcpstates.trace import tracefs

    where = where_of(options)  # two places at once is a usage error, before anything is touched
    root = tracefs.tracefs_root()
    removed = tracefs.remove_stale(root)
    if options["cleanup"]:
        for name in removed:  # only root makes instances, but a name is still anyone's text
            click.echo(f"removed {root}/instances/{safe(name)}")
        if not removed:
            click.echo("no stale tracing instances")
        return ExitStatus.OK
    query = _query(options)
    with terminate_as_interrupt():
        try:
            placer = _placer(where)  # first: a namespace that is not there leaves nothing behind
            try:
                instance = tracefs.Instance(root, _kernel_filter(query))
                return _stream(instance, query, where, placer, options)
            finally:
                placer.places.close()
        except KeyboardInterrupt:
            return ExitStatus.OK  # Ctrl-C is how a trace normally ends; the instance is gone


def _stream(
    instance: Any, query: Query, where: Where, placer: Placer, options: dict[str, Any]
) -> int:
    from tcpstates.trace.events import Owners, Skipped, follow
    from tcpstates.trace.render import SkipNotice, TraceWriter

    notice = SkipNotice(sys.stderr)
    labels = placer.places.labels if isinstance(where, AllNetns) else None
    owners = Owners(inode_of=placer.places.inode_of)
    try:
        with instance:
            writer = TraceWriter(sys.stdout, options["fmt"], labels)
            stream = follow(
                instance, query, options["duration"], options["count"], owners=owners, placer=placer
            )
            for item in stream:
                if isinstance(item, Skipped):
                    notice.add(item.lines)
                    continue
                writer.write(item)
                writer.flush()
            overruns = instance.overruns()
    finally:
        notice.close()  # Ctrl-C too: what was skipped is said before leaving
        if placer.unplaced:
            sys.stderr.write(
                f"tcpstates: left out {placer.unplaced} transitions that could not be placed in a"
                " network namespace (the socket had gone before it was looked up, or its ends"
                " were in use in two namespaces)\n"
            )
    if overruns:
        sys.stderr.write(f"tcpstates: the kernel overwrote {overruns} events we read too late\n")
    return ExitStatus.OK


def _placer(where: Where) -> Placer:
    from tcpstates.trace.places import Placer, open_places

    return Placer(open_places(where))


def _kernel_filter(query: Query) -> str:
    from tcpstates.trace.events import kernel_filter

    return kernel_filter(query)


def _query(options: dict[str, Any]) -> Query:
    return Query(
        families=families(options),
        states=options["states"],
        port=options["port"],
        sport=options["sport"],
        dport=options["dport"],
        local=options["local"],
        remote=options["remote"],
    )
