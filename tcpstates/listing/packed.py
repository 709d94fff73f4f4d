"""A listing's rows straight from the kernel's records, with no Socket between them.

A listing from netlink (the table a terminal gets, and ``-o plain``, the form scripts and
``| grep`` read) made a Socket of each record and then a row of each Socket's attributes. Here
the row is made from the record's fields directly. Beyond the kernel's dump and the owner
scan, at 50,000 sockets that costs 0.8 µs a socket where the two steps take 1.7 (a TIME_WAIT
listing), and 1.2 where they take 2.3 (every socket, with owners): a seventh of a TIME_WAIT
listing's wall time.

Only the common record takes the short way: one with no interface (no scope, no
SO_BINDTODEVICE), not an IPv6 socket that also takes IPv4, and held by at most one process.
Any other goes through the plain path, netlink.decode then Layout's own row, so whatever a
row can show is written once, there. tests/test_listing_packed.py holds the two to the same
rows on every form of address, state and owner.
"""

from __future__ import annotations

import _socket as socket

from tcpstates.model.sockets import address_prefix, owner
from tcpstates.model.states import BY_CODE
from tcpstates.render.columns import (
    KERNEL_OWNED_CELLS,
    STATE_NAMES,
    UNSEEN,
    UNSEEN_OWNER_CELLS,
    Layout,
    owner_cells,
)
from tcpstates.sources import netlink
from tcpstates.sources.inet_diag import V6ONLY_OF_TYPE

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from typing import Any

    from tcpstates.model.query import Query
    from tcpstates.sources.base import Source
    from tcpstates.sources.owners import Owner

# The nlmsg_type that marks an IPv6 socket taking IPv4 too (its address shows as "*").
_DUAL_STACK = frozenset(kind for kind, v6only in V6ONLY_OF_TYPE.items() if v6only is False)


def netlink_of(source: Source, query: Query, layout: Layout) -> netlink.NetlinkSource | None:
    """``source`` if the rows of a listing of it in ``layout`` can be made here (netlink's
    records of the namespace this process is in, no filter left to apply to the rows, no detail
    column, no names); else None."""
    shown = layout.details
    if shown.info or shown.memory or shown.timers or shown.cgroup or query.filters_rows:
        return None
    if layout.netns_labels is not None or layout.names is not None:
        return None
    return source if isinstance(source, netlink.NetlinkSource) else None


def plain_rows(
    source: netlink.NetlinkSource, query: Query, layout: Layout
) -> tuple[list[tuple[str, ...]], int]:
    """The cells of every row of the listing (``layout.rows`` of the source's sockets), and
    how many processes could not be looked into for owners."""
    # Streamed: no row is written before the last is made, so a failed read writes nothing.
    raw = source.records(query, layout.owners, layout.details, streamed=True)
    scan = raw.owners
    by_inode = {} if scan is None else scan.by_inode
    shared = {} if scan is None else scan.shared
    plain_row = layout.numeric_row_maker()
    lead_proto, extended, owners = layout.proto, layout.extended, layout.owners
    ntohs, inet, dual_stack = socket.ntohs, socket.AF_INET, _DUAL_STACK
    # Per family, raw address -> "address:": IPv4's 0.0.0.0 and IPv6's :: are both 16 zeros.
    prefixes: dict[int, dict[bytes, str]] = {inet: {}, socket.AF_INET6: {}}
    held: dict[int, tuple[str, str]] = {}  # id of an Owner (one per process) -> its two cells
    # A port as the kernel sends it (network order) -> its cell; a count -> its text. A look-up
    # costs 25 ns where ntohs and str cost 100, and 40 for a queue's str: 2 ms of a TIME_WAIT
    # listing of 20,000 sockets, measured. At most 65,536 ports; as many counts as differ.
    ports: dict[int, str] = {0: "*"}
    counts: dict[int, str] = {}

    def port_cell(raw: int) -> str:
        text = ports[raw] = str(ntohs(raw))
        return text

    def count_cell(count: int) -> str:
        text = counts[count] = str(count)
        return text

    def prefix(family: int, raw: bytes) -> str:
        address = socket.inet_ntop(family, raw[:4] if family == inet else raw)
        text = prefixes[family][raw] = address_prefix(address)
        return text

    def holder_cells(found: Owner) -> tuple[str, str]:
        cells = held[id(found)] = owner_cells(owner(found.pid, found.process))
        return cells

    def the_plain_way(record: tuple[Any, ...], proto: str) -> tuple[str, ...]:
        sockets = netlink.decode([record], proto, by_inode)
        if scan is not None:
            sockets = scan.fill_holders(sockets, every=False)
        return plain_row(next(iter(sockets)))

    rows: list[tuple[str, ...]] = []
    add = rows.append
    for proto, records in raw.dumps:
        names = [STATE_NAMES[proto][state] for state in BY_CODE]
        for record in records:
            (_, kind, _, _, _, family, code, _, _, sport, dport, src, dst,
             index, _, rqueue, wqueue, uid, inode) = record  # fmt: skip
            known = prefixes.get(family)
            if index or kind in dual_stack or inode in shared or known is None:
                add(the_plain_way(record, proto))
                continue
            cells: tuple[str, ...] = (
                names[code],
                counts.get(rqueue) or count_cell(rqueue),
                counts.get(wqueue) or count_cell(wqueue),
                (known.get(src) or prefix(family, src)) + (ports.get(sport) or port_cell(sport)),
                (known.get(dst) or prefix(family, dst)) + (ports.get(dport) or port_cell(dport)),
            )
            if lead_proto:
                cells = (proto, *cells)
            if extended:
                cells += (UNSEEN if uid is None else str(uid), str(inode))
            if owners:
                found = by_inode.get(inode)
                if found is not None:
                    cells += held.get(id(found)) or holder_cells(found)
                else:
                    cells += KERNEL_OWNED_CELLS if inode == 0 else UNSEEN_OWNER_CELLS
            add(cells)
    return rows, 0 if scan is None else scan.hidden_processes
