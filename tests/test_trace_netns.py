"""``tcpstates trace`` per network namespace: each event placed where it happened, or left out.

The live tests make two namespaces and run the same loopback traffic on the same port in each
and on the host, so that nothing passes by assuming an address or a port is one namespace's.
They need root, tracefs and ``ip`` (CI has them), and are skipped with the reason elsewhere.
The placing rules are tested on events built by hand, with a stand-in for the namespaces.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from tcpstates.model.query import Query
from tcpstates.model.states import TcpState
from tcpstates.sources.inet_diag import Lookup
from tcpstates.trace import tracefs
from tcpstates.trace.events import NOWHERE, Event, Timeline, transitions
from tcpstates.trace.places import Placer

# --- placing, on events built by hand ----------------------------------------------------------

A, B = 4026532001, 4026532002  # two namespaces' inodes
CLIENT, SERVER = 41000, 8080


def _event(
    old: str, new: str, pid: int | None = None, port: int = CLIENT, peer: int = SERVER, t: float = 0
) -> Event:
    return Event(
        timestamp=1000.0 + t,
        family=4,
        local_address="127.0.0.1",
        local_port=port,
        remote_address="127.0.0.1",
        remote_port=peer,
        old_state=TcpState[old],
        new_state=TcpState[new],
        pid=pid,
        process=None if pid is None else f"task{pid}",
    )


@dataclass
class FakePlaces:
    """Namespaces as the test says: tasks' namespaces, and where each socket's ends exist."""

    tasks: dict[int, int] = field(default_factory=dict)
    sockets: dict[tuple[int, str, int, str, int], list[int]] = field(default_factory=dict)
    kept: frozenset[int] = frozenset({A})
    lookups: list[tuple[int, str, int, str, int]] = field(default_factory=list)

    def start_read(self) -> None:
        pass

    def of_task(self, event: Event) -> int | None:
        return None if event.pid is None else self.tasks.get(event.pid)

    def find(self, connection: tuple[int, str, int, str, int]) -> list[int]:
        self.lookups.append(connection)
        return self.sockets.get(connection, [])

    def refresh(self) -> bool:
        return False

    def keeps(self, inode: int | None) -> bool:
        return bool(inode) and inode in self.kept


def _placed(events: list[Event], places: FakePlaces) -> tuple[list[int | None], Placer]:
    """Each event's namespace, once placed: those that cannot be at once wait for the next
    read, which here brings nothing new."""
    placer, timeline = Placer(places), Timeline()  # type: ignore[arg-type]
    followed = placer.follow(events, [True] * len(events), timeline)
    followed += placer.follow([], [], timeline)
    return [t.event.netns for t, _ in followed], placer


def _ends(port: int = CLIENT, peer: int = SERVER) -> tuple[int, str, int, str, int]:
    return (4, "127.0.0.1", port, "127.0.0.1", peer)


def test_a_task_places_its_event_and_the_connections_next_events_inherit() -> None:
    events = [
        _event("SYN_SENT", "ESTABLISHED", pid=7),  # on loopback the sender's softirq: no task
        _event("ESTABLISHED", "FIN_WAIT1", pid=7),
        _event("FIN_WAIT1", "FIN_WAIT2"),
    ]
    events[0] = replace(events[0], pid=None, process=None)
    places = FakePlaces(tasks={7: A}, sockets={_ends(): [A]})
    netns, placer = _placed(events, places)
    assert netns == [A, A, A]
    assert places.lookups == [] and placer.unplaced == 0  # the close() in the read told first


def test_an_event_before_its_sockets_close_takes_the_closes_task_in_the_same_read() -> None:
    # The server's end of a short connection: gone when read, but its close() was a call.
    events = [
        _event("LISTEN", "SYN_RECV", port=SERVER, peer=CLIENT),
        _event("SYN_RECV", "ESTABLISHED", port=SERVER, peer=CLIENT),
        _event("ESTABLISHED", "CLOSE_WAIT", port=SERVER, peer=CLIENT),
        _event("CLOSE_WAIT", "LAST_ACK", pid=9, port=SERVER, peer=CLIENT),
        _event("LAST_ACK", "CLOSE", port=SERVER, peer=CLIENT),
    ]
    places = FakePlaces(tasks={9: B})
    netns, placer = _placed(events, places)
    assert netns == [B] * 5 and places.lookups == []


def test_a_socket_gone_before_it_is_read_is_counted_and_never_guessed() -> None:
    events = [
        _event("LISTEN", "SYN_RECV", port=SERVER, peer=CLIENT),
        _event("SYN_RECV", "ESTABLISHED", port=SERVER, peer=CLIENT),
        _event("ESTABLISHED", "CLOSE", port=SERVER, peer=CLIENT),  # a reset: no call at all
    ]
    places = FakePlaces()
    netns, placer = _placed(events, places)
    assert netns == [NOWHERE] * 3 and placer.unplaced == 3
    assert len(places.lookups) == 2  # once a read; the connection's next events know


def test_ends_found_in_two_namespaces_are_placed_in_neither() -> None:
    places = FakePlaces(sockets={_ends(): [A, B]})
    netns, placer = _placed([_event("SYN_SENT", "ESTABLISHED")], places)
    assert netns == [NOWHERE] and placer.unplaced == 1


def test_the_same_ends_in_two_namespaces_lend_nothing_to_each_other() -> None:
    # Two sockets with the same ends at once, one in A and one in B, their steps interleaved:
    # neither the read's later calls nor the timeline may place one's softirq events.
    events = [
        _event("CLOSE", "SYN_SENT", pid=1),
        _event("CLOSE", "SYN_SENT", pid=2),
        _event("SYN_SENT", "ESTABLISHED"),
        _event("SYN_SENT", "ESTABLISHED"),
        _event("ESTABLISHED", "FIN_WAIT1", pid=1),
        _event("ESTABLISHED", "FIN_WAIT1", pid=2),
        _event("FIN_WAIT1", "FIN_WAIT2"),
    ]
    places = FakePlaces(tasks={1: A, 2: B}, sockets={_ends(): [A, B]})
    netns, _ = _placed(events, places)
    assert netns == [A, B, NOWHERE, NOWHERE, A, B, NOWHERE]


def test_the_timeline_lends_a_namespace_only_to_the_sockets_next_step() -> None:
    places = FakePlaces(tasks={1: A})
    placer, timeline = Placer(places), Timeline()  # type: ignore[arg-type]
    placer.follow([_event("SYN_SENT", "ESTABLISHED", pid=1)], [True], timeline)
    later = [_event("ESTABLISHED", "FIN_WAIT1"), _event("LISTEN", "SYN_RECV")]
    followed = placer.follow(later, [True, True], timeline) + placer.follow([], [], timeline)
    netns = [t.event.netns for t, _ in followed]
    assert netns == [A, NOWHERE]  # the second is no next step of the socket placed in A


def test_a_short_lived_clients_connect_takes_the_namespace_of_the_socket_it_became() -> None:
    # connect() names no port yet, and its task exited before the read: the socket it became
    # has one, and is still there (TIME_WAIT) to be looked up.
    events = [
        _event("CLOSE", "SYN_SENT", pid=5, port=0),
        _event("SYN_SENT", "ESTABLISHED"),
    ]
    places = FakePlaces(sockets={_ends(): [A]})
    netns, placer = _placed(events, places)
    assert netns == [A, A] and placer.unplaced == 0


def test_two_waiting_connects_to_one_peer_are_not_told_apart() -> None:
    events = [
        _event("CLOSE", "SYN_SENT", pid=5, port=0),
        _event("CLOSE", "SYN_SENT", pid=6, port=0),
        _event("SYN_SENT", "ESTABLISHED"),
    ]
    places = FakePlaces(sockets={_ends(): [A]})
    netns, placer = _placed(events, places)
    assert netns[:2] == [None, None] and placer.unplaced == 2


def test_other_namespaces_events_are_followed_but_not_shown() -> None:
    events = [
        _event("CLOSE", "LISTEN", pid=1, port=SERVER, peer=0),
        _event("CLOSE", "LISTEN", pid=2, port=SERVER, peer=0),
    ]
    places = FakePlaces(tasks={1: A, 2: B})
    placer = Placer(places)  # type: ignore[arg-type]
    shown = transitions(events, Query(), Timeline(), placer=placer)
    assert [t.event.pid for t in shown] == [1] and placer.unplaced == 0


def test_events_the_query_does_not_want_cost_no_lookup() -> None:
    places = FakePlaces(sockets={_ends(): [A]})
    placer = Placer(places)  # type: ignore[arg-type]
    query = Query(states=frozenset({TcpState.LISTEN}))
    assert transitions([_event("SYN_SENT", "ESTABLISHED")], query, Timeline(), placer=placer) == []
    assert places.lookups == [] and placer.unplaced == 0


def test_a_lookup_answers_for_the_exact_ends_only() -> None:
    # The kernel answers a listener's lookup with any listener that would take the segment: a
    # wildcard one on the same port must not stand in for a gone 127.0.0.1 one.
    with socket.create_server(("0.0.0.0", 0)) as wildcard:
        port = wildcard.getsockname()[1]
        lookup = Lookup()
        try:
            assert (
                lookup.inode(4, "0.0.0.0", port, "0.0.0.0", 0) == os.fstat(wildcard.fileno()).st_ino
            )
            assert lookup.inode(4, "127.0.0.1", port, "0.0.0.0", 0) is None
            assert lookup.inode(6, "::1", port, "::", 0) is None
            assert lookup.inode(4, "not an address", port, "0.0.0.0", 0) is None
        finally:
            lookup.close()


def test_two_places_at_once_is_one_line_and_exit_2(cli) -> None:
    done = cli.process("trace", "--netns", "x", "--all-netns")
    assert done.returncode == 2
    assert (
        done.stderr.count("\n") == 1
        and "--netns and --all-netns name two places to read; give one" in done.stderr
    )


# --- live: real namespaces, real tracepoint ----------------------------------------------------

live = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="tracing and making network namespaces need root and ip (iproute2); CI runs as root",
)

# Connections on loopback, made when told, then held alive until stdin closes: its tasks stay
# where they are until the trace has read their events.
TRAFFIC = """
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
ports = []
with socket.create_server(("127.0.0.1", port)) as server:
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        ports.append(client.getsockname()[1])
        client.close()
        accepted.close()
print(" ".join(map(str, ports)), flush=True)
sys.stdin.read()
"""
# One connection from a fixed client port, then gone: process, listener and server end.
GONE = """
import socket, sys
port, client_port = int(sys.argv[1]), int(sys.argv[2])
with socket.create_server(("127.0.0.1", port)) as server:
    client = socket.socket()
    client.bind(("127.0.0.1", client_port))
    client.connect(("127.0.0.1", port))
    accepted, _ = server.accept()
    client.close()
    accepted.close()
"""
EVENTS_A_CONNECTION = 10  # each end five; the listener adds two
HOST = os.stat("/proc/self/ns/net").st_ino


@dataclass(frozen=True)
class Space:
    name: str

    @property
    def inode(self) -> int:
        return os.stat(f"/run/netns/{self.name}").st_ino

    @property
    def prefix(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.name)


@pytest.fixture(scope="module")
def spaces(netns: Any) -> tuple[Space, Space]:
    return Space(netns("tr").name), Space(netns("tr").name)


@pytest.fixture
def port() -> int:
    try:
        tracefs.tracefs_root()
    except tracefs.TracingError as e:
        pytest.skip(str(e))
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])  # free here; the namespaces' own loopbacks are empty


class Traffic:
    """A process making ``count`` loopback connections to ``port`` in a namespace, when told."""

    def __init__(self, prefix: tuple[str, ...], port: int, count: int) -> None:
        self.count = count
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", TRAFFIC, str(port), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def run(self) -> set[int]:
        """The connections made: their client ports."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return {int(p) for p in self._line().split()}

    def close(self) -> None:
        self.proc.communicate(input="", timeout=10)


@contextlib.contextmanager
def _traffic(port: int, *plan: tuple[tuple[str, ...], int]) -> Iterator[list[Traffic]]:
    made: list[Traffic] = []
    try:
        made = [Traffic(prefix, port, count) for prefix, count in plan]
        yield made
    finally:
        for traffic in made:
            traffic.close()


def _trace(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "tcpstates", "trace", "--duration", "60", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ready(proc: subprocess.Popen[str]) -> None:
    """Once the trace holds its instance with the event enabled (bounded)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{proc.pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{proc.pid}/fd/{fd}")
                    if target.endswith("/trace_pipe"):
                        instance = target.rpartition("/")[0]
                        with open(f"{instance}/{tracefs.EVENT}/enable") as f:
                            if f.read().strip() == "1":
                                return
        time.sleep(0.05)
    raise AssertionError("the trace never enabled its instance")


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    time.sleep(0.5)  # what the kernel holds is read
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=20)


def _records(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def _clients(records: list[dict[str, Any]], netns: int | None = None) -> set[int]:
    return {
        int(r["local_port"])
        for r in records
        if (r["old_state"], r["new_state"]) == ("SYN_SENT", "ESTABLISHED")
        and (netns is None or r["netns"] == netns)
    }


def _all_traffic(
    spaces: tuple[Space, Space], port: int, *trace_args: str, prefix: tuple[str, ...] = ()
) -> tuple[dict[int, set[int]], str, str, int, dict[int, int]]:
    """Traffic on the host (2 connections), in A (3) and in B (4), traced as asked: the
    client ports by namespace, the trace's stdout, stderr and exit status, and the pids."""
    a, b = spaces
    inodes = (HOST, a.inode, b.inode)
    with _traffic(port, ((), 2), (a.prefix, 3), (b.prefix, 4)) as traffic:
        pids = {inode: t.proc.pid for inode, t in zip(inodes, traffic, strict=True)}
        args = [arg.replace("{pid-in-A}", str(pids[a.inode])) for arg in trace_args]
        proc = _trace("--port", str(port), *args, prefix=prefix)
        _ready(proc)
        ports = {inode: t.run() for inode, t in zip(inodes, traffic, strict=True)}
        out, err = _stop(proc)
    return ports, out, err, proc.returncode, pids


PLACES = {
    "this namespace": ((), ()),
    "--netns": (("--netns", "{A}"), ()),
    "--netns-pid": (("--netns-pid", "{pid-in-A}"), ()),
    "ip netns exec": ((), ("ip", "netns", "exec", "{A}")),
}


@live
@pytest.mark.parametrize("how", list(PLACES))
def test_a_trace_shows_its_namespaces_transitions_only(
    spaces: tuple[Space, Space], port: int, how: str
) -> None:
    a, _ = spaces
    args, prefix = (tuple(x.replace("{A}", a.name) for x in part) for part in PLACES[how])
    ports, out, err, status, pids = _all_traffic(spaces, port, "-o", "jsonl", *args, prefix=prefix)
    assert (status, err) == (0, "")
    inode = HOST if how == "this namespace" else a.inode
    records = _records(out)
    assert {r["netns"] for r in records} == {inode}
    assert _clients(records) == ports[inode]
    assert len(records) == EVENTS_A_CONNECTION * len(ports[inode]) + 2
    # Pids as the host sees them: close() is the traffic's own call.
    assert {r["pid"] for r in records if r["new_state"] == "FIN_WAIT1"} == {pids[inode]}


@live
def test_all_netns_shows_every_namespace_each_under_its_own(
    spaces: tuple[Space, Space], port: int
) -> None:
    ports, out, err, status, pids = _all_traffic(spaces, port, "-o", "csv", "--all-netns")
    assert (status, err) == (0, "")
    records = list(csv.DictReader(io.StringIO(out)))
    for inode, clients in ports.items():
        mine = [r for r in records if int(r["netns"]) == inode]
        assert _clients(mine) == clients
        assert len(mine) == EVENTS_A_CONNECTION * len(clients) + 2
        assert {int(r["pid"]) for r in mine if r["new_state"] == "FIN_WAIT1"} == {pids[inode]}
    assert len(records) == sum(EVENTS_A_CONNECTION * len(c) + 2 for c in ports.values())


@live
def test_all_netns_plain_leads_with_the_namespace_label(
    spaces: tuple[Space, Space], port: int
) -> None:
    a, b = spaces
    ports, out, err, status, _ = _all_traffic(spaces, port, "--all-netns")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert re.match(r"NETNS +TIME +LOCAL", lines[0])
    for space, count in ((a, 3), (b, 4)):
        label = f"{space.inode} ({space.name})"
        mine = [line for line in lines if line.startswith(label + " ")]
        assert len(mine) == EVENTS_A_CONNECTION * count + 2
    assert sum(line.startswith(f"{HOST} ") for line in lines) == EVENTS_A_CONNECTION * 2 + 2


def _gone(space: Space, port: int, client_port: int) -> None:
    done = subprocess.run(
        [*space.prefix, sys.executable, "-c", GONE, str(port), str(client_port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@live
@pytest.mark.parametrize("both", [False, True], ids=["one namespace", "same ends in two"])
def test_what_is_gone_before_it_is_read_is_counted_never_guessed(
    spaces: tuple[Space, Space], port: int, both: bool
) -> None:
    # The trace is stopped while the connections come and go, so that when it reads them the
    # processes, the listeners and the servers' ends are gone; the clients' ends wait in
    # TIME_WAIT, where a lookup finds them: in A alone, or in A and B with the very same ends.
    a, b = spaces
    with socket.create_server(("127.0.0.1", 0)) as s:
        client_port = s.getsockname()[1]
    proc = _trace("-o", "jsonl", "--port", str(port), "--all-netns")
    try:
        _ready(proc)
        os.kill(proc.pid, signal.SIGSTOP)
        for space in (a, b) if both else (a,):
            _gone(space, port, client_port)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    out, err = _stop(proc)
    records = _records(out)
    client_events = 5
    if both:
        assert records == []  # the same ends in TIME_WAIT in both: in neither
        left_out = 2 * (EVENTS_A_CONNECTION + 2)
    else:
        assert {(r["netns"], r["local_port"]) for r in records} == {(a.inode, client_port)}
        assert len(records) == client_events  # connect() too, by the socket it became
        left_out = EVENTS_A_CONNECTION + 2 - client_events
    assert proc.returncode == 0
    assert err == (
        f"tcpstates: left out {left_out} transitions that could not be placed in a network"
        " namespace (the socket had gone before it was looked up, or its ends were in use in"
        " two namespaces)\n"
    )


@live
def test_a_namespace_that_is_not_there_is_one_line_and_exit_1(cli, port: int) -> None:
    done = cli.process("trace", "--netns", "tcpstates-no-such-namespace", "--duration", "1")
    assert done.returncode == 1
    assert done.stderr == (
        "tcpstates: no network namespace named 'tcpstates-no-such-namespace' in /run/netns\n"
    )
