"""The Rich table for a terminal: states coloured by where they sit in a connection's life."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from tcpstates.model.sockets import Socket
from tcpstates.model.states import Phase, TcpState
from tcpstates.render.columns import Layout

PHASE_STYLES: dict[Phase, str] = {
    Phase.HANDSHAKE: "yellow",
    Phase.OPEN: "green",
    Phase.WE_CLOSED: "cyan",
    Phase.PEER_CLOSED: "magenta",
    Phase.LISTENING: "blue",
    Phase.INACTIVE: "dim",
}


def state_style(state: TcpState) -> str:
    return PHASE_STYLES[state.phase]


def build_table(sockets: Sequence[Socket], layout: Layout) -> Table:
    rows = layout.rows(sockets)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, caption=_caption(sockets))
    columns = layout.columns
    for i, column in enumerate(columns):
        width = max([len(column.header), *(len(row[i]) for row in rows)])
        if i == len(columns) - 1:
            # Only the last column (a process name) may fold; an address is never cut.
            table.add_column(
                column.header, justify=column.align, overflow="fold", min_width=min(width, 24)
            )
        else:
            table.add_column(column.header, justify=column.align, no_wrap=True, min_width=width)
    state_index = layout.state_index
    for sock, row in zip(sockets, rows, strict=True):
        cells = [Text(cell) for cell in row]
        cells[state_index].stylize(state_style(sock.state))
        table.add_row(*cells)
    return table


def _caption(sockets: Sequence[Socket]) -> str:
    counts = Counter(sock.state_name for sock in sockets)
    noun = "socket" if len(sockets) == 1 else "sockets"
    parts = ", ".join(f"{count} {name}" for name, count in counts.most_common())
    return f"{len(sockets)} {noun}" + (f": {parts}" if parts else "")


def fit_width(console: Console, renderable: Table) -> int:
    """The width to print at: the console's, or wider where an address would be cut.

    Rich drops or squeezes columns that do not fit; lines that wrap in the terminal are the
    lesser evil for a tool whose output people copy addresses from.
    """
    unbounded = console.options.update(width=100_000)
    needed = Measurement.get(console, unbounded, renderable).minimum
    return max(console.width, needed)
