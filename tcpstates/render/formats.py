"""Machine formats: JSON (one array), JSON Lines (one record a line) and CSV.

Field names and order are DESIGN.md's record. JSON escapes everything outside ASCII, so no
control or bidi character reaches a terminal that prints it; CSV escapes them like the table.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Iterable
from itertools import islice
from json.encoder import encode_basestring_ascii

from tcpstates.model.details import INFO_FIELDS, MEMORY_FIELDS
from tcpstates.model.record import Record
from tcpstates.model.sockets import FIELDS, NETNS, NO_DETAILS, Details, Socket
from tcpstates.render.safe import safe

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from typing import TextIO

_CHUNK = 2048


def render_json(sockets: Iterable[Socket], out: TextIO, details: Details = NO_DETAILS) -> int:
    count = 0
    out.write("[")
    batch: list[str] = []
    record = json_record_maker(details)
    for sock in sockets:
        batch.append(("\n  " if count == 0 else ",\n  ") + record(sock))
        count += 1
        if len(batch) >= _CHUNK:
            out.write("".join(batch))
            batch.clear()
    out.write("".join(batch) + ("\n]\n" if count else "]\n"))
    return count


def render_jsonl(sockets: Iterable[Socket], out: TextIO, details: Details = NO_DETAILS) -> int:
    count = 0
    batch: list[str] = []
    record = json_record_maker(details)
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


def json_record_maker(details: Details = NO_DETAILS) -> Callable[[Socket], str]:
    """A function giving ``json.dumps(sock.as_dict())`` in a third of its time (as_dict included),
    followed by the ``details`` asked for.

    json.dumps builds an encoder and walks a dict for every record; here the record's shape is
    known, each string is escaped by json's own C escaper, and the strings that repeat from
    record to record (addresses, state and process names) are escaped once.
    """
    values = record_values(encode_basestring_ascii, none="null")
    extras = extras_for(details)

    def record(sock: Socket) -> str:
        n = sock.netns
        return _RECORD % (*values(sock), "" if n is None else f', "{NETNS}": {n}')

    if not extras:
        return record
    keyed = [(f', "{extra.key}": ', extra.json) for extra in extras]
    if len(keyed) == 1:  # owners alone, what every JSON listing has: no list, no join
        ((key, json_of),) = keyed

        def one_detail(sock: Socket) -> str:
            n = sock.netns
            more = key + json_of(sock)
            return _RECORD % (*values(sock), more if n is None else f', "{NETNS}": {n}{more}')

        return one_detail

    def detailed(sock: Socket) -> str:
        # The details go where netns goes, before the closing brace: no copy of the record.
        n = sock.netns
        more = "".join([key + json_of(sock) for key, json_of in keyed])
        return _RECORD % (*values(sock), ("" if n is None else f', "{NETNS}": {n}') + more)

    return detailed


class Extra(Record):
    """A part of the record written only when asked for (a Details flag): under one key in
    JSON, as flat columns in CSV."""

    key: str
    columns: tuple[str, ...]
    json: Callable[[Socket], str]  # the value as JSON text, null where the socket has none
    csv: Callable[[Socket], tuple[object, ...]]  # one cell per column


_ENCODE = json.JSONEncoder().encode


# json.dumps(info.as_dict()), one %s per field: json's encoder calls back into Python for each
# float, and took 17 us a record where this takes 4 (tests/test_render.py holds the two).
_INFO = "{" + ", ".join(f'"{name}": %s' for name in INFO_FIELDS) + "}"
_APP_LIMITED = INFO_FIELDS.index("app_limited")
_info_values = operator.attrgetter(*INFO_FIELDS)


def _info_json(sock: Socket) -> str:
    info = sock.info
    if info is None:
        return "null"
    values = list(_info_values(info))
    congestion, app_limited = values[0], values[_APP_LIMITED]
    values[0] = "null" if congestion is None else encode_basestring_ascii(congestion)
    values[_APP_LIMITED] = "null" if app_limited is None else _BOOLEANS[app_limited]
    if None in values:
        values = ["null" if value is None else value for value in values]
    return _INFO % tuple(values)


def _info_csv(sock: Socket) -> tuple[object, ...]:
    if sock.info is None:
        return ("",) * len(INFO_FIELDS)
    return tuple(_csv_cell(value) for value in sock.info.as_dict().values())


def _memory_json(sock: Socket) -> str:
    return "null" if sock.memory is None else _ENCODE(sock.memory.as_dict())


def _memory_csv(sock: Socket) -> tuple[object, ...]:
    if sock.memory is None:
        return ("",) * len(MEMORY_FIELDS)
    return tuple(sock.memory.as_dict().values())


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return safe(value) if isinstance(value, str) else value


@functools.lru_cache(maxsize=4096)
def _holder_json(pid: int, process: str | None) -> str:
    # A few hundred processes hold 100,000 sockets: each one's text made once, the fd added.
    name = "null" if process is None else encode_basestring_ascii(process)
    return f'{{"pid": {pid}, "process": {name}, "fd": '


def _owners_json(sock: Socket) -> str:
    """``[{"pid": 812, "process": "nginx", "fd": 3}, ...]``; [] when no process holds it (the
    kernel alone), null when its holders could not be seen."""
    holders = sock.holders
    if holders is None:
        return "null"
    if len(holders) == 1:  # nearly every socket
        (h,) = holders
        return f"[{_holder_json(h.pid, h.process)}{h.fd}}}]"
    return "[" + ", ".join(f"{_holder_json(h.pid, h.process)}{h.fd}}}" for h in holders) + "]"


def _owners_csv(sock: Socket) -> tuple[object, ...]:
    """One cell, ``812/3 813/3``: each holder's pid/fd, as in JSON's order. Names are left out:
    a process name may hold any separator (a blank, a slash), and the first one is in
    ``process`` already; JSON has them all."""
    holders = sock.holders
    return ("" if holders is None else " ".join(f"{h.pid}/{h.fd}" for h in holders),)


OWNERS = Extra("owners", ("owners",), _owners_json, _owners_csv)
INFO = Extra("tcp_info", INFO_FIELDS, _info_json, _info_csv)
MEMORY = Extra("memory", MEMORY_FIELDS, _memory_json, _memory_csv)
CGROUP = Extra(
    "cgroup",
    ("cgroup",),
    lambda sock: "null" if sock.cgroup is None else encode_basestring_ascii(sock.cgroup),
    lambda sock: (_csv_cell(sock.cgroup),),
)


def extras_for(details: Details) -> tuple[Extra, ...]:
    """What a record carries after its fields for ``details``, in this order."""
    asked = (
        (details.holders, OWNERS),
        (details.cgroup, CGROUP),
        (details.info, INFO),
        (details.memory, MEMORY),
    )
    return tuple(extra for wanted, extra in asked if wanted)


def record_fields(netns: bool, details: Details = NO_DETAILS) -> tuple[str, ...]:
    """A CSV header: the record's fields, ``netns`` when namespaces are named, the details'."""
    extra = tuple(column for extra in extras_for(details) for column in extra.columns)
    return FIELDS + (NETNS,) * netns + extra


def render_csv(
    sockets: Iterable[Socket],
    out: TextIO,
    netns: bool = False,
    header: bool = True,
    details: Details = NO_DETAILS,
) -> int:
    """CSV with a header of the record's fields (``netns`` when namespaces are named, then
    the details asked for), unless ``header`` is False (-H)."""
    import csv  # here, not above: JSON output has no use for it

    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(record_fields(netns, details))
    rows = map(csv_row_maker(netns, details), sockets)
    count = 0
    while chunk := list(islice(rows, _CHUNK)):
        writer.writerows(chunk)
        count += len(chunk)
    return count


def csv_row_maker(
    netns: bool = False, details: Details = NO_DETAILS
) -> Callable[[Socket], tuple[object, ...]]:
    """A function giving a record's CSV cells: ``as_dict()``'s values, None as an empty cell and
    text made safe for a terminal (each string that repeats made safe once), then the details'."""
    values = record_values(safe, none="")
    extras = extras_for(details)

    def row(sock: Socket) -> tuple[object, ...]:
        cells = values(sock)
        if netns:
            cells = (*cells, "" if sock.netns is None else sock.netns)
        for extra in extras:
            cells += extra.csv(sock)
        return cells

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
            text(sock.interface),
            none if sock.v6only is None else _BOOLEANS[sock.v6only],
        )

    return values


_BOOLEANS = {True: "true", False: "false"}  # JSON's literals, and CSV's cells


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
