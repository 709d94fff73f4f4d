"""Plain aligned columns: for pipes, files and very long listings.

Widths come from one pass over the rows, so no address is ever cut; the whole text goes out in
a few large writes, which is what keeps 100,000 rows fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tcpstates.model.sockets import Socket
from tcpstates.render.columns import Column, Layout

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from typing import TextIO

CHUNK = 4096  # rows per write


def render_plain(sockets: Iterable[Socket], out: TextIO, layout: Layout) -> int:
    """Write the listing; returns how many rows were written."""
    rows = layout.rows(sockets)
    write_rows(rows, layout.columns, out, header=layout.header)
    return len(rows)


def write_rows(
    rows: list[tuple[str, ...]], columns: tuple[Column, ...], out: TextIO, header: bool = True
) -> None:
    headers = tuple(column.header for column in columns)
    widths = [len(h) for h in headers]
    # Column by column, so that max() and len() run in C.
    for i, cells in enumerate(zip(*rows, strict=True)):
        widths[i] = max(widths[i], max(map(len, cells)))
    row = template(columns, widths)
    if header:
        out.write(row % headers)
    # map() over the template's % runs the whole chunk in C, with no Python call per row.
    for start in range(0, len(rows), CHUNK):
        out.write("".join(map(row.__mod__, rows[start : start + CHUNK])))


def template(columns: Sequence[Column], widths: Sequence[int | None]) -> str:
    """One %-format for every row; the last column is not padded (no trailing blanks), nor
    is one whose width is None (its cells come padded: the table's coloured states)."""
    parts = []
    for i, (column, width) in enumerate(zip(columns, widths, strict=True)):
        if width is None or (column.align == "left" and i == len(columns) - 1):
            parts.append("%s")
        else:
            parts.append(f"%{'-' if column.align == 'left' else ''}{width}s")
    return "  ".join(parts) + "\n"
