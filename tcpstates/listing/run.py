"""The listing: every socket of a place that passes the query, one row each, with its owner."""

from __future__ import annotations

from collections.abc import Iterable

from tcpstates.model.query import Query
from tcpstates.model.record import replace
from tcpstates.model.sockets import NO_DETAILS, Details, Socket
from tcpstates.render.output import Output, Skips, say_source
from tcpstates.sources.base import select

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from tcpstates.model.place import Place
    from tcpstates.render.columns import Layout, Names
    from tcpstates.sources.base import Source
    from tcpstates.sources.names import Budget, HostNames, Resolving
    from tcpstates.sources.netlink import NetlinkSource

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
    resolving: Resolving | None = None,
) -> None:
    """The listing; ``extended`` adds the Uid and Inode columns (-e), ``header`` False leaves
    the header out (-H), ``details`` reads and shows more of each socket (-i, -m, --timers,
    --cgroup), ``resolving`` names ports and hosts in a table or plain text (-r). Owners shown
    are every holder of each socket (``owners`` in JSON, ``+N`` in the Process column)."""
    from tcpstates.sources.place import open_place

    # A record carries every holder; a row only those of a socket several processes hold.
    fmt = out.resolve_format(fmt)
    machine = fmt in ("json", "jsonl", "csv")
    details = replace(details, holders=owners and machine, sharers=owners and not machine)
    source = open_place(place)
    say_source(out, source, verbose)
    chosen = layout(query, owners, source, extended=extended, header=header, details=details)
    fast = None
    if fmt in ("plain", "table") and resolving is None:  # rows for a person or a pipe
        from tcpstates.listing import packed

        fast = packed.netlink_of(source, query, chosen)
    if fast is not None:
        hidden = write_packed(fast, query, chosen, out, fmt)
    else:
        hidden = read_and_render(query, source, out, fmt, owners, chosen, resolving)
    out.stdout.flush()  # what is said on stderr comes after the listing on a terminal, not in it
    Skips(verbose, out.stderr.write).report(source)
    if hidden and owners:
        out.stderr.write(
            f"tcpstates: the sockets of {hidden} processes of other users"
            " cannot be attributed; their owner shows as -\n"
        )


def write_packed(source: NetlinkSource, query: Query, chosen: Layout, out: Output, fmt: str) -> int:
    """The plain listing or the table, of rows made straight from netlink's records
    (listing/packed.py); returns how many processes could not be looked into for owners."""
    from tcpstates.listing import packed

    hidden = 0

    def rows_of(layout: Layout) -> list[tuple[str, ...]]:
        nonlocal hidden
        rows, hidden = packed.plain_rows(source, query, layout)
        return rows

    if fmt == "plain":
        from tcpstates.render.text import write_rows

        write_rows(rows_of(chosen), chosen.columns, out.stdout, header=chosen.header)
    else:
        from tcpstates.render.table import write_table_of

        write_table_of(rows_of, chosen, out)
    return hidden


def read_and_render(
    query: Query,
    source: Source,
    out: Output,
    fmt: str,
    owners: bool,
    chosen: Layout,
    resolving: Resolving | None,
) -> int:
    """Read ``source``'s sockets and write them in ``fmt``; returns how many processes could
    not be looked into for owners."""
    details = chosen.details
    # A socket's cgroup falls back on its owner's where the source sends none: owners are then
    # looked for even if not shown. netlink sends it: a /proc scan would cost more than the rest.
    fallback = details.cgroup and not getattr(source, "gives_cgroups", False)
    reading = source.read(query, owners or query.needs_owners or fallback, details)
    sockets: Iterable[Socket] = select(reading, query)
    if details.cgroup:
        from tcpstates.sources.cgroups import completed

        sockets = completed(sockets)
    numeric = 0
    if resolving is not None:
        sockets = list(sockets)
        hosts = resolving.hosts()
        numeric = hosts.resolve(addresses(sockets))
        chosen = replace(chosen, names=names(resolving, hosts))
    render(sockets, chosen, out, fmt)
    if numeric and resolving is not None:
        out.stdout.flush()
        out.stderr.write(left_numeric(numeric, resolving.budget))
    return reading.hidden_processes


def addresses(sockets: Iterable[Socket]) -> set[str]:
    """Every address at either end of ``sockets``, once."""
    ends = set()
    for sock in sockets:
        ends.add(sock.local_address)
        ends.add(sock.remote_address)
    return ends


def names(resolving: Resolving, hosts: HostNames) -> Names:
    """-r's names for a layout; ``hosts.names`` fills as a --watch reads on."""
    from tcpstates.render.columns import Names

    return Names(hosts.names, resolving.ports())


def left_numeric(count: int, budget: Budget) -> str:
    """The line that says how many addresses reverse DNS did not name within ``budget``."""
    noun = "address" if count == 1 else "addresses"
    return (
        f"tcpstates: {count} {noun} left numeric: reverse DNS gave no answer in time"
        f" ({budget.each:g} s each, {budget.total:g} s in all)\n"
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
