"""tcpstates kill: real sockets destroyed through SOCK_DESTROY, checked with ss afterwards.

A leak is made inside a network namespace the test makes: a server that accepted connections
whose clients closed and never closed its ends (CLOSE_WAIT), beside its listener. ss (its own
netlink reading) says what is left; the holder says what its next send got.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from conftest import NEEDS_ROOT, TCPSTATES, Netns, said
from terminal import needs_tmux, terminal

from tcpstates.explain.states import KILLING
from tcpstates.model.query import Query
from tcpstates.model.states import TcpState

# A server on 127.0.0.1:PORT that accepts N connections whose clients then close, and holds
# its ends in CLOSE_WAIT. Each line on stdin makes it send a byte on every end it holds and
# say what each send got (ok, or the errno's name).
HOLDER = """
import errno, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
server = socket.socket()
server.bind(("127.0.0.1", port))
server.listen(16)
clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
held = [server.accept()[0] for _ in clients]
for client in clients:
    client.close()
print("ready", flush=True)
for line in sys.stdin:
    answers = []
    for end in held:
        try:
            end.send(b"x")
            answers.append("ok")
        except OSError as e:
            answers.append(errno.errorcode[e.errno])
    print(" ".join(answers), flush=True)
"""
LEAKED = 3  # CLOSE_WAIT sockets a leak holds
PORT = 47101


@dataclass
class Leak:
    """A holder's process in a namespace, and how to ask it and ss about its sockets."""

    space: Netns
    port: int
    proc: subprocess.Popen[str]

    def states(self) -> list[str]:
        """ss's states of the sockets on the leak's local port, sorted."""
        done = self.space.run("ss", "-Htan", "sport", "=", f":{self.port}")
        return sorted(line.split()[0] for line in done.stdout.splitlines() if line.strip())

    def sends(self) -> list[str]:
        """What a send on each held socket gets now."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("send\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().split()

    def kill(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """tcpstates kill in the leak's namespace, as a user runs it (no terminal)."""
        argv = [*TCPSTATES, "--netns", self.space.name, "kill", *args]
        return subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=60, check=False
        )


@pytest.fixture
def leak(netns: Callable[[str], Netns]) -> Iterator[Leak]:
    """A fresh leak, in a namespace of its own: LISTEN and LEAKED CLOSE_WAIT on PORT."""
    made = leak_in(netns("kill"))
    yield made
    made.proc.kill()
    made.proc.wait(timeout=10)


def leak_in(space: Netns) -> Leak:
    """A holder of LISTEN and LEAKED CLOSE_WAIT on PORT, started in ``space`` (which kills
    it when it is deleted), once ss there sees them."""
    proc = space.popen(
        sys.executable, "-c", HOLDER, str(PORT), str(LEAKED),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    made = Leak(space, PORT, proc)
    deadline = time.monotonic() + 5  # the clients' FINs are acknowledged at once
    while made.states() != ["CLOSE-WAIT"] * LEAKED + ["LISTEN"]:
        assert time.monotonic() < deadline, made.states()
        time.sleep(0.05)
    return made


def test_a_close_wait_leak_is_killed_by_filter_and_its_listener_left_alone(leak: Leak) -> None:
    # No state: everything on the port but the listener, which is named as left alone.
    done = leak.kill("--sport", str(leak.port), "--yes")
    assert done.returncode == 0, done.stderr
    assert leak.states() == ["LISTEN"]
    assert "1 listening socket matches too and is left alone" in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:2] == ["Result", "State"]
    assert [line.split()[:2] for line in lines[1:-1]] == [["destroyed", "CLOSE_WAIT"]] * LEAKED
    assert lines[-1] == f"{LEAKED} sockets: {LEAKED} destroyed"
    # What the docs promise the application: an error on its next call.
    assert leak.sends() == ["ECONNABORTED"] * LEAKED


def test_the_listener_is_killed_when_its_state_is_named(leak: Leak) -> None:
    done = leak.kill("-s", "listen", "--sport", str(leak.port), "--yes")
    assert done.returncode == 0, done.stderr
    assert leak.states() == ["CLOSE-WAIT"] * LEAKED
    assert leak.sends() == ["ok"] * LEAKED  # its connections are not the listener


def test_a_group_does_not_name_listen(leak: Leak) -> None:
    done = leak.kill("-s", "all", "--sport", str(leak.port), "--dry-run", "-o", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [s["state"] for s in report["sockets"]] == ["CLOSE_WAIT"] * LEAKED
    assert report["listeners_left_alone"] == 1


def test_json_reports_each_socket_and_the_totals(leak: Leak) -> None:
    done = leak.kill("-s", "close-wait", "--sport", str(leak.port), "--yes", "-o", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dry_run"] is False and report["status"] == 0
    assert {(s["state"], s["local_port"], s["result"], s["reason"]) for s in report["sockets"]} == {
        ("CLOSE_WAIT", leak.port, "destroyed", None)
    }
    assert len(report["sockets"]) == LEAKED
    assert report["totals"] == {
        "matched": LEAKED, "destroyed": LEAKED, "vanished": 0, "not_permitted": 0,
        "unsupported": 0, "failed": 0,
    }  # fmt: skip
    assert leak.states() == ["LISTEN"]


def test_without_yes_and_no_terminal_nothing_is_destroyed(leak: Leak) -> None:
    done = leak.kill("-s", "close-wait", "--sport", str(leak.port), stdin="y\n")
    assert done.returncode == 2
    assert said(done.stderr).startswith("tcpstates: nothing destroyed: kill asks before")
    assert done.stdout.splitlines()[-1] == f"{LEAKED} sockets to destroy"
    assert leak.states() == ["CLOSE-WAIT"] * LEAKED + ["LISTEN"]
    assert leak.sends() == ["ok"] * LEAKED


def test_dry_run_lists_and_destroys_nothing(leak: Leak) -> None:
    done = leak.kill("-s", "close-wait", "--sport", str(leak.port), "--dry-run")
    assert (done.returncode, done.stderr) == (0, "")
    assert [line.split()[0] for line in done.stdout.splitlines()[1:-1]] == ["to"] * LEAKED
    assert leak.states() == ["CLOSE-WAIT"] * LEAKED + ["LISTEN"]


def test_nothing_matched_is_said_and_is_no_failure(leak: Leak) -> None:
    done = leak.kill("-s", "close-wait", "--sport", str(leak.port + 1), "--yes", "-o", "json")
    assert done.returncode == 0
    assert said(done.stderr) == "tcpstates: no socket matched; nothing to destroy\n"
    assert json.loads(done.stdout)["totals"]["matched"] == 0


@needs_tmux
@pytest.mark.parametrize(("answer", "status"), [("y", 0), ("n", 1)])
def test_on_a_terminal_it_asks_and_does_what_was_answered(
    leak: Leak, answer: str, status: int
) -> None:
    argv = [*TCPSTATES, "--netns", leak.space.name, "kill", "-s", "close-wait"]
    with terminal([*argv, "--sport", str(leak.port)], width=80) as term:
        shown = term.wait_for(f"Destroy these {LEAKED} sockets? [y/N]")
        assert f"{LEAKED} sockets to destroy" in shown
        table = term.joined_lines()[: 2 + LEAKED]  # the header, its rule, the rows
        assert table[0].split()[:2] == ["Result", "State"], shown
        assert max(map(len, table)) <= 80, shown  # fitted to the terminal, as a listing is
        assert leak.states() == ["CLOSE-WAIT"] * LEAKED + ["LISTEN"]  # nothing before the y
        term.keys(answer, "Enter")
        shown = term.wait_for("EXIT=")
    assert f"EXIT={status}" in shown
    if answer == "y":
        assert f"{LEAKED} sockets: {LEAKED} destroyed" in shown
        assert leak.states() == ["LISTEN"]
    else:
        assert "tcpstates: nothing destroyed" in shown
        assert leak.states() == ["CLOSE-WAIT"] * LEAKED + ["LISTEN"]


# -- refusals -------------------------------------------------------------------------------


def test_no_filter_no_kill(cli) -> None:  # type: ignore[no-untyped-def]
    for argv in (["kill"], ["kill", "-u", "-6", "--yes"], ["-4", "kill", "--dry-run"]):
        done = cli(*argv)
        assert done.returncode == 2 and done.stdout == "", argv
        assert said(done.stderr).startswith("tcpstates: kill needs a filter"), done.stderr


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--all-netns", "kill", "-s", "close-wait"], "--all-netns"),
        (["--from", "tests/data/proc-little", "kill", "-s", "close-wait"], "--from"),
        (["kill", "-s", "close-wait", "--source", "procfs"], "--source"),
        (["--source", "psutil", "kill", "-s", "close-wait"], "--source"),
        (["kill", "-s", "close-wait", "--dry-run", "--yes"], "--yes"),
        (["-a", "kill", "--port", "80"], "--all"),
    ],
)
def test_what_cannot_apply_is_refused_in_one_line(cli, argv: list[str], flag: str) -> None:  # type: ignore[no-untyped-def]
    done = cli(*argv)
    assert done.returncode == 2 and done.stdout == ""
    assert flag in said(done.stderr) and "\n" not in done.stderr.rstrip("\n")


def _close_wait_here() -> tuple[int, socket.socket, list[socket.socket]]:
    """A listener on loopback and LEAKED accepted ends in CLOSE_WAIT, in this namespace, on
    a port the kernel chose (a fixed one may be a connection's of another program's here)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(LEAKED)]
    held = [server.accept()[0] for _ in clients]
    for client in clients:
        client.close()
    deadline = time.monotonic() + 5  # the clients' FINs are acknowledged at once
    while _ss_states(port) != ["CLOSE-WAIT"] * LEAKED + ["LISTEN"]:
        assert time.monotonic() < deadline, _ss_states(port)
        time.sleep(0.05)
    return port, server, held


def _ss_states(port: int) -> list[str]:
    done = subprocess.run(
        ["ss", "-Htan", "sport", "=", f":{port}"], capture_output=True, text=True, check=True
    )
    return sorted(line.split()[0] for line in done.stdout.splitlines() if line.strip())


@pytest.mark.skipif(os.geteuid() != 0, reason=NEEDS_ROOT)
def test_a_socket_gone_since_the_listing_is_reported_vanished() -> None:
    # The kernel matches the cookie its dump gave: a handle whose cookie is not the socket's
    # (as one whose ends a new connection took) finds nothing, like one that closed.
    from tcpstates.sources.destroy import Destroyer, Outcome
    from tcpstates.sources.netlink import read_handles

    port, server, held = _close_wait_here()
    try:
        query = Query(states=frozenset({TcpState.CLOSE_WAIT}), sport=port)
        found, _ = read_handles(query, owners=False)
        assert len(found) == LEAKED
        (sock, handle), *_ = found
        with Destroyer() as destroyer:
            stale = destroyer.destroy(handle.with_cookie(handle.cookie + 1))
            assert stale.outcome is Outcome.VANISHED and stale.reason.endswith("(ENOENT)")
            assert _ss_states(port) == ["CLOSE-WAIT"] * LEAKED + ["LISTEN"]
            assert destroyer.destroy(handle).outcome is Outcome.DESTROYED
            again = destroyer.destroy(handle)  # closed between the listing and the request
            assert again.outcome is Outcome.VANISHED
        assert _ss_states(port) == ["CLOSE-WAIT"] * (LEAKED - 1) + ["LISTEN"]
    finally:
        for end in (server, *held):
            end.close()


def test_as_nobody_the_kernel_refuses_and_it_says_why_in_one_line(nobody) -> None:  # type: ignore[no-untyped-def]
    port, server, held = _close_wait_here()
    try:
        done = nobody("kill", "-s", "close-wait", "--sport", str(port), "--yes", "-o", "json")
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        lines = [line for line in done.stderr.splitlines() if "refused" in line]
        assert lines == [
            f"tcpstates: the kernel refused {LEAKED}: destroying a socket needs CAP_NET_ADMIN"
            " in its network namespace (root), even for one's own sockets"
        ]
        report = json.loads(done.stdout)
        assert {s["result"] for s in report["sockets"]} == {"not permitted"}
        assert {s["reason"] for s in report["sockets"]} == {"Operation not permitted (EPERM)"}
        assert report["totals"]["not_permitted"] == LEAKED
        assert _ss_states(port) == ["CLOSE-WAIT"] * LEAKED + ["LISTEN"]
    finally:
        for end in (server, *held):
            end.close()


# -- what killing does, said once -------------------------------------------------------------


def test_explain_doctor_and_the_man_page_say_the_same_about_killing(cli) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from tcpstates.doctor.checks import Evidence, Thresholds, close_wait_held
    from tcpstates.model.sockets import Socket
    from tcpstates.sources.kernel import KernelState

    explained = json.loads(cli("--explain", "CLOSE_WAIT", "-o", "json").stdout)
    assert explained["killing"] == KILLING
    leaked = Socket(
        proto="tcp", family=4, local_address="127.0.0.1", local_port=80,
        remote_address="127.0.0.1", remote_port=5000, state=TcpState.CLOSE_WAIT,
        inode=7, pid=42, process="app",
    )  # fmt: skip
    (finding,) = close_wait_held(Evidence([leaked], KernelState({}, {})), Thresholds())
    assert finding.meaning.endswith(" " + KILLING)
    assert finding.next_command == "tcpstates kill -s close-wait --pid 42 --dry-run"
    page = (Path(__file__).parent.parent / "man" / "tcpstates-kill.1").read_text()
    assert KILLING in " ".join(page.replace("\\-", "-").split())


@pytest.mark.skipif(os.geteuid() != 0, reason=NEEDS_ROOT)
def test_udp_servers_are_listeners_and_a_connected_udp_socket_is_not(cli) -> None:  # type: ignore[no-untyped-def]
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(2)  # never hang on a socket that was not destroyed
    port = str(server.getsockname()[1])
    talker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    talker.connect(server.getsockname())
    talker.settimeout(2)
    try:
        done = cli("kill", "-u", "--port", port, "--yes", "-o", "json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert [(s["state"], s["result"]) for s in report["sockets"]] == [
            ("ESTABLISHED", "destroyed")
        ]
        assert report["listeners_left_alone"] == 1
        with pytest.raises(ConnectionAbortedError):
            talker.recv(1)
        done = cli("kill", "-u", "-l", "--sport", port, "--yes")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "1 socket: 1 destroyed"
        with pytest.raises(ConnectionAbortedError):
            server.recv(1)
    finally:
        server.close()
        talker.close()


def test_as_nobody_pid_says_whose_sockets_it_cannot_select(nobody) -> None:  # type: ignore[no-untyped-def]
    port, server, held = _close_wait_here()
    try:
        done = nobody("kill", "--pid", str(os.getpid()), "--sport", str(port), "--dry-run")
        assert (done.returncode, done.stdout) == (0, "")
        assert "cannot be attributed: --pid and --process do not select them" in done.stderr
        assert done.stderr.endswith("tcpstates: no socket matched; nothing to destroy\n")
    finally:
        for end in (server, *held):
            end.close()


@pytest.mark.skipif(os.geteuid() != 0, reason=NEEDS_ROOT)
def test_a_time_wait_socket_is_removed(cli) -> None:  # type: ignore[no-untyped-def]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    client.close()  # the client closes first: its end waits in TIME_WAIT
    accepted.recv(1)
    accepted.close()
    server.close()

    def waiting() -> list[str]:
        done = subprocess.run(
            ["ss", "-Htan", "state", "time-wait", "dport", "=", f":{port}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout.splitlines()

    deadline = time.monotonic() + 5
    while len(waiting()) != 1:
        assert time.monotonic() < deadline, waiting()
        time.sleep(0.05)
    done = cli("kill", "-s", "time-wait", "--dport", str(port), "--yes", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert [s["result"] for s in json.loads(done.stdout)["sockets"]] == ["destroyed"]
    assert waiting() == []
