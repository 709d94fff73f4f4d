"""The summary fast path: the same bytes as the click command, on real sockets, or no answer.

Both run in a network namespace of their own, holding a listener, connections in several states
and UDP sockets, so that nothing else on the host can change between the two readings.
Needs root and `ip` for the namespace (CI runs as root).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import TCPSTATES

import tcpstates
from tcpstates._fastpath import summary as fastpath
from tcpstates.cli.root import run
from tcpstates.model.state_codes import TCP_SUMMARY, UDP_SUMMARY
from tcpstates.model.states import TcpState, state_name
from tcpstates.sources import inet_diag
from tcpstates.sources import netns as namespaces

HOLDER = """
import socket, sys, time
held = []
for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
    server = socket.create_server((host, 7100), family=family)
    held.append(server)
    for _ in range(3):
        client = socket.create_connection((host, 7100))
        accepted, _ = server.accept()
        held += [client, accepted]
    held[-2].shutdown(socket.SHUT_WR)  # FIN_WAIT2 on one side, CLOSE_WAIT on the other
    held[-1].recv(1)  # the FIN has arrived
    closer = socket.create_connection((host, 7100))  # TIME_WAIT: the client closes first
    accepted, _ = server.accept()
    closer.close()
    accepted.recv(1)
    accepted.close()
for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((host, 7101))
    held.append(udp)
connected = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
connected.connect(("127.0.0.1", 7101))
held.append(connected)
time.sleep(0.2)  # the ACKs of the FINs have arrived too: FIN_WAIT1 has become FIN_WAIT2
print("ready", flush=True)
sys.stdin.read()
"""

# Every way to spell a JSON summary, with each protocol and family choice.
FAST = [
    ["--summary", "-o", "json"],
    ["-o", "jsonl", "--summary"],
    ["--summary", "--format", "json", "-t"],
    ["--summary", "--format=json", "-u"],
    ["--summary", "-o", "json", "-t", "-u"],
    ["--tcp", "--udp", "--summary", "-o", "json", "-4"],
    ["--summary", "-o", "json", "-6"],
    ["--summary", "-o", "json", "--ipv4", "--ipv6"],
    ["--summary", "-o", "plain", "-o", "json", "-u", "-6"],
]
# Anything else is the click command's: other formats, filters, options it must validate.
NOT_FAST = [
    [],
    ["--summary"],
    ["--summary", "-o", "plain"],
    ["--summary", "-o", "json", "-o", "plain"],
    ["--summary", "-o"],
    ["-o", "json"],
    ["--summary", "-o", "json", "-s", "time-wait"],
    ["--summary", "-o", "json", "-l"],
    ["--summary", "-o", "json", "--port", "22"],
    ["--summary", "-o", "json", "-tu"],
    ["--summary", "-ojson"],
    ["--summary", "-o", "json", "--all-netns"],
    ["--summary", "-o", "json", "-v"],
    ["--summary", "-o", "json", "--no-owners"],  # refused by click: a summary has no owners
    ["--summary", "-o", "json", "--source", "procfs"],
    ["--summary", "-o", "json", "--", "x"],
    ["--summary", "-o", "json", "--help"],
    ["--summary", "-o", "json", "--bogus"],
    ["export", "--summary", "-o", "json"],
]


@pytest.fixture(scope="module")
def namespace(netns) -> Iterator[namespaces.Namespace]:  # type: ignore[no-untyped-def]
    """A namespace of our own holding a known set of sockets, as the sources open it."""
    space = netns("fast")
    holder = space.popen(
        sys.executable, "-c", HOLDER, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    yield namespaces.by_name(space.name)
    holder.communicate(input="", timeout=10)


def _capture(monkeypatch: pytest.MonkeyPatch, call: object, argv: list[str]) -> tuple[object, str]:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    status = call(argv)  # type: ignore[operator]
    return status, out.getvalue()


@pytest.mark.parametrize("argv", FAST, ids=" ".join)
def test_same_bytes_as_the_click_command(
    namespace: namespaces.Namespace, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    with namespaces.entered(namespace):
        fast = _capture(monkeypatch, fastpath.run_fast, argv)
        full = _capture(monkeypatch, run, argv)
    assert fast == full
    assert fast[0] == 0
    counts = json.loads(fast[1])
    flat = counts if "tcp" not in counts else {**counts["tcp"], **counts.get("udp", {})}
    assert sum(flat.values()) > 0  # the namespace's sockets were seen, not an empty table


def test_the_namespace_has_what_the_summary_must_count(
    namespace: namespaces.Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with namespaces.entered(namespace):
        _, text = _capture(monkeypatch, fastpath.run_fast, ["--summary", "-o", "json", "-t", "-u"])
    counts = json.loads(text)
    for state in ("LISTEN", "ESTABLISHED", "FIN_WAIT2", "CLOSE_WAIT", "TIME_WAIT"):
        assert counts["tcp"][state] >= 2, state  # one of each per family
    assert counts["udp"] == {"ESTABLISHED": 1, "UNCONN": 2}


@pytest.mark.parametrize("argv", NOT_FAST, ids=lambda a: " ".join(a) or "(none)")
def test_anything_else_is_left_to_the_click_command(argv: list[str]) -> None:
    assert fastpath.parse(argv) is None
    assert fastpath.run_fast(argv) is None


def test_a_failure_is_left_to_the_click_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused() -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(inet_diag, "_diag_socket", refused)
    assert fastpath.run_fast(["--summary", "-o", "json"]) is None


def test_a_state_outside_the_default_list_is_left_to_the_click_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A code the kernel may add one day: the click command lists it after the known ones.
    monkeypatch.setattr(inet_diag, "count_states", lambda *args: {1: 3, 14: 1})
    assert fastpath.run_fast(["--summary", "-o", "json"]) is None


def test_summary_names_are_the_states_names() -> None:
    for proto, listed in (("tcp", TCP_SUMMARY), ("udp", UDP_SUMMARY)):
        for code, name in listed:
            assert state_name(TcpState(code), proto) == name


def test_a_closed_pipe_is_quiet() -> None:
    done = subprocess.run(
        f"{' '.join(TCPSTATES)} --summary -o json -t -u | head -1 >/dev/null;"
        " echo ${PIPESTATUS[0]}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stderr == ""
    assert done.stdout.strip() in ("0", "141")  # 0 when all of it fit in the pipe at once


def test_the_entry_point_takes_the_fast_path_without_click() -> None:
    probe = (
        "import sys; sys.argv[1:] = ['--summary', '-o', 'json'];"
        "from tcpstates.__main__ import main\n"
        "try: main()\n"
        "except SystemExit as e: status = e.code\n"
        "heavy = sorted({'click', 'dataclasses', 'typing', 'rich'} & set(sys.modules))\n"
        "print(status, heavy, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    assert done.stderr.strip() == "0 []"


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_the_version_is_clicks_words_without_click(cli, flag: str) -> None:
    # --version is answered before the commands load (they cost 60 ms); click says the same.
    code = (
        f"import sys; from tcpstates.__main__ import main; sys.argv[1:] = [{flag!r}]\n"
        "try: main()\n"
        "except SystemExit as e: print(e.code, 'click' in sys.modules, file=sys.stderr)"
    )
    fast = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert fast.stderr == "0 False\n"
    assert fast.stdout == cli(flag).stdout == f"tcpstates, version {tcpstates.__version__}\n"
