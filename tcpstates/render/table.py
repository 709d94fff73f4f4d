"""The listing's table for a person: fitted to the terminal, states coloured by where they sit in
a connection's life.

It is written line by line, not with Rich's Table: Rich lays out each cell as styled text and
took 3.4 s for 5,000 rows, so a table past 2,000 rows used to turn into plain text. Here the
rows are the plain listing's own cells (render/columns.py), fitted by render/fit.py, padded by
one %-format and written in large chunks; the state's colour is written as the escape codes
Rich would write, made once per state name. It costs little more than plain text at any size
(tests/benchmarks/bench.py), and tests/test_table.py holds its text to the plain listing's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import TYPE_CHECKING, TextIO

from tcpstates.model.sockets import Socket
from tcpstates.render.columns import STATE, STATE_OF_NAME, Layout
from tcpstates.render.fit import Columns, Fitted, Glyphs, fit_layout, pack
from tcpstates.render.styles import state_style
from tcpstates.render.text import CHUNK

if TYPE_CHECKING:
    from rich.console import Console

    from tcpstates.render.output import Output

Rows = list[tuple[str, ...]]
HEADER_STYLE = "bold"
FOOTER_STYLE = "dim"


def write_table(sockets: Iterable[Socket], layout: Layout, out: Output) -> None:
    """The listing as a table fitted to ``out.fit_width()`` (None: as wide as it is), then the
    counts per state and, when something gave way, a footer saying what.

    The sockets are not kept (but with -r, whose names may have to give way to addresses).
    """
    if layout.names is not None:
        sockets = list(sockets)  # -r: made again with addresses when the names do not fit
    write_table_of(lambda chosen: chosen.rows(sockets), layout, out)


def write_table_of(rows_of: Callable[[Layout], Rows], layout: Layout, out: Output) -> None:
    """``write_table`` of the rows ``rows_of`` makes for a layout: ``layout`` itself, and with
    -r the same with every host as its address, should the names not fit.

    The rows are not kept once turned into columns: at 100,000 rows that is 40 MB, and the
    counts come from the State column as well.
    """
    console = out.console()
    width = out.fit_width()
    glyphs = Glyphs.for_stream(out.stdout)

    def columns_of(chosen: Layout) -> Columns:
        rows = rows_of(chosen)
        # The columns hold the same strings as the rows, which are not kept.
        return chosen.columns, list(zip(*rows, strict=True)) if rows else [()] * len(chosen.columns)

    fitted = fit_layout(columns_of, layout, width, ellipsis=glyphs.ellipsis)
    states = fitted.cells[fitted.columns.index(STATE)]  # a column nothing hides or cuts
    write_fitted(fitted, console, out.stdout, glyphs.rule, header=layout.header)
    if layout.header:  # -H: the rows alone, as ss -H gives them
        out.stdout.write("".join(line + "\n" for line in pack(_counts(states), ", ", width)))
    footer = fitted.footer(width)
    out.stdout.write("".join(paint(console, line, FOOTER_STYLE) + "\n" for line in footer))


def write_fitted(
    fitted: Fitted, console: Console, stream: TextIO, rule: str, header: bool = True
) -> None:
    """The header, a rule under it, and the rows, each state coloured as ``state_style`` says.
    A row may take several lines (render/fit.py's Shape); its header takes as many."""
    widths: list[int | None] = list(fitted.widths)
    if header:
        form, order = fitted.template(widths)
        heading = form % tuple(fitted.headers[k] for k in order)
        stream.write(
            "".join(paint(console, line, HEADER_STYLE) + "\n" for line in heading.splitlines())
        )
        stream.write(rule * fitted.width + "\n")
    columns = list(fitted.cells)
    state = fitted.index(STATE)
    if state is not None:
        # Each state name coloured and padded once; the template writes those cells as they are.
        pad = not fitted.ends_line(state)
        coloured = {
            name: paint(console, name, _style_of(name))
            + " " * (fitted.widths[state] - len(name)) * pad
            for name in set(columns[state])
        }
        columns[state] = list(map(coloured.__getitem__, columns[state]))
        widths[state] = None
    row, order = fitted.template(widths)
    rows = zip(*(columns[k] for k in order), strict=True)
    while chunk := list(islice(rows, CHUNK)):
        # map() over the template's % runs the whole chunk in C, with no Python call per row.
        stream.write("".join(map(row.__mod__, chunk)))


def _style_of(name: str) -> str:
    state = STATE_OF_NAME.get(name)
    return "" if state is None else state_style(state)


def paint(console: Console, text: str, style: str) -> str:
    """``text`` with the escape codes ``console`` writes for ``style``; itself without colour."""
    from rich.text import Text

    if not style:
        return text
    with console.capture() as captured:
        console.print(Text(text, style=style), end="", soft_wrap=True, highlight=False)
    return captured.get()


def _counts(states: Sequence[str]) -> list[str]:
    """``4 sockets: 1 LISTEN, 1 ESTABLISHED, ...`` from the State column's cells, in parts
    that lines may break between."""
    counts = Counter(states)
    noun = "socket" if len(states) == 1 else "sockets"
    parts = [f"{count} {name}" for name, count in counts.most_common()]
    if not parts:
        return [f"{len(states)} {noun}"]
    return [f"{len(states)} {noun}: {parts[0]}", *parts[1:]]
