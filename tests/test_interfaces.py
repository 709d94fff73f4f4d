"""Interfaces and dual-stack: idiag_if as ss shows it (``[fe80::1]%veth:22``, ``0.0.0.0%lo:22``),
``--local ADDR%IF``, and a dual-stack ``[::]`` listener (``*:22``) told from an IPv6-only one.

The namespace test makes a veth pair whose ends carry fe80::1 and fe80::2 (nodad: no wait for
duplicate address detection), a listener on fe80::1%A with a connection to it, a SO_BINDTODEVICE
listener and connection on lo, and dual-stack and IPv6-only sockets on ::, TCP and UDP; every
cell is compared with ``ss`` run in the same namespace. The interface names are random, so that
the host namespace cannot have them: a name is resolved in the namespace read, never here.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import Cli, Netns

from tcpstates.model.query import End, Query, parse_end
from tcpstates.model.sockets import Details, Socket
from tcpstates.model.states import TcpState
from tcpstates.render.columns import LOCAL, PEER, Layout
from tcpstates.render.fit import fit
from tcpstates.sources import inet_diag as diag
from tcpstates.sources.netlink import NetlinkSource
from tcpstates.sources.netns import by_name, entered

NOBODY = 65534
LINK, DEVICE, DUAL, V6ONLY, UDP_DUAL, UDP_V6ONLY = 2222, 2223, 2224, 2225, 2226, 2227
HOLDER = """
import socket, sys
a = socket.if_nametoindex({a!r})
held = []
def tcp(family, address, port, device=None, v6only=None):
    s = socket.socket(family)
    if device:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((address, port, 0, a) if address.startswith("fe80") else (address, port))
    s.listen()
    held.append(s)
    return s
def connect(family, address, device=None):
    c = socket.socket(family)
    if device:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device)
    c.connect(address)
    held.append(c)
link = tcp(socket.AF_INET6, "fe80::1", {link})
connect(socket.AF_INET6, ("fe80::1", {link}, 0, a))
bound = tcp(socket.AF_INET, "0.0.0.0", {device}, device=b"lo")
connect(socket.AF_INET, ("127.0.0.1", {device}), device=b"lo")
held += [link.accept()[0], bound.accept()[0]]
tcp(socket.AF_INET6, "::", {dual}, v6only=0)
tcp(socket.AF_INET6, "::", {v6only}, v6only=1)
for port, v6only in (({udp_dual}, 0), ({udp_v6only}, 1)):
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    u.bind(("::", port))
    held.append(u)
print("ready", flush=True)
sys.stdin.read()
"""


@dataclass(frozen=True)
class Space:
    netns: Netns
    a: str  # the veth end with fe80::1
    b: str  # its peer, with fe80::2
    pid: int  # the holder of the sockets, a process in the namespace


@pytest.fixture(scope="module")
def space(netns) -> Iterator[Space]:  # type: ignore[no-untyped-def]
    made: Netns = netns("iface")
    token = secrets.token_hex(3)
    a, b = f"tsa{token}", f"tsb{token}"
    made.run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    for end, address in ((a, "fe80::1/64"), (b, "fe80::2/64")):
        made.run("ip", "-6", "addr", "add", address, "dev", end, "nodad")
        made.run("ip", "link", "set", end, "up")
    holder = made.popen(
        sys.executable, "-c",
        HOLDER.format(a=a, link=LINK, device=DEVICE, dual=DUAL, v6only=V6ONLY,
                      udp_dual=UDP_DUAL, udp_v6only=UDP_V6ONLY),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    yield Space(made, a, b, holder.pid)
    holder.communicate(input="", timeout=10)


def ours(cli: Cli, space: Space, *args: str) -> subprocess.CompletedProcess[str]:
    return cli.process("--netns", space.netns.name, "--no-owners", *args)


def records(cli: Cli, space: Space, *args: str) -> list[dict[str, Any]]:
    done = ours(cli, space, *args, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def ends(lines: str, at: int) -> Counter[tuple[str, str]]:
    """(local, peer) of each line of a headerless listing whose local cell is word ``at``."""
    return Counter((w[at], w[at + 1]) for w in map(str.split, lines.splitlines()) if w)


@pytest.mark.parametrize(("proto", "ss_flags"), [("-t", "-tanH"), ("-u", "-uanH")])
def test_ends_are_written_as_ss_writes_them(cli: Cli, space: Space, proto: str, ss_flags: str):
    expected = ends(space.netns.run("ss", ss_flags).stdout, 3)
    done = ours(cli, space, proto, "-a", "-H", "-o", "plain")
    assert done.returncode == 0, done.stderr
    assert ends(done.stdout, 5) == expected  # after the Netns column's two words
    # The cases this test is about are all there, so an agreement on nothing cannot pass.
    locals_ = {local for local, _ in expected}
    if proto == "-t":
        assert {f"[fe80::1]%{space.a}:{LINK}", f"0.0.0.0%lo:{DEVICE}"} <= locals_
        assert {f"*:{DUAL}", f"[::]:{V6ONLY}"} <= locals_
        linked = [local for local, _ in expected.elements() if local.startswith("[fe80::1]%")]
        assert len(linked) == 3  # the listener, and both ends of its connection
    else:
        assert {f"*:{UDP_DUAL}", f"[::]:{UDP_V6ONLY}"} <= locals_


def test_json_keeps_the_address_and_says_interface_and_v6only(cli: Cli, space: Space):
    rows = records(cli, space, "-t", "-u", "-a")
    by_port = {(r["proto"], r["local_port"]): r for r in rows if r["remote_port"] == 0}
    link, bound = by_port["tcp", LINK], by_port["tcp", DEVICE]
    assert (link["local_address"], link["interface"], link["v6only"]) == ("fe80::1", space.a, True)
    assert (bound["local_address"], bound["interface"], bound["v6only"]) == ("0.0.0.0", "lo", None)
    for proto, port, v6only in (
        ("tcp", DUAL, False), ("tcp", V6ONLY, True), ("udp", UDP_DUAL, False),
        ("udp", UDP_V6ONLY, True),
    ):  # fmt: skip
        row = by_port[proto, port]
        assert (row["local_address"], row["interface"], row["v6only"]) == ("::", None, v6only)
    connected = [r for r in rows if r["state"] == "ESTABLISHED"]
    assert len(connected) == 4
    assert all(r["interface"] in (space.a, "lo") and r["v6only"] is None for r in connected)


@pytest.mark.parametrize("owners", [False, True])
def test_every_reading_agrees(space: Space, owners: bool):
    # The detailed reading (-i, -m) walks every record's attributes; the plain one notes
    # v6only while packing (with owners) or as it unpacks (UDP without); all must agree.
    source = NetlinkSource()
    query = Query(protos=frozenset({"tcp", "udp"}))
    with entered(by_name(space.netns.name)):
        plain = list(source.read(query, owners).sockets)
        detailed = list(source.read(query, owners, Details(memory=True)).sockets)
    assert len(plain) == 10  # 4 listeners, 2 connections' ends, 2 UDP
    fields = ("proto", "local_address", "local_port", "remote_port", "interface", "v6only")
    assert sorted(tuple(getattr(s, f) for f in fields) for s in detailed) == sorted(
        tuple(getattr(s, f) for f in fields) for s in plain
    )
    assert sum(s.v6only is not None for s in plain) == 5  # the IPv6 LISTEN and UNCONN ones


def test_local_and_remote_filter_by_interface(cli: Cli, space: Space):
    on_a = records(cli, space, "-a", "--local", f"fe80::1%{space.a}")
    assert len(on_a) == 3 and all(r["interface"] == space.a for r in on_a)
    assert records(cli, space, "-a", "--local", f"[fe80::1]%{space.b}") == []  # wrong interface
    assert len(records(cli, space, "--remote", f"fe80::1%{space.a}")) == 2  # both ends
    on_lo = records(cli, space, "-a", "--local", "0.0.0.0/0%lo")
    assert {r["local_port"] for r in on_lo if r["state"] == "LISTEN"} == {DEVICE}
    assert len(on_lo) == 3
    # The address still counts: fe80::1 has nothing bound to lo.
    assert records(cli, space, "-a", "--local", "fe80::1%lo") == []


LINK_LOCAL = (socket.AF_INET6, 128, socket.inet_pton(socket.AF_INET6, "fe80::1"))


def test_the_kernel_filters_by_device(space: Space):
    # The program alone, as --local ADDR%IF hands it over: only the sockets on the device come
    # back (a kernel that refused it would send all 8 TCP sockets, and the query would filter).
    def indexes(program: bytes) -> list[int]:
        packed = diag.dump_packed(socket.IPPROTO_TCP, socket.AF_UNSPEC, diag.ALL_STATES, program)
        return [record[13] for record in diag.RECORD.iter_unpack(packed)]  # idiag_if

    with entered(by_name(space.netns.name)):
        lo, a = socket.if_nametoindex("lo"), socket.if_nametoindex(space.a)
        on_lo = indexes(diag.on_device(lo))
        on_a = indexes(diag.all_of([diag.local_address(*LINK_LOCAL), diag.on_device(a)]))
    assert (on_lo, on_a) == ([lo] * 3, [a] * 3)


def test_an_interface_is_looked_up_in_the_namespace_read(cli: Cli, space: Space):
    done = ours(cli, space, "--local", "fe80::1%nosuchif0")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "'nosuchif0'" in done.stderr
    # The veth end exists in the namespace only: here it is unknown.
    here = cli.process("--local", f"fe80::1%{space.a}")
    assert here.returncode == 2 and f"{space.a!r}" in here.stderr
    assert here.stderr.count("\n") == 1


def test_a_reading_that_cannot_tell_interfaces_refuses_them(space: Space, nobody):  # type: ignore[no-untyped-def]
    # nobody may not enter the namespace, so it is read through /proc/PID/net of a process
    # of nobody's in it, which has no interfaces: %IF is refused there rather than matching
    # nothing.
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to start a process of nobody's")
    sleeper = space.netns.popen(
        "setpriv", "--reuid=nobody", "--regid=65534", "--clear-groups", "sleep", "600"
    )
    pid = str(sleeper.pid)  # ip netns exec and setpriv exec: the sleep itself
    deadline = time.monotonic() + 10
    while (os.stat(f"/proc/{pid}/ns/net").st_ino, os.stat(f"/proc/{pid}").st_uid) != (
        space.netns.inode,
        NOBODY,
    ):  # until it is nobody's, in there
        assert time.monotonic() < deadline, "the sleeper never became nobody's"
        time.sleep(0.01)
    plain = nobody("--netns-pid", pid, "-l", "-H", "-o", "plain")
    assert plain.returncode == 0 and f"[fe80::1]:{LINK}" in plain.stdout.split()
    done = nobody("--netns-pid", pid, "--local", f"fe80::1%{space.a}")
    assert done.returncode == 1 and done.stdout == "", done
    assert done.stderr.count("\n") == 1 and "procfs source cannot" in done.stderr


def test_the_table_never_cuts_an_interface(cli: Cli, space: Space):
    wide = f"[fe80::1]%{space.a}:{LINK}"
    for columns in ("200", "40"):
        done = cli.process(
            "--netns", space.netns.name, "-l", "-o", "table", "--color", "never",
            env={"COLUMNS": columns, "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert wide in done.stdout.split(), done.stdout


# -- without root: this namespace's loopback, and the pieces on their own ----------------------


@pytest.fixture
def dual_and_v6only() -> Iterator[tuple[int, int]]:
    made = []
    for v6only in (0, 1):
        s = socket.socket(socket.AF_INET6)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
        s.bind(("::", 0))
        s.listen()
        made.append(s)
    yield made[0].getsockname()[1], made[1].getsockname()[1]
    for s in made:
        s.close()


def test_dual_stack_listener_told_from_ipv6_only_one(cli: Cli, dual_and_v6only: tuple[int, int]):
    dual, v6only = dual_and_v6only
    for port, flag, cell in ((dual, False, f"*:{dual}"), (v6only, True, f"[::]:{v6only}")):
        done = cli.process("--sport", str(port), "-l", "-H", "-o", "plain", "--no-owners")
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[3] == cell
        rows = json.loads(cli.process("--sport", str(port), "-l", "-o", "json").stdout)
        assert [(r["local_address"], r["v6only"]) for r in rows] == [("::", flag)]
    ss = subprocess.run(
        ["ss", "-ltnH", f"( sport = :{dual} or sport = :{v6only} )"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert {line.split()[3] for line in ss.stdout.splitlines()} == {f"*:{dual}", f"[::]:{v6only}"}


def test_procfs_cannot_tell_interfaces_and_says_so(cli: Cli):
    done = cli.process("--source", "procfs", "--local", "::1%lo")
    assert done.returncode == 2 and "procfs" in done.stderr and done.stderr.count("\n") == 1
    done = cli.process("--local", "::1%", "-o", "json")
    assert done.returncode == 2 and done.stderr.count("\n") == 1


def test_two_interfaces_are_refused(cli: Cli):
    done = cli.process("--local", "127.0.0.1%lo", "--remote", "10.0.0.1%eth9")
    assert done.returncode == 2 and "two interfaces" in done.stderr


@pytest.mark.parametrize(
    ("text", "end"),
    [
        ("fe80::1%eth0", End(parse_end("fe80::1").network, "eth0")),
        ("[fe80::1]%eth0", End(parse_end("fe80::1").network, "eth0")),
        ("[fe80::1%eth0]", End(parse_end("fe80::1").network, "eth0")),
        ("10.0.0.0/8%lo", End(parse_end("10.0.0.0/8").network, "lo")),
        ("::1", End(parse_end("::1").network, None)),
    ],
)
def test_parse_end(text: str, end: End):
    assert parse_end(text) == end


def _sock(local: str, interface: str | None, v6only: bool | None = None, port: int = 22) -> Socket:
    remote = "::" if ":" in local else "0.0.0.0"
    return Socket("tcp", 6 if ":" in local else 4, local, port, remote, 0, TcpState.LISTEN,
                  interface=interface, v6only=v6only)  # fmt: skip


def test_query_matches_interface_by_name():
    query = Query(local=parse_end("fe80::/10").network, interface="eth0")
    assert query.filters_rows
    assert query.matches(_sock("fe80::1", "eth0"))
    assert not query.matches(_sock("fe80::1", "eth1"))
    assert not query.matches(_sock("fe80::1", None))


def test_cells_escape_an_interface_name_and_fit_keeps_it_whole():
    layout = Layout(owners=False)
    hostile = "ev\x1b[2Jil"  # Linux allows any byte but /, :, whitespace in a name
    rows = layout.rows([
        _sock("fe80::1", hostile), _sock("::", "lo", v6only=False), _sock("::", None, v6only=True),
        _sock("::", None, v6only=False, port=23), _sock("0.0.0.0", None),
    ])  # fmt: skip
    local = [row[3] for row in rows]
    assert "\x1b" not in local[0] and local[0].startswith("[fe80::1]%ev")
    assert local[1:] == ["*%lo:22", "[::]:22", "*:23", "0.0.0.0:22"]
    assert [row[4] for row in rows][1:4] == ["*:*", "[::]:*", "*:*"]
    columns = layout.columns
    fitted = fit(columns, list(zip(*rows, strict=True)), width=20)
    kept = dict(zip(fitted.columns, fitted.cells, strict=True))
    assert list(kept[LOCAL]) == local and PEER in kept
