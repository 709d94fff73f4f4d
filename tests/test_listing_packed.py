"""listing/packed.py, the plain listing made from netlink's records, held to the plain path
(a Socket per record, then Layout's row) on every form of address, state and owner.

A namespace of our own holds one socket of each form: IPv4, IPv6 and v4-mapped ends, a
dual-stack and a v6only listener on ::, a link-local end with its scope, a listener bound
to a device, a request socket, TIME_WAIT, UDP bound and connected, a listener two
processes hold, and a holder whose name carries an escape sequence. Both ways run in one
process in that namespace, as root and as nobody (who cannot see root's owners).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import Netns

HOLDER = r"""
import ctypes, os, socket, sys, time
held = []

def pair(server, family, host, scope=0):
    port = server.getsockname()[1]
    client = socket.socket(family)
    client.connect((host, port) if family == socket.AF_INET else (host, port, 0, scope))
    held.append(client)
    held.append(server.accept()[0])
    return client

shared = socket.create_server(("127.0.0.4", 7207))
if os.fork() == 0:  # a second process holds the listener: "+1"
    sys.stdin.read()
    os._exit(0)
held.append(shared)  # before the rest: the child holds this one alone
four = socket.create_server(("0.0.0.0", 7200))
dual = socket.create_server(("::", 7201), family=socket.AF_INET6, dualstack_ipv6=True)
only6 = socket.create_server(("::", 7202), family=socket.AF_INET6)
only6.close()
only6 = socket.socket(socket.AF_INET6)
only6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
only6.bind(("::", 7202))
only6.listen()
held += [four, dual, only6]
pair(four, socket.AF_INET, "127.0.0.1")
pair(dual, socket.AF_INET, "127.0.0.1")  # its accepted end is ::ffff:127.0.0.1
pair(dual, socket.AF_INET6, "::1")
scope = socket.if_nametoindex("d0")
local = socket.socket(socket.AF_INET6)
local.bind(("fe80::1", 7203, 0, scope))
local.listen()
held.append(local)
pair(local, socket.AF_INET6, "fe80::1", scope)
bound = socket.socket()
bound.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")
bound.bind(("127.0.0.2", 7204))
bound.listen()
held.append(bound)
deferred = socket.create_server(("127.0.0.3", 7205))
deferred.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 30)
held.append(deferred)
quiet = socket.create_connection(("127.0.0.3", 7205))  # a request socket until it speaks
held.append(quiet)
closer = socket.create_connection(("127.0.0.1", 7200))  # TIME_WAIT: the client closes first
accepted = four.accept()[0]
closer.close()
accepted.recv(1)
accepted.close()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 7206))
udp6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
udp6.bind(("::1", 7206))
talking = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
talking.connect(("127.0.0.1", 7206))
held += [udp, udp6, talking]
for port in range(20000, 20900):  # 900 more rows: a listing longer than a pipe holds
    held.append(socket.create_server(("127.0.0.5", port)))
ctypes.CDLL(None).prctl(15, b"ev\x1b[1mil\n")  # PR_SET_NAME: what the rows must escape
time.sleep(0.2)
print("ready", flush=True)
sys.stdin.read()
"""

# Both ways, for each listing asked for, in the namespace; as nobody with "nobody" in argv.
COMPARE = r"""
import json, os, sys
from tcpstates.listing import packed
from tcpstates.listing.run import layout
from tcpstates.model.query import Query
from tcpstates.model.sockets import Details
from tcpstates.model.states import parse_states
from tcpstates.sources.base import select
from tcpstates.sources.netlink import NetlinkSource
import tcpstates.sources.owners  # loaded when needed, and nobody may not read root's Python
import _queue  # as owners: loaded by the read-ahead of a dump of several reads
import io
from tcpstates.render.output import Output
from tcpstates.render.table import write_table, write_table_of
import rich.console, rich.text  # the table colours states with Rich's codes

def table(write, width):
    out = Output(io.StringIO(), io.StringIO(), True, "always", width=width)
    write(out)
    return out.stdout.getvalue()

if "nobody" in sys.argv:
    os.setgid(65534)
    os.setuid(65534)
source, results = NetlinkSource(), []
for states, protos, families, owners, extended in json.loads(sys.argv[1]):
    query = Query(states=parse_states(states), protos=frozenset(protos),
                  families=frozenset(families))
    details = Details(sharers=owners)
    chosen = layout(query, owners, source, extended=extended, details=details)
    assert packed.netlink_of(source, query, chosen) is source
    fast, hidden = packed.plain_rows(source, query, chosen)
    reading = source.read(query, owners, details)
    plain = chosen.rows(select(reading, query))
    tables = [
        [
            table(lambda out: write_table_of(
                lambda layout: packed.plain_rows(source, query, layout)[0], chosen, out), width),
            table(lambda out: write_table(
                select(source.read(query, owners, details), query), chosen, out), width),
        ]
        for width in (60, 100)
    ]
    results.append([fast, plain, hidden, reading.hidden_processes, tables])
print(json.dumps(results))
"""

ALL = ["tcp", "udp"]
LISTINGS = [
    # states, protocols, families, owners, -e
    ([], ["tcp"], [4, 6], True, False),
    ([], ALL, [4, 6], True, True),
    ([], ALL, [4, 6], False, False),
    (["time-wait"], ["tcp"], [4, 6], True, False),
    (["listen", "syn-recv"], ["tcp"], [6], True, True),
    (["established"], ["tcp"], [4], False, True),
]


@pytest.fixture(scope="module")
def space(netns) -> Iterator[Netns]:  # type: ignore[no-untyped-def]
    made: Netns = netns("packed")
    made.run("ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
    for device in ("d0", "d1"):
        made.run("ip", "link", "set", device, "up")
    made.run("ip", "-6", "addr", "add", "fe80::1/64", "dev", "d0", "nodad")
    holder = made.popen(sys.executable, "-c", HOLDER, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    yield made
    holder.communicate(input="", timeout=10)


def _both_ways(space: Netns, *argv: str) -> list[list[object]]:
    done = space.run(sys.executable, "-c", COMPARE, json.dumps(LISTINGS), *argv)
    results: list[list[object]] = json.loads(done.stdout)
    return results


@pytest.mark.parametrize("user", ["root", "nobody"])
def test_the_packed_rows_are_the_plain_rows(space: Netns, user: str) -> None:
    hidden_seen = []
    for listing, (fast, plain, hidden, hidden_plain, tables) in zip(
        LISTINGS, _both_ways(space, user), strict=True
    ):
        assert fast == plain, listing
        # Processes nobody cannot look into, counted by each way's own /proc scan of the
        # whole host, whose processes come and go between the two (82 and 85 seen in CI).
        assert bool(hidden) == bool(hidden_plain), listing
        for packed_table, plain_table in tables:  # the table a terminal gets, fitted
            assert packed_table == plain_table and "\x1b[" in packed_table, listing
        hidden_seen.append(hidden)
    # nobody cannot look into root's holder: its owners are unseen ("-"), and said to be.
    assert any(hidden_seen) == (user == "nobody")


def test_every_form_is_in_the_namespace(space: Netns) -> None:
    """The comparison above is worth what the namespace holds: each form is there."""
    rows = [row for fast, *_ in _both_ways(space, "root") for row in fast]  # type: ignore[attr-defined]
    text = "\n".join(" ".join(row) for row in rows)
    for form in (
        "0.0.0.0:7200", "*:7201", "[::]:7202", "[::ffff:127.0.0.1]:7201", "[::1]:7201",
        "[fe80::1]%d0:7203", "127.0.0.2%lo:7204", "SYN_RECV", "TIME_WAIT", "UNCONN",
        "ESTABLISHED", " +1", "(kernel)", "ev\\x1b[1mil\\x0a",
    ):  # fmt: skip
        assert form in text, form


def test_the_console_script_ends_with_every_byte_written(space: Netns) -> None:
    """entry() ends a fast answer with os._exit: the listing, longer than a pipe holds, must
    be whole by then, and the same as main()'s, which exits as usual."""
    outputs = []
    for function in ("entry", "main"):
        code = f"import sys; from tcpstates.__main__ import {function}; {function}()"
        done = space.run(sys.executable, "-c", code, "-o", "plain", "-s", "listen")
        outputs.append(done.stdout)
    assert len(outputs[0]) > 65536 and outputs[0].count("127.0.0.5:") == 900
    assert outputs[0] == outputs[1]
