"""--summary against ss's own counts, on a zoo in a network namespace of its own.

A namespace of its own (the netns fixture) holds nothing but the zoo, so the counts of
tcpstates' fast paths, its record path and ss must agree exactly, with no other process's
sockets racing them.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tcpstates.model.query import Query
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState
from tcpstates.render.styles import state_style
from tcpstates.sources.base import Reading
from tcpstates.summary.counts import summarize
from tcpstates.summary.groups import group_sockets

TESTS = Path(__file__).parent

SCRIPT = """
import json, subprocess, sys
sys.path.insert(0, {tests!r})
from zoo import Zoo
def tcpstates(*args):
    out = subprocess.run([sys.executable, "-m", "tcpstates", *args], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)
with Zoo():
    ss = subprocess.run(["ss", "-tanH"], capture_output=True, text=True, check=True).stdout
    print(json.dumps({{
        "ss": [line.split()[0] for line in ss.splitlines()],
        "netlink": tcpstates("--summary", "-o", "json", "--source", "netlink"),
        "procfs": tcpstates("--summary", "-o", "json", "--source", "procfs"),
        "fast4": tcpstates("--summary", "-o", "json", "-4"),
        "records4": tcpstates("--summary", "-o", "json", "-4", "--local", "127.0.0.0/8"),
        "filtered": tcpstates("--summary", "-o", "json", "-s", "bucket"),
        "both": tcpstates("--summary", "-o", "json", "-t", "-u"),
    }}))
"""

SS_NAMES = {"ESTAB": "ESTABLISHED", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECV",
            "FIN-WAIT-1": "FIN_WAIT1", "FIN-WAIT-2": "FIN_WAIT2", "TIME-WAIT": "TIME_WAIT",
            "CLOSE-WAIT": "CLOSE_WAIT", "LAST-ACK": "LAST_ACK", "LISTEN": "LISTEN",
            "CLOSING": "CLOSING", "UNCONN": "CLOSE"}  # fmt: skip


@pytest.fixture(scope="module")
def counts(netns) -> dict:  # type: ignore[no-untyped-def]
    script = SCRIPT.format(tests=str(TESTS))
    result = netns("summary").run(sys.executable, "-c", script, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_fast_counts_equal_ss(counts):
    from collections import Counter

    expected = Counter(SS_NAMES[name] for name in counts["ss"])
    netlink = {state: n for state, n in counts["netlink"].items() if n}
    assert netlink == dict(expected)
    assert counts["netlink"]["CLOSING"] >= 1 and counts["netlink"]["TIME_WAIT"] >= 1


def test_every_path_agrees(counts):
    assert counts["procfs"] == counts["netlink"]
    # An address filter forces the record path; the zoo's IPv4 sockets are all on 127.0.0.1.
    assert counts["records4"] == counts["fast4"]
    assert sum(counts["fast4"].values()) > 10


def test_state_filter_and_protocols(counts):
    assert counts["filtered"] == {
        "SYN_RECV": counts["netlink"]["SYN_RECV"],
        "TIME_WAIT": counts["netlink"]["TIME_WAIT"],
    }
    assert counts["both"]["tcp"] == counts["netlink"]
    assert counts["both"]["udp"]["UNCONN"] >= 2 and counts["both"]["udp"]["ESTABLISHED"] >= 1


# --- counts stay states until they are written -----------------------------------------------


def _sock(proto: str, state: TcpState, port: int) -> Socket:
    return Socket(proto, 4, "127.0.0.1", port, "127.0.0.1", 9, state, inode=1, pid=7, process="app")


class Listed:
    """A source of the sockets it is given, with no count(): the record path."""

    name, why = "listed", "a test"

    def __init__(self, sockets: list[Socket]) -> None:
        self.sockets = sockets

    def read(self, query: Query, owners: bool = False) -> Reading:
        return Reading(iter(self.sockets))


MIXED = [
    _sock("tcp", TcpState.ESTABLISHED, 1),
    _sock("udp", TcpState.ESTABLISHED, 2),
    _sock("udp", TcpState.ESTABLISHED, 3),
    _sock("udp", TcpState.CLOSE, 4),
    _sock("tcp", TcpState.CLOSE, 5),
]


def test_a_summary_is_keyed_by_state_and_named_per_protocol_when_written() -> None:
    from tcpstates.summary.render import render_summary_plain, summary_table

    summary = summarize(Listed(MIXED), Query(protos=frozenset({"tcp", "udp"})))
    assert summary.counts["udp"] == {TcpState.ESTABLISHED: 2, TcpState.CLOSE: 1}
    assert summary.as_dict()["udp"] == {"ESTABLISHED": 2, "UNCONN": 1}
    assert summary.as_dict()["tcp"]["CLOSE"] == 1
    out = io.StringIO()
    render_summary_plain(summary, out)
    assert "\nudp    UNCONN           1\n" in out.getvalue()
    rows = _text_rows(summary_table(summary))
    styles = {cells[1].plain: cells[1].spans[0].style for cells in rows if cells[1].spans}
    assert styles["UNCONN"] == state_style(TcpState.CLOSE)  # coloured from the state, not the name


def test_a_group_counts_one_name_once_and_colours_it_by_its_state() -> None:
    from tcpstates.summary.render_groups import groups_table

    (group,) = group_sockets(MIXED, "process")
    assert group.as_dict("process")["states"] == {"ESTABLISHED": 3, "UNCONN": 1, "CLOSE": 1}
    (row,) = _text_rows(groups_table([group], "process"))
    named = {row[3].plain[span.start : span.end]: span.style for span in row[3].spans}
    assert named["UNCONN"] == named["CLOSE"] == state_style(TcpState.CLOSE)
    assert named["ESTABLISHED"] == state_style(TcpState.ESTABLISHED)


def _text_rows(table: Any) -> list[list[Any]]:
    cells = [column._cells for column in table.columns]
    return [list(row) for row in zip(*cells, strict=True)]


def _far(remote: str, port: int, state: TcpState) -> Socket:
    return Socket("tcp", 6, "2001:db8::1", port, remote, 443, state, inode=1, pid=7, process="a")


FAR = [
    *(_far("2a02:8109:9d40:1a00:b5f2:2c4d:8a1e:3f10", 40000 + n, TcpState.ESTABLISHED)
      for n in range(3)),
    _far("2a02:8109:9d40:1a00:b5f2:2c4d:8a1e:3f10", 41000, TcpState.CLOSE_WAIT),
    _far("2a02:8109:9d40:1a00:b5f2:2c4d:8a1e:3f10", 41001, TcpState.FIN_WAIT2),
    _far("2001:db8::9", 41002, TcpState.TIME_WAIT),
]  # fmt: skip


@pytest.mark.parametrize("width", [*range(56, 82), 120, 200, None])
def test_groups_fit_the_width_and_cut_no_name_and_no_state(width: int | None) -> None:
    # A remote address is the group's name: never cut; the bar gives way, then the states
    # break between entries, then go under the name.
    from rich.console import Console

    from tcpstates.summary.render_groups import groups_table

    groups = group_sockets(FAR, "remote")
    renders = []
    # On a console as wide as the terminal, Rich shrinks a table too wide, cutting a cell with
    # an ellipsis; on one 1000 wide it does not, and a line too wide shows as too wide.
    for columns in (width or 1000, 1000):
        console = Console(file=io.StringIO(), width=columns, color_system=None)
        console.print(groups_table(groups, "remote", width))
        renders.append([line.rstrip() for line in console.file.getvalue().splitlines()])  # type: ignore[attr-defined]
    lines = renders[1]
    text = "\n".join(lines)
    assert renders[0] == lines, "\n".join(renders[0])
    assert width is None or max(map(len, lines)) <= width, text
    assert "2a02:8109:9d40:1a00:b5f2:2c4d:8a1e:3f10" in text and "2001:db8::9" in text
    for entry in ("ESTABLISHED 3", "CLOSE_WAIT 1", "FIN_WAIT2 1", "TIME_WAIT 1"):
        assert entry in text, text  # whole, on one line
    if width is None or width >= 120:
        assert "█████" in text  # room enough: the bar stays
