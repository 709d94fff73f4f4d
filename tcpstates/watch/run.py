"""--watch: read a place again and again, and show what changed."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tcpstates.model.errors import UsageError
from tcpstates.model.query import Query
from tcpstates.model.record import replace
from tcpstates.model.sockets import Details, Socket
from tcpstates.render.output import Output, Skips, say_source

if TYPE_CHECKING:
    from tcpstates.model.place import Place
    from tcpstates.sources.names import Resolving

FORMATS = ("table", "jsonl")  # redrawn on a terminal; one JSON object a line anywhere else


def watch(
    query: Query,
    place: Place,
    out: Output,
    fmt: str | None,
    interval: float,
    counts_only: bool,
    owners: bool,
    verbose: bool,
    resolving: Resolving | None = None,
) -> None:
    """Redraw on a terminal (``-o table``, the default there); JSON Lines anywhere else.
    ``resolving`` (-r) names ports and hosts in the table, each address looked up once.

    It runs until interrupted (KeyboardInterrupt); the command line turns SIGTERM into one, and
    either into status 0, since that is how a watch ends.
    """
    live = (fmt or ("table" if out.rich else "jsonl")) == "table"
    if live and not out.is_terminal and out.color != "always":
        raise UsageError("--watch -o table redraws a terminal, and stdout is not one; use -o jsonl")
    if resolving is not None and not live:
        raise UsageError(
            "-r names ends in a table; --watch writes JSON Lines here, whose records keep"
            " addresses and ports numeric"
        )
    from tcpstates.watch.memory import collect_as_before, collect_less, fix_mmap_threshold

    fix_mmap_threshold()
    collecting = collect_less()
    try:
        _watch(query, place, out, interval, listing=not counts_only, live=live, owners=owners,
               verbose=verbose, resolving=resolving)  # fmt: skip
    finally:
        collect_as_before(collecting)


def _watch(
    query: Query,
    place: Place,
    out: Output,
    interval: float,
    *,
    listing: bool,
    live: bool,
    owners: bool,
    verbose: bool,
    resolving: Resolving | None,
) -> None:
    from tcpstates.listing.run import addresses, layout, left_numeric, names
    from tcpstates.sources.base import select
    from tcpstates.sources.place import open_place
    from tcpstates.watch import render as render_watch
    from tcpstates.watch.frames import frames

    source = open_place(place)
    say_source(out, source, verbose)
    owners = listing and owners  # counts show no owners: skip the /proc scan
    # The live table's Process cell says how many more hold a shared socket (nginx +3).
    details = Details(sharers=owners and live)
    # While the view is live, Rich stands in for sys.stderr and prints above the view; the
    # terminal itself (out.stderr) would tear it.
    skips = Skips(verbose, (lambda text: sys.stderr.write(text)) if live else out.stderr.write)

    hosts = resolving.hosts() if resolving is not None else None
    said = 0  # how many addresses were last said to be left numeric

    def read() -> Iterable[Socket]:
        nonlocal said
        reading = source.read(query, owners=owners or query.needs_owners, details=details)
        skips.report(source)
        if hosts is None:
            return select(reading, query)
        sockets = list(select(reading, query))
        numeric = hosts.resolve(addresses(sockets))  # only those not asked in earlier frames
        if numeric and numeric != said:
            sys.stderr.write(left_numeric(numeric, hosts.budget))
        said = numeric
        return sockets

    stream = frames(read, interval, query=query)
    if live:
        view = layout(query, owners, source, details=details)
        if hosts is not None and resolving is not None:
            view = replace(view, names=names(resolving, hosts))
        render_watch.show_live(stream, out, view, interval=interval, listing=listing)
    else:
        render_watch.write_jsonl(stream, out.stdout, changes=listing)
