"""A connection not yet accepted has its listener's uid, whichever source reads it.

The kernel's netlink record of a request socket (SYN_RECV, no file yet) says uid 0 for "not
filled in", while /proc/net/tcp prints the listener's uid, which accept() will hand on. The
listener here belongs to nobody (as root) or to ourselves (unprivileged): a uid that is not 0,
so a blank passed on as 0 shows. TCP_DEFER_ACCEPT and a client that sends nothing keep the
request socket for as long as the test needs it.
"""

from __future__ import annotations

import doctest
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import SYSTEM_PYTHON
from ss_reader import parse_line, ss_path

from tcpstates.model.place import NamedNetns, Place
from tcpstates.model.query import Query
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState
from tcpstates.sources import inet_diag as diag
from tcpstates.sources import netlink
from tcpstates.sources.place import open_place, open_source

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc")
NOBODY = 65534
# Listens on argv[1] with TCP_DEFER_ACCEPT, connects to it from argv[2] and sends nothing.
HOLDER = """
import socket, sys
listen_on, connect_to = sys.argv[1:]
server = socket.socket(socket.AF_INET6 if ":" in listen_on else socket.AF_INET)
if server.family == socket.AF_INET6:
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
server.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 600)
server.bind((listen_on, 0))
server.listen(8)
client = socket.create_connection((connect_to, server.getsockname()[1]), timeout=5)
print(server.getsockname()[1], flush=True)
sys.stdin.read()
"""


@dataclass(frozen=True)
class Pending:
    port: int  # the listener's
    uid: int  # the listener's owner


def _owner() -> tuple[list[str], int]:
    """How to run the holder, and the uid its sockets get: not ours when we are root."""
    if os.geteuid() != 0:
        return [sys.executable], os.geteuid()
    if not shutil.which("setpriv") or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip(f"as root, needs setpriv and {SYSTEM_PYTHON} to listen as nobody")
    setpriv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return [*setpriv, SYSTEM_PYTHON], NOBODY


@contextmanager
def pending(listen_on: str, connect_to: str, netns: str | None = None) -> Iterator[Pending]:
    """A listener on ``listen_on`` (port chosen by the kernel) and one connection to it from
    ``connect_to`` that it has not accepted, held by a process of the uid it yields."""
    python, uid = _owner()
    prefix = ["ip", "netns", "exec", netns] if netns else []
    argv = [*prefix, *python, "-I", "-c", HOLDER, listen_on, connect_to]
    holder = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        yield Pending(int(holder.stdout.readline()), uid)
    finally:
        holder.communicate(input="", timeout=10)


def _rows(source: str, query: Query, port: int, place: Place | None = None) -> list[Socket]:
    """The listener's rows, waited for (bounded) until its request socket shows."""
    reader = open_place(place) if place else open_source(source)
    for _ in range(50):
        rows = [s for s in reader.read(query).sockets if s.local_port == port]
        if any(s.state is TcpState.SYN_RECV for s in rows):
            return rows
        time.sleep(0.05)
    raise AssertionError(f"{source}: no SYN_RECV on port {port}: {rows}")


def _uids(rows: list[Socket]) -> dict[str, set[int | None]]:
    by_state: dict[str, set[int | None]] = {}
    for sock in rows:
        by_state.setdefault(sock.state_name, set()).add(sock.uid)
    return by_state


def _ss_uids(port: int) -> dict[str, set[int]]:
    """The uids ss prints for the port's rows (it prints none where netlink says 0)."""
    out = subprocess.run(
        [ss_path(), "-tanHe", f"sport = :{port}"], capture_output=True, text=True, timeout=10
    ).stdout
    by_state: dict[str, set[int]] = {}
    for line in out.splitlines():
        uid = re.search(r"\buid:(\d+)", line)
        if uid:
            by_state.setdefault(parse_line("tcp", line).state, set()).add(int(uid[1]))
    return by_state


@pytest.mark.parametrize(
    ("listen_on", "connect_to"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),
        ("::", "::1"),
        ("::", "127.0.0.1"),  # dual-stack: an AF_INET6 request to ::ffff:127.0.0.1
        ("::ffff:0.0.0.0", "127.0.0.1"),  # every IPv4 address, as an IPv6 socket holds them
    ],
)
def test_a_pending_connection_has_its_listeners_uid(listen_on: str, connect_to: str) -> None:
    with pending(listen_on, connect_to) as listener:
        port, uid = listener.port, listener.uid
        for source in ("netlink", "procfs"):
            for query in (Query(), Query(sport=port)):  # --sport narrows the listener dump
                got = _uids(_rows(source, query, port))
                assert got == {"LISTEN": {uid}, "SYN_RECV": {uid}}, (source, query)
        if shutil.which("ss"):
            assert _ss_uids(port).get("LISTEN") == {uid}
            for state, uids in _ss_uids(port).items():
                assert uids == {uid}, state


def test_the_listener_is_found_in_the_namespace_read(netns: Any) -> None:
    """The host has a root listener on the same address and port: a listener dump opened
    outside the namespace would find it and say uid 0."""
    name = netns("uid").name
    with pending("127.0.0.1", "127.0.0.1", netns=name) as listener:
        decoy = socket.create_server(("127.0.0.1", listener.port))
        try:
            place = Place(NamedNetns(name), "netlink")
            got = _uids(_rows("netlink", Query(), listener.port, place))
        finally:
            decoy.close()
    assert got == {"LISTEN": {NOBODY}, "SYN_RECV": {NOBODY}}


def _record(state: TcpState, port: int, uid: int, inode: int, remote_port: int = 1) -> bytes:
    loopback = socket.inet_aton("127.0.0.1").ljust(16, b"\0")
    return diag.RECORD.pack(
        diag.RECORD.size, 20, 2, 1, 0, socket.AF_INET, state, 0, 0,
        socket.htons(port), socket.htons(remote_port), loopback, loopback,
        0, 0, 0, 0, uid, inode,
    )  # fmt: skip


def test_only_blank_request_sockets_change_and_all_records_stay_in_order() -> None:
    """Records of the kernel's layout, on the ports of a real listener and of none: a blank
    request socket takes the listener's uid (None without one), anything else is kept as sent.
    """
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))  # held, so no listener can take its port meanwhile
            gone = closed.getsockname()[1]
            sent = [  # (state, local port, uid sent, inode, uid wanted)
                (TcpState.ESTABLISHED, port, 4321, 7, 4321),
                (TcpState.SYN_RECV, port, 0, 0, os.geteuid()),
                (TcpState.SYN_RECV, gone, 0, 0, None),
                (TcpState.SYN_RECV, port, 1234, 0, 1234),  # a Fast Open child: uid filled in
                (TcpState.TIME_WAIT, port, 0, 0, 0),
                (TcpState.SYN_RECV, port, 0, 0, os.geteuid()),
            ]
            packed = bytearray()
            for n, (state, on, uid, inode, _) in enumerate(sent):
                packed += _record(state, on, uid, inode, remote_port=n + 1)
            decoded = list(netlink.decode(netlink._Listeners(None).records(packed), "tcp", None))
    assert [(s.state, s.local_port, s.remote_port, s.uid) for s in decoded] == [
        (state, on, n + 1, want) for n, (state, on, _, _, want) in enumerate(sent)
    ]


@pytest.mark.parametrize("owners", [False, True])
def test_a_read_without_request_sockets_dumps_no_listeners(monkeypatch, owners: bool) -> None:
    def refuse(program: bytes) -> dict[tuple[int, bytes, int], int]:
        raise AssertionError("a listener dump without a request socket to complete")

    monkeypatch.setattr(netlink, "_listener_uids", refuse)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]  # the kernel sends this port's sockets alone
        with socket.create_connection(("127.0.0.1", port)), server.accept()[0]:
            rows = list(netlink.NetlinkSource().read(Query(port=port), owners).sockets)
    assert sorted(s.state for s in rows) == [TcpState.ESTABLISHED] * 2 + [TcpState.LISTEN]


def test_docstring_examples() -> None:
    result = doctest.testmod(netlink)
    assert result.attempted > 0 and result.failed == 0
