"""Per-state counts as text, a Rich table, or JSON."""

from __future__ import annotations

import json

from tcpstates.model.i18n import N_, _
from tcpstates.model.states import TcpState, state_name
from tcpstates.render.columns import Column
from tcpstates.render.text import write_rows
from tcpstates.summary.counts import Summary

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from typing import TextIO

    from rich.table import Table


PROTO, STATE, COUNT, TOTAL = N_("Proto"), N_("State"), N_("Count"), N_("Total")


def _columns(summary: Summary) -> tuple[Column, ...]:
    proto = (Column(_(PROTO), "left"),) if len(summary.counts) > 1 else ()
    return (*proto, Column(_(STATE), "left"), Column(_(COUNT), "right"))


def _rows(summary: Summary) -> list[tuple[TcpState | None, tuple[str, ...]]]:
    """Each row's state (None: the total, last) and its cells."""
    several = len(summary.counts) > 1
    rows: list[tuple[TcpState | None, tuple[str, ...]]] = [
        (state, ((proto,) if several else ()) + (state_name(state, proto), str(count)))
        for proto, states in summary.counts.items()
        for state, count in states.items()
    ]
    rows.append((None, (("",) if several else ()) + (_(TOTAL), str(summary.total))))
    return rows


def render_summary_plain(summary: Summary, out: TextIO) -> None:
    write_rows([cells for _state, cells in _rows(summary)], _columns(summary), out)


def render_summary_json(summary: Summary, out: TextIO) -> None:
    out.write(json.dumps(summary.as_dict(), indent=2) + "\n")


def summary_table(summary: Summary) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from tcpstates.render.styles import state_style

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_footer=False)
    for column in _columns(summary):
        table.add_column(column.header, justify=column.align)
    *rows, (_total, total) = _rows(summary)
    for state, row in rows:
        cells = [Text(cell) for cell in row]
        if state is not None:
            cells[-2].stylize(state_style(state))
        table.add_row(*cells)
    table.add_section()
    table.add_row(*(Text(cell, style="bold") for cell in total))
    return table
