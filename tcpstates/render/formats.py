"""Machine formats: JSON (one array), JSON Lines (one record a line) and CSV.

Field names and order are DESIGN.md's record. JSON escapes everything outside ASCII, so no
control or bidi character reaches a terminal that prints it; CSV escapes them like the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from json.encoder import encode_basestring_ascii
from typing import TextIO

from tcpstates.model.sockets import FIELDS, NETNS, Socket
from tcpstates.render.safe import safe

_CHUNK = 2048


def render_json(sockets: Iterable[Socket], out: TextIO) -> int:
    count = 0
    out.write("[")
    batch: list[str] = []
    record = json_record_maker()
    for sock in sockets:
        batch.append(("\n  " if count == 0 else ",\n  ") + record(sock))
        count += 1
        if len(batch) >= _CHUNK:
            out.write("".join(batch))
            batch.clear()
    out.write("".join(batch) + ("\n]\n" if count else "]\n"))
    return count


def render_jsonl(sockets: Iterable[Socket], out: TextIO) -> int:
    count = 0
    batch: list[str] = []
    record = json_record_maker()
    for sock in sockets:
        batch.append(record(sock) + "\n")
        count += 1
        if len(batch) >= _CHUNK:
            out.write("".join(batch))
            batch.clear()
    out.write("".join(batch))
    return count


# json.dumps(sock.as_dict()) with its default separators, one %s per field in FIELDS order.
_RECORD = "{" + ", ".join(f'"{name}": %s' for name in FIELDS) + "%s}"


def json_record_maker() -> Callable[[Socket], str]:
    """A function giving ``json.dumps(sock.as_dict())`` in a third of its time (as_dict included).

    json.dumps builds an encoder and walks a dict for every record; here the record's shape is
    known, each string is escaped by json's own C escaper, and the strings that repeat from
    record to record (addresses, state and process names) are escaped once.
    """
    values = record_values(encode_basestring_ascii, none="null")

    def record(sock: Socket) -> str:
        n = sock.netns
        return _RECORD % (*values(sock), "" if n is None else f', "{NETNS}": {n}')

    return record


def render_csv(
    sockets: Iterable[Socket], out: TextIO, fields: tuple[str, ...] = FIELDS, header: bool = True
) -> int:
    """CSV with a header of ``fields`` (the record's, plus ``netns`` when namespaces are
    named), unless ``header`` is False (-H)."""
    import csv  # here, not above: JSON output has no use for it

    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(fields)
    rows = map(csv_row_maker(), sockets)
    count = 0
    while chunk := list(islice(rows, _CHUNK)):
        writer.writerows(chunk)
        count += len(chunk)
    return count


def csv_row_maker() -> Callable[[Socket], tuple[object, ...]]:
    """A function giving a record's CSV cells: ``as_dict()``'s values, None as an empty cell and
    text made safe for a terminal (each string that repeats made safe once)."""
    values = record_values(safe, none="")

    def row(sock: Socket) -> tuple[object, ...]:
        cells = values(sock)
        return cells if sock.netns is None else (*cells, sock.netns)

    return row


def record_values(
    convert: Callable[[str], str], none: str
) -> Callable[[Socket], tuple[object, ...]]:
    """A function giving a record's values in FIELDS order (``as_dict()`` without netns), each
    string through ``convert`` (each distinct one once) and ``none`` for every None.

    Spelled out, not a loop over FIELDS: a loop makes -o json and -o csv of 100,000 sockets
    take nearly twice as long (tests/test_render.py holds the two to one order).
    """
    text = remembered(convert, none)

    def values(sock: Socket) -> tuple[object, ...]:
        return (
            text(sock.proto),
            sock.family,
            text(sock.local_address),
            sock.local_port,
            text(sock.remote_address),
            sock.remote_port,
            text(sock.state_name),
            none if sock.recv_q is None else sock.recv_q,
            none if sock.send_q is None else sock.send_q,
            none if sock.uid is None else sock.uid,
            none if sock.inode is None else sock.inode,
            none if sock.pid is None else sock.pid,
            text(sock.process),
            text(sock.timer),
            none if sock.timer_ms is None else sock.timer_ms,
            none if sock.retransmits is None else sock.retransmits,
        )

    return values


def remembered(convert: Callable[[str], str], none: str) -> Callable[[str | None], str]:
    """``convert`` of a string, each distinct one converted once; ``none`` for None. Addresses,
    states and process names repeat across 100,000 records."""
    made: dict[str, str] = {}

    def text(value: str | None) -> str:
        if value is None:
            return none
        shown = made.get(value)
        if shown is None:
            shown = made[value] = convert(value)
        return shown

    return text
