"""``tcpstates export``: the options; the exporter itself is export/run.py."""

from __future__ import annotations

from typing import Any

import click

from tcpstates.cli.options import interval_option, place_options
from tcpstates.cli.requests import ExportRequest
from tcpstates.summary.groups import METRIC_BY

EPILOG = """\b
Metrics: node_tcp_connection_states{state} as node_exporter's tcpstat
collector names it; tcpstates_sockets{proto,family,state};
tcpstates_sockets_by_local_port and tcpstates_sockets_by_process with --by;
tcpstates_series_dropped, tcpstates_ephemeral_ports,
tcpstates_scrape_duration_seconds.

\b
Examples:
  tcpstates export                                 print the metrics once
  tcpstates export --listen :9977                  serve 127.0.0.1:9977/metrics
  tcpstates export --listen 0.0.0.0:9977           ... on every interface
  tcpstates export --textfile /var/lib/node_exporter/textfile/tcpstates.prom \\
                   --interval 15 --by local-port"""


@click.command(epilog=EPILOG)
@click.option(
    "--listen",
    metavar="[ADDR]:PORT",
    help="Serve /metrics over HTTP, reading the sockets at each scrape. ADDR defaults to"
    " 127.0.0.1: give 0.0.0.0, [::] or an interface's address to be scraped from elsewhere."
    " At most 64 connections at once, each closed after 5 s.",
)
@click.option(
    "--textfile",
    metavar="PATH",
    help="Write the metrics to PATH (name it *.prom for node_exporter's textfile collector),"
    " atomically: a reader sees the old file or the new one, never half of one. An existing"
    " PATH must be a regular file, not a symlink, device, FIFO or directory.",
)
@click.option(
    "--interval",
    type=float,
    callback=interval_option,
    metavar="SECONDS",
    help="With --textfile: rewrite the file every SECONDS (at most a day) until stopped; a"
    " failed write is said once and tried again. Default: write once.",
)
@click.option(
    "--by",
    multiple=True,
    type=click.Choice(METRIC_BY),  # the --by engine's, as metrics' BREAKDOWNS
    help="Also count sockets per local port or per process name; repeat for both.",
)
@click.option(
    "--max-series",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    metavar="N",
    help="At most N label sets per --by metric: the largest groups are kept, the rest are"
    " summed into one (other) group and counted in tcpstates_series_dropped.",
)
@click.option("-u", "--udp", is_flag=True, help="Count UDP sockets too (tcpstates_sockets).")
@place_options(*ExportRequest.REFUSED)  # its --help offers none it would refuse
@click.pass_context
def export(ctx: click.Context, /, **params: Any) -> int:
    """Export socket counts per state for Prometheus (OpenMetrics text)."""
    from tcpstates.cli.dispatch import execute
    from tcpstates.cli.requests import ExportRequest

    return execute(ctx, ExportRequest, params)
