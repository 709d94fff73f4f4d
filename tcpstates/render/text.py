"""Plain aligned columns: for pipes, files and very long listings.

Widths come from one pass over the rows, so no address is ever cut; the whole text goes out in
a few large writes, which is what keeps 100,000 rows fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from tcpstates.render.columns import Column, Layout
from tcpstates.sockets import Socket

_CHUNK = 4096  # rows per write


def render_plain(sockets: Iterable[Socket], out: TextIO, layout: Layout) -> int:
    """Write the listing; returns how many rows were written."""
    rows = [layout.cells(sock) for sock in sockets]
    write_rows(rows, layout.columns, out)
    return len(rows)


def write_rows(rows: list[tuple[str, ...]], columns: tuple[Column, ...], out: TextIO) -> None:
    headers = tuple(column.header for column in columns)
    widths = [len(h) for h in headers]
    # Column by column, so that max() and len() run in C.
    for i, cells in enumerate(zip(*rows, strict=True)):
        widths[i] = max(widths[i], max(map(len, cells)))
    line = _formatter(columns, widths)
    out.write(line(headers))
    for start in range(0, len(rows), _CHUNK):
        out.write("".join(map(line, rows[start : start + _CHUNK])))


def _formatter(columns: tuple[Column, ...], widths: list[int]):  # type: ignore[no-untyped-def]
    # One format string for all rows; the last column is not padded (no trailing blanks).
    parts = []
    for i, (column, width) in enumerate(zip(columns, widths, strict=True)):
        last = i == len(columns) - 1
        if column.align == "right":
            parts.append(f"{{{i}:>{width}}}")
        else:
            parts.append(f"{{{i}}}" if last else f"{{{i}:<{width}}}")
    template = "  ".join(parts) + "\n"

    def line(row: tuple[str, ...]) -> str:
        return template.format(*row)

    return line
