"""The light front end (tcpstates/_fastpath/): the click command's values and bytes, or no answer.

Output is compared in a network namespace of our own, holding a listener, connections in several
states and UDP sockets, so that nothing else on the host can change between the two readings.
Needs root and `ip` for the namespace (CI runs as root).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import socket
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TCPSTATES
from hypothesis import given, settings
from hypothesis import strategies as st

import tcpstates
from tcpstates._fastpath.parse import parse
from tcpstates._fastpath.run import run_fast
from tcpstates.cli.requests import ListRequest, Request, SummaryRequest
from tcpstates.cli.root import resolve, run
from tcpstates.model.errors import SourceError
from tcpstates.model.state_codes import TCP_SUMMARY, UDP_SUMMARY
from tcpstates.model.states import TcpState, state_name
from tcpstates.sources import netns as namespaces
from tcpstates.sources import place as places

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

# Argument lists the front end takes: summaries and listings, in every spelling.
FAST = [
    ["--summary", "-o", "json"],
    ["-o", "jsonl", "--summary"],
    ["--summary", "--format", "json", "-t"],
    ["--summary", "--format=json", "-u"],
    ["--summary", "-o", "json", "-tu"],
    ["--tcp", "--udp", "--summary", "-ojson", "-4"],
    ["--summary", "-o", "plain", "-o", "json", "-u", "-6"],
    ["--summary"],
    ["--summary", "-o", "plain", "-s", "established", "--port", "7100"],
    ["--summary", "-ltn", "-o", "json"],
    ["--summary", "-an", "-o", "jsonl", "--local", "127.0.0.0/8"],
    [],
    ["-o", "plain"],
    ["-s", "time-wait", "-o", "plain", "--no-owners"],
    ["--state=close-wait", "--state", "LISTEN", "-o", "json"],
    ["-t", "-u", "-o", "jsonl"],
    ["-4", "--port", "7100", "-o", "csv", "-H"],
    ["--sport=7100", "-6", "--format=plain", "-n", "--no-header"],
    ["--dport", "7100", "-o", "json", "-o", "plain"],
    ["-s", "connected", "-u", "--ipv4", "--no-owners"],
    ["-tanp"],
    ["-tulpn", "-o", "json"],
    ["-ltn", "-H"],
    ["-to", "plain", "--remote", "[::1]", "--no-owners"],
    ["--local=127.0.0.1", "-sestablished", "-ojsonl"],
    ["-i", "-o", "json", "--no-owners"],
    ["-tme", "--timers", "-o", "plain"],
    ["--info", "--memory", "-o", "csv", "-s", "established"],
]
# Anything else is the click command's: other commands, options, values it must refuse.
NOT_FAST = [
    ["-e", "-o", "json"], ["--timers", "-o", "csv"], ["--summary", "-i"], ["--cgroup"],
    ["-v"], ["-W"], ["-r"], ["--pid", "1"], ["--process", "x"],
    ["-s", "bogus"], ["-s"], ["--port", "70000"], ["--port", "9" * 5000], ["--port", "x"],
    ["--port", "+22"], ["--local", "x"], ["--local", "fe80::1%lo"], ["--remote"],
    ["-o", "table"], ["-o", "openmetrics"], ["-H", "-o", "json"], ["-tax"], ["-s=listen"],
    ["-a", "-l"], ["-as", "listen"], ["-p", "--no-owners"], ["--watch"], ["doctor"],
    ["--explain", "06"], ["--", "-o"], ["--bogus"], ["-o", "json", "-h"], ["--tcp=1"],
    ["--color", "always"], ["--source", "procfs"], ["--netns", "x"], ["--all-netns"],
    ["--summary", "-o", "csv"], ["--summary", "--no-owners"], ["--summary", "-H"],
    ["--summary", "-p"], ["--summary", "--by", "process"], ["--summary", "--", "x"],
    ["export", "--summary", "-o", "json"], ["-"], ["x"],
]  # fmt: skip


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


def _request(argv: list[str]) -> Request:
    """The request the front end's plan stands for, as the click command would build it."""
    plan = parse(argv)
    assert plan is not None, argv
    if plan.summary:
        return SummaryRequest(query=plan.query, fmt=plan.fmt)
    return ListRequest(
        query=plan.query, fmt=plan.fmt, no_owners=plan.no_owners, no_header=plan.no_header,
        extended="extended" in plan.flags, info="info" in plan.flags,
        memory="memory" in plan.flags, timers="timers" in plan.flags,
    )  # fmt: skip


@pytest.mark.parametrize("argv", FAST, ids=lambda a: " ".join(a) or "(none)")
def test_the_plan_is_the_click_commands_request(argv: list[str]) -> None:
    assert resolve(argv) == _request(argv)  # every field: those left at their default too


@pytest.mark.parametrize("argv", NOT_FAST, ids=lambda a: " ".join(a)[:40])
def test_anything_else_is_left_to_the_click_command(argv: list[str]) -> None:
    assert parse(argv) is None
    assert run_fast(argv) is None


WORDS = st.sampled_from(
    ["-t", "-u", "-4", "-6", "--no-owners", "-n", "-H", "--tcp", "--udp", "--ipv4", "--ipv6",
     "-a", "-l", "-p", "--summary", "-tan", "-ltn", "-tulpn", "-an", "--all", "--listening",
     "-e", "-i", "-m", "--timers", "-tie"]
)  # fmt: skip
VALUED = st.tuples(
    st.sampled_from(
        ["-s", "--state", "--port", "--sport", "--dport", "-o", "--format", "--local",
         "--remote", "-ts", "-uo"]
    ),
    st.sampled_from(
        ["time-wait", "LISTEN", "06", "all", "connected", "syn-recv", "plain", "json",
         "jsonl", "csv", "table", "0", "22", "65535", "65536", "bogus", "127.0.0.1",
         "::1", "10.0.0.0/8", "[::1]", "fe80::1%lo", "-t"]
    ),
).map(list)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(WORDS.map(lambda w: [w]), VALUED), max_size=6))
def test_every_list_the_front_end_takes_builds_what_click_builds(parts: list[list[str]]) -> None:
    argv = [word for part in parts for word in part]
    if parse(argv) is not None:
        assert resolve(argv) == _request(argv)


@pytest.mark.parametrize("argv", FAST, ids=lambda a: " ".join(a) or "(none)")
def test_same_bytes_as_the_click_command(
    namespace: namespaces.Namespace, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    with namespaces.entered(namespace):
        fast = _capture(monkeypatch, run_fast, argv)
        full = _capture(monkeypatch, run, argv)
    assert fast[0] == full[0] == 0
    if {"-i", "--info", "-tme"} & set(argv):  # tcp_info's times since data moved run on
        assert re.sub(r"\d+", "N", fast[1]) == re.sub(r"\d+", "N", full[1])
    else:
        assert _timers_masked(fast[1]) == _timers_masked(full[1])
    assert re.search(r"7100|: [1-9]|  [1-9]", fast[1]), fast[1]  # the namespace was read


def _timers_masked(text: str) -> str:
    """The output with the time left on each timer left out: it runs between the readings."""
    text = re.sub(r'("timer_ms": )\d+', r"\1N", text)
    return re.sub(r",(timewait|keepalive|on|persist|probe),\d+,", r",\1,N,", text)


def test_the_namespace_has_what_the_summary_must_count(
    namespace: namespaces.Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    with namespaces.entered(namespace):
        _, text = _capture(monkeypatch, run_fast, ["--summary", "-o", "json", "-t", "-u"])
    counts = json.loads(text)
    for state in ("LISTEN", "ESTABLISHED", "FIN_WAIT2", "CLOSE_WAIT", "TIME_WAIT"):
        assert counts["tcp"][state] >= 2, state  # one of each per family
    assert counts["udp"] == {"ESTABLISHED": 1, "UNCONN": 2}


@pytest.mark.parametrize("argv", [["--summary", "-o", "json"], ["-o", "plain"]])
def test_a_failure_is_left_to_the_click_command(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    def refused(place: object) -> None:
        raise SourceError("netlink sock_diag: permission denied")

    monkeypatch.setattr(places, "open_place", refused)
    status, text = _capture(monkeypatch, run_fast, argv)
    assert (status, text) == (None, "")


def test_summary_names_are_the_states_names() -> None:
    for proto, listed in (("tcp", TCP_SUMMARY), ("udp", UDP_SUMMARY)):
        for code, name in listed:
            assert state_name(TcpState(code), proto) == name


@pytest.mark.parametrize("argv", ["--summary -o json -t -u", "-o plain"])
def test_a_closed_pipe_is_quiet(argv: str) -> None:
    done = subprocess.run(
        f"{' '.join(TCPSTATES)} {argv} | head -c1 >/dev/null; echo ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stderr == ""
    assert done.stdout.strip() in ("0", "141")  # 0 when all of it fit in the pipe at once


# What the commands run most must not load: click and rich (the full command line), and what
# makes loading slow (dataclasses brings inspect, ast and dis; typing; ipaddress; socket.py
# brings selectors). model/record.py says what they cost.
HEAVY = {"click", "rich", "dataclasses", "typing", "inspect", "ipaddress", "selectors"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--summary", "-o", "json"],
        ["--summary", "-t", "-u"],
        ["-s", "time-wait", "-o", "plain"],
        ["-s", "listen", "-o", "plain", "--no-owners"],
        ["-tanp"],
        ["-o", "json"],
        ["-o", "jsonl", "-u"],
        ["-o", "csv", "--sport", "22"],
        ["--version"],
    ],
    ids=" ".join,
)
def test_the_commands_run_most_load_nothing_heavy(argv: list[str]) -> None:
    assert loaded(argv, HEAVY) == "0 []"


@pytest.mark.parametrize(
    "argv", [["-s", "time-wait", "-o", "plain"], ["-tanp"], ["--version"]], ids=" ".join
)
def test_a_plain_listing_loads_no_regular_expressions(argv: list[str]) -> None:
    # re costs 2.5 ms. pip's console script imports it anyway; uv's does not (JSON does: the
    # json module loads it).
    assert loaded(argv, {"re", "fnmatch"}) == "0 []"


def loaded(argv: list[str], modules: set[str]) -> str:
    """The exit status of the light front end's answer to ``argv``, then which of ``modules``
    it loaded."""
    probe = (
        f"import sys; sys.argv[1:] = {argv!r};"
        "from tcpstates.__main__ import main\n"
        "try: main()\n"
        "except SystemExit as e: status = e.code\n"
        f"print(status, sorted({modules!r} & set(sys.modules)), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stderr.strip().splitlines()[-1]


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


def test_on_a_terminal_the_same_pages_as_the_click_command(tmp_path: Path) -> None:
    # The fast front end answers a terminal too: the table, fitted and coloured, into the
    # same pager. --color auto changes nothing but is not the front end's: click answers.
    recorder = tmp_path / "pager"
    recorder.write_text('#!/bin/sh\ncat > "$0.out"\n')
    recorder.chmod(0o755)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = str(listener.getsockname()[1])
        paged = [_on_a_pty(recorder, ["-s", "listen", "--port", port, *extra])
                 for extra in ([], ["--color", "auto"])]  # fmt: skip
    (fast, fast_imports), (full, full_imports) = paged
    assert fast == full and f"127.0.0.1:{port}" in fast and "\x1b[" in fast
    click = re.compile(r"\|\s+click$", re.MULTILINE)  # -X importtime's line for click itself
    assert not click.search(fast_imports) and click.search(full_imports)


def _on_a_pty(pager: Path, argv: list[str]) -> tuple[str, str]:
    """What the pager was given, and the modules imported (stderr), on a 100-column pty."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    drop = ("COLUMNS", "LINES", "NO_COLOR", "TCPSTATES_PAGER")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env |= {"PAGER": str(pager), "TERM": "xterm-256color", "PYTHONPROFILEIMPORTTIME": "1"}
    try:
        done = subprocess.run(
            [*TCPSTATES, *argv], stdin=slave, stdout=slave, stderr=subprocess.PIPE,
            env=env, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(slave)
        os.close(master)
    assert done.returncode == 0, done.stderr[-500:]
    return Path(f"{pager}.out").read_text(), done.stderr
