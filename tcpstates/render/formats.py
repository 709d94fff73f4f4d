"""Machine formats: JSON (one array), JSON Lines (one record a line) and CSV.

Field names and order are DESIGN.md's record. JSON escapes everything outside ASCII, so no
control or bidi character reaches a terminal that prints it; CSV escapes them like the table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TextIO

from tcpstates.render.safe import safe
from tcpstates.sockets import FIELDS, Socket

_CHUNK = 2048


def render_json(sockets: Iterable[Socket], out: TextIO) -> int:
    count = 0
    out.write("[")
    batch: list[str] = []
    for sock in sockets:
        batch.append(("\n  " if count == 0 else ",\n  ") + json.dumps(sock.as_dict()))
        count += 1
        if len(batch) >= _CHUNK:
            out.write("".join(batch))
            batch.clear()
    out.write("".join(batch) + ("\n]\n" if count else "]\n"))
    return count


def render_jsonl(sockets: Iterable[Socket], out: TextIO) -> int:
    count = 0
    batch: list[str] = []
    for sock in sockets:
        batch.append(json.dumps(sock.as_dict()) + "\n")
        count += 1
        if len(batch) >= _CHUNK:
            out.write("".join(batch))
            batch.clear()
    out.write("".join(batch))
    return count


def render_csv(sockets: Iterable[Socket], out: TextIO, fields: tuple[str, ...] = FIELDS) -> int:
    """CSV with a header of ``fields``: the record's, plus ``netns`` when namespaces are named."""
    import csv  # here, not above: JSON output has no use for it

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    count = 0
    for sock in sockets:
        writer.writerow([_csv_cell(value) for value in sock.as_dict().values()])
        count += 1
    return count


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    return safe(value) if isinstance(value, str) else value
