"""Plain aligned columns: for pipes, files and very long listings.

Widths come from one pass over the rows, so no address is ever cut; the whole text goes out in
a few large writes, which is what keeps 100,000 rows fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from tcpstates.model.sockets import Socket
from tcpstates.render.columns import Column, Layout

_CHUNK = 4096  # rows per write


def render_plain(sockets: Iterable[Socket], out: TextIO, layout: Layout) -> int:
    """Write the listing; returns how many rows were written."""
    rows = layout.rows(sockets)
    write_rows(rows, layout.columns, out)
    return len(rows)


def write_rows(rows: list[tuple[str, ...]], columns: tuple[Column, ...], out: TextIO) -> None:
    headers = tuple(column.header for column in columns)
    widths = [len(h) for h in headers]
    # Column by column, so that max() and len() run in C.
    for i, cells in enumerate(zip(*rows, strict=True)):
        widths[i] = max(widths[i], max(map(len, cells)))
    template = _template(columns, widths)
    out.write(template % headers)
    # map() over the template's % runs the whole chunk in C, with no Python call per row.
    for start in range(0, len(rows), _CHUNK):
        out.write("".join(map(template.__mod__, rows[start : start + _CHUNK])))


def _template(columns: tuple[Column, ...], widths: list[int]) -> str:
    """One %-format for every row; the last column is not padded (no trailing blanks)."""
    parts = []
    for i, (column, width) in enumerate(zip(columns, widths, strict=True)):
        if column.align == "right":
            parts.append(f"%{width}s")
        else:
            parts.append("%s" if i == len(columns) - 1 else f"%-{width}s")
    return "  ".join(parts) + "\n"
