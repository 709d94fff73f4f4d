"""``tcpstates export``: the socket counts for Prometheus, served over HTTP or written to a file.

``--listen`` serves /metrics (metrics_server.py), reading the sockets at each scrape;
``--textfile`` writes the same text for node_exporter's textfile collector (textfile.py); with
neither, the text goes to stdout once. All three, and ``tcpstates -o openmetrics``, render with
render/openmetrics.py, so a process name is escaped the same way in each. The standard library
is enough for all of them: prometheus_client is not needed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import click

from tcpstates.cli.options import interval_option, source_option
from tcpstates.cli.signals import terminate_as_interrupt
from tcpstates.model.errors import ExitStatus, TcpstatesError

if TYPE_CHECKING:
    from tcpstates.export.metrics import MetricFamily, Selection
    from tcpstates.model.query import Query
    from tcpstates.sources.base import Source

# The same as metrics.BY, spelled out so that `tcpstates --help` need not import metrics (and
# with it the sources); a test keeps the two equal.
BY_CHOICES = ("local-port", "process")
LOOPBACK = "127.0.0.1"


class ExportError(TcpstatesError):
    """The exporter cannot listen or cannot write its file."""


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
    type=click.Choice(BY_CHOICES),
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
@source_option
def export(**options: Any) -> int:
    """Export socket counts per state for Prometheus (OpenMetrics text)."""
    if options["listen"] is not None and options["textfile"] is not None:
        raise click.UsageError("--listen and --textfile cannot be combined; run one of each")
    if options["interval"] is not None and options["textfile"] is None:
        raise click.UsageError("--interval goes with --textfile; --listen reads at each scrape")
    address = None if options["listen"] is None else _listen_option(options["listen"])
    selection = _selection(options)
    with terminate_as_interrupt():
        try:
            if address is not None:
                return serve(address, _reader(options["source"], selection))
            if options["textfile"] is not None:
                return _write_textfiles(options, selection)
            _write_stdout(options, selection)
        except KeyboardInterrupt:
            pass  # Ctrl-C or SIGTERM is how an exporter stops: a success
    return ExitStatus.OK


def gather(source: Source, selection: Selection, proc: str = "/proc") -> tuple[MetricFamily, ...]:
    """The metric families for one exposition, the port budget read from this host's ``proc``.

    This is what ``tcpstates -o openmetrics`` and every export read.
    """
    from tcpstates.export.metrics import collect
    from tcpstates.sources.kernel import read_kernel

    return collect(source, selection, ephemeral_ports=read_kernel(proc).usable_ephemeral_ports)


def _selection(options: dict[str, Any]) -> Selection:
    from tcpstates.export.metrics import Selection
    from tcpstates.model.query import Query

    protos = frozenset({"tcp", "udp"} if options["udp"] else {"tcp"})
    by = tuple(dict.fromkeys(options["by"]))  # each once, in the order given
    return Selection(Query(protos=protos), by=by, max_series=options["max_series"])


def _reader(source_name: str, selection: Selection) -> Callable[[], tuple[MetricFamily, ...]]:
    from tcpstates.sources.place import open_source

    source = open_source(source_name)
    return lambda: gather(source, selection)


def _write_stdout(options: dict[str, Any], selection: Selection) -> None:
    from tcpstates.sources.place import open_source

    write_openmetrics(
        open_source(options["source"]),
        selection.query,
        sys.stdout,
        by=selection.by,
        max_series=selection.max_series,
    )


def write_openmetrics(
    source: Source,
    query: Query,
    out: TextIO,
    by: Sequence[str] = (),
    max_series: int = 1000,
) -> None:
    """What ``tcpstates -o openmetrics`` prints: the exposition for ``query``, once.

    ``by`` takes "local-port" and "process" (any other is a usage error, as is a
    ``max_series`` below 1).
    """
    from tcpstates.export.metrics import Selection
    from tcpstates.export.render import render_openmetrics

    try:
        selection = Selection(query, tuple(dict.fromkeys(by)), max_series)
    except ValueError as e:
        raise click.UsageError(f"-o openmetrics: {e}") from None
    render_openmetrics(gather(source, selection), out)


# -- --listen ------------------------------------------------------------------------------


def parse_listen(text: str) -> tuple[str, int]:
    """``[ADDR]:PORT`` (or a bare PORT) as (host, port); no ADDR means loopback, never all.

    Exporters such as node_exporter read ``:9100`` as every interface; here a wider bind must
    be asked for by name, since socket counts, ports and process names are not for everyone.

    >>> parse_listen(":9977"), parse_listen("9977"), parse_listen("[::]:9977")
    (('127.0.0.1', 9977), ('127.0.0.1', 9977), ('::', 9977))
    >>> parse_listen("0.0.0.0:80"), parse_listen("localhost:80")
    (('0.0.0.0', 80), ('localhost', 80))
    """
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: put an IPv6 address in brackets, as in [::1]:9977")
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: expected [ADDR]:PORT with a PORT from 1 to 65535")
    return host or LOOPBACK, int(port)


def _listen_option(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--listen'") from None


def serve(address: tuple[str, int], read: Callable[[], tuple[MetricFamily, ...]]) -> int:
    """Serve /metrics on ``address`` until interrupted; each scrape calls ``read``."""
    from tcpstates.export.server import MetricsServer, listen, metrics_handler

    read()  # a source that cannot be read fails here, once, rather than at every scrape
    host, port = address
    try:
        listener = listen(address)
    except OSError as e:
        raise ExportError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    server = MetricsServer(listener, metrics_handler(read))
    bound = str(listener.getsockname()[0])
    shown = f"[{bound}]" if ":" in bound else bound
    click.echo(f"tcpstates: serving http://{shown}:{port}/metrics", err=True)
    try:
        server.run()
    finally:
        server.close()
    return ExitStatus.OK


# -- --textfile ----------------------------------------------------------------------------


def _write_textfiles(options: dict[str, Any], selection: Selection) -> int:
    """Write the file once, or every ``--interval`` until stopped.

    The first write's failure ends the command (exit 1): it is most likely a mistake in the
    path. After that a failed write (a full disk, a file replaced by a symlink) is said in one
    line and tried again at the next interval, the previous file staying whole meanwhile; the
    same failure again is not repeated, and a write that succeeds again says so.
    """
    from tcpstates.export.render import exposition
    from tcpstates.export.textfile import write_atomically

    read = _reader(options["source"], selection)
    path, interval = options["textfile"], options["interval"]
    write_atomically(path, exposition(read()))
    if interval is None:
        return ExitStatus.OK
    failing = ""
    due = time.monotonic()
    while True:
        # Keep to the schedule (no drift); after a slow read, start the next one at once.
        due = max(due + interval, time.monotonic())
        time.sleep(max(0.0, due - time.monotonic()))
        try:
            write_atomically(path, exposition(read()))
        except TcpstatesError as e:
            if str(e) != failing:
                _say(f"{e}; trying again every {interval:g} s")
            failing = str(e)
        else:
            if failing:
                _say(f"wrote {path} again")
            failing = ""


def _say(message: str) -> None:
    from tcpstates.render.safe import safe

    click.echo(f"tcpstates: {safe(message)}", err=True)
