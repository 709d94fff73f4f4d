"""The listing: every socket of a place that passes the query, one row each, with its owner."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from tcpstates.model.query import Query
from tcpstates.model.sockets import NO_DETAILS, Details, Socket
from tcpstates.render.output import Output, Skips, say_source

if TYPE_CHECKING:
    from tcpstates.model.place import Place
    from tcpstates.render.columns import Layout
    from tcpstates.sources.base import Source

FORMATS = ("table", "plain", "json", "jsonl", "csv")


def list_sockets(
    query: Query,
    place: Place,
    out: Output,
    fmt: str | None,
    owners: bool,
    verbose: bool,
    *,
    extended: bool = False,
    header: bool = True,
    details: Details = NO_DETAILS,
) -> None:
    """The listing; ``extended`` adds the Uid and Inode columns (-e), ``header`` False leaves
    the header out (-H). Owners shown are every holder of each socket (``owners`` in JSON, ``+N``
    in the Process column)."""
    from tcpstates.sources.base import select
    from tcpstates.sources.place import open_place

    # A record carries every holder; a row only those of a socket several processes hold.
    fmt = out.resolve_format(fmt)
    machine = fmt in ("json", "jsonl", "csv")
    details = replace(details, holders=owners and machine, sharers=owners and not machine)
    source = open_place(place)
    say_source(out, source, verbose)
    reading = source.read(query, owners=owners or query.needs_owners, details=details)
    chosen = layout(query, owners, source, extended=extended, header=header, details=details)
    render(select(reading, query), chosen, out, fmt)
    out.stdout.flush()  # what is said on stderr comes after the listing on a terminal, not in it
    Skips(verbose, out.stderr.write).report(source)
    if reading.hidden_processes and owners:
        out.stderr.write(
            f"tcpstates: the sockets of {reading.hidden_processes} processes of other users"
            " cannot be attributed; their owner shows as -\n"
        )


def layout(
    query: Query,
    owners: bool,
    source: Source,
    *,
    extended: bool = False,
    header: bool = True,
    details: Details = NO_DETAILS,
) -> Layout:
    from tcpstates.render.columns import Layout

    # The source's own dict: a watch's namespaces change from frame to frame.
    labels = getattr(source, "labels", None)
    return Layout(
        proto=len(query.protos) > 1,
        owners=owners,
        netns_labels=labels,
        extended=extended,
        header=header,
        details=details,
    )


def render(sockets: Iterable[Socket], layout: Layout, out: Output, fmt: str | None) -> None:
    fmt = out.resolve_format(fmt)
    if fmt == "table":
        from tcpstates.render.table import write_table

        write_table(sockets, layout, out)
        return
    if fmt == "plain":
        from tcpstates.render.text import render_plain

        render_plain(sockets, out.stdout, layout)
        return
    from tcpstates.render import formats

    if fmt == "csv":
        netns = layout.netns_labels is not None
        formats.render_csv(sockets, out.stdout, netns, layout.header, layout.details)
        return
    writer = {"json": formats.render_json, "jsonl": formats.render_jsonl}[fmt]
    writer(sockets, out.stdout, layout.details)
