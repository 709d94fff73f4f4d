"""What top shows of a frame, as data: its rows, marked, filtered and sorted, and the
per-state history. No Textual here: top/app.py draws these, and tests read them directly.
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
from tcpstates.render.fit import Fitted, fit
from tcpstates.watch.frames import ChangeKind, Frame, socket_key

# A row's mark for one frame: what the watch's table says with its change column.
MARKS = {ChangeKind.APPEARED: "+", ChangeKind.CHANGED: "~", ChangeKind.VANISHED: "-"}
SPARKS = "▁▂▃▄▅▆▇█"
HISTORY = 60  # frames of counts kept per state: two minutes at the default interval


@dataclass(frozen=True, slots=True)
class Row:
    key: str  # the same socket's from frame to frame, so that the cursor stays on it
    mark: str  # "+", "~", "-" or ""
    cells: tuple[str, ...]
    socket: Socket


def rows(frame: Frame, layout: Layout, typed: Query) -> list[Row]:
    """The frame's sockets that pass ``typed`` (the filter bar's query), each marked with
    its change; a socket that vanished shows once more, marked "-"."""
    marks = {id(change.socket): MARKS[change.kind] for change in frame.changes}
    gone = [c.socket for c in frame.changes if c.kind is ChangeKind.VANISHED]
    make = layout.row_maker()
    seen: Counter[str] = Counter()
    found = []
    for sock in (*frame.sockets, *gone):
        if not (typed.wants_state(sock.state) and typed.matches(sock)):
            continue
        key = "|".join(map(str, socket_key(sock)))
        seen[key] += 1  # listeners sharing a port with SO_REUSEPORT share their ends too
        found.append(Row(f"{key}|{seen[key]}", marks.get(id(sock), ""), make(sock), sock))
    return found


def sort_rows(
    found: Sequence[Row], column: Column, layout: Layout, reverse: bool = False
) -> list[Row]:
    """``found`` ordered by ``column``: numbers as numbers, addresses as addresses, and
    State by the size of each state's pile, largest first, so that a pile comes to the top."""
    pile = Counter(row.socket.state for row in found)
    by = _SORTS.get(column.header)
    if by is None:
        index = layout.columns.index(column)
        return sorted(found, key=lambda row: row.cells[index], reverse=reverse)
    return sorted(found, key=lambda row: by(row.socket, pile), reverse=reverse)


def fitted_rows(found: Sequence[Row], layout: Layout, width: int) -> Fitted:
    """The rows' cells fitted to ``width`` as the listing's table fits them (render/fit.py):
    a PID, a port, an address or a state is never cut."""
    columns = layout.columns
    cells = list(zip(*(row.cells for row in found), strict=True)) or [() for _ in columns]
    return fit(columns, cells, width)


def _address(family: int, address: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET6 if family == 6 else socket.AF_INET, address)
    except OSError:
        return address.encode()  # a capture's odd text sorts after the addresses


_SORTS: dict[str, Callable[[Socket, Counter[TcpState]], Any]] = {
    "State": lambda s, pile: (-pile[s.state], s.state_name),
    "Recv-Q": lambda s, _: -1 if s.recv_q is None else s.recv_q,
    "Send-Q": lambda s, _: -1 if s.send_q is None else s.send_q,
    "Local Address:Port": lambda s, _: (
        s.family,
        _address(s.family, s.local_address),
        s.local_port,
    ),
    "Peer Address:Port": lambda s, _: (
        s.family,
        _address(s.family, s.remote_address),
        s.remote_port,
    ),
    "PID": lambda s, _: -1 if s.pid is None else s.pid,
    "Process": lambda s, _: (s.process or "").lower(),
    "Uid": lambda s, _: -1 if s.uid is None else s.uid,
    "Inode": lambda s, _: s.inode or 0,
}


@dataclass
class History:
    """Each state's count over the last ``HISTORY`` frames, for the sparkline strip."""

    counts: dict[str, deque[int]] = field(default_factory=dict)
    frames: int = 0

    def add(self, frame: Frame) -> None:
        now = Counter(sock.state_name for sock in frame.sockets)
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
