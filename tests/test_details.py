"""-i (tcp_info), -m (socket memory) and --timers, held to ss -tinmo on the same sockets.

Real connections on loopback carry real traffic first, then sit still, so that what the kernel
reports does not move between the two reads; only the ages (last data sent/received) and the
timers' time left tick, and those are compared within the time between the reads.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import TCPSTATES
from hypothesis import given
from hypothesis import strategies as st
from ss_reader import ss_path
from terminal import table_lines, terminal
from zoo import LOOP4, Sockets

from tcpstates.model.record import replace
from tcpstates.model.sockets import new_socket
from tcpstates.model.states import TcpState
from tcpstates.render.units import timer_left

TICK_MS = 3000  # the most an age or a time left may move between our read and ss's


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TCPSTATES, *args], capture_output=True, text=True, timeout=60)


def records(*args: str) -> list[dict[str, Any]]:
    done = run(*args, "-o", "json")
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout)
    return found


def ss_lines(flags: str, port: int) -> dict[tuple[str, str], str]:
    """ss's one-line output (-O) for the sockets with an end on ``port``, by (local, peer)."""
    done = subprocess.run(
        [ss_path(), flags + "HO", f"( sport = :{port} or dport = :{port} )"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    lines = {}
    for line in done.stdout.splitlines():
        words = line.split()
        lines[words[3], words[4]] = line
    return lines


def ends(record: dict[str, Any]) -> tuple[str, str]:
    def end(address: str, port: int) -> str:
        return f"{address}:{port if port else '*'}"

    return (
        end(record["local_address"], record["local_port"]),
        end(record["remote_address"], record["remote_port"]),
    )


def ss_values(line: str) -> dict[str, str]:
    """``key:value`` words, and the rates ss writes as ``key VALUEbps``."""
    values = dict(re.findall(r"(?<![\w(])([a-z_]+):(\S+)", line))
    values.update(re.findall(r"\b(send|pacing_rate|delivery_rate) (\d+)bps", line))
    return values


@pytest.fixture
def quiet_traffic(sockets: Sockets) -> Iterator[int]:
    """A listener's port with three connections that moved data and now sit still: one that
    read everything (with keepalive on), one whose server has not read, and an idle one."""
    listener = sockets.listener(LOOP4)
    port = listener.getsockname()[1]
    busy_client, busy_server = sockets.connect(listener)
    busy_client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    busy_client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 600)
    _exchange(busy_client, busy_server, 200_000)
    _exchange(busy_server, busy_client, 100_000)
    unread_client, _ = sockets.connect(listener)
    unread_client.sendall(b"u" * 50_000)  # sits in the server's receive queue
    sockets.connect(listener)
    time.sleep(0.5)  # delayed ACKs sent, nothing left in flight
    yield port


def _exchange(writer: socket.socket, reader: socket.socket, size: int) -> None:
    writer.sendall(b"x" * size)
    got = 0
    reader.settimeout(5)
    while got < size:
        got += len(reader.recv(size))
    reader.settimeout(None)


# tcp_info's fields as ss -ti names them; the values must be the same on a quiet connection.
SAME_AS_SS = {
    "mss_bytes": "mss",
    "pmtu_bytes": "pmtu",
    "rcv_mss_bytes": "rcvmss",
    "advmss_bytes": "advmss",
    "cwnd_segs": "cwnd",
    "bytes_sent": "bytes_sent",
    "bytes_acked": "bytes_acked",
    "bytes_received": "bytes_received",
    "segs_out": "segs_out",
    "segs_in": "segs_in",
    "data_segs_out": "data_segs_out",
    "data_segs_in": "data_segs_in",
    "delivered_segs": "delivered",
    "rcv_space_bytes": "rcv_space",
    "rcv_ssthresh_bytes": "rcv_ssthresh",
    "snd_wnd_bytes": "snd_wnd",
    "send_rate_bps": "send",
    "pacing_rate_bps": "pacing_rate",
    "delivery_rate_bps": "delivery_rate",
}
AGES = {
    "last_data_sent_ms": "lastsnd",
    "last_data_recv_ms": "lastrcv",
    "last_ack_recv_ms": "lastack",
}
SKMEM = ("r", "rb", "t", "tb", "f", "w", "o", "bl", "d")


def test_tcp_info_agrees_with_ss_ti(quiet_traffic):
    ours = {ends(r): r for r in records("-i", "--port", str(quiet_traffic))}
    theirs = ss_lines("-tain", quiet_traffic)
    assert set(ours) == set(theirs) and len(ours) == 7  # a listener and three connections
    compared = 0
    for key, record in ours.items():
        info, ss = record["tcp_info"], ss_values(theirs[key])
        assert info["congestion"] in theirs[key].split()
        if record["state"] == "LISTEN":
            assert set(info.values()) == {None, info["congestion"]}  # its queues: Recv-/Send-Q
            continue
        for field, name in SAME_AS_SS.items():
            if name in ss:  # ss leaves out what is 0
                assert info[field] == int(ss[name]), (key, field)
                compared += 1
            else:
                assert not info[field], (key, field)
        rtt, rttvar = (float(v) for v in ss["rtt"].split("/"))
        assert (info["rtt_ms"], info["rttvar_ms"]) == (rtt, rttvar)
        assert info["min_rtt_ms"] == float(ss["minrtt"])
        assert (info["rto_ms"], info["ato_ms"]) == (float(ss["rto"]), float(ss.get("ato", 0)))
        assert f"{info['snd_wscale']},{info['rcv_wscale']}" == ss["wscale"]
        assert info["app_limited"] == (" app_limited" in theirs[key])
        for field, name in AGES.items():
            assert abs(info[field] - int(ss.get(name, 0))) <= TICK_MS, (key, field)
    assert compared >= 6 * 10


def test_memory_agrees_with_ss_m_for_tcp(quiet_traffic):
    ours = {ends(r): r for r in records("-m", "--port", str(quiet_traffic))}
    theirs = ss_lines("-tam", quiet_traffic)
    assert set(ours) == set(theirs)
    held = 0
    for key, record in ours.items():
        skmem = re.search(r"skmem:\(([^)]*)\)", theirs[key])
        assert skmem is not None
        ss = dict(re.match(r"([a-z]+)(\d+)", part).groups() for part in skmem[1].split(","))  # type: ignore[union-attr]
        assert list(record["memory"].values()) == [int(ss[letter]) for letter in SKMEM], key
        held += record["memory"]["rmem_alloc_bytes"]
    assert held > 50_000  # the unread connection's data is counted against its buffer


def test_udp_memory_counts_the_drops_ss_counts(sockets: Sockets):
    receiver = sockets.udp(LOOP4)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # the kernel's least
    port = receiver.getsockname()[1]
    sender = sockets.udp(LOOP4)
    for _ in range(64):  # more than the buffer holds: the rest is dropped
        sender.sendto(b"d" * 1000, (LOOP4, port))
    (record,) = records("-u", "-m", "--sport", str(port))
    (line,) = ss_lines("-uam", port).values()
    memory = record["memory"]
    assert memory["drops"] > 0 and memory["rmem_alloc_bytes"] > 0
    assert f"r{memory['rmem_alloc_bytes']}," in line and f"d{memory['drops']})" in line


def ss_timers(port: int) -> dict[tuple[str, str], tuple[str, int, int]]:
    """(timer, ms left, retransmissions) of each socket ss -to shows with a timer."""
    found = {}
    for key, line in ss_lines("-tano", port).items():
        timer = re.search(r"timer:\((\w+),([^,]*),(\d+)\)", line)
        if timer:
            found[key] = (timer[1], _ss_ms(timer[2]), int(timer[3]))
    return found


def _ss_ms(text: str) -> int:
    """ss's time left (``9min59sec``, ``1.500ms``, ``59sec``) in ms."""
    minutes = re.search(r"(\d+)min", text)
    seconds = re.search(r"(\d+)(?:sec|\.)", text)
    millis = re.search(r"(\d+)ms", text)
    return sum(
        int(match[1]) * scale
        for match, scale in ((minutes, 60_000), (seconds, 1000), (millis, 1))
        if match
    )


@pytest.mark.parametrize("source", ["netlink", "procfs"])
def test_timers_agree_with_ss_o(quiet_traffic, source):
    ours = {ends(r): r for r in records("--source", source, "--port", str(quiet_traffic))}
    theirs = ss_timers(quiet_traffic)
    assert theirs, "the keepalive connection runs a timer"
    for key, (timer, left, retrans) in theirs.items():
        record = ours[key]
        assert (record["timer"], record["retransmits"]) == (timer, retrans), key
        assert abs(record["timer_ms"] - left) <= TICK_MS, key
    assert {ends(r) for r in ours.values() if r["timer"]} == set(theirs)


def test_timer_column_is_written_as_ss_writes_it(quiet_traffic):
    done = run("--timers", "-o", "plain", "--port", str(quiet_traffic))
    cells = re.findall(r"\b(keepalive|on|persist|timewait),(\S+),(\d+)\b", done.stdout)
    assert cells and {cell[0] for cell in cells} == {"keepalive"}
    for _, left, _ in cells:  # ss's own spelling of a time left, which reads back to itself
        assert timer_left(_ss_ms(left)) == left


def test_time_wait_timer_matches_ss(sockets: Sockets):
    listener = sockets.listener(LOOP4)
    port = listener.getsockname()[1]
    client, server = sockets.connect(listener)
    sockets.drop(client)  # the client closes first: its end goes to TIME_WAIT
    server.recv(1)
    sockets.drop(server)
    time.sleep(0.2)
    (record,) = [r for r in records("-s", "time-wait", "--port", str(port))]
    ((timer, left, _),) = ss_timers(port).values()
    assert record["timer"] == timer == "timewait"
    assert abs(record["timer_ms"] - left) <= TICK_MS


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["-i", "--source", "procfs"], "--info does not apply"),
        (["-m", "--source", "psutil"], "--memory does not apply"),
        (["-i", "--from", "/nonexistent"], "--info does not apply"),
        (["--timers", "-o", "json"], "--timers does not apply"),
        (["-i", "doctor"], "--info does not apply to doctor"),
    ],
)
def test_details_a_source_cannot_give_are_refused_in_one_line(args, said):
    done = run(*args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("width", [80, 200])
def test_info_columns_fit_the_terminal_or_say_they_gave_way(quiet_traffic, width):
    argv = [*TCPSTATES, "-i", "-m", "--timers", "--port", str(quiet_traffic)]
    with terminal(argv, width, 40) as term:
        term.wait_for("EXIT=")
        lines = [line for line in table_lines(term.joined_lines()) if line]
    assert max(map(len, lines)) <= width, "\n".join(lines)
    header = lines[0]
    if width >= 200:
        assert "RTT/var ms" in header and "Rmem/buf" in header and "Timer" in header
        assert any("keepalive," in line for line in lines)
    else:
        assert lines[-1].endswith("-W shows all") and "hidden" in lines[-1]
        assert "Local" in header and "State" in header


@given(raw=st.binary(min_size=236, max_size=236).filter(lambda b: b[0] != 10))
def test_the_positional_decoder_gives_what_the_plain_one_gives(raw: bytes):
    # sources/details.py decodes a whole tcp_info by position for speed; the plain decoder
    # by name is the reference, for any bytes a kernel could send.
    from tcpstates.render.formats import _info_json
    from tcpstates.sources import details
    from tcpstates.sources.inet_diag import INET_DIAG_CONG, INET_DIAG_INFO

    fast = details.tcp_info({INET_DIAG_INFO: raw, INET_DIAG_CONG: b"cubic\0"})
    values = details._TCP_INFO.unpack(raw)
    plain = details._decoded(dict(zip(details._NAMES, values, strict=True)), "cubic")
    assert fast == plain and type(fast) is type(plain)
    # And its JSON, written by a template for speed, is what json.dumps writes.
    for info in (fast, replace(fast, congestion=None, ssthresh_segs=None)):
        sock = new_socket("tcp", 4, "127.0.0.1", 1, "127.0.0.1", 2, TcpState.ESTABLISHED)
        sock = replace(sock, info=info)
        assert _info_json(sock) == json.dumps(info.as_dict())


def test_a_shorter_tcp_info_leaves_what_it_lacks_none():
    from tcpstates.sources import details
    from tcpstates.sources.inet_diag import INET_DIAG_INFO

    whole = details._TCP_INFO.pack(*range(1, len(details._NAMES) + 1))
    old = details.tcp_info({INET_DIAG_INFO: whole[:104]})  # a kernel before pacing_rate
    assert old is not None
    assert old.rtt_ms is not None and old.retrans_total is not None
    assert old.pacing_rate_bps is None and old.bytes_sent is None and old.rcv_wnd_bytes is None


def test_explain_says_what_holds_a_connection_back_as_ss_counts_it(sockets: Sockets):
    # A reader that never reads: its window closes, and the writer's time with data to send
    # is spent waiting on it (ss -ti: rwnd_limited, a share of busy).
    listener = sockets.listener(LOOP4, rcvbuf=4096)
    port = listener.getsockname()[1]
    writer, _ = sockets.connect(listener)
    writer.setblocking(False)
    sent = 0
    with contextlib.suppress(BlockingIOError):
        for _ in range(10_000):  # bounded: the buffers hold far less than 10,000 chunks
            sent += writer.send(b"w" * 65536)
    time.sleep(0.5)
    ends_of_writer = f"{LOOP4}:{writer.getsockname()[1]}"
    line = ss_lines("-tin", port)[ends_of_writer, f"{LOOP4}:{port}"]
    share = re.search(r"rwnd_limited:\d+ms\(([\d.]+)%\)", line)
    assert share is not None and float(share[1]) > 50, line
    text = run("--explain", ends_of_writer, "-o", "plain").stdout
    (account,) = [
        a for a in text.split("\n\n") if a.startswith(f"{ends_of_writer} -> {LOOP4}:{port} ")
    ]
    assert "held back by the peer's receive window: the peer reads slowly" in account
    assert "bytes written by the application and not sent yet" in account


@pytest.mark.parametrize(
    ("width", "said"), [(60, r"1\d columns hidden"), (120, r"--timers columns")]
)
def test_the_footer_of_hidden_columns_is_one_line(quiet_traffic, width, said):
    # Named by their options where the line has room; counted where it has not.
    argv = [*TCPSTATES, "-i", "-m", "--timers", "--port", str(quiet_traffic)]
    with terminal(argv, width, 40) as term:
        term.wait_for("EXIT=")
        lines = [line for line in table_lines(term.joined_lines()) if line]
    assert max(map(len, lines)) <= width, "\n".join(lines)
    assert re.search(said, lines[-1]) and lines[-1].endswith("hidden; -W shows all"), lines[-1]
