"""Counters as a table fitted to the terminal, plain columns, or JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tcpstates.counters.values import Reading, Row
from tcpstates.model.i18n import N_, _
from tcpstates.render.columns import Column
from tcpstates.render.text import write_rows

if TYPE_CHECKING:
    from rich.table import Table

    from tcpstates.render.output import Output

COUNTER, TOTAL, CHANGE, RATE, MEANING = (
    N_("Counter"),
    N_("Total"),
    N_("Change"),
    N_("Per second"),
    N_("Meaning"),
)


def show(reading: Reading, out: Output, fmt: str) -> None:
    if fmt == "json":
        out.stdout.write(json.dumps(as_dict(reading), indent=2) + "\n")
        return
    out.stdout.write(heading(reading) + "\n")
    if not reading.rows:
        out.stdout.write(_("None to show: -z shows the counters at 0 (or unchanged) too.") + "\n")
    elif fmt == "table":
        out.console().print(table(reading, out.fit_width()))
    else:
        write_rows([_cells(row, reading) for row in reading.rows], _columns(reading), out.stdout)


def heading(reading: Reading) -> str:
    """What the numbers count, in one line: a namespace's started when it was made."""
    if reading.seconds is None:
        return _("Totals {since}.").format(since=reading.since)
    return _("Change over {seconds:.2f} s; totals {since}.").format(
        seconds=reading.seconds, since=reading.since
    )


def _columns(reading: Reading) -> tuple[Column, ...]:
    measured = (Column(_(CHANGE), "right"), Column(_(RATE), "right")) if reading.seconds else ()
    return (
        Column(_(COUNTER), "left"),
        Column(_(TOTAL), "right"),
        *measured,
        Column(_(MEANING), "left"),
    )


def _cells(row: Row, reading: Reading) -> tuple[str, ...]:
    measured: tuple[str, ...] = ()
    if reading.seconds:
        measured = ("", "") if row.delta is None else (str(row.delta), f"{row.rate:.1f}")
    return (row.name, str(row.value), *measured, _(row.meaning) if row.meaning else "")


def table(reading: Reading, width: int | None) -> Table:
    """Numbers and names whole; the meanings wrap in what width is left, and give way first
    when too little is: a name or a number is never cut."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    columns = _columns(reading)
    cells = [_cells(row, reading) for row in reading.rows]
    fixed = columns[:-1]
    used = sum(max([len(c.header), *(len(r[i]) for r in cells)]) for i, c in enumerate(fixed))
    room = None if width is None else width - used - 2 * len(fixed)
    keep_meaning = room is None or room >= MIN_MEANING
    grid = Table(box=box.SIMPLE_HEAD, pad_edge=False, width=None)
    for column in fixed:
        grid.add_column(column.header, justify=column.align, no_wrap=True)
    if keep_meaning:
        grid.add_column(columns[-1].header, ratio=1, overflow="fold")
    for row in cells:  # as Text: a capture's counter name may look like Rich markup ([red])
        grid.add_row(*(Text(cell) for cell in (row if keep_meaning else row[:-1])))
    if not keep_meaning:
        grid.caption = _("meanings hidden: the terminal is too narrow (-o plain has them)")
    return grid


MIN_MEANING = 20  # columns a meaning needs to be worth reading, wrapped


def as_dict(reading: Reading) -> dict[str, Any]:
    return {
        "scope": reading.scope,
        "since": reading.since,
        "interval_s": None if reading.seconds is None else round(reading.seconds, 6),
        "counters": [
            {
                "name": row.name,
                "value": row.value,
                "delta": row.delta,
                "rate": None if row.rate is None else round(row.rate, 3),
                "gauge": row.gauge,
                "meaning": _(row.meaning) if row.meaning else None,
            }
            for row in reading.rows
        ],
    }
