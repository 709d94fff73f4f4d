"""The table for a person: fitted to the terminal by render/fit.py, written by render/table.py.

The rules under test (render/fit.py's docstring): what gives way, in which order; a state,
an address, a port or a PID is never cut; what gave way is said in a footer; -W (no width)
shows everything; and the fast writer's text is the plain listing's, cell for cell.
Golden screens (tests/golden/screens/) show what a person sees at each width, for review.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import termios
from typing import Any

import pytest

from tcpstates.model.record import replace
from tcpstates.model.sockets import Socket, endpoint
from tcpstates.model.states import TcpState
from tcpstates.render.columns import (
    CGROUP,
    DETAIL_COLUMNS,
    INODE,
    LOCAL,
    NETNS,
    PEER,
    PID,
    PROCESS,
    RECV_Q,
    SEND_Q,
    STATE,
    UID,
    Layout,
)
from tcpstates.render.fit import GIVE_WAY, Give, compact_ends, fit
from tcpstates.render.output import Output
from tcpstates.render.table import write_table
from tcpstates.render.text import render_plain

WIDTHS = (60, 72, 80, 120, 200)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def sock(
    family: int, local: str, lport: int, remote: str, rport: int, state: TcpState,
    pid: int | None = None, process: str | None = None, send_q: int = 0,
) -> Socket:  # fmt: skip
    inode = 0 if pid is None else 1000 + lport
    return Socket(
        "tcp", family, local, lport, remote, rport, state, 0, send_q, 0, inode, pid, process
    )


# A host as a person meets it: IPv4, IPv6 and v4-mapped ends, listeners with a backlog in
# Send-Q, 5- and 7-digit PIDs, a long process name and a TIME_WAIT the kernel holds.
EST, LISTEN, TIME_WAIT = TcpState.ESTABLISHED, TcpState.LISTEN, TcpState.TIME_WAIT
HOST = [
    sock(4, "0.0.0.0", 22, "0.0.0.0", 0, LISTEN, 812, "sshd", send_q=128),
    sock(6, "::", 8080, "::", 0, LISTEN, 11127, "python3", send_q=4096),
    sock(4, "127.0.0.1", 42186, "127.0.0.1", 8080, EST, 11127, "python3"),
    sock(6, "::ffff:127.0.0.1", 8080, "::ffff:127.0.0.1", 42186, EST, 11127, "python3"),
    sock(6, "2001:db8::17", 443, "2001:db8::9", 5000, EST, 1234567, "nginx: worker"),
    sock(6, "::1", 5432, "::1", 51514, EST, 20311, "postgres-replica"),
    sock(4, "10.1.2.3", 40000, "10.9.8.7", 443, TIME_WAIT),
]  # fmt: skip


def table(sockets: list[Socket], width: int | None, color: str = "never", **layout: bool) -> str:
    """The listing's table on a terminal ``width`` columns wide; None: -W."""
    out = Output(io.StringIO(), io.StringIO(), True, color, width=width, wide=width is None)
    write_table(sockets, Layout(**layout), out)
    return out.stdout.getvalue()  # type: ignore[attr-defined, no-any-return]


def plain(sockets: list[Socket], **layout: bool) -> str:
    out = io.StringIO()
    render_plain(sockets, out, Layout(**layout))
    return out.getvalue()


def body(text: str) -> list[str]:
    """The table's header and rows, a row of several lines (render/fit.py's Shape) joined
    in one, two blanks apart: the lines but the rule and what follows the rows."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line and set(line) == {"─"})
    rows = ["  ".join(line.strip() for line in lines[:rule])]
    for line in lines[rule + 1 :]:
        if not line.startswith(" ") and " socket" in line:
            break  # the counts
        if line.startswith(" "):  # a row's next line
            rows[-1] += "  " + line.strip()
        else:
            rows.append(line)
    return rows


# -- the order things give way in ------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_no_line_is_wider_than_the_terminal_and_identities_are_whole(width):
    text = table(HOST, width)
    assert max(map(len, text.splitlines())) <= width, text
    rows = body(text)[1:]
    for row, s in zip(rows, HOST, strict=True):
        words = row.split()
        assert words[0] == s.state_name
        assert spellings(s.local_address, s.local_port) & set(words), row
        assert spellings(s.remote_address, s.remote_port) & set(words), row
        assert ("-" if s.pid is None else str(s.pid)) in words, row


def spellings(address: str, port: int) -> set[str]:
    """How an end may be written: as the kernel has it, or compacted (v4-mapped, any peer)."""
    kernel = endpoint(address, port)
    return {kernel, *compact_ends(PEER, [kernel])}


def test_each_step_is_taken_only_while_the_table_is_too_wide():
    wide = table(HOST, None)
    width = len(wide.splitlines()[1])  # the rule, as wide as the table
    assert width > 100 and "hidden" not in wide
    assert table(HOST, width) == wide  # it fits: nothing is done
    # First the same cells written shorter, both ends of a row alike, and nothing else.
    at_100 = table(HOST, 100)
    assert body(at_100)[0].split()[:5] == ["State", "Recv-Q", "Send-Q", "Local", "Peer"]
    assert "  [127.0.0.1]:8080    [127.0.0.1]:42186  " in at_100 and "::ffff" not in at_100
    assert at_100.splitlines()[-1] == "v4-mapped as [a.b.c.d]; -W shows all"
    # Then Recv-Q, all 0, then process names, cut; Send-Q, not all 0, stays.
    at_80 = table(HOST, 80)
    assert body(at_80)[0].split() == ["State", "Send-Q", "Local", "Peer", "PID", "Process"]
    assert "  nginx: wo…\n" in at_80 and "  postgres-…\n" in at_80 and "  (kernel)\n" in at_80
    assert at_80.splitlines()[-1] == (
        "v4-mapped as [a.b.c.d]; Recv-Q (all 0) hidden; process names cut; -W shows all"
    )
    # At 60 every optional column is gone, and the footer, briefer, says how many.
    at_60 = table(HOST, 60)
    assert body(at_60)[0].split() == ["State", "Local", "Peer", "PID"]
    assert at_60.splitlines()[-1] == "v4-mapped as [a.b.c.d]; 3 columns hidden; -W shows all"


def test_names_are_cut_with_an_ellipsis_before_a_column_is_hidden():
    hosts = [replace(s, process=s.process and s.process * 3) for s in HOST[:4]]
    text = table(hosts, 75)
    cut = [w for w in " ".join(body(text)[1:]).split() if w.endswith("…")]
    assert cut == ["sshdsshds…", "python3py…", "python3py…", "python3py…"], text
    assert max(map(len, text.splitlines())) == 75  # cut to what room was left, no more
    assert "; process names cut;" in text.splitlines()[-1]
    assert "Send-Q" in body(text)[0]  # not hidden: cutting names made room enough


def test_queues_are_hidden_as_all_zero_only_when_every_one_is():
    busy = [replace(HOST[2], recv_q=7), *HOST[3:6]]
    text = table(busy, 88)
    assert "Send-Q (all 0)" in text and "Recv-Q" not in text.splitlines()[-1]
    assert "Recv-Q" in body(text)[0] and "Send-Q" not in body(text)[0]


LONG = [
    # A privacy address: eight groups, none of them zero; the longest end there is but a scope.
    sock(6, "2a02:8109:9d40:1a00:b5f2:2c4d:8a1e:3f10", 51514, "2a00:1450:4001:82b::200e", 443,
         EST, 1234567, "firefox", send_q=3),
    sock(6, "2a00:1450:4001:82b::200e", 443, "::", 0, LISTEN, 23456, "nginx", send_q=511),
]  # fmt: skip


def test_too_narrow_for_the_identities_the_peer_goes_under_the_local_end():
    text = table(LONG, 80)
    assert text.splitlines()[:6] == [
        "State        Local Address:Port                                   PID  Process",
        "             Peer Address:Port",
        "─" * 78,
        "ESTABLISHED  [2a02:8109:9d40:1a00:b5f2:2c4d:8a1e:3f10]:51514  1234567  firefox",
        "             [2a00:1450:4001:82b::200e]:443",
        "LISTEN       [2a00:1450:4001:82b::200e]:443                     23456  nginx",
    ]
    # Of what one line could not keep, Process (hidden last) came back on two; the queues
    # would make the lines 86 wide.
    assert text.splitlines()[-1] == "Recv-Q (all 0), Send-Q hidden; -W shows all"


def test_narrower_still_both_ends_go_under_the_rest_of_the_row():
    text = table(LONG, 60)
    assert text.splitlines()[:7] == [
        "State        Recv-Q  Send-Q      PID  Process",
        "    Local Address:Port",
        "    Peer Address:Port",
        "─" * 51,
        "ESTABLISHED       0       3  1234567  firefox",
        "    [2a02:8109:9d40:1a00:b5f2:2c4d:8a1e:3f10]:51514",
        "    [2a00:1450:4001:82b::200e]:443",
    ]
    assert max(map(len, text.splitlines())) <= 60


@pytest.mark.parametrize("width", [*WIDTHS, 52])
def test_long_ends_fit_whole_at_every_width(width):
    text = table([*HOST, *LONG], width)
    assert max(map(len, text.splitlines())) <= width, text
    rows = body(text)[1:]
    for row, s in zip(rows, [*HOST, *LONG], strict=True):
        words = row.split()
        assert words[0] == s.state_name
        assert spellings(s.local_address, s.local_port) & set(words), row
        assert spellings(s.remote_address, s.remote_port) & set(words), row
        assert str(s.pid) in words or s.pid is None, row


def test_a_row_stays_one_line_while_hiding_can_make_it_fit():
    # Two lines a row halve what a screen shows: only when the identities alone do not fit.
    assert "  [2001:db8::9]:5000  1234567\n" in table(HOST, 60)


def test_too_narrow_even_for_lines_of_their_own_lines_are_as_wide_as_they_must_be():
    text = table(LONG, 40)
    assert "    [2a02:8109:9d40:1a00:b5f2:2c4d:8a1e:3f10]:51514" in text.splitlines()
    assert max(map(len, text.splitlines())) == 4 + 47  # no wider than they must be


def test_a_watch_row_of_two_lines_keeps_its_mark_and_colours():
    from tcpstates.watch.render import MARKED_STATE, _append_cell  # noqa: F401

    fitted = fit([STATE, LOCAL, PEER, PID], [["LISTEN"], ["[2a00:1450:4001:82b::200e]:443"],
                 ["[2a02:8109:9d40:1a00:b5f2:2c4d:8a1e:3f10]:51514"], ["7"]], 60)  # fmt: skip
    assert fitted.text(fitted.headers).splitlines() == [
        "State   Local Address:Port                               PID",
        "        Peer Address:Port",
    ]
    assert fitted.width == 60


def test_one_namespace_is_named_without_its_inode_when_room_is_short():
    cells = [["4026532174 (tcpstates-t-1)"] * 2, ["ESTABLISHED", "LISTEN"], ["127.0.0.1:1"] * 2]
    fitted = fit([NETNS, STATE, LOCAL], cells, 40)
    assert list(fitted.cells[0]) == ["tcpstates-t-1"] * 2
    assert fitted.notes == ("Netns without inodes",)
    assert fit([NETNS, STATE, LOCAL], cells, 80).cells[0] == cells[0]  # room enough: as it is


def test_the_footer_is_one_line_said_briefer_as_the_width_narrows():
    fitted = fit([STATE, RECV_Q, SEND_Q, PROCESS], [["LISTEN"], ["0"], ["1"], ["nginx"]], 8)
    assert fitted.footer(None) == ["Recv-Q (all 0), Send-Q, Process hidden; -W shows all"]
    assert fitted.footer(40) == ["3 columns hidden; -W shows all"]
    assert fitted.footer(29) == ["3 hidden; -W shows all"]
    fitted = fit([STATE, RECV_Q, PROCESS], [["LISTEN"], ["0"], ["nginx-worker"]], 16)
    assert fitted.footer(None) == ["Recv-Q (all 0) hidden; process names cut; -W shows all"]
    assert fitted.footer(40) == ["columns cut and hidden; -W shows all"]
    assert fitted.footer(30) == ["columns cut and hidden;", "-W shows all"]


def test_a_column_hidden_early_comes_back_when_a_later_step_left_room():
    # --watch's order hides Process, then Was; with Was gone, Process cut to what is left fits.
    from tcpstates.watch.render import WAS, WATCH_GIVE_WAY

    columns = [STATE, WAS, LOCAL, PID, PROCESS]
    cells = [["CLOSE_WAIT"], ["ESTABLISHED"], ["127.0.0.1:40000"], ["1234567"], ["a-long-name"]]
    fitted = fit(columns, cells, 47, WATCH_GIVE_WAY)
    assert fitted.columns == (STATE, LOCAL, PID, PROCESS) and fitted.width == 47
    assert fitted.cells[-1] == ["a-long-n…"]
    assert fitted.notes == ("process names cut", "Was hidden")


def test_fit_never_names_an_identity_in_a_step():
    # The promise, as data: no step gives way a state, an address, a port or a PID.
    named = {column for step in GIVE_WAY for column in step.columns}
    cutting = {c for s in GIVE_WAY if s.give in (Give.CUT, Give.HIDE) for c in s.columns}
    assert cutting == {RECV_Q, SEND_Q, PROCESS, UID, INODE, CGROUP, *DETAIL_COLUMNS}
    assert not {STATE, PID} & named and {LOCAL, PEER} & named == {LOCAL, PEER}
    compacts = [s for s in GIVE_WAY if s.give is Give.COMPACT]
    assert {c for s in compacts for c in s.columns} == {LOCAL, PEER, NETNS}


def test_compaction_loses_nothing():
    cells = ["[::ffff:127.0.0.1]:42186", "[::1]:22", "0.0.0.0:*", "[::]:*", "[::ffff:1:2]:9"]
    compact = compact_ends(PEER, cells)
    assert compact == ["[127.0.0.1]:42186", "[::1]:22", "*:*", "*:*", "[::ffff:1:2]:9"]
    # The local end keeps its family: 0.0.0.0 and [::] are two different listeners.
    assert compact_ends(LOCAL, cells)[2:4] == ["0.0.0.0:*", "[::]:*"]
    # Both ends of a row are spelled alike: both compacted, or neither.
    ends = [["[::ffff:127.0.0.1]:80"], ["[2001:db8:ffff::1234]:61000"]]
    fitted = fit([STATE, LOCAL, PEER], [["ESTABLISHED"], *ends], 40)
    assert [list(c) for c in fitted.cells[1:]] == [["[127.0.0.1]:80"], ends[1]]
    assert fitted.headers == ("State", "Local", "Peer")


def test_footer_is_said_only_when_something_gave_way():
    assert "-W" not in table(HOST[:1], 200)
    assert fit([STATE], [["LISTEN"]], 80).footer(80) == []


# -- the fast writer and the plain listing ---------------------------------------------------


@pytest.mark.parametrize("layout", [{}, {"proto": True}, {"owners": False}])
def test_wide_table_is_the_plain_listing_cell_for_cell(layout):
    # render/table.py writes the plain listing's cells with one %-format: the rows of -W (no
    # width, no colour) are the plain text's lines, character for character.
    many = HOST * 3 + [replace(HOST[1], process="名前-wide")]
    assert body(table(many, None, **layout)) == plain(many, **layout).splitlines()


@pytest.mark.parametrize("width", WIDTHS)
def test_fitted_cells_are_the_plain_cells_shown_shorter(width):
    # Fitted, each cell is the plain one, or compacted, or cut to a prefix and an ellipsis.
    text = table(HOST, width)
    plain_rows = [re.split(r"  +", line.strip()) for line in plain(HOST).splitlines()]
    headers = plain_rows[0]
    shown = re.split(r"  +", body(text)[0].strip())
    for row, plain_row in zip(body(text)[1:], plain_rows[1:], strict=True):
        cells = dict(zip(headers, plain_row, strict=True))
        for header, cell in zip(shown, re.split(r"  +", row.strip()), strict=True):
            full = cells[{"Local": LOCAL.header, "Peer": PEER.header}.get(header, header)]
            if cell.endswith("…"):
                assert full.startswith(cell[:-1]) and header == "Process"
            else:
                assert cell == full or cell in compact_ends(PEER, [full]), (cell, full)


def test_colour_changes_no_character():
    coloured = table(HOST, 80, color="always")
    assert "\x1b[" in coloured
    assert ANSI.sub("", coloured) == table(HOST, 80)


def test_a_large_table_stays_a_table():
    # It used to turn into plain text past 2,000 rows; it is a table at any size now. How fast
    # is bench.py's to say ("table" against "plain", side by side), not a timed test's.
    many = [replace(HOST[2], local_port=1024 + i % 60000, pid=10000 + i) for i in range(5000)]
    text = table(many, 80, color="always")
    assert text.count("\n") == 5000 + 3 and "─" * 20 in text


# -- golden screens, for review --------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_golden_listing_screens(golden, width):
    golden(f"screens/listing-{width}.txt", table(HOST, width))


@pytest.mark.parametrize("width", WIDTHS)
def test_golden_watch_screens(golden, utc, width):
    from rich.console import Console

    from tcpstates.watch.frames import frames
    from tcpstates.watch.render import fitted_view

    closed = replace(HOST[3], state=TcpState.CLOSE_WAIT, recv_q=1)
    gone = replace(HOST[2], state=TcpState.FIN_WAIT2, inode=0, pid=None, process=None)
    reads = iter([HOST, [*HOST[:2], gone, closed, *HOST[5:], HOST[0].__class__(
        "tcp", 4, "127.0.0.1", 50000, "127.0.0.1", 22, TcpState.SYN_SENT, 0, 1, 0, 77, 20311,
        "ssh")]])  # fmt: skip
    stream = frames(lambda: next(reads), 2, sleep=lambda s: None, clock=lambda: 1767621802.125)
    next(stream)
    frame = next(stream)
    texts = []
    # On a console as wide as the terminal, Rich wraps what is too wide; on one 1000 wide it
    # does not, and a line too wide shows as too wide.
    for columns in (width, 1000):
        console = Console(file=io.StringIO(), width=columns, height=24, color_system=None)
        console.print(fitted_view(frame, console, Layout(), 2, True, width))
        texts.append([line.rstrip() for line in console.file.getvalue().splitlines()])  # type: ignore[attr-defined]
    assert max(map(len, texts[1])) <= width
    assert texts[0] == texts[1]
    golden(f"screens/watch-{width}.txt", "\n".join(texts[0]) + "\n")


@pytest.mark.parametrize("width", (60, 80, 120))
def test_golden_long_ends_screens(golden, width):
    golden(f"screens/listing-long-{width}.txt", table([*HOST, *LONG], width))


# -- the width to fit ------------------------------------------------------------------------


def test_the_width_to_fit(monkeypatch):
    def out(**facts: Any) -> Output:
        return Output(io.StringIO(), io.StringIO(), **facts)

    monkeypatch.delenv("COLUMNS", raising=False)
    assert out(is_terminal=False).fit_width() is None  # a pipe: every column, whole
    assert out(is_terminal=True, width=70).fit_width() == 70  # pinned (a test, a pager)
    assert out(is_terminal=True, width=70, wide=True).fit_width() is None  # -W
    assert out(is_terminal=False, color="always").fit_width() is None  # no width to fit
    monkeypatch.setenv("COLUMNS", "99")
    assert out(is_terminal=False).fit_width() is None  # plain text: COLUMNS changes nothing
    assert out(is_terminal=False, color="always").fit_width() == 99  # a table asked for
    assert out(is_terminal=True).fit_width() == 99  # COLUMNS before the terminal, as Rich


def test_the_terminals_width_is_read_afresh(monkeypatch):
    # --watch asks at each frame: a resized terminal is fitted from the next one on.
    monkeypatch.delenv("COLUMNS", raising=False)
    master, slave = pty.openpty()
    try:
        with open(slave, "w", closefd=False) as terminal:
            out = Output(terminal, io.StringIO(), is_terminal=True)
            for columns in (100, 61):
                fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
                assert out.fit_width() == columns
    finally:
        os.close(slave)
        os.close(master)
