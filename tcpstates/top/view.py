"""What top shows of a frame, as data: its sockets filtered, sorted and marked, the text of
the rows on screen, and each state's history. No Textual here: top/app.py and top/table.py
draw these, and tests read them directly.
"""

from __future__ import annotations

import socket
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tcpstates.model.query import Query
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState
from tcpstates.render.columns import Column, Layout
from tcpstates.render.fit import GAP, ONE_LINE_GIVE_WAY, Fitted, fit
from tcpstates.watch.frames import ChangeKind, Frame, Key, socket_key
from tcpstates.watch.render import MARKS as WATCH_MARKS

# A row's mark for one frame: the watch's change column's, so both say the same.
MARKS = {kind: mark for kind, (mark, _) in WATCH_MARKS.items()}
SPARKS = "▁▂▃▄▅▆▇█"
HISTORY = 60  # frames of counts kept per state: two minutes at the default interval


Settings = tuple[Query | None, Column, bool]  # the typed filter (None: none), sort, reverse


@dataclass(frozen=True, slots=True)
class Ordered:
    """A frame's sockets as the table lists them: filtered, sorted, each with its mark. Made on
    the reading's thread; the screen's thread makes the text of the rows on screen alone
    (``window``). Every row's text handed to a DataTable, a refresh at 50,000 sockets took
    2.9 times a --watch frame; the rows on screen alone, 1.5 (tests/benchmarks/top_bench.py)."""

    settings: Settings
    sockets: list[Socket]  # a socket that vanished is listed once more, marked "-"
    marks: dict[int, str]  # id(socket) -> "+", "~" or "-"; unmarked sockets are not in it
    on: Key | None = None  # the socket the cursor was on when this was ordered
    cursor: int | None = None  # where that socket is now; None: not listed
    gone: int = 0  # how many of ``sockets`` vanished (listed once more, marked "-")

    def mark(self, sock: Socket) -> str:
        return self.marks.get(id(sock), "")


def order(frame: Frame, layout: Layout, settings: Settings, on: Key | None = None) -> Ordered:
    """The frame's sockets that pass the typed filter, in the order asked, and where the
    socket ``on`` (the cursor's, by its ends) now is."""
    typed, column, reverse = settings
    marks = {id(change.socket): MARKS[change.kind] for change in frame.changes}
    gone = [c.socket for c in frame.changes if c.kind is ChangeKind.VANISHED]
    if typed is not None:
        gone = [s for s in gone if typed.wants_state(s.state) and typed.matches(s)]
        here = [s for s in frame.sockets if typed.wants_state(s.state) and typed.matches(s)]
    else:
        here = list(frame.sockets)
    listed = sort_sockets([*here, *gone], column, layout, reverse)
    cursor = None if on is None else find(listed, on)
    return Ordered(settings, listed, marks, on, cursor, len(gone))


def find(listed: Sequence[Socket], key: Key) -> int | None:
    port = key[4]  # the local port: compared first, it spares building most keys
    return next(
        (i for i, s in enumerate(listed) if s.local_port == port and socket_key(s) == key), None
    )


def sort_sockets(
    listed: Sequence[Socket], column: Column, layout: Layout, reverse: bool = False
) -> list[Socket]:
    """``listed`` ordered by ``column``: numbers as numbers, addresses as addresses, and
    State by the size of each state's pile, largest first, so that a pile comes to the top.
    Sorted is stable: within equals, the watch's order (``frames.sort_key``) stays."""
    if column.header == "State":
        return by_pile(listed, reverse)
    by = _SORTS.get(column.header)
    if by is None:  # a detail column: by its text
        index, make = layout.columns.index(column), layout.row_maker()
        return sorted(listed, key=lambda s: make(s)[index], reverse=reverse)
    return sorted(listed, key=by, reverse=reverse)


def by_pile(listed: Sequence[Socket], reverse: bool = False) -> list[Socket]:
    """``sort_sockets`` by State, without sorting the sockets: each state's in a pile, the
    piles in order. The same order as sorting by (pile size, name): ordering a frame of 50,000
    sockets took about 42 ms with the sort, 22 with piles (tests/test_top.py holds the two
    together)."""
    piles: dict[tuple[TcpState, str], list[Socket]] = {}
    for sock in listed:
        key = (sock.state, sock.state_name)  # TCP's CLOSE and UDP's UNCONN: one state
        pile = piles.get(key)
        if pile is None:
            pile = piles[key] = []
        pile.append(sock)
    sizes = Counter[TcpState]()
    for (state, _), pile in piles.items():
        sizes[state] += len(pile)
    ordered = sorted(
        piles.items(), key=lambda item: (-sizes[item[0][0]], item[0][1]), reverse=reverse
    )
    return [sock for _, pile in ordered for sock in pile]


@dataclass(frozen=True, slots=True)
class Window:
    """The rows on screen, as text: the header, each column's span on it (for clicks), a line
    a row from ``start``, and how the cells were fitted to the width."""

    start: int
    header: str
    spans: list[tuple[int, int]]
    lines: list[str]
    marks: list[str]
    fitted: Fitted


MARK = 2  # a row's mark and the blank after it, before its first cell


def window(ordered: Ordered, start: int, count: int, layout: Layout, width: int) -> Window:
    """Rows ``start`` to ``start + count`` of ``ordered``, fitted to ``width`` as the
    listing's table is (render/fit.py: a state, an address, a port or a PID is never cut),
    aligned as the plain listing is (one % template). The columns fit the rows shown."""
    part = ordered.sockets[start : start + count]
    make = layout.row_maker()
    cells = [make(s) for s in part]
    # One line a row: the cursor moves by rows, and a click's row is the line's.
    columns = list(zip(*cells, strict=True)) or [() for _ in layout.columns]
    fitted = fit(layout.columns, columns, width, ONE_LINE_GIVE_WAY)
    form = fitted.template(fitted.widths)[0].rstrip("\n")  # one line: the cells in order
    spans, at = [], MARK
    for column_width in fitted.widths:
        spans.append((at, column_width))
        at += column_width + GAP
    marks = [ordered.mark(s) for s in part]
    shown = zip(*fitted.cells, strict=True) if part else iter(())
    lines = [f"{mark or ' '} {form % row}" for mark, row in zip(marks, shown, strict=True)]
    return Window(start, " " * MARK + form % tuple(fitted.headers), spans, lines, marks, fitted)


def _address(family: int, address: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET6 if family == 6 else socket.AF_INET, address)
    except OSError:
        return address.encode()  # a capture's odd text sorts after the addresses


# Each column's sort key but State's (``by_pile``) and the detail columns' (their text).
_SORTS: dict[str, Callable[[Socket], Any]] = {
    "Recv-Q": lambda s: -1 if s.recv_q is None else s.recv_q,
    "Send-Q": lambda s: -1 if s.send_q is None else s.send_q,
    "Local Address:Port": lambda s: (s.family, _address(s.family, s.local_address), s.local_port),
    "Peer Address:Port": lambda s: (
        s.family,
        _address(s.family, s.remote_address),
        s.remote_port,
    ),
    "PID": lambda s: -1 if s.pid is None else s.pid,
    "Process": lambda s: (s.process or "").lower(),
    "Uid": lambda s: -1 if s.uid is None else s.uid,
    "Inode": lambda s: s.inode or 0,
}


def state_counts(frame: Frame) -> Counter[str]:
    """The frame's sockets per state name, whatever the filter: the history strip's. From
    the counts the frame carries, not another pass over its sockets (14 ms at 50,000)."""
    counts: Counter[str] = Counter()
    for row in frame.counts:
        if row.count:
            counts[row.state_name] += row.count
    return counts


@dataclass
class History:
    """Each state's count over the last ``HISTORY`` frames, for the sparkline strip."""

    counts: dict[str, deque[int]] = field(default_factory=dict)
    frames: int = 0

    def add(self, now: Counter[str]) -> None:
        for name in now.keys() - self.counts.keys():  # a state seen for the first time
            self.counts[name] = deque([0] * min(self.frames, HISTORY), maxlen=HISTORY)
        for name, line in self.counts.items():
            line.append(now[name])
        self.frames += 1

    def lines(self, width: int) -> list[tuple[str, str, int]]:
        """(state, sparkline, count now) for each state seen, the largest pile first; the
        sparkline fits ``width`` cells, the latest frame at its right."""
        order = sorted(self.counts.items(), key=lambda item: (-item[1][-1], item[0]))
        return [(name, spark(line, width), line[-1]) for name, line in order]


def spark(values: Iterable[int], width: int) -> str:
    """The last ``width`` values as bars, scaled from 0 to the largest of them.

    >>> spark([0, 1, 2, 4, 8], 5)
    '▁▁▂▄█'
    >>> spark([3, 3], 4), spark([], 3)
    ('██', '')
    """
    shown = list(values)[-width:] if width > 0 else []
    top = max(shown, default=0)
    if top == 0:
        return SPARKS[0] * len(shown)
    return "".join(SPARKS[min(len(SPARKS) - 1, v * (len(SPARKS) - 1) // top)] for v in shown)
