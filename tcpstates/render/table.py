"""The Rich table for a terminal: states coloured by where they sit in a connection's life."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from tcpstates.render.columns import Layout
from tcpstates.sockets import Socket
from tcpstates.states import Phase, TcpState

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
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, caption=_caption(sockets))
    for column in layout.columns:
        table.add_column(column.header, justify=column.align, no_wrap=True)
    state_index = 1 if layout.proto else 0
    for sock in sockets:
        cells = [Text(cell) for cell in layout.cells(sock)]
        cells[state_index].stylize(state_style(sock.state))
        table.add_row(*cells)
    return table


def _caption(sockets: Sequence[Socket]) -> str:
    counts = Counter(sock.state_name for sock in sockets)
    noun = "socket" if len(sockets) == 1 else "sockets"
    parts = ", ".join(f"{count} {name}" for name, count in counts.most_common())
    return f"{len(sockets)} {noun}" + (f": {parts}" if parts else "")
