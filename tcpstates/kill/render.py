"""What ``tcpstates kill`` shows: each socket with what became of it, then the totals.

A table or plain text puts a Result column before the listing's own columns; JSON is one
object, the sockets (each a listing record with its result) and the totals, so that a script
reads one document whatever happened.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from tcpstates.kill.logic import Done, tally
from tcpstates.model.i18n import _, ngettext
from tcpstates.render.columns import Column, Layout
from tcpstates.render.text import write_rows
from tcpstates.sources.destroy import Outcome

if TYPE_CHECKING:
    from tcpstates.render.output import Output

RESULT = Column("Result", "left")
TO_DESTROY = "to destroy"  # the Result cell of a socket listed, not (yet) destroyed
# The totals' keys in JSON, one per outcome.
KEYS = {outcome: outcome.name.lower() for outcome in Outcome}


def write_report(done: Sequence[Done], layout: Layout, out: TextIO) -> None:
    """The sockets as aligned columns, a Result first, then one line of totals."""
    if not done:
        return
    write_rows(_rows(done, layout), (RESULT, *layout.columns), out)
    out.write(totals_line(done) + "\n")


def write_table(done: Sequence[Done], layout: Layout, out: Output) -> None:
    """The report for a person: fitted to the terminal as a listing is, states coloured, and
    the footer saying what gave way."""
    from tcpstates.render.fit import Glyphs, fit
    from tcpstates.render.table import FOOTER_STYLE, paint, write_fitted

    if not done:
        return
    columns = (RESULT, *layout.columns)
    cells = list(zip(*_rows(done, layout), strict=True))
    glyphs = Glyphs.for_stream(out.stdout)
    width = out.fit_width()
    fitted = fit(columns, cells, width, ellipsis=glyphs.ellipsis)
    console = out.console()
    write_fitted(fitted, console, out.stdout, glyphs.rule)
    out.stdout.write(totals_line(done) + "\n")
    out.stdout.write(
        "".join(paint(console, line, FOOTER_STYLE) + "\n" for line in fitted.footer(width))
    )


def _rows(done: Sequence[Done], layout: Layout) -> list[tuple[str, ...]]:
    cells = layout.rows(d.socket for d in done)
    return [(_cell(d), *row) for d, row in zip(done, cells, strict=True)]


def _cell(done: Done) -> str:
    return TO_DESTROY if done.result is None else done.result.outcome.value


def totals_line(done: Sequence[Done]) -> str:
    """``3 sockets: 2 destroyed, 1 not permitted``; ``3 sockets to destroy`` before any is."""
    n = len(done)
    counts = tally(done)
    if not counts:
        return ngettext("{n} socket to destroy", "{n} sockets to destroy", n).format(n=n)
    parts = ", ".join(f"{counts[o]} {_(o.value)}" for o in Outcome if counts[o])
    return ngettext("{n} socket: {parts}", "{n} sockets: {parts}", n).format(n=n, parts=parts)


def write_json(
    done: Sequence[Done], out: TextIO, *, dry_run: bool, listeners_left: int, status: int
) -> None:
    counts = tally(done)
    document: dict[str, Any] = {
        "dry_run": dry_run,
        "sockets": [_record(d) for d in done],
        "totals": {"matched": len(done), **{KEYS[o]: counts[o] for o in Outcome}},
        "listeners_left_alone": listeners_left,
        "status": status,
    }
    out.write(json.dumps(document, indent=2) + "\n")


def _record(done: Done) -> dict[str, Any]:
    record = done.socket.as_dict()
    result = done.result
    record["result"] = None if result is None else result.outcome.value
    record["reason"] = (result.reason or None) if result is not None else None
    return record
