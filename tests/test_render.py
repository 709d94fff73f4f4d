import csv
import io
import json
import re

from tcpstates.model.record import replace
from tcpstates.model.sockets import FIELDS, Socket
from tcpstates.model.states import TcpState
from tcpstates.render.columns import Layout
from tcpstates.render.formats import render_csv, render_json, render_jsonl
from tcpstates.render.output import Output
from tcpstates.render.safe import safe
from tcpstates.render.table import write_table
from tcpstates.render.text import render_plain

HOSTILE = "[bold red]x[/]\x1b]8;;http://e\x07\x9b2J\x00\u202eevil"

SOCKETS = [
    Socket("tcp", 4, "0.0.0.0", 22, "0.0.0.0", 0, TcpState.LISTEN, 0, 128, 0, 11, 1, "sshd"),
    Socket("tcp", 6, "2001:db8:1234:5678:9abc:def0:1234:5678", 443,
           "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 61000, TcpState.ESTABLISHED, 0, 0, 33, 12,
           2, HOSTILE),
    Socket("tcp", 4, "127.0.0.1", 40000, "127.0.0.1", 80, TcpState.TIME_WAIT, 0, 0, 0, 0),
    Socket("udp", 4, "127.0.0.1", 53, "0.0.0.0", 0, TcpState.CLOSE, 0, 0, 0, 13),
]  # fmt: skip


def no_raw_control(text: str) -> None:
    for bad in ("\x1b", "\x07", "\x9b", "\x00", "\u202e"):
        assert bad not in text


def test_safe_escapes_controls_and_bidi():
    assert safe("nginx") == "nginx"
    assert safe("a\x1bb") == "a\\x1bb"
    assert safe("\u202e") == "\\u202e"
    no_raw_control(safe(HOSTILE))


def test_plain_never_truncates_and_marks_owners(golden):
    out = io.StringIO()
    render_plain(SOCKETS, out, Layout(proto=True))
    text = out.getvalue()
    assert "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:61000" in text
    assert "(kernel)" in text  # TIME_WAIT: inode 0
    assert "UNCONN" in text
    no_raw_control(text)
    assert all(line == line.rstrip() for line in text.splitlines())
    golden("plain.txt", text)


def table_text(sockets: list[Socket], layout: Layout, width: int | None, color: str = "never"):
    """The table on a terminal of ``width`` columns; None: -W."""
    out = Output(io.StringIO(), io.StringIO(), True, color, width=width, wide=width is None)
    write_table(sockets, layout, out)
    return out.stdout.getvalue()


def test_table_golden_at_pinned_width(golden):
    text = table_text(SOCKETS, Layout(proto=True), 100)
    # The two IPv6 ends alone take 93 columns: the peer goes under the local end, and what
    # one line would have hidden is back but for what is cut.
    assert "\n" + " " * 36 + "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:61000\n" in text
    assert "Recv-Q  " in text and "Proto" in text and "(kernel)" in text
    assert "\nprocess names cut; -W shows all\n" in text
    no_raw_control(text)
    golden("table.txt", text)


def test_wide_table_shows_markup_literally(golden):
    text = table_text(SOCKETS, Layout(proto=True), None)
    no_raw_control(text)
    assert "[bold" in text and "red]x[/]" in text  # shown literally, not parsed as markup


def test_table_colours_states_by_phase():
    text = table_text(SOCKETS[:1], Layout(), 140, color="always")
    # A blue that reads on black: 256-colour 33, or bright blue (94) where 16 colours are all
    # the terminal has; never the dark ANSI blue (34) it once was.
    assert re.search("\x1b\\[(38;5;33|94)mLISTEN", text), text


def test_json_is_one_array_with_contract_fields():
    out = io.StringIO()
    assert render_json(SOCKETS, out) == len(SOCKETS)
    data = json.loads(out.getvalue())
    assert [list(row) for row in data] == [list(FIELDS)] * len(SOCKETS)
    assert data[1]["process"] == HOSTILE  # the value survives, escaped in the text
    assert data[2]["pid"] is None and data[2]["inode"] == 0
    assert data[3]["state"] == "UNCONN"
    no_raw_control(out.getvalue())


def test_json_empty_is_an_empty_array():
    out = io.StringIO()
    render_json([], out)
    assert json.loads(out.getvalue()) == []


def test_jsonl_one_record_a_line():
    out = io.StringIO()
    render_jsonl(SOCKETS, out)
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["local_port"] for line in lines] == [22, 443, 40000, 53]


def test_csv_header_and_escaping():
    out = io.StringIO()
    render_csv(SOCKETS, out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == FIELDS
    assert rows[3][FIELDS.index("pid")] == ""
    no_raw_control(out.getvalue())


def test_json_and_csv_values_follow_fields() -> None:
    # record_values is spelled out for speed; this holds it to FIELDS, field by field.

    from tcpstates.render.formats import record_values

    full = replace(
        SOCKETS[0], timer="keepalive", timer_ms=7000, retransmits=3, interface="lo", v6only=True
    )
    for sock in (full, SOCKETS[2], replace(full, netns=4026531840, v6only=False)):
        expected = tuple(
            "N"
            if value is None
            else str(value).lower()
            if isinstance(value, bool)
            else f"<{value}>"
            if isinstance(value, str)
            else value
            for value in (getattr(sock, "state_name" if f == "state" else f) for f in FIELDS)
        )
        assert record_values(lambda text: f"<{text}>", none="N")(sock) == expected
        out = io.StringIO()
        render_json([sock], out)
        assert json.loads(out.getvalue()) == [sock.as_dict()]
