"""``tcpstates export``: the socket counts for Prometheus, served over HTTP or written to a file.

``--listen`` serves /metrics (metrics_server.py), reading the sockets at each scrape;
``--textfile`` writes the same text for node_exporter's textfile collector (textfile.py); with
neither, the text goes to stdout once. All three, and ``tcpstates -o openmetrics``, render with
render/openmetrics.py, so a process name is escaped the same way in each. The standard library
is enough for all of them: prometheus_client is not needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from tcpstates.model.errors import ExitStatus, TcpstatesError, UsageError
from tcpstates.render.output import Output, Skips, say_source

if TYPE_CHECKING:
    from tcpstates.export.metrics import MetricFamily, Selection
    from tcpstates.model.place import Place
    from tcpstates.model.query import Query
    from tcpstates.sources.base import Source

LOOPBACK = "127.0.0.1"


class ExportError(TcpstatesError):
    """The exporter cannot listen or cannot write its file."""


def export(
    place: Place,
    selection: Selection,
    out: Output,
    listen: tuple[str, int] | None = None,
    textfile: str | None = None,
    interval: float | None = None,
    verbose: bool = False,
) -> int:
    """Serve ``listen``, write ``textfile`` (every ``interval``), or print once; ``verbose``
    says first which source reads the sockets, and why, as -v does for a listing.

    Serving and rewriting run until interrupted (KeyboardInterrupt), which the command line
    turns SIGTERM into: that is how an exporter stops.
    """
    # node_exporter reads the kernel's counters itself (its netstat collector, on by default):
    # the same names again in a file its textfile collector reads would collide with them and
    # fail each scrape's gathering. Served or printed, they are tcpstates' to give.
    read = reader(place, selection, netstat=textfile is None, said=out if verbose else None)
    if listen is not None:
        return serve(listen, read, out)
    if textfile is not None:
        return write_textfiles(textfile, interval, read, out)
    from tcpstates.export.render import render_openmetrics

    render_openmetrics(read(), out.stdout)
    return ExitStatus.OK


def metrics(query: Query, place: Place, by: Sequence[str], out: Output, verbose: bool) -> int:
    """What ``tcpstates -o openmetrics`` prints: the exposition for ``query``, once."""
    from tcpstates.sources.place import open_place

    source = open_place(place)
    say_source(out, source, verbose)
    write_openmetrics(source, query, out.stdout, by, place=place)
    Skips(verbose, out.stderr.write).report(source)
    return ExitStatus.OK


def write_openmetrics(
    source: Source,
    query: Query,
    out: TextIO,
    by: Sequence[str] = (),
    max_series: int = 1000,
    place: Place | None = None,
) -> None:
    """The exposition for ``query``, once; ``by`` takes "local-port" and "process" (any other
    is a UsageError, as is a ``max_series`` below 1)."""
    from tcpstates.export.metrics import Selection
    from tcpstates.export.render import render_openmetrics

    try:
        selection = Selection(query, tuple(dict.fromkeys(by)), max_series)
    except ValueError as e:
        raise UsageError(f"-o openmetrics: {e}") from None
    render_openmetrics(gather(source, selection, place), out)


def gather(
    source: Source, selection: Selection, place: Place | None = None, netstat: bool = True
) -> tuple[MetricFamily, ...]:
    """The metric families for one exposition, the port budget read from ``place``'s kernel
    (this namespace's when None), with its counters as node_exporter's netstat collector
    names them unless not ``netstat``.

    This is what ``tcpstates -o openmetrics`` and every export read.
    """
    from tcpstates.export.metrics import collect
    from tcpstates.model.place import Place
    from tcpstates.sources.place import kernel_of

    kernel, _ = kernel_of(place or Place())
    return collect(
        source,
        selection,
        ephemeral_ports=kernel.usable_ephemeral_ports,
        kernel_counters=kernel.counters if netstat else None,
    )


def reader(
    place: Place, selection: Selection, netstat: bool = True, said: Output | None = None
) -> Callable[[], tuple[MetricFamily, ...]]:
    """What each scrape or rewrite calls: the place is found once, its sockets read each time
    (and the source it was found with said on ``said``, when given)."""
    from tcpstates.sources.place import open_place

    source = open_place(place)
    if said is not None:
        say_source(said, source, True)
    return lambda: gather(source, selection, place, netstat)


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


def serve(
    address: tuple[str, int], read: Callable[[], tuple[MetricFamily, ...]], out: Output
) -> int:
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
    out.say(f"serving http://{shown}:{port}/metrics")
    try:
        server.run()
    finally:
        server.close()
    return ExitStatus.OK


# -- --textfile ----------------------------------------------------------------------------


def write_textfiles(
    path: str,
    interval: float | None,
    read: Callable[[], tuple[MetricFamily, ...]],
    out: Output,
) -> int:
    """Write the file once, or every ``--interval`` until stopped.

    The first write's failure ends the command (exit 1): it is most likely a mistake in the
    path. After that a failed write (a full disk, a file replaced by a symlink) is said in one
    line and tried again at the next interval, the previous file staying whole meanwhile; the
    same failure again is not repeated, and a write that succeeds again says so.
    """
    from tcpstates.export.render import exposition
    from tcpstates.export.textfile import write_atomically

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
                out.say(f"{e}; trying again every {interval:g} s")
            failing = str(e)
        else:
            if failing:
                out.say(f"wrote {path} again")
            failing = ""
