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


# --- the listing's fast path ----------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tcpstates._fastpath import listing as fast_listing  # noqa: E402
from tcpstates.cli.requests import ListRequest  # noqa: E402
from tcpstates.cli.root import resolve  # noqa: E402

LISTING_FAST = [
    [],
    ["-o", "plain"],
    ["-s", "time-wait", "-o", "plain", "--no-owners"],
    ["--state=close-wait", "--state", "LISTEN", "-o", "json"],
    ["-t", "-u", "-o", "jsonl"],
    ["-4", "--port", "7100", "-o", "csv", "-H"],
    ["--sport=7100", "-6", "--format=plain", "-n", "--no-header"],
    ["--dport", "7100", "-o", "json", "-o", "plain"],
    ["-s", "connected", "-u", "--ipv6", "--no-owners"],
]
LISTING_NOT_FAST = [
    ["-tan"], ["-l"], ["-p"], ["-a"], ["-e"], ["-v"], ["-W"], ["-i"],
    ["--local", "127.0.0.1"], ["--pid", "1"], ["--process", "x"],
    ["-s", "bogus"], ["-s"], ["--port", "70000"], ["--port", "9" * 5000], ["--port", "x"],
    ["-o", "table"], ["-o", "openmetrics"], ["-H", "-o", "json"], ["-ojson"], ["-s=listen"],
    ["--summary"], ["--watch"], ["doctor"], ["--explain", "06"], ["--", "-o"], ["--bogus"],
    ["--color", "always"], ["--source", "procfs"], ["--netns", "x"], ["-o", "json", "-h"],
]  # fmt: skip


def _same_request(argv: list[str]) -> None:
    plan = fast_listing.parse(argv)
    assert plan is not None, argv
    built = ListRequest(
        query=plan.query, fmt=plan.fmt, no_owners=plan.no_owners, no_header=plan.no_header
    )
    assert resolve(argv) == built  # every field: what the fast path leaves at its default too


@pytest.mark.parametrize("argv", LISTING_FAST, ids=lambda a: " ".join(a) or "(none)")
def test_the_listing_plan_is_the_click_commands_request(argv: list[str]) -> None:
    _same_request(argv)


@pytest.mark.parametrize("argv", LISTING_NOT_FAST, ids=lambda a: " ".join(a)[:40])
def test_any_other_listing_is_left_to_the_click_command(argv: list[str]) -> None:
    assert fast_listing.parse(argv) is None


WORDS = st.sampled_from(
    ["-t", "-u", "-4", "-6", "--no-owners", "-n", "-H", "--tcp", "--udp", "--ipv4", "--ipv6"]
)
VALUED = st.tuples(
    st.sampled_from(["-s", "--state", "--port", "--sport", "--dport", "-o", "--format"]),
    st.sampled_from(
        [
            "time-wait",
            "LISTEN",
            "06",
            "all",
            "connected",
            "syn-recv",
            "plain",
            "json",
            "jsonl",
            "csv",
            "table",
            "0",
            "22",
            "65535",
            "65536",
            "bogus",
        ]
    ),  # fmt: skip
).map(list)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(WORDS.map(lambda w: [w]), VALUED), max_size=6))
def test_every_list_the_fast_path_takes_builds_what_click_builds(parts: list[list[str]]) -> None:
    argv = [word for part in parts for word in part]
    if fast_listing.parse(argv) is not None:
        _same_request(argv)


@pytest.mark.parametrize("argv", LISTING_FAST, ids=lambda a: " ".join(a) or "(none)")
def test_the_listing_is_the_same_bytes_as_the_click_command(
    namespace: namespaces.Namespace, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    with namespaces.entered(namespace):
        fast = _capture(monkeypatch, fast_listing.run_fast, argv)
        full = _capture(monkeypatch, run, argv)
    assert fast[0] == full[0] == 0
    assert _timers_masked(fast[1]) == _timers_masked(full[1])
    assert "7100" in fast[1] or argv[-1] == "--no-owners"  # the namespace's sockets were read


def _timers_masked(text: str) -> str:
    """The output with the time left on each timer left out: it runs between the readings."""
    import re

    text = re.sub(r'("timer_ms": )\d+', r"\1N", text)
    return re.sub(r",(timewait|keepalive|on|persist|probe),\d+,", r",\1,N,", text)


def test_a_piped_listing_takes_the_fast_path_without_click() -> None:
    probe = (
        "import sys; sys.argv[1:] = ['-s', 'listen', '-o', 'plain', '--no-owners'];"
        "from tcpstates.__main__ import main\n"
        "try: main()\n"
        "except SystemExit as e: status = e.code\n"
        "print(status, 'click' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    assert done.stderr.strip().splitlines()[-1] == "0 False"
