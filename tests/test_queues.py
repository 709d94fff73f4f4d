"""doctor catches data piling up: a process that stops reading, a peer that stops reading, a
closing socket stuck behind data its local peer does not read, and CLOSE_WAIT by port and age.

Each end is held by its own process with a name of its own (prctl PR_SET_NAME), inside network
namespaces the tests make (quiet: only these sockets), and the queue sizes doctor reports are
compared with ``ss -tanp`` on the same sockets. The drain test runs doctor in this process, on
loopback, with the pause between its looks replaced by one that drains a queue.
"""

from __future__ import annotations

import json
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import Netns

from tcpstates.doctor import run as doctor_run
from tcpstates.doctor.evidence import Evidence, Look, Thresholds
from tcpstates.doctor.queues import not_reading, peer_not_reading
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState
from tcpstates.sources.kernel import KernelState

S = TcpState

# One end of a connection, in a process of its own named argv[1]: "deaf" accepts and never
# reads, "reader" reads all; "writer" connects and writes until its queues are full, "later"
# does so when a line comes on its stdin; "closer" writes and then closes, leaving FIN_WAIT1
# behind the data. Each prints a line when done, then waits.
HELPER = r"""
import ctypes, socket, sys, time
name, mode, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME: the comm owners show

def fill(sock):
    sock.setblocking(False)
    sent = 0
    for _ in range(400):  # at most 26 MB: a send buffer grows to 4 MB
        try:
            sent += sock.send(b"x" * 65536)
        except BlockingIOError:
            time.sleep(0.1)  # the peer's window closes in steps: full when still full
            try:
                sent += sock.send(b"x" * 65536)
            except BlockingIOError:
                return sent
    return sent

if mode in ("deaf", "reader"):
    server = socket.create_server((host, port))
    print("listening", flush=True)
    conn, _ = server.accept()
    print("accepted", flush=True)
    while mode == "reader" and conn.recv(65536):
        pass
else:
    conn = socket.create_connection((host, port))
    if mode == "later":
        print("connected", flush=True)
        sys.stdin.readline()
    print(fill(conn), flush=True)
    if mode == "closer":
        conn.close()
time.sleep(60)
"""


def said(proc: subprocess.Popen[str], timeout: float = 15) -> str:
    """The helper's next line, failing after ``timeout`` seconds rather than hanging."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"{proc.args!r}: nothing said in {timeout} s"
    line = proc.stdout.readline()
    assert line, f"{proc.args!r} ended: {proc.wait(5)}"
    return line.strip()


def helper(space: Netns, name: str, mode: str, host: str, port: int) -> subprocess.Popen[str]:
    return space.popen(
        sys.executable,
        "-c",
        HELPER,
        name,
        mode,
        host,
        str(port),
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
    )


@dataclass(frozen=True)
class SsRow:
    state: str
    recv_q: int
    send_q: int
    local: str
    remote: str
    pid: int | None


def ss_rows(space: Netns) -> list[SsRow]:
    """``ss -tanpH`` in ``space``: the witness for the queue sizes and their holders."""
    rows = []
    for line in space.run("ss", "-tanpH").stdout.splitlines():
        state, recv_q, send_q, local, remote, *rest = line.split()
        pid = re.search(r"pid=(\d+)", " ".join(rest))
        rows.append(
            SsRow(state, int(recv_q), int(send_q), local, remote, int(pid[1]) if pid else None)
        )
    return rows


def doctor(space: Netns, *args: str) -> list[dict[str, Any]]:
    done = space.run(
        sys.executable, "-m", "tcpstates", "doctor", "-o", "json", *args, timeout=60, check=False
    )
    assert done.returncode in (0, 3), done.stderr
    return json.loads(done.stdout)["findings"]  # type: ignore[no-any-return]


def titled(findings: list[dict[str, Any]], words: str) -> list[dict[str, Any]]:
    return [f for f in findings if words in f["title"]]


@pytest.fixture
def deaf_pair(netns) -> Iterator[tuple[Netns, subprocess.Popen[str], subprocess.Popen[str]]]:
    """In a namespace of its own: q-deaf accepts on 127.0.0.1:9100 and never reads; q-writer
    writes to it until both queues are full."""
    space = netns("queues")
    deaf = helper(space, "q-deaf", "deaf", "127.0.0.1", 9100)
    assert said(deaf) == "listening"
    writer = helper(space, "q-writer", "writer", "127.0.0.1", 9100)
    assert said(deaf) == "accepted"
    assert int(said(writer)) > 0
    time.sleep(0.2)  # the last segments land
    yield space, deaf, writer
    for proc in (deaf, writer):
        proc.kill()
        proc.wait(5)


def test_a_process_that_stops_reading_is_named_with_its_queue(deaf_pair) -> None:
    space, deaf, writer = deaf_pair
    before = ss_rows(space)
    findings = doctor(space, "--interval", "0.5")
    after = ss_rows(space)
    (reader,) = titled(findings, "is not reading")
    assert reader["title"].startswith(f"q-deaf (pid {deaf.pid}) is not reading")
    assert reader["severity"] == "warning"
    data = reader["data"]
    assert (data["pid"], data["process"], data["count"]) == (deaf.pid, "q-deaf", 1)
    (held,) = [r for r in after if r.state == "ESTAB" and r.local == "127.0.0.1:9100"]
    (sent,) = [r for r in after if r.state == "ESTAB" and r.remote == "127.0.0.1:9100"]
    assert held in before and sent in before  # both ends stood still all along: ss agrees
    (queue,) = data["sockets"]
    assert (queue["local"], queue["remote"]) == (held.local, held.remote)
    assert queue["queued"] == queue["before"] == held.recv_q >= Thresholds().queue_bytes
    assert held.pid == deaf.pid and sent.pid == writer.pid
    # The writer's Send-Q is the same data waiting: said once, in this finding, naming both.
    (sender,) = data["senders"]
    assert (sender["pid"], sender["process"], sender["send_q"]) == (
        writer.pid,
        "q-writer",
        sent.send_q,
    )
    assert f"the sender is on this host: q-writer (pid {writer.pid})" in "\n".join(
        reader["evidence"]
    )
    assert not titled(findings, "Send-Q") and not titled(findings, "The peer")
    assert reader["next"] == f"tcpstates -s established --pid {deaf.pid} -i -m"


def test_one_look_cannot_tell_a_queue_that_stays(deaf_pair) -> None:
    space, _, _ = deaf_pair
    findings = doctor(space, "--interval", "0")
    assert not titled(findings, "is not reading") and not titled(findings, "Send-Q")


def veth_pair(netns) -> tuple[Netns, Netns]:  # type: ignore[no-untyped-def]
    """Two namespaces joined by a veth pair: 10.77.0.1 in the first, 10.77.0.2 in the other.
    Traffic between them never leaves them."""
    here, there = netns("qhere"), netns("qthere")
    here.run("ip", "link", "add", "qa", "type", "veth", "peer", "name", "qb", "netns", there.name)
    for space, dev, address in ((here, "qa", "10.77.0.1/24"), (there, "qb", "10.77.0.2/24")):
        space.run("ip", "addr", "add", address, "dev", dev)
        space.run("ip", "link", "set", dev, "up")
    return here, there


def test_a_peer_that_stops_reading_is_named_by_its_closed_window(netns) -> None:
    here, there = veth_pair(netns)
    deaf = helper(there, "q-deaf", "deaf", "10.77.0.2", 9200)
    assert said(deaf) == "listening"
    writer = helper(here, "q-writer", "writer", "10.77.0.2", 9200)
    try:
        assert said(deaf) == "accepted" and int(said(writer)) > 0
        time.sleep(0.3)
        findings = doctor(here, "--interval", "0.5")
        rows = ss_rows(here)
    finally:
        for proc in (deaf, writer):
            proc.kill()
            proc.wait(5)
    (stuck,) = titled(findings, "is not reading")  # here, only the writer's end is seen
    assert stuck["title"].startswith("The peer 10.77.0.2 is not reading")
    data = stuck["data"]
    assert (data["peer"], data["peer_pid"], data["cause"], data["count"]) == (
        "10.77.0.2",
        None,
        "window",
        1,
    )
    (sent,) = [r for r in rows if r.state == "ESTAB" and r.remote == "10.77.0.2:9200"]
    (queue,) = data["sockets"]
    assert (queue["pid"], queue["process"], queue["cause"]) == (writer.pid, "q-writer", "window")
    assert queue["queued"] == sent.send_q >= Thresholds().queue_bytes and sent.pid == writer.pid
    evidence = "\n".join(stuck["evidence"])
    assert f"q-writer (pid {writer.pid}): Send-Q {sent.send_q} of a " in evidence
    assert "receive window is closed on 1 of them" in evidence


def test_a_send_queue_the_network_loses_is_told_from_a_deaf_peer(netns) -> None:
    here, there = veth_pair(netns)
    reader = helper(there, "q-reader", "reader", "10.77.0.2", 9250)
    assert said(reader) == "listening"
    writer = helper(here, "q-writer", "later", "10.77.0.2", 9250)
    try:
        assert said(writer) == "connected" and said(reader) == "accepted"
        # From now on every segment reaches a host that no longer has the address, and is
        # dropped there: lost on the way, as the sender sees it.
        there.run("ip", "addr", "del", "10.77.0.2/24", "dev", "qb")
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert int(said(writer)) > 0
        time.sleep(0.3)
        findings = doctor(here, "--interval", "0.5")
        rows = ss_rows(here)
    finally:
        for proc in (reader, writer):
            proc.kill()
            proc.wait(5)
    (stuck,) = titled(findings, "Send-Q does not drain towards 10.77.0.2")
    assert stuck["title"].endswith("the data is being retransmitted")
    (sent,) = [r for r in rows if r.state == "ESTAB" and r.remote == "10.77.0.2:9250"]
    (queue,) = stuck["data"]["sockets"]
    assert (queue["pid"], queue["cause"], stuck["data"]["cause"]) == (
        writer.pid,
        "network",
        "network",
    )
    assert queue["queued"] == sent.send_q >= Thresholds().queue_bytes
    assert "retransmitting on 1 of them" in "\n".join(stuck["evidence"])
    assert not titled(findings, "is not reading")


def test_a_closing_socket_names_the_local_peer_that_does_not_read(netns) -> None:
    space = netns("queues")
    deaf = helper(space, "q-deaf", "deaf", "127.0.0.1", 9300)
    assert said(deaf) == "listening"
    closer = helper(space, "q-closer", "closer", "127.0.0.1", 9300)
    try:
        assert said(deaf) == "accepted" and int(said(closer)) > 0
        time.sleep(0.2)
        findings = doctor(space, "--interval", "0")  # one look tells this: a FIN has waited
        rows = ss_rows(space)
    finally:
        for proc in (deaf, closer):
            proc.kill()
            proc.wait(5)
    (closing,) = [r for r in rows if r.state == "FIN-WAIT-1"]
    assert closing.send_q > 0 and closing.pid is None  # closed: the kernel alone holds it
    (peer,) = [r for r in rows if r.state == "ESTAB" and r.local == "127.0.0.1:9300"]
    (stuck,) = titled(findings, "closing socket stuck behind unsent data")
    (local,) = stuck["data"]["local_peers"]
    assert (local["pid"], local["process"], local["recv_q"]) == (deaf.pid, "q-deaf", peer.recv_q)
    assert (
        f"the peer is on this host: q-deaf (pid {deaf.pid}) holds it and has not read"
        f" {peer.recv_q} bytes" in stuck["evidence"]
    )


def test_close_wait_names_the_port_and_the_age(netns) -> None:
    space = netns("queues")
    script = """
import json, socket, subprocess, sys, time
server = socket.create_server(("127.0.0.1", 9400))
client = socket.create_connection(("127.0.0.1", 9400))
accepted, _ = server.accept()
client.close()  # the server's end: CLOSE_WAIT on port 9400
other = socket.create_server(("127.0.0.1", 9401))
dialer = socket.create_connection(("127.0.0.1", 9401))
served, _ = other.accept()
other.close()
served.close()  # the dialer's end: CLOSE_WAIT towards port 9401
time.sleep(0.6)
done = subprocess.run([sys.executable, "-m", "tcpstates", "doctor", "-o", "json",
                       "--interval", "0"], capture_output=True, text=True)
ss = subprocess.run(["ss", "-tniH", "state", "close-wait"], capture_output=True, text=True)
print(json.dumps({"out": done.stdout, "ss": ss.stdout}))
"""
    result = json.loads(space.run(sys.executable, "-c", script, timeout=60).stdout)
    (finding,) = titled(json.loads(result["out"])["findings"], "CLOSE_WAIT sockets held by")
    first = finding["evidence"][0]
    assert first.startswith("on port 9400, to port 9401, held for up to ")
    assert finding["data"]["ports"] == {"9400": 1} and finding["data"]["remote_ports"] == {
        "9401": 1
    }
    # ss -ti's lastrcv: the time since the peer's FIN came, the age doctor reports.
    lastrcv = [int(ms) for ms in re.findall(r"lastrcv:(\d+)", result["ss"])]
    assert len(lastrcv) == 2
    assert 600 <= finding["data"]["oldest_ms"] <= max(lastrcv) + 100


# --- what drains is not reported ------------------------------------------------------------


def test_a_queue_that_drains_between_the_looks_is_not_reported(cli, sockets, monkeypatch) -> None:
    server = sockets.listener()
    port = server.getsockname()[1]
    ends = []
    for _ in range(2):  # 48 KiB each: it all fits in the receiver's buffer, none waits behind
        client, accepted = sockets.connect(server)
        client.sendall(b"x" * 49152)
        ends.append((client, accepted))
    deadline = time.monotonic() + 5
    while sum(_recv_q(a) for _, a in ends) < 2 * 49152 and time.monotonic() < deadline:
        time.sleep(0.01)
    (_, drained), (_, kept) = ends

    class Pause:
        """doctor's pause between its looks, in which one of the readers reads everything."""

        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds: float) -> None:
            drained.setblocking(False)
            with_data = 0
            while with_data < 49152:
                with_data += len(drained.recv(65536))
            time.sleep(seconds)

    monkeypatch.setattr(doctor_run, "time", Pause)
    done = cli("doctor", "-o", "json", "--interval", "0.2")
    assert done.returncode in (0, 3), done.stderr
    findings = titled(json.loads(done.stdout)["findings"], "is not reading")
    # The kept one is reported (so the test can fail), the drained one is not.
    (reported,) = [
        q for f in findings for q in f["data"]["sockets"] if q["local"] == f"127.0.0.1:{port}"
    ]
    assert reported["remote"] == f"127.0.0.1:{kept.getpeername()[1]}"
    assert reported["queued"] == _recv_q(kept) == 49152


def _recv_q(sock: socket.socket) -> int:
    import fcntl
    import struct
    import termios

    return int(struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4))[0])


# --- the checks on their own ----------------------------------------------------------------

KERNEL = KernelState({}, {})


def end(local: int, remote: int, **kw: Any) -> Socket:
    fields: dict[str, Any] = {
        "proto": "tcp",
        "family": 4,
        "local_address": "10.0.0.1",
        "local_port": local,
        "remote_address": "10.0.0.9",
        "remote_port": remote,
        "state": S.ESTABLISHED,
        "inode": 1,
        "pid": 7,
        "process": "app",
    } | kw
    return Socket(**fields)


def test_a_send_queue_retransmitted_blames_the_network() -> None:
    now = [end(40000, 443, send_q=90000, timer="on", retransmits=3)]
    before = [end(40000, 443, send_q=90000)]
    ev = Evidence(now, KERNEL, earlier=Look(before, KERNEL), seconds=0.5)
    (finding,) = peer_not_reading(ev, Thresholds())
    assert finding.data["cause"] == "network"
    assert finding.title == (
        "Send-Q does not drain towards 10.0.0.9 (88KB): the data is being retransmitted"
    )
    assert list(not_reading(ev, Thresholds())) == []


def test_a_queue_lower_at_the_second_look_or_small_is_not_stuck() -> None:
    th = Thresholds()
    before = [end(40000, 443, recv_q=90000), end(40001, 443, recv_q=th.queue_bytes - 1)]
    now = [end(40000, 443, recv_q=89999), end(40001, 443, recv_q=th.queue_bytes - 1)]
    ev = Evidence(now, KERNEL, earlier=Look(before, KERNEL), seconds=0.5)
    assert list(not_reading(ev, th)) == []
    grown = Evidence(
        [end(40000, 443, recv_q=90001)], KERNEL, earlier=Look(before, KERNEL), seconds=0.5
    )
    (finding,) = not_reading(grown, th)
    assert finding.data["recv_q"] == 90001 and finding.data["pid"] == 7


def test_the_peers_window_is_its_own_word_the_persist_timer_only_a_hint() -> None:
    from tcpstates.model.details import TcpInfo

    before = [end(40000, 443, send_q=90000)]

    def cause(**kw: Any) -> object:
        now = [end(40000, 443, send_q=90000, **kw)]
        ev = Evidence(now, KERNEL, earlier=Look(before, KERNEL), seconds=0.5)
        (finding,) = peer_not_reading(ev, Thresholds())
        return finding.data["cause"]

    assert cause(timer="persist") == "window"  # no tcp_info (procfs): the hint is all there is
    assert cause(timer="persist", info=TcpInfo(snd_wnd_bytes=0)) == "window"
    # Segments that cannot leave this host arm the persist timer too, the window wide open.
    assert cause(timer="persist", info=TcpInfo(snd_wnd_bytes=65160)) is None
    assert cause(info=TcpInfo(snd_wnd_bytes=65160, retrans_now=2)) == "network"


def test_many_peers_make_five_findings_worst_first_and_one_for_the_rest() -> None:
    # Peer 10.0.1.N has N+1 connections of 20000 bytes each that stay.
    socks = [
        end(40000 + 10 * n + k, 443, remote_address=f"10.0.1.{n}", send_q=20000)
        for n in range(8)
        for k in range(n + 1)
    ]
    ev = Evidence(socks, KERNEL, earlier=Look(socks, KERNEL), seconds=0.5)
    findings = list(peer_not_reading(ev, Thresholds()))
    assert [f.data.get("peer") for f in findings] == [f"10.0.1.{n}" for n in (7, 6, 5, 4, 3)] + [
        None
    ]
    rest = findings[-1]
    assert rest.title == "Send-Q does not drain towards 3 more peers (117KB)"
    assert rest.data["peers"] == {"10.0.1.2": 60000, "10.0.1.1": 40000, "10.0.1.0": 20000}
    assert all(len(f.evidence) <= 6 for f in findings)
    assert findings[0].evidence[3] == "and 5 more"
