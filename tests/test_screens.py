"""What a person sees: the listing and --watch in a real terminal (tmux) at 60 to 200 columns.

Two processes hold real loopback sockets, IPv4, IPv6 and v4-mapped (a listener on [::] taking
IPv4), one with a 5-digit PID and, as root, one with a 7-digit PID: the test sets
/proc/sys/kernel/ns_last_pid before starting each (raising kernel.pid_max for the second and
restoring it at once). The screen is read with wrapped lines joined again, and held to the
rules of render/fit.py: no line wider than the terminal; every state, address, port and PID
whole, compared with ``-o json``'s records of the same sockets; a footer when something gave
way; and for --watch, a resize fitted from the next frame on.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import pty
import secrets
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import TCPSTATES
from terminal import needs_tmux, table_lines, terminal

from tcpstates.model.sockets import endpoint
from tcpstates.model.states import TcpState, state_name
from tcpstates.render.columns import PEER
from tcpstates.render.fit import compact_ends

pytestmark = [
    needs_tmux,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc"),
]

WIDTHS = (60, 72, 80, 120, 200)
NAME = f"fitholder-{secrets.token_hex(2)}"  # 14 of comm's 15 characters: long enough to cut
PID_MAX = Path("/proc/sys/kernel/pid_max")
LAST_PID = Path("/proc/sys/kernel/ns_last_pid")
FIVE_DIGITS, SEVEN_DIGITS = 23456, 1234567
STATE_NAMES = {state_name(s, proto) for s in TcpState for proto in ("tcp", "udp")}

# Held until its stdin closes: a listener on 127.0.0.1, one on ::1, one on [::] that takes
# IPv4 too (its accepted ends are v4-mapped), and a connection to each.
HOLDER = r"""
import ctypes, socket, sys
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME: what comm shows
held = []
for family, host, connect_to in ((socket.AF_INET, "127.0.0.1", "127.0.0.1"),
                                 (socket.AF_INET6, "::1", "::1"),
                                 (socket.AF_INET6, "::", "127.0.0.1")):
    listener = socket.socket(family)
    if family == socket.AF_INET6:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, host == "::1")
    listener.bind((host, 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.socket(socket.AF_INET if "." in connect_to else socket.AF_INET6)
    client.connect((connect_to, port))
    held += [listener, client, listener.accept()[0]]
print("ready", flush=True)
sys.stdin.read()
"""


@dataclass(frozen=True)
class Holder:
    proc: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.proc.pid


def spawn_holder(pid: int | None) -> Holder:
    """A holder, with ``pid`` (or a little more, if another process takes it first) as root."""
    argv = [sys.executable, "-c", HOLDER, NAME]
    if pid is None:
        return _started(popen(argv))
    limit = PID_MAX.read_text()
    try:
        if pid >= int(limit):
            PID_MAX.write_text("4194304\n")  # PID_MAX_LIMIT on 64-bit kernels
        LAST_PID.write_text(f"{pid - 1}\n")
        proc = popen(argv)
    finally:
        PID_MAX.write_text(limit)  # at once: other processes keep the usual numbers
    return _started(proc)


def popen(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _started(proc: subprocess.Popen[str]) -> Holder:
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n", "the holder did not start"
    return Holder(proc)


@functools.cache
def can_choose_pids() -> str | None:
    """Why this run cannot start a process with a chosen PID, or None when it can. Asked once,
    before a holder is started: ns_last_pid is then above pid_max, and may not be written
    back as it reads."""
    if os.geteuid() != 0:
        return "needs root to set kernel.ns_last_pid and kernel.pid_max"
    try:
        LAST_PID.write_text(LAST_PID.read_text())
        PID_MAX.write_text(PID_MAX.read_text())
    except OSError as e:
        return f"cannot write /proc/sys/kernel here: {e}"
    return None


@pytest.fixture(scope="module")
def holders() -> Iterator[list[Holder]]:
    """Two holders with 5- and 7-digit PIDs as root; one with whatever PID otherwise."""
    made: list[Holder] = []
    try:
        if can_choose_pids() is None:
            made += [spawn_holder(FIVE_DIGITS), spawn_holder(SEVEN_DIGITS)]
        else:
            made.append(spawn_holder(None))
        yield made
    finally:
        for holder in made:
            with suppress(OSError):
                holder.proc.communicate(timeout=10)  # closes stdin: the holder ends


def records() -> list[dict[str, Any]]:
    done = subprocess.run(
        [*TCPSTATES, "--process", NAME, "-o", "json"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def plain_width() -> int:
    """The table's width with nothing given way: the plain listing's widest line."""
    done = subprocess.run(
        [*TCPSTATES, "--process", NAME, "-o", "plain"], capture_output=True, text=True, timeout=60
    )
    return max(map(len, done.stdout.splitlines()))


def spellings(address: str, port: int, interface: str | None, dual_stack: bool) -> set[str]:
    kernel = endpoint(address, port, interface, dual_stack)
    return {kernel, *compact_ends(PEER, [kernel])}


def rows_of(lines: list[str]) -> list[list[str]]:
    """The words of each row of the table on screen (a watch's mark left out), those of a
    row's next lines (an end under the row, render/fit.py's Shape) with its first line's."""
    rule = next((i for i, line in enumerate(lines) if line.startswith("─")), len(lines))
    rows: list[list[str]] = []
    for line in lines[rule + 1 :]:
        words = line.split()
        if len(words) > 1 and words[0] in "+-~" and words[1] in STATE_NAMES:
            words = words[1:]
        if rows and line.startswith(" ") and words and words[0] not in STATE_NAMES:
            rows[-1] += words
            continue
        if not words or words[0] not in STATE_NAMES:
            break
        rows.append(words)
    return rows


def assert_whole(rows: list[list[str]], expected: list[dict[str, Any]]) -> None:
    """Each record is on a row of its own, its state, both ends and its PID whole words."""
    left = list(rows)
    for record in expected:
        # ss's spelling: the interface on the local end, `*` for a dual-stack `::` on both.
        dual = record["v6only"] is False
        local = spellings(record["local_address"], record["local_port"], record["interface"], dual)
        peer = spellings(record["remote_address"], record["remote_port"], None, dual)
        pid = "-" if record["pid"] is None else str(record["pid"])
        match = [
            row
            for row in left
            if row[0] == record["state"] and local & set(row) and peer & set(row) and pid in row
        ]
        assert match, f"no whole row for {record} in {rows}"
        left.remove(match[0])
    assert not left, f"rows with no record: {left}"


def test_the_holders_have_5_and_7_digit_pids(holders):
    if why := can_choose_pids():
        pytest.skip(why)
    assert [len(str(holder.pid)) for holder in holders] == [5, 7]
    assert {record["pid"] for record in records()} == {holder.pid for holder in holders}


@pytest.mark.parametrize("width", WIDTHS)
def test_listing_fits_the_terminal_and_cuts_no_identity(holders, width):
    expected = records()
    assert {r["local_address"] for r in expected} >= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
    with terminal([*TCPSTATES, "--process", NAME], width, 60) as term:
        term.wait_for("EXIT=")
        lines = term.joined_lines()
    lines = table_lines(lines)
    assert max(map(len, lines)) <= width, "\n".join(lines)
    assert_whole(rows_of(lines), expected)
    gave_way = plain_width() > width
    assert lines[-1].endswith("; -W shows all") == gave_way, "\n".join(lines)


def test_wide_shows_everything_even_where_lines_wrap(holders):
    with terminal([*TCPSTATES, "--process", NAME, "-W"], 60, 60) as term:
        term.wait_for("EXIT=")
        lines = table_lines(term.joined_lines())
    assert max(map(len, lines)) == plain_width() > 60
    assert "Recv-Q" in lines[0] and "Process" in lines[0] and "-W shows all" not in lines
    assert sum(NAME in line for line in lines) == len(records())  # every name whole


def view_lines(term: Any) -> list[str]:
    return [line for line in term.joined_lines() if line]


@pytest.mark.parametrize("width", WIDTHS)
def test_watch_fits_and_follows_a_resize(holders, width):
    expected = records()
    held = Counter(record["state"] for record in expected)
    counts = f"ESTABLISHED {held['ESTABLISHED']}  LISTEN {held['LISTEN']}"
    start, then = (width, 200) if width != 200 else (200, 60)
    argv = [*TCPSTATES, "--watch", "0.3", "--process", NAME]
    with terminal(argv, start, 40) as term:
        for columns in (start, then):
            if columns != start:
                term.resize(columns, 40)

            def fitted(screen: str, columns: int = columns) -> bool:
                lines = view_lines(term)
                return (
                    "Every 0.3 s" in screen
                    and max(map(len, lines), default=0) <= columns
                    and len(rows_of(lines)) == len(expected)
                    and lines[-1].endswith("-W shows all") == (columns < plain_width() + 2)
                )

            term.wait_until(fitted, timeout=20)
            lines = view_lines(term)
            assert_whole(rows_of(lines), expected)
            assert ("-W shows all" in lines[-1]) == (columns < plain_width() + 2)
            assert any(line.startswith(counts) for line in lines)  # one line of counts


def test_watch_shows_as_many_rows_as_the_screen_holds(holders):
    expected = records()
    with terminal([*TCPSTATES, "--watch", "0.3", "--process", NAME], 80, 40) as term:
        term.wait_until(lambda screen: len(rows_of(view_lines(term))) == len(expected))
        term.resize(80, 12)

        def cut(screen: str) -> bool:
            return "more row" in screen and len(term.lines()) <= 12

        term.wait_until(cut)
        lines = view_lines(term)
        more = next(line for line in lines if "more row" in line)
        shown = len(rows_of(lines))
        assert more == f"… {len(expected) - shown} more rows do not fit the screen"
        assert shown >= 2 and len(term.screen().rstrip("\n").split("\n")) <= 12


def test_a_watch_redraws_a_resized_terminal_from_a_cleared_screen(holders):
    # Terminals that rewrap their lines when they narrow (VTE, kitty, iTerm2; not tmux) leave
    # the last frame taller than Live knows, and its top would stay above the next frame: a
    # frame of a new width is drawn from a cleared screen. Read on a pty, whose size is set.
    master, slave = pty.openpty()
    size = functools.partial(fcntl.ioctl, slave, termios.TIOCSWINSZ)
    size(struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    proc = subprocess.Popen(
        [*TCPSTATES, "--watch", "0.2", "--process", NAME],
        stdin=slave, stdout=slave, stderr=slave, env=env | {"TERM": "xterm-256color"},
    )  # fmt: skip
    try:
        before = read_for(master, 1.5)
        size(struct.pack("HHHH", 40, 60, 0, 0))
        after = read_for(master, 1.5)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        os.close(slave)
        os.close(master)
    clear = b"\x1b[2J"
    assert b"Every 0.2 s" in before and clear not in before
    assert clear in after and b"Every 0.2 s" in after.split(clear, 1)[1]


def read_for(fd: int, seconds: float) -> bytes:
    """What the program wrote to the pty in ``seconds``."""
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.05)[0]:
            got += os.read(fd, 65536)
    return got


# -- ends too long for one line: a namespace of the test's own, with long IPv6 addresses ------

# Eight groups, none zero: a privacy address as a laptop has one; and a server's, shorter.
CLIENT, SERVER = "2a02:8109:9d40:1a00:b5f2:2c4d:8a1e:3f10", "2a00:1450:4001:82b::200e"
LONG_HOLDER = r"""
import socket, sys
client_address, server_address = sys.argv[1:3]
listener = socket.socket(socket.AF_INET6)
listener.bind((server_address, 443))
listener.listen()
held = [listener]
for port in (51514, 61000):
    client = socket.socket(socket.AF_INET6)
    client.bind((client_address, port))
    client.connect((server_address, 443))
    held += [client, listener.accept()[0]]
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def far(netns: Any) -> Any:
    """A namespace whose sockets have ends of 30 and 47 characters, held by a process in it."""
    space = netns("long")
    for address in (CLIENT, SERVER):
        space.run("ip", "addr", "add", f"{address}/128", "dev", "lo", "nodad")
    proc = space.popen(
        sys.executable, "-c", LONG_HOLDER, CLIENT, SERVER,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return space


def far_records(space: Any) -> list[dict[str, Any]]:
    done = space.run(*TCPSTATES, "-o", "json")
    found: list[dict[str, Any]] = json.loads(done.stdout)
    assert {r["local_address"] for r in found} == {CLIENT, SERVER}, found
    for r in found:  # the ends as they are written, [v6]:port
        r["local"] = endpoint(r["local_address"], r["local_port"], None, False)
        r["peer"] = endpoint(r["remote_address"], r["remote_port"], None, False)
    return found


@pytest.mark.parametrize("width", (*WIDTHS, 52))
def test_long_ends_fit_on_lines_of_their_own(far, width):
    expected = far_records(far)
    with terminal(far.argv(*TCPSTATES, "--no-pager"), width, 60) as term:
        term.wait_for("EXIT=")
        lines = table_lines(term.joined_lines())
    assert max(map(len, lines)) <= width, "\n".join(lines)
    assert_whole(rows_of(lines), expected)
    # A row takes two lines or three exactly where its state, ends and PID would not go in one.
    widest = {
        key: max(len(str(r[key])) for r in expected) for key in ("state", "local", "peer", "pid")
    }
    stacked = lines[1].startswith(" ")  # the header's second line
    assert stacked == (sum(widest.values()) + 3 * 2 > width), "\n".join(lines)


@pytest.mark.parametrize("width", (60, 80))
def test_a_watch_of_long_ends_fits(far, width):
    expected = far_records(far)
    with terminal(far.argv(*TCPSTATES, "--watch", "0.3"), width, 30) as term:
        term.wait_until(lambda screen: len(rows_of(view_lines(term))) == len(expected))
        lines = view_lines(term)
    assert max(map(len, lines)) <= width, "\n".join(lines)
    assert_whole(rows_of(lines), expected)


CONNECT_AND_CLOSE = r"""
import socket, sys, time
client_address, server_address = sys.argv[1:3]
listener = socket.create_server((server_address, 443), family=socket.AF_INET6)
client = socket.socket(socket.AF_INET6)
client.bind((client_address, 0))
client.connect((server_address, 443))
time.sleep(0.2)
client.close()  # the server's end, never accepted, goes to CLOSE_WAIT
time.sleep(0.3)
"""


@pytest.mark.root
@pytest.mark.parametrize("width", (60, 80, 120, 200))
def test_a_trace_of_long_ends_fits_and_cuts_nothing_that_identifies_an_event(netns, width):
    from tcpstates.trace import tracefs

    try:
        tracefs.tracefs_root()
    except tracefs.TracingError as e:
        pytest.skip(str(e))
    space = netns("trace")  # its own: what it leaves (a timewait socket) is listed nowhere
    for address in (CLIENT, SERVER):
        space.run("ip", "addr", "add", f"{address}/128", "dev", "lo", "nodad")
    with terminal(space.argv(*TCPSTATES, "trace", "--port", "443"), width, 40) as term:
        term.wait_for("TIME")  # written once the tracepoint is enabled
        space.run(sys.executable, "-c", CONNECT_AND_CLOSE, CLIENT, SERVER)
        term.wait_for("FIN_WAIT2 -> CLOSE")
        lines = term.joined_lines()
    assert max(map(len, lines)) <= width, "\n".join(lines)
    server_end = f"[{SERVER}]:443"
    for changed in ("SYN_SENT -> ESTABLISHED", "ESTABLISHED -> CLOSE_WAIT"):
        (at,) = [i for i, line in enumerate(lines) if changed in line]
        event = " ".join(lines[at : at + 3])  # its first line, then its ends under it
        assert f"[{CLIENT}]:" in event and server_end in event, "\n".join(lines)
        # One line where it fits (110 columns and the ends' 35 beyond their columns' 21).
        assert (server_end in lines[at]) == (width >= 145), "\n".join(lines)


def test_one_namespace_is_named_without_its_inode_on_a_narrow_terminal(far):
    with terminal([*TCPSTATES, "--netns", far.name, "--no-pager"], 80, 60) as term:
        term.wait_for("EXIT=")
        lines = table_lines(term.joined_lines())
    assert max(map(len, lines)) <= 80, "\n".join(lines)
    named = [line for line in lines if line.startswith(far.name + "  ")]
    assert len(named) == 5 and str(far.inode) not in "\n".join(lines)
    assert lines[-1].startswith("Netns without inodes;")


@pytest.mark.parametrize("width", (60, 72, 80))
def test_counts_by_remote_of_long_ends_fit_and_name_each_whole(far, width):
    argv = far.argv(*TCPSTATES, "--summary", "--by", "remote", "--no-pager")
    with terminal(argv, width, 40) as term:
        term.wait_for("EXIT=")
        lines = table_lines(term.joined_lines())
    assert max(map(len, lines)) <= width, "\n".join(lines)
    words = " ".join(lines).split()
    assert {CLIENT, SERVER} <= set(words) and "ESTABLISHED" in words, "\n".join(lines)
