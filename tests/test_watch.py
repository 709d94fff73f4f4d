"""--watch: diff of two reads, frames over real loopback sockets, the jsonl stream, the live view.

Real sockets come and go between reads: a listener, a connection to it, the client's close
(client FIN_WAIT2, server CLOSE_WAIT), the server's close (client TIME_WAIT, server gone), the
listener's close. Each test filters on its own listener's port, so other sockets cannot intrude.
"""

from __future__ import annotations

import fcntl
import io
import itertools
import json
import os
import pty
import queue
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone

import pytest
from conftest import TCPSTATES
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from terminal import needs_tmux, terminal

from tcpstates.model.errors import ExitStatus
from tcpstates.model.query import Query
from tcpstates.model.record import replace
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState
from tcpstates.render.columns import Layout
from tcpstates.sources.base import select as select_sockets
from tcpstates.sources.place import open_source
from tcpstates.summary.counts import TCP_STATES
from tcpstates.watch.frames import Change, ChangeKind, Frame, diff, frames
from tcpstates.watch.render import (
    CHUNK,
    fitted_view,
    frame_line,
    frame_view,
    iso_time,
    write_jsonl,
)

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc")

LOOP4 = "127.0.0.1"
APPEARED, VANISHED, CHANGED = ChangeKind.APPEARED, ChangeKind.VANISHED, ChangeKind.CHANGED
START = 1767621802.125  # 2026-01-05T14:03:22.125Z


# -- records made by hand, for the pure parts ----------------------------------------------


def tcp(lport: int, rport: int, state: TcpState, inode: int | None) -> Socket:
    remote = LOOP4 if rport else "0.0.0.0"
    return Socket("tcp", 4, LOOP4, lport, remote, rport, state, 0, 0, 0, inode)


LISTEN = tcp(8080, 0, TcpState.LISTEN, 10)
SERVER = tcp(8080, 40000, TcpState.ESTABLISHED, 11)
CLIENT = tcp(40000, 8080, TcpState.ESTABLISHED, 12)


def test_diff_appeared_vanished_changed():
    closing = replace(CLIENT, state=TcpState.FIN_WAIT1)
    changes = diff([LISTEN, SERVER, CLIENT], [LISTEN, closing, tcp(9090, 0, TcpState.LISTEN, 13)])
    assert changes == (  # in the order of their sockets' keys
        Change(VANISHED, SERVER),
        Change(APPEARED, tcp(9090, 0, TcpState.LISTEN, 13)),
        Change(CHANGED, closing, TcpState.ESTABLISHED),
    )
    assert changes[2].old_state_name == "ESTABLISHED" and changes[0].old_state_name is None


def test_diff_of_the_same_sockets_is_empty_even_when_queues_move():
    assert diff([LISTEN, SERVER], [replace(SERVER, recv_q=5), LISTEN]) == ()


def test_a_socket_losing_or_gaining_its_inode_is_the_same_socket():
    # close() leaves the connection to the kernel (inode 0); accept() gives one an inode.
    orphan = replace(CLIENT, state=TcpState.FIN_WAIT2, inode=0)
    assert diff([CLIENT], [orphan]) == (Change(CHANGED, orphan, TcpState.ESTABLISHED),)
    queued = replace(SERVER, inode=0)
    assert diff([queued], [SERVER]) == ()


def test_two_inodes_on_one_key_are_two_sockets():
    # A SO_REUSEPORT listener closed and another opened on the same port between two reads.
    other = replace(LISTEN, inode=99)
    assert diff([LISTEN], [other]) == (Change(VANISHED, LISTEN), Change(APPEARED, other))


def test_duplicate_keys_pair_by_inode_then_state_then_anything():
    # One key, several sockets: listeners sharing a port, and a TIME_WAIT left by an earlier
    # connection on the same four-tuple as a new one.
    a, b = replace(LISTEN, inode=20), replace(LISTEN, inode=21)
    c = replace(LISTEN, inode=22)
    assert diff([a, b], [b, c]) == (Change(VANISHED, a), Change(APPEARED, c))
    time_wait = replace(CLIENT, state=TcpState.TIME_WAIT, inode=0)
    new = replace(CLIENT, state=TcpState.SYN_SENT, inode=30)
    established = replace(new, state=TcpState.ESTABLISHED)
    assert diff([time_wait, new], [established, time_wait]) == (
        Change(CHANGED, established, TcpState.SYN_SENT),
    )
    # The same inode is the same socket, even where a coincidence of states would pair them
    # the other way round.
    held, kernels = SERVER, replace(SERVER, inode=0, state=TcpState.CLOSE_WAIT)
    held_now = replace(held, state=TcpState.CLOSE_WAIT)
    kernels_now = replace(kernels, state=TcpState.ESTABLISHED)
    assert diff([held, kernels], [kernels_now, held_now]) == (
        Change(CHANGED, kernels_now, TcpState.CLOSE_WAIT),
        Change(CHANGED, held_now, TcpState.ESTABLISHED),
    )
    # Unknown inodes (psutil): the same state pairs first; the rest pair by rank.
    u1, u2 = replace(SERVER, inode=None), replace(SERVER, inode=None, state=TcpState.CLOSE_WAIT)
    gone = replace(u1, state=TcpState.LAST_ACK)
    assert diff([u1, u2], [u2, gone]) == (Change(CHANGED, gone, TcpState.ESTABLISHED),)


def test_diff_does_not_depend_on_the_order_of_the_reads():
    before = [
        replace(LISTEN, inode=20), replace(LISTEN, inode=21), replace(LISTEN, inode=None),
        replace(CLIENT, state=TcpState.TIME_WAIT, inode=0), CLIENT, SERVER,
    ]  # fmt: skip
    after = [
        replace(LISTEN, inode=21), replace(LISTEN, inode=22), replace(LISTEN, inode=0),
        replace(CLIENT, state=TcpState.FIN_WAIT2, inode=0), replace(SERVER, inode=None),
        replace(SERVER, state=TcpState.CLOSE_WAIT, inode=0),
    ]  # fmt: skip
    expected = diff(before, after)
    assert {c.kind for c in expected} == set(ChangeKind)
    for old in itertools.permutations(before):
        assert diff(old, reversed(after)) == expected


# -- frames() with a fake clock ------------------------------------------------------------


class FakeTime:
    """A clock that moves only when slept on (or when a test moves it)."""

    def __init__(self) -> None:
        self.now = START
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_frames_sleep_what_is_left_of_the_interval():
    fake = FakeTime()
    costs = iter([0.5, 3.0, -100.0, 0.0])  # seconds each read takes; -100: the clock steps back

    def read() -> list[Socket]:
        fake.now += next(costs)
        return []

    stream = frames(read, 2, sleep=fake.sleep, clock=fake.clock)
    times = [next(stream).time for _ in range(4)]
    assert fake.slept == [1.5, 0.0, 2.0]
    assert times[0] == datetime.fromtimestamp(START, timezone.utc)
    assert iso_time(times[0]) == "2026-01-05T14:03:22.125Z"


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf"), 1e10, 86400.5])
def test_frames_refuse_a_bad_interval(interval):
    with pytest.raises(ValueError, match="a number of seconds above 0, at most 86400"):
        next(frames(list, interval))


def test_frames_count_the_query_states_and_every_protocol_asked_for():
    query = Query(protos=frozenset({"tcp", "udp"}), states=frozenset({TcpState.LISTEN}))
    reads = iter([[LISTEN], [LISTEN, replace(LISTEN, inode=99, state=TcpState.UNKNOWN)], []])
    stream = frames(lambda: next(reads), 1, query=query, sleep=lambda s: None)
    first, second, third = next(stream), next(stream), next(stream)
    assert first.summary.as_dict() == {"tcp": {"LISTEN": 1}, "udp": {}}
    # A state outside the query's still shows while it, or its drop, is there to see.
    assert second.summary.as_dict() == {"tcp": {"LISTEN": 1, "UNKNOWN": 1}, "udp": {}}
    assert third.summary.as_dict() == {"tcp": {"LISTEN": 0, "UNKNOWN": 0}, "udp": {}}
    unknown = third.counts[1]
    assert (unknown.state_name, unknown.since_last, unknown.since_start) == ("UNKNOWN", -1, 0)


@pytest.mark.slow
def test_memory_stays_bounded_over_many_frames():
    # Churn: every read replaces a fifth of 500 connections; nothing may pile up across frames.
    def read(n: int) -> list[Socket]:
        ports = range(1000 + n * 100, 1500 + n * 100)
        return [tcp(port, 8080, TcpState.ESTABLISHED, port) for port in ports]

    counter = itertools.count()
    stream = frames(lambda: read(next(counter)), 1, sleep=lambda s: None)
    tracemalloc.start()
    try:
        for _ in range(50):
            next(stream)
        warm = tracemalloc.get_traced_memory()[0]
        for _ in range(500):
            next(stream)
        grown = tracemalloc.get_traced_memory()[0] - warm
    finally:
        tracemalloc.stop()
    assert grown < 200_000, grown


# -- real sockets --------------------------------------------------------------------------


def inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def reader(port: int, protos: frozenset[str] = frozenset({"tcp"})) -> Callable[[], list[Socket]]:
    source = open_source("netlink")
    query = Query(protos=protos, port=port)
    return lambda: list(select_sockets(source.read(query), query))


def settle(read: Callable[[], list[Socket]], states: Counter[str], timeout: float = 5) -> None:
    """Wait until the kernel shows ``states``: a peer's ACK lands just after a syscall returns."""
    deadline = time.monotonic() + timeout
    while Counter(s.state_name for s in read()) != states:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {dict(states)}, kernel shows {read()}")
        time.sleep(0.01)


Summarized = tuple[str, int, int, str, str | None, bool]


def summary(change: Change) -> Summarized:
    """What changed, where, from which state, and whether a process still holds the socket."""
    s = change.socket
    owned = bool(s.inode)
    return (
        change.kind.value,
        s.local_port,
        s.remote_port,
        s.state_name,
        change.old_state_name,
        owned,
    )


def in_key_order(*expected: Summarized) -> list[Summarized]:
    """Changes come in the order of their sockets' keys: here, all on 127.0.0.1, by port."""
    return sorted(expected, key=lambda change: (change[1], change[2]))


def nonzero(frame: Frame) -> dict[str, tuple[int, int, int]]:
    return {
        row.state_name: (row.count, row.since_last, row.since_start)
        for row in frame.counts
        if row.count or row.since_last or row.since_start
    }


def test_frames_over_real_sockets(sockets):
    fake = FakeTime()
    listener = sockets.listener(LOOP4)
    port = listener.getsockname()[1]
    read = reader(port)
    stream = frames(read, 2, sleep=fake.sleep, clock=fake.clock)
    first = next(stream)
    assert [summary(c) for c in first.changes] == [("appeared", port, 0, "LISTEN", None, True)]
    assert nonzero(first) == {"LISTEN": (1, 1, 0)}
    assert [row.state_name for row in first.counts] == [s.name for s in TCP_STATES]

    client, server = sockets.connect(listener)
    cport = client.getsockname()[1]
    settle(read, Counter(LISTEN=1, ESTABLISHED=2))
    second = next(stream)
    assert [summary(c) for c in second.changes] == in_key_order(
        ("appeared", port, cport, "ESTABLISHED", None, True),
        ("appeared", cport, port, "ESTABLISHED", None, True),
    )
    assert nonzero(second) == {"ESTABLISHED": (2, 2, 2), "LISTEN": (1, 0, 0)}

    client.close()  # the client's FIN: client FIN_WAIT2 (now the kernel's), server CLOSE_WAIT
    settle(read, Counter(LISTEN=1, FIN_WAIT2=1, CLOSE_WAIT=1))
    third = next(stream)
    assert [summary(c) for c in third.changes] == in_key_order(
        ("changed", port, cport, "CLOSE_WAIT", "ESTABLISHED", True),
        ("changed", cport, port, "FIN_WAIT2", "ESTABLISHED", False),
    )
    assert nonzero(third) == {
        "ESTABLISHED": (0, -2, 0), "FIN_WAIT2": (1, 1, 1), "CLOSE_WAIT": (1, 1, 1),
        "LISTEN": (1, 0, 0),
    }  # fmt: skip

    server.close()  # the server's FIN: it goes; the client waits in TIME_WAIT
    settle(read, Counter(LISTEN=1, TIME_WAIT=1))
    fourth = next(stream)
    assert [summary(c) for c in fourth.changes] == in_key_order(
        ("vanished", port, cport, "CLOSE_WAIT", None, True),
        ("changed", cport, port, "TIME_WAIT", "FIN_WAIT2", False),
    )
    assert nonzero(fourth) == {
        "FIN_WAIT2": (0, -1, 0), "TIME_WAIT": (1, 1, 1), "CLOSE_WAIT": (0, -1, 0),
        "LISTEN": (1, 0, 0),
    }  # fmt: skip

    listener.close()
    settle(read, Counter(TIME_WAIT=1))
    fifth = next(stream)
    assert [summary(c) for c in fifth.changes] == [("vanished", port, 0, "LISTEN", None, True)]
    assert nonzero(fifth) == {"TIME_WAIT": (1, 0, 1), "LISTEN": (0, -1, -1)}
    assert [f.time.timestamp() for f in (first, fifth)] == [START, START + 8]
    assert fake.slept == [2.0] * 4


def test_real_listeners_sharing_a_port(sockets):
    a = sockets.listener(LOOP4, reuseport=True)
    port = a.getsockname()[1]
    sockets.listener(LOOP4, port=port, reuseport=True)
    read = reader(port)
    before = read()
    assert len(before) == 2 and len({(s.local_address, s.local_port) for s in before}) == 1
    gone = inode(a)
    a.close()
    c = sockets.listener(LOOP4, port=port, reuseport=True)
    changes = diff(before, read())
    assert {(ch.kind, ch.socket.inode) for ch in changes} == {
        (VANISHED, gone),
        (APPEARED, inode(c)),
    }
    assert len(changes) == 2


def test_real_udp_sockets_sharing_a_port(sockets):
    u1 = sockets.udp(LOOP4, reuseport=True)
    port = u1.getsockname()[1]
    u2 = sockets.udp(LOOP4, port=port, reuseport=True)
    read = reader(port, frozenset({"udp"}))
    before = read()
    assert [s.state_name for s in before] == ["UNCONN", "UNCONN"]
    u2.connect((LOOP4, 9))  # u2 gets a peer, hence a new key; u1 is untouched
    changes = diff(before, read())
    assert [(c.kind, c.socket.state_name, c.socket.inode) for c in changes] == [
        (VANISHED, "UNCONN", inode(u2)),
        (APPEARED, "ESTABLISHED", inode(u2)),
    ]


# -- rendering -----------------------------------------------------------------------------


def scripted_frames(*reads: list[Socket], query: Query | None = None) -> list[Frame]:
    fake = FakeTime()
    stream = frames(iter(reads).__next__, 2, query=query, sleep=fake.sleep, clock=fake.clock)
    return [next(stream) for _ in reads]


STORY = scripted_frames(
    [LISTEN],
    [LISTEN, SERVER, CLIENT],
    [LISTEN, replace(SERVER, state=TcpState.CLOSE_WAIT, recv_q=1),
     replace(CLIENT, state=TcpState.FIN_WAIT2, inode=0)],
    [LISTEN, replace(CLIENT, state=TcpState.TIME_WAIT, inode=0)],
)  # fmt: skip


def test_jsonl_line_fields():
    line = frame_line(STORY[3])
    assert line.endswith("}\n") and line.count("\n") == 1
    data = json.loads(line)
    assert list(data) == ["time", "counts", "since_last", "since_start", "changes"]
    assert (
        data["since_last"]["TIME_WAIT"]
        == STORY[3].summary.as_dict()["TIME_WAIT"] - (STORY[2].summary.as_dict()["TIME_WAIT"])
    )
    assert data["time"] == "2026-01-05T14:03:28.125Z"
    assert data["counts"]["TIME_WAIT"] == 1 and data["counts"]["CLOSE_WAIT"] == 0
    assert list(data["counts"]) == [s.name for s in TCP_STATES]
    vanished, changed = data["changes"]
    assert vanished == {"change": "vanished", "old_state": None, **STORY[2].sockets[1].as_dict()}
    assert changed["change"] == "changed" and changed["old_state"] == "FIN_WAIT2"
    assert {k: changed[k] for k in ("state", "local_port", "inode")} == {
        "state": "TIME_WAIT", "local_port": 40000, "inode": 0,
    }  # fmt: skip
    assert json.loads(frame_line(STORY[3], changes=False)).keys() == {
        "time",
        "counts",
        "since_last",
        "since_start",
    }


def test_jsonl_nests_counts_per_protocol_and_escapes_names():
    query = Query(protos=frozenset({"tcp", "udp"}))
    evil = replace(SERVER, pid=7, process="a\x1b[2Jb\u202e")
    first, second = scripted_frames([], [evil], query=query)
    data = json.loads(frame_line(second))
    assert data["counts"] == {
        "tcp": {s.name: int(s is TcpState.ESTABLISHED) for s in TCP_STATES},
        "udp": {"ESTABLISHED": 0, "UNCONN": 0},
    }
    assert data["changes"][0]["process"] == "a\x1b[2Jb\u202e"
    assert "\x1b" not in frame_line(second) and "\u202e" not in frame_line(second)


def render(renderable, width: int = 100, height: int = 40) -> str:
    console = Console(file=io.StringIO(), width=width, height=height, color_system=None)
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines())


VIEW = """\
Every 2 s  2026-01-05 14:03:26  3 sockets  ~2 changed
ESTABLISHED 0 -2  FIN_WAIT2 1 +1  CLOSE_WAIT 1 +1  LISTEN 1  +2 since start

  State       Was          Recv-Q  Send-Q  Local Address:Port  Peer Address:Port  PID  Process
───────────────────────────────────────────────────────────────────────────────────────────────
  LISTEN                        0       0  127.0.0.1:8080      0.0.0.0:*            -  -
~ CLOSE_WAIT  ESTABLISHED       1       0  127.0.0.1:8080      127.0.0.1:40000      -  -
~ FIN_WAIT2   ESTABLISHED       0       0  127.0.0.1:40000     127.0.0.1:8080       -  (kernel)"""


def test_view_at_a_pinned_width(utc):
    assert render(frame_view(STORY[2], Layout(), interval=2, width=100)) == VIEW


def test_the_counts_are_one_line_of_the_states_that_hold_or_moved(utc):
    # The first frame has nothing to compare with: counts only, no change, no total's move.
    assert render(frame_view(STORY[0], Layout(), interval=2)).splitlines()[1] == "LISTEN 1"
    # Where they do not all go in one line, the unmoved give way first, then the smaller.
    lines = render(frame_view(STORY[2], Layout(), interval=2, width=80), width=80).splitlines()
    assert lines[1:3] == [
        "ESTABLISHED 0 -2  FIN_WAIT2 1 +1  CLOSE_WAIT 1 +1  LISTEN 1  +2 since start",
        "",
    ]
    lines = render(frame_view(STORY[2], Layout(), interval=2, width=70), width=70).splitlines()
    assert lines[1:3] == ["FIN_WAIT2 1 +1  CLOSE_WAIT 1 +1  2 more states  +2 since start", ""]


def test_view_marks_vanished_and_appeared_rows(utc):
    vanished = render(frame_view(STORY[3], Layout(owners=False), interval=2))
    assert "  -1 vanished  ~1 changed\n" in vanished
    assert "\n- CLOSE_WAIT  " in vanished and "\n~ TIME_WAIT   FIN_WAIT2  " in vanished
    appeared = render(frame_view(STORY[1], Layout(owners=False), interval=2))
    assert "  +2 appeared\n" in appeared and appeared.count("\n+ ESTABLISHED  ") == 2
    assert "Was" not in appeared  # no socket changed state: nothing to say there


@pytest.mark.parametrize("width", [60, 72, 80])
def test_a_narrow_terminal_keeps_marks_states_addresses_and_pids(utc, width):
    owned = [replace(s, pid=1234567, process="a-long-process-name") for s in STORY[3].sockets]
    _, frame = scripted_frames([*STORY[2].sockets], owned)
    text = render(frame_view(frame, Layout(), interval=2, width=width), width=width)
    assert max(map(len, text.splitlines())) <= width, text
    rows = [line.split() for line in text.split("─\n", 1)[1].splitlines()[:3]]
    # What identifies each socket, whole, whatever else gave way: the mark, the state, both
    # ends (the listener's peer written *:*, as ss does) and the PID.
    expected = [
        ["LISTEN", "127.0.0.1:8080", "*:*", "1234567"],
        ["-", "CLOSE_WAIT", "127.0.0.1:8080", "127.0.0.1:40000", "-"],
        ["~", "TIME_WAIT", "127.0.0.1:40000", "127.0.0.1:8080", "1234567"],
    ]
    for row, whole in zip(rows, expected, strict=True):
        cells = iter(row)
        assert all(cell in cells for cell in whole), row  # in this order, each a whole word
    assert text.splitlines()[-1].endswith("; -W shows all")


def test_first_frame_has_no_marks_and_no_changes_to_show(utc):
    text = render(frame_view(STORY[0], Layout(), interval=2))
    assert text.splitlines()[0] == "Every 2 s  2026-01-05 14:03:22  1 socket"
    assert "since start" not in text  # nothing to compare with
    assert "\n  LISTEN       0" in text  # no mark either


def test_summary_view_has_no_socket_table(utc):
    text = render(frame_view(STORY[1], Layout(), interval=2, listing=False))
    assert "Recv-Q" not in text and "Total" in text and "Since start" in text


def test_view_is_cut_to_the_terminal_keeping_marked_rows(utc):
    many = [tcp(20000 + i, 8080, TcpState.ESTABLISHED, 100 + i) for i in range(60)]
    new = tcp(30000, 8080, TcpState.SYN_SENT, 500)
    _, frame = scripted_frames(many, [*many, new])
    console = Console(file=io.StringIO(), width=100, height=30, color_system=None)
    text = render(fitted_view(frame, console, Layout(), 2, True, 100), height=30)
    lines = text.splitlines()
    assert len(lines) == 29  # the height less one line for the cursor
    assert lines[-1] == "… 38 more rows do not fit the screen"  # 61 rows, 23 shown
    assert sum(line.startswith(("+ ", "  ")) for line in lines[5:]) == 23
    assert any(line.startswith("+ SYN_SENT") for line in lines)


def test_process_names_are_escaped_in_the_view(utc):
    evil = replace(SERVER, pid=7, process="\x1b]8;;http://evil\x07x")
    text = render(frame_view(scripted_frames([evil])[0], Layout(), interval=2), width=140)
    assert "\x1b" not in text and "\\x1b]8;;http://evil\\x07x" in text


# -- the command line ----------------------------------------------------------------------


def lines_of(proc: subprocess.Popen[bytes]) -> queue.Queue[bytes]:
    """Lines of the child's stdout as they come, read by a thread so a test can time out."""
    lines: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


class Stream:
    """Follows a jsonl watch: applies each line's changes to a model of the sockets and checks
    that the line's counts are the model's."""

    def __init__(self, lines: queue.Queue[bytes]) -> None:
        self.lines = lines
        self.model: dict[tuple[object, ...], str] = {}
        self.seen: list[tuple[str, int, int, str, str | None]] = []
        self.raw = b""

    def step(self) -> dict[str, object]:
        raw = self.lines.get(timeout=10)
        self.raw += raw
        line = json.loads(raw)
        for change in line["changes"]:
            key = tuple(change[f] for f in ("proto", "family", "local_address", "local_port",
                                            "remote_address", "remote_port"))  # fmt: skip
            kind, state = change["change"], change["state"]
            if kind == "appeared":
                assert key not in self.model and change["old_state"] is None
                self.model[key] = state
            elif kind == "vanished":
                assert self.model.pop(key) == state and change["old_state"] is None
            else:
                assert self.model[key] == change["old_state"] != state
                self.model[key] = state
            self.seen.append((kind, key[3], key[5], state, change["old_state"]))  # type: ignore[arg-type]
        expected = Counter(self.model.values())
        assert line["counts"] == {s.name: expected[s.name] for s in TCP_STATES}
        return line

    def until(self, states: dict[tuple[int, int], str]) -> None:
        """Read lines until the model is ``states``: (local port, remote port) -> state."""
        deadline = time.monotonic() + 10
        while {(key[3], key[5]): state for key, state in self.model.items()} != states:
            assert time.monotonic() < deadline, self.model
            self.step()


def test_cli_jsonl_stream_shows_sockets_appear_change_and_vanish(sockets):
    listener = sockets.listener(LOOP4)
    port = listener.getsockname()[1]
    proc = subprocess.Popen(
        (*TCPSTATES, "--watch", "0.3", "-o", "jsonl", "--port", str(port)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        stream = Stream(lines_of(proc))
        first = stream.step()
        assert stream.seen == [("appeared", port, 0, "LISTEN", None)]
        assert len(first["time"]) == len("2026-01-05T14:03:22.125Z") and first["time"][-1] == "Z"
        client, server = sockets.connect(listener)
        cport = client.getsockname()[1]
        listening = {(port, 0): "LISTEN"}
        stream.until(listening | {(port, cport): "ESTABLISHED", (cport, port): "ESTABLISHED"})
        client.close()
        stream.until(listening | {(port, cport): "CLOSE_WAIT", (cport, port): "FIN_WAIT2"})
        server.close()
        stream.until(listening | {(cport, port): "TIME_WAIT"})
        listener.close()
        stream.until({(cport, port): "TIME_WAIT"})
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert (proc.returncode, err) == (0, b"")
    # Every kind of change was in the stream (a frame may also catch a passing state such as
    # LAST_ACK; the model above checked those too).
    events = {(kind, local, remote) for kind, local, remote, _, _ in stream.seen}
    assert events >= {
        ("appeared", port, cport), ("appeared", cport, port),
        ("changed", port, cport), ("changed", cport, port),
        ("vanished", port, cport), ("vanished", port, 0),
    }  # fmt: skip
    assert b"\x1b" not in stream.raw  # --color always, but not a terminal: no escape codes


def test_each_frame_is_flushed_at_once(sockets):
    # A minute between reads: the first frame must not wait in a buffer for the next ones
    # (with the buffering Python gives a pipe, whatever the environment running the tests says).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    port = str(sockets.listener(LOOP4).getsockname()[1])
    proc = subprocess.Popen(
        (*TCPSTATES, "--watch", "60", "--port", port), stdout=subprocess.PIPE, env=env
    )
    try:
        line = json.loads(lines_of(proc).get(timeout=10))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert line["counts"]["LISTEN"] == 1 and proc.returncode == 0


def test_ctrl_c_while_the_reader_stalls_exits_0_quietly(sockets):
    # Forty UDP sockets make a first frame longer than a one-page pipe nobody reads: tcpstates
    # is blocked in the middle of a line when Ctrl-C comes, and must neither hang on the rest
    # of it at exit nor print a traceback.
    for _ in range(40):
        sockets.udp(LOOP4)
    read, write = os.pipe()
    fcntl.fcntl(write, 1031, 4096)  # F_SETPIPE_SZ
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    try:
        proc = subprocess.Popen(
            (*TCPSTATES, "--watch", "0.2", "-u", "--local", LOOP4),
            stdout=write, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        os.close(write)
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        os.close(read)
    assert (proc.returncode, err) == (0, b"")


def test_cli_summary_watch_gives_counts_only():
    proc = subprocess.Popen(
        # -o table, but not on a terminal: JSON Lines all the same
        (*TCPSTATES, "--watch", "0.2", "--summary", "-t", "-u", "-l", "-o", "jsonl"),
        stdout=subprocess.PIPE,
    )
    try:
        line = json.loads(lines_of(proc).get(timeout=10))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert list(line) == ["time", "counts", "since_last", "since_start"]
    assert list(line["counts"]) == ["tcp", "udp"] and "UNCONN" in line["counts"]["udp"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--watch", "0"], "Invalid value for '--watch': 0 is not a number of seconds greater"),
        (["--watch=nan"], "nan is not a number of seconds greater than 0"),
        (["--watch", "abc"], "'abc' is not a valid float"),
        # click reads a value that starts with "-" as the next option, as for any optional value
        (["--watch", "-1"], "No such option '-1'"),
        (["--watch", "1", "-o", "csv"], "-o csv does not apply to --watch; it writes table, jsonl"),
        (["--watch", "1", "-o", "json"], "-o json does not apply to --watch"),
        (["--watch", "1", "-o", "table"], "-o table redraws a terminal"),
        (["--watch", "1", "--by", "process"], "--by does not apply to --watch"),
        (["--watch", "--explain"], "--watch does not apply to --explain"),
        # time.sleep(1e10) overflows time_t: a day is the longest interval
        (["--watch", "1e10"], "1e+10 is not a number of seconds greater than 0 and at most 86400"),
        (["--watch", "86400.5", "-o", "jsonl"], "86400.5 is not a number of seconds"),
    ],
)
def test_watch_usage_errors_are_one_line_exit_2(cli, args, needle):
    result = cli.process(*args)
    assert (result.returncode, result.stdout) == (ExitStatus.USAGE, "")
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("tcpstates: ")
    assert needle in result.stderr


def test_watch_into_a_closed_pipe_exits_quietly():
    watch = f"{sys.executable} -m tcpstates --watch 0.2 -o jsonl"
    script = f'{watch} | head -1; echo "${{PIPESTATUS[0]}}"'
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    first, status = result.stdout.splitlines()
    assert "counts" in json.loads(first)
    assert (status, result.stderr) == (str(ExitStatus.BROKEN_PIPE), "")


@pytest.mark.slow
def test_live_view_on_a_terminal_redraws_and_ctrl_c_restores_it(sockets):
    listener = sockets.listener(LOOP4)
    port = listener.getsockname()[1]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    proc = subprocess.Popen(
        (*TCPSTATES, "--watch", "0.2", "--port", str(port), "--no-owners"),
        stdin=slave, stdout=slave, stderr=slave, env=env | {"TERM": "xterm-256color"},
    )  # fmt: skip
    os.close(slave)
    screen = b""

    def read_for(seconds: float) -> None:
        nonlocal screen
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    screen += os.read(master, 65536)
                except OSError:  # EIO: the child has gone and closed the terminal
                    return

    try:
        read_for(1)
        client, server = sockets.connect(listener)
        read_for(1)
        client.close()
        server.close()
        read_for(1)
    finally:
        listener.close()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        read_for(0.5)
        os.close(master)
    assert proc.returncode == 0
    assert b"\x1b[?25l" in screen and screen.rstrip().endswith(b"\x1b[?25h")  # cursor back
    assert b"+2 appeared" in screen and b"since start" in screen
    assert b"Traceback" not in screen


@needs_tmux
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_on_a_terminal_ends_a_watch_like_ctrl_c(stop):
    # A real terminal (tmux): Live hides the cursor while it draws; SIGTERM from a service
    # manager or `kill` must give it back as Ctrl-C does, and end with the same status, 0.
    with terminal([*TCPSTATES, "--watch", "0.2", "-l", "--no-owners"], 120, 40) as term:
        term.wait_for("Every 0.2 s")  # the first frame is drawn
        time.sleep(0.5)
        assert term.display("#{cursor_flag}") == "0"  # hidden while the view is live
        shell = term.display("#{pane_pid}")
        pgrep = subprocess.run(["pgrep", "-P", shell], capture_output=True, text=True, check=True)
        (child,) = pgrep.stdout.split()  # the shell's one child: tcpstates
        os.kill(int(child), stop)
        shown = term.wait_for("EXIT=")
        assert "EXIT=0" in shown and "Traceback" not in shown
        assert term.display("#{cursor_flag}") == "1"  # the cursor is back


def test_jsonl_watch_does_not_import_rich():
    # Rich costs more than Python's start; a watch into a pipe or a log has no use for it.
    code = (
        "import signal, sys; from tcpstates.cli.root import run;"
        " signal.signal(signal.SIGALRM, signal.default_int_handler);"
        " signal.setitimer(signal.ITIMER_REAL, 0.5);"
        " status = run(['--watch', '0.1', '-o', 'jsonl', '-l']);"
        " print(status, 'rich' in sys.modules, 'tcpstates.watch.render' in sys.modules,"
        " file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr.split() == ["0", "False", "True"]


@pytest.mark.parametrize(
    ("args", "looked_up"),
    [
        ([], True),
        (["--summary"], False),
        (["--no-owners"], False),
        (["--summary", "--pid", "1"], True),
    ],
)
def test_a_watch_looks_owners_up_only_when_it_shows_or_filters_by_them(
    cli, monkeypatch, args, looked_up
):
    # A summary shows counts alone: on a 50k-socket host each frame would scan /proc for nothing.
    from tcpstates.sources.base import Reading

    asked: list[bool] = []

    class Source:
        name = why = "fake"

        def read(self, query, owners=False, details=None):  # type: ignore[no-untyped-def]
            asked.append(owners)
            if len(asked) > 1:
                raise KeyboardInterrupt  # how a watch ends
            return Reading(iter([]))

    monkeypatch.setattr("tcpstates.sources.place.open_place", lambda place: Source())
    result = cli("--watch", "0.01", "-o", "jsonl", *args)
    assert result.returncode == 0, result.stderr
    assert asked == [looked_up, looked_up]


def test_the_streamed_jsonl_is_frame_lines_bytes() -> None:
    # write_jsonl writes a frame a chunk of changes at a time; frame_line is the plain version.
    many = [
        replace(SERVER, local_port=1000 + i, inode=i, pid=i % 7 or None,
                process=["nginx", "a\x1b[2Jb\u202e", None, 'q"uote\\'][i % 4],
                netns=None if i % 3 else 4026531840 + i % 2)
        for i in range(2 * CHUNK + 17)
    ]  # fmt: skip
    query = Query(protos=frozenset({"tcp", "udp"}))
    frames = [*STORY, *scripted_frames([], many, many[5:], query=query)]
    streamed = io.StringIO()
    write_jsonl(frames, streamed)
    assert streamed.getvalue() == "".join(frame_line(frame) for frame in frames)
    assert max(len(frame.changes) for frame in frames) > 2 * CHUNK


def _plain_diff(previous: list[Socket], current: list[Socket]) -> tuple[Change, ...]:
    """diff as it was before the merge: a list of sockets per key, both reads grouped afresh."""
    from collections import defaultdict

    from tcpstates.watch.frames import _KIND_ORDER, _diff_group, socket_key, sort_key

    before: defaultdict[object, list[Socket]] = defaultdict(list)
    after: defaultdict[object, list[Socket]] = defaultdict(list)
    for groups, sockets in ((before, previous), (after, current)):
        for sock in sockets:
            groups[socket_key(sock)].append(sock)
    changes: list[Change] = []
    for key in before.keys() | after.keys():
        changes += _diff_group(before.get(key, []), after.get(key, []))
    changes.sort(key=lambda change: (sort_key(change.socket), _KIND_ORDER[change.kind]))
    return tuple(changes)


# Few ports and inodes, so that keys are often shared (SO_REUSEPORT, a TIME_WAIT beside a new
# connection) and inodes 0 and None meet non-zero ones.
SOCKETS = st.builds(
    lambda port, peer, state, inode, netns: replace(
        SERVER, local_port=port, remote_port=peer, state=state, inode=inode, netns=netns
    ),
    st.sampled_from([80, 443]),
    st.sampled_from([0, 5000]),
    st.sampled_from([TcpState.LISTEN, TcpState.ESTABLISHED, TcpState.TIME_WAIT,
                     TcpState.CLOSE_WAIT]),
    st.sampled_from([None, 0, 11, 12, 13]),
    st.sampled_from([None, 4026531840]),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(SOCKETS, max_size=8), st.lists(SOCKETS, max_size=8))
def test_the_merged_diff_is_the_plain_one(previous: list[Socket], current: list[Socket]) -> None:
    assert diff(previous, current) == _plain_diff(previous, current)


@settings(max_examples=200, deadline=None)
@given(st.lists(SOCKETS, max_size=12))
def test_the_flat_sort_key_orders_as_key_then_rank(sockets: list[Socket]) -> None:
    from tcpstates.watch.frames import _rank, socket_key, sort_key

    nested = sorted(sockets, key=lambda sock: (socket_key(sock), _rank(sock)))
    assert sorted(sockets, key=sort_key) == nested
    assert [sort_key(s) for s in sorted(sockets, key=sort_key)] == [
        (*socket_key(s), *_rank(s)) for s in nested
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(SOCKETS, max_size=12), st.lists(st.sampled_from(["tcp", "udp"]), max_size=12))
def test_in_order_is_the_plain_sort(sockets: list[Socket], protos: list[str]) -> None:
    from tcpstates.watch.frames import in_order, sort_key

    mixed = [replace(s, proto=p) for s, p in zip(sockets, protos + ["tcp"] * 12, strict=False)]
    mixed += [replace(s, family=6, local_address="::1") for s in sockets[:3]]
    assert in_order(mixed) == sorted(mixed, key=sort_key)
    assert [id(s) for s in in_order(mixed)] == [id(s) for s in sorted(mixed, key=sort_key)]


def test_a_watch_collects_cycles_less_often_and_puts_the_collector_back(monkeypatch) -> None:
    # Full collections walked the last frame at every few readings (watch/memory.py): while a
    # watch runs the collector waits longer, and as it was once the watch ends, even by error.
    import gc

    from tcpstates.model.place import Place
    from tcpstates.render.output import Output
    from tcpstates.watch import render as render_watch
    from tcpstates.watch.memory import COLLECT_AFTER
    from tcpstates.watch.run import watch

    seen = []

    def stopped(frames: object, out: object, changes: bool) -> None:
        seen.append(gc.get_threshold()[0])
        raise KeyboardInterrupt

    monkeypatch.setattr(render_watch, "write_jsonl", stopped)
    before = gc.get_threshold()
    out = Output(io.StringIO(), io.StringIO(), False)
    with pytest.raises(KeyboardInterrupt):
        watch(Query(), Place(), out, "jsonl", 1.0, False, False, False)
    assert seen == [COLLECT_AFTER] != [before[0]] and gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
