"""netstat's and ss's flags as hands type them: -tanp, -tulpn, -an, -ltn, -tane, -H.

Each combined spelling lists what its long form lists, and what ss lists with the same
flags, on real sockets of our own on loopback.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import Cli
from ss_reader import row_key, ss_path, ss_rows

# The spelling, what it means in tcpstates's long options, and the protocols and states ss's
# same flags give (ss -l: LISTEN and, for UDP, UNCONN).
HABITS = [
    ("-tanp", ["--tcp"], ("tcp",), False),
    ("-tulpn", ["--tcp", "--udp", "--listening"], ("tcp", "udp"), True),
    ("-an", [], ("tcp",), False),
    ("-ltn", ["--listening", "--tcp"], ("tcp",), True),
    ("-tane", ["--tcp", "--extended"], ("tcp",), False),
    ("-utan", ["--udp", "--tcp"], ("tcp", "udp"), False),
]


@pytest.fixture
def ours(sockets: Any) -> set[int]:
    """A TCP listener with an open connection and a CLOSE_WAIT one, and a bound UDP socket:
    the ports they use."""
    listener = sockets.listener()
    sockets.connect(listener)
    client, _server = sockets.connect(listener)
    client.close()  # the server's end: CLOSE_WAIT, the client's FIN_WAIT2 once acknowledged
    udp = sockets.udp()
    ports = {listener.getsockname()[1], udp.getsockname()[1]}
    deadline = time.monotonic() + 5  # the ACK of the FIN is quick, but not instant
    while any(row.state == "FIN_WAIT1" for row in ss_rows("tcp", ports)):
        assert time.monotonic() < deadline, "the client's FIN was never acknowledged"
        time.sleep(0.01)
    return ports


def keys(done: Any, ports: set[int]) -> set[tuple[Any, ...]]:
    assert done.returncode == 0, done.stderr
    records = [SimpleNamespace(**r) for r in json.loads(done.stdout)]
    return {row_key(r) for r in records if r.local_port in ports or r.remote_port in ports}


@pytest.mark.parametrize(("typed", "long", "protos", "listening"), HABITS)
def test_each_habit_lists_what_its_long_form_and_ss_list(
    cli: Cli, ours: set[int], typed: str, long: list[str], protos: tuple[str, ...], listening: bool
) -> None:
    ss_path()
    format_ = [] if "--extended" in long else ["-o", "json"]  # -e adds columns, not records
    shown = keys(cli(typed, *format_), ours) if format_ else None
    written = keys(cli(*[o for o in long if o != "--extended"], "-o", "json"), ours)
    wanted = {"LISTEN", "UNCONN"} if listening else None
    by_ss = {
        row_key(row)
        for proto in protos
        for row in ss_rows(proto, ours)
        if wanted is None or row.state in wanted
    }
    assert written == by_ss
    if shown is not None:
        assert shown == written
    else:  # -tane: the plain listing with Uid and Inode, the same rows as --tcp
        plain = cli(typed, "-o", "plain")
        header = plain.stdout.splitlines()[0].split()
        assert header[7:9] == ["Uid", "Inode"], header  # after the two "Address:Port"
        lines = plain.stdout.splitlines()
        rows = [line for line in lines if any(f":{port} " in line + " " for port in ours)]
        assert len(rows) == len(written)


def test_no_header_leaves_only_the_rows(cli: Cli, ours: set[int]) -> None:
    for fmt in ("plain", "csv", "table"):
        extra = ["--color", "never"] if fmt == "table" else []
        full = cli("-s", "close-wait", "-o", fmt, *extra).stdout.splitlines()
        bare = cli("-s", "close-wait", "-H", "-o", fmt, *extra).stdout.splitlines()
        assert bare and all("State" not in line and "local_address" not in line for line in bare)
        assert set(bare) <= set(full) and len(full) > len(bare), fmt


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-la"], ["-a", "-l"]),
        (["-a", "-s", "time-wait"], ["-a", "-s"]),
        (["-p", "--no-owners"], ["-p", "--no-owners"]),
        (["-e", "-o", "json"], ["--extended"]),
        (["-H", "-o", "jsonl"], ["--no-header"]),
        (["-a", "doctor"], ["--all", "doctor"]),
        (["-e", "--summary"], ["--extended", "--summary"]),
    ],
)
def test_a_habit_that_cannot_apply_is_refused_in_one_line(
    cli: Cli, args: list[str], named: list[str]
) -> None:
    done = cli(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and all(n in done.stderr for n in named), done.stderr
