"""The zoo builds what it claims, and ss_reader reads ss the way the zoo describes sockets."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time

import pytest
from ss_reader import RowKey, parse_line, ss_path, ss_rows
from zoo import STATES, Expected, Zoo

try:
    ss_path()
except FileNotFoundError as exc:
    pytest.skip(str(exc), allow_module_level=True)

TCP_ONLY_STATES = STATES - {"UNCONN"}


def _seen(zoo: Zoo) -> set[RowKey]:
    return {row.key() for proto in ("tcp", "udp") for row in ss_rows(proto, zoo.ports)}


def _missing(zoo: Zoo, rows: list[Expected]) -> list[str]:
    seen = _seen(zoo)
    return [e.describe() for e in rows if e.key() not in seen]


# -- the whole zoo ------------------------------------------------------------------------


def test_every_expected_row_is_in_ss(zoo: Zoo) -> None:
    assert _missing(zoo, zoo.expected) == []


def test_full_zoo_has_every_state(zoo: Zoo) -> None:
    tcp_states = {e.state for e in zoo.expected if e.proto == "tcp"}
    udp_states = {e.state for e in zoo.expected if e.proto == "udp"}
    assert tcp_states == TCP_ONLY_STATES
    assert udp_states == {"UNCONN", "ESTABLISHED"}


def test_ports_cover_both_ends(zoo: Zoo) -> None:
    for e in zoo.expected:
        assert e.local_port in zoo.ports
        assert e.remote_port == 0 or e.remote_port in zoo.ports


def test_addresses_and_families(zoo: Zoo) -> None:
    listeners = {(e.family, e.local_address) for e in zoo.of_state("LISTEN")}
    assert {(4, "127.0.0.1"), (6, "::1"), (6, "::")} <= listeners
    mapped = [e for e in zoo.expected if e.local_address == "::ffff:127.0.0.1"]
    assert len(mapped) == 1
    assert mapped[0].family == 6
    assert mapped[0].remote_address == "::ffff:127.0.0.1"
    # ... and its client is a plain IPv4 socket talking to the same port.
    client = (4, "127.0.0.1", mapped[0].remote_port, "127.0.0.1", mapped[0].local_port)
    assert client in {
        (e.family, e.local_address, e.local_port, e.remote_address, e.remote_port)
        for e in zoo.of_state("ESTABLISHED")
    }


def _ss_inodes(zoo: Zoo) -> dict[RowKey, int]:
    """key -> socket inode, from `ss -e` (its `ino:N` field; TIME_WAIT lines have none)."""
    inodes = {}
    for proto, flag in (("tcp", "-tanHe"), ("udp", "-uanHe")):
        out = subprocess.run([ss_path(), flag], check=True, capture_output=True, text=True)
        for line in out.stdout.splitlines():
            row = parse_line(proto, line)
            if row.local_port in zoo.ports:
                match = re.search(r"\bino:(\d+)", line)
                inodes[row.key()] = int(match.group(1)) if match else 0
    return inodes


def _my_socket_inodes() -> set[int]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the fd of the listdir itself is gone by now
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def test_owned_means_an_inode_held_by_this_process(zoo: Zoo) -> None:
    inodes = _ss_inodes(zoo)
    mine = _my_socket_inodes()
    for e in zoo.expected:
        inode = inodes[e.key()]
        if e.owned:
            assert inode in mine, e.describe()
        else:
            assert inode == 0, e.describe()
    assert zoo.pid == os.getpid()


# -- one recipe at a time -----------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(STATES))
def test_only_one_state(state: str) -> None:
    with Zoo(only={state}) as zoo:
        rows = zoo.of_state(state)
        assert rows, f"Zoo(only={{{state!r}}}) made no {state} socket"
        assert _missing(zoo, zoo.expected) == []


def test_only_rejects_unknown_states() -> None:
    with pytest.raises(ValueError, match="CLOSE"):
        Zoo(only={"CLOSE"})


def test_exit_leaves_only_time_wait_behind() -> None:
    with Zoo() as zoo:
        expected = list(zoo.expected)
    lingering = {
        (e.local_address, e.local_port, e.remote_address, e.remote_port)
        for e in expected
        if e.state != "TIME_WAIT"
    }
    deadline = time.monotonic() + 2
    while True:
        left = [k for k in _seen(zoo) if (k[2], k[3], k[4], k[5]) in lingering]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert left == []


# -- ss_reader on canned lines (spellings captured from iproute2 6.1) ----------------------


@pytest.mark.parametrize(
    ("proto", "line", "expected"),
    [
        (
            "tcp",
            "LISTEN 0      128               127.0.0.1:46799            0.0.0.0:*",
            ("tcp", 4, "127.0.0.1", 46799, "0.0.0.0", 0, "LISTEN"),
        ),
        (
            "tcp",
            "LISTEN 0      128                   [::1]:51661               [::]:*",
            ("tcp", 6, "::1", 51661, "::", 0, "LISTEN"),
        ),
        (  # dual-stack listener on [::] (IPV6_V6ONLY=0): ss prints a bare `*`
            "tcp",
            "LISTEN 0      128                       *:39029                  *:*",
            ("tcp", 6, "::", 39029, "::", 0, "LISTEN"),
        ),
        (
            "tcp",
            "ESTAB  0      0      [::ffff:127.0.0.1]:39029 [::ffff:127.0.0.1]:35874",
            ("tcp", 6, "::ffff:127.0.0.1", 39029, "::ffff:127.0.0.1", 35874, "ESTABLISHED"),
        ),
        (
            "tcp",
            "FIN-WAIT-1 0  6145  127.0.0.1:39434  127.0.0.1:50783",
            ("tcp", 4, "127.0.0.1", 39434, "127.0.0.1", 50783, "FIN_WAIT1"),
        ),
        (
            "tcp",
            "UNCONN 0 0 127.0.0.1:5 0.0.0.0:*",
            ("tcp", 4, "127.0.0.1", 5, "0.0.0.0", 0, "CLOSE"),
        ),
        (  # SO_BINDTODEVICE / scope: ss appends %ifname to the address
            "udp",
            "UNCONN 0      0            127.0.0.1%lo:51759            0.0.0.0:*",
            ("udp", 4, "127.0.0.1", 51759, "0.0.0.0", 0, "UNCONN"),
        ),
        (
            "udp",
            "UNCONN 0      0       [fe80::1]%eth0:546               [::]:*",
            ("udp", 6, "fe80::1", 546, "::", 0, "UNCONN"),
        ),
        (
            "udp",
            "ESTAB  0      0               127.0.0.1:56712          127.0.0.1:43403",
            ("udp", 4, "127.0.0.1", 56712, "127.0.0.1", 43403, "ESTABLISHED"),
        ),
        (  # old ss printed `*` for the IPv4 wildcard too; the other address decides
            "tcp",
            "ESTAB 0 0 10.0.0.1:22 *:*",
            ("tcp", 4, "10.0.0.1", 22, "0.0.0.0", 0, "ESTABLISHED"),
        ),
    ],
)
def test_parse_line(proto: str, line: str, expected: RowKey) -> None:
    assert parse_line(proto, line).key() == expected


def test_parse_queues() -> None:
    row = parse_line("tcp", "LAST-ACK 1      6145   127.0.0.1:51013   127.0.0.1:35150")
    assert (row.state, row.recv_q, row.send_q) == ("LAST_ACK", 1, 6145)


def test_udp_dual_stack_wildcard_live() -> None:
    # Not part of the zoo, but the case that makes ss print `*`: a [::] socket without v6only.
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        port = s.getsockname()[1]
        rows = [r.key() for r in ss_rows("udp", {port})]
    assert ("udp", 6, "::", port, "::", 0, "UNCONN") in rows
