"""``tcpstates export``: the socket counts for Prometheus, served over HTTP or written to a file.

``--listen`` serves /metrics with prometheus_client (an optional extra), reading the sockets at
each scrape; ``--textfile`` writes the same text for node_exporter's textfile collector with the
standard library alone; with neither, the text goes to stdout once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import click

from tcpstates.cli_params import source_option
from tcpstates.errors import ExitStatus, TcpstatesError
from tcpstates.interrupts import terminate_as_interrupt

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from tcpstates.metrics import MetricFamily, Selection
    from tcpstates.query import Query
    from tcpstates.sources import Source

# The same as metrics.BY, spelled out so that `tcpstates --help` need not import metrics (and
# with it the sources); a test keeps the two equal.
BY_CHOICES = ("local-port", "process")
LOOPBACK = "127.0.0.1"
MISSING_CLIENT = "export --listen needs prometheus_client: pip install 'tcpstates[prometheus]'"
# node_exporter runs as its own user and must be able to read the file; mkstemp makes it 0600.
TEXTFILE_MODE = 0o644


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
    " Needs prometheus_client.",
)
@click.option(
    "--textfile",
    metavar="PATH",
    type=click.Path(dir_okay=False),
    help="Write the metrics to PATH (name it *.prom for node_exporter's textfile collector),"
    " atomically: a reader sees the old file or the new one, never half of one.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="With --textfile: rewrite the file every SECONDS until stopped. Default: write once.",
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
    from tcpstates.kernel import read_kernel
    from tcpstates.metrics import collect

    return collect(source, selection, ephemeral_ports=read_kernel(proc).usable_ephemeral_ports)


def _selection(options: dict[str, Any]) -> Selection:
    from tcpstates.metrics import Selection
    from tcpstates.query import Query

    protos = frozenset({"tcp", "udp"} if options["udp"] else {"tcp"})
    by = tuple(dict.fromkeys(options["by"]))  # each once, in the order given
    return Selection(Query(protos=protos), by=by, max_series=options["max_series"])


def _reader(source_name: str, selection: Selection) -> Callable[[], tuple[MetricFamily, ...]]:
    from tcpstates.sources import open_source

    source = open_source(source_name)
    return lambda: gather(source, selection)


def _write_stdout(options: dict[str, Any], selection: Selection) -> None:
    from tcpstates.sources import open_source

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
    from tcpstates.metrics import Selection
    from tcpstates.render.openmetrics import render_openmetrics

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
    try:
        from prometheus_client import CollectorRegistry, make_wsgi_app
    except ImportError:
        raise ExportError(MISSING_CLIENT) from None
    read()  # a source that cannot be read fails here, once, rather than at every scrape
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(read))
    server = _bind(address, _one_line_errors(make_wsgi_app(registry)))
    host, port = server.server_name, server.server_port  # set by Server.server_bind below
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"tcpstates: serving http://{shown}:{port}/metrics", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return ExitStatus.OK


class _Collector:
    """prometheus_client's view of our families, rebuilt at every scrape."""

    def __init__(self, read: Callable[[], tuple[MetricFamily, ...]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        for family in self._read():
            names = [name for name, _ in family.samples[0].labels] if family.samples else []
            gauge = GaugeMetricFamily(family.name, family.help, labels=names, unit=family.unit)
            for sample in family.samples:
                gauge.add_metric([value for _, value in sample.labels], sample.value)
            yield gauge


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _one_line_errors(app: WsgiApp) -> WsgiApp:
    """A source failing mid-run answers 500 with its one-line reason, not a traceback."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            return app(environ, start_response)
        except TcpstatesError as e:
            sys.stderr.write(f"tcpstates: {e}\n")
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [f"{e}\n".encode()]

    return wrapped


def _bind(address: tuple[str, int], app: WsgiApp) -> WSGIServer:
    import socket
    from socketserver import TCPServer, ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    host, port = address
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as e:
        raise ExportError(f"cannot listen on {host}:{port}: {e.strerror}") from None

    class Server(ThreadingMixIn, WSGIServer):
        address_family = family
        daemon_threads = True  # a stuck client must not keep the exporter from stopping

        def server_bind(self) -> None:
            # HTTPServer.server_bind asks DNS for our own name (getfqdn), which can hang for
            # seconds without a resolver, for a name used only in the WSGI environ.
            TCPServer.server_bind(self)
            self.server_name = str(self.server_address[0])
            self.server_port = int(self.server_address[1])
            self.setup_environ()

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per scrape would flood the journal

    try:
        return make_server(str(sockaddr[0]), int(sockaddr[1]), app, Server, Quiet)
    except OSError as e:
        raise ExportError(f"cannot listen on {host}:{port}: {e.strerror}") from None


# -- --textfile ----------------------------------------------------------------------------


def _write_textfiles(options: dict[str, Any], selection: Selection) -> int:
    from tcpstates.render.openmetrics import exposition

    read = _reader(options["source"], selection)
    path, interval = options["textfile"], options["interval"]
    due = time.monotonic()
    while True:
        write_atomically(path, exposition(read()))
        if interval is None:
            return ExitStatus.OK
        # Keep to the schedule (no drift); after a slow read, start the next one at once.
        due = max(due + interval, time.monotonic())
        time.sleep(max(0.0, due - time.monotonic()))


def write_atomically(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader sees the old file or the new, never a part.

    The text goes to a temporary file in the same directory (a rename is atomic only within
    one file system), is flushed to disk, then renamed over ``path``. The temporary name does
    not end in .prom, so the textfile collector never reads it.
    """
    import tempfile

    directory, name = os.path.split(os.path.abspath(path))
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise ExportError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), TEXTFILE_MODE)
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(e, OSError):
            raise ExportError(f"cannot write {path}: {e.strerror}") from None
        raise
    _sync_directory(directory)


def _sync_directory(directory: str) -> None:
    """Make the rename itself durable; a file system that cannot sync a directory is let be."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
