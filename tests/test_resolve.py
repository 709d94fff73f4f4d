"""-r, --resolve: port names from a services file by protocol, host names by reverse DNS within
a time budget, in the table and plain text only; never looked up unless asked.

Real sockets on loopback; 127.0.0.1 is named by /etc/hosts (no DNS is needed), and `ss -tar`
on the same sockets says what the names must be. Lookups that hang are injected: the budget
is proven by the clock.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import NEEDS_ROOT, TCPSTATES, Cli, said
from ss_reader import ss_path
from zoo import LOOP4, LOOP6, Sockets

from tcpstates.listing.run import list_sockets
from tcpstates.model.place import Place
from tcpstates.model.query import Query
from tcpstates.render.output import Output
from tcpstates.sources.names import Budget, HostNames, Resolving, port_names, reverse_lookup

pytestmark = pytest.mark.skipif(
    reverse_lookup(LOOP4) != "localhost", reason="127.0.0.1 is not localhost in /etc/hosts"
)


def low_port(host: str = LOOP4) -> int:
    """A TCP and UDP port free on ``host``, below the ephemeral range, where names apply."""
    for port in random.sample(range(20000, 32000), 200):
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind((host, port))
        except OSError:
            continue
        return port
    raise AssertionError("no free port below the ephemeral range")


def listing(
    resolving: Resolving | None,
    query: Query,
    fmt: str = "plain",
    width: int | None = None,
) -> tuple[list[str], str]:
    """The listing's lines and its stderr, read in this process with ``resolving``."""
    out = Output(io.StringIO(), io.StringIO(), fmt == "table", "never", width, width is None)
    list_sockets(query, Place(), out, fmt, False, False, resolving=resolving)
    stdout, stderr = out.stdout, out.stderr
    assert isinstance(stdout, io.StringIO) and isinstance(stderr, io.StringIO)
    return stdout.getvalue().splitlines(), stderr.getvalue()


def ends(lines: list[str]) -> set[tuple[str, str]]:
    """The (Local, Peer) cells of a plain listing's rows: where the Local column starts (a
    cell before it may hold a blank: a namespace's label)."""
    start = lines[0].index("Local Address:Port")
    return {(line[start:].split()[0], line[start:].split()[1]) for line in lines[1:]}


def services_file(tmp_path: Path, text: str, port_range: str = "32768 60999") -> Resolving:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "services").write_text(text)
    (tmp_path / "range").write_text(port_range + "\n")
    return Resolving(services=str(tmp_path / "services"), port_range=str(tmp_path / "range"))


# --- port names --------------------------------------------------------------------------------


def test_ports_are_named_by_the_services_file_for_their_own_protocol(
    tmp_path: Path, sockets: Sockets
) -> None:
    both, tcp_only = low_port(), low_port()
    resolving = services_file(
        tmp_path,
        f"# a comment\nweb-tcp {both}/tcp alias\nweb-udp {both}/udp\n"
        f"later-name {both}/tcp\ntcp-only {tcp_only}/tcp # not for UDP\n",
    )
    for port in (both, tcp_only):
        sockets.listener(LOOP4, port=port)
        sockets.udp(LOOP4, port=port)
    rows = set()
    for port in (both, tcp_only):
        query = Query(protos=frozenset({"tcp", "udp"}), port=port)
        lines, _ = listing(resolving, query)  # Proto State Recv-Q Send-Q Local Peer
        rows |= {(line.split()[0], line.split()[4]) for line in lines[1:]}
    assert rows == {
        ("tcp", "localhost:web-tcp"),  # the first name, not an alias or a later line's
        ("udp", "localhost:web-udp"),
        ("tcp", "localhost:tcp-only"),
        ("udp", f"localhost:{tcp_only}"),  # a TCP name is no UDP name
    }


def test_a_port_in_the_ephemeral_range_keeps_its_number(tmp_path: Path, sockets: Sockets) -> None:
    listener = sockets.listener(LOOP4)  # an ephemeral port, as a client's would be
    port = listener.getsockname()[1]
    inside = services_file(tmp_path / "a", f"looks-named {port}/tcp\n", f"{port - 1} {port + 1}")
    outside = services_file(tmp_path / "b", f"looks-named {port}/tcp\n", "1 2")
    query = Query(port=port)
    assert ends(listing(inside, query)[0]) == {(f"localhost:{port}", "0.0.0.0:*")}
    assert ends(listing(outside, query)[0]) == {("localhost:looks-named", "0.0.0.0:*")}


def test_the_services_file_is_read_once(tmp_path: Path) -> None:
    resolving = services_file(tmp_path, "first 1234/tcp\n", "1 2")
    assert resolving.ports() == {("tcp", 1234): "first"}
    (tmp_path / "services").write_text("second 1234/tcp\n")
    assert resolving.ports() == {("tcp", 1234): "first"}
    assert port_names(str(tmp_path / "missing"), str(tmp_path / "range")) == {}


def test_the_real_services_file_names_ssh_as_ss_does(cli: Cli, sockets: Sockets) -> None:
    if os.geteuid() != 0:
        pytest.skip(NEEDS_ROOT + " to bind port 22")
    if port_names().get(("tcp", 22)) != "ssh":
        pytest.skip("/etc/services does not name 22/tcp ssh")
    try:
        sockets.listener("127.0.0.2", port=22)
    except OSError as e:
        pytest.skip(f"127.0.0.2:22 is taken: {e}")
    done = cli("-r", "-l", "--local", "127.0.0.2", "-o", "plain", "--no-owners")
    assert done.returncode == 0, done.stderr
    ss = subprocess.run(
        [ss_path(), "-Htl", "src", "127.0.0.2:22"], capture_output=True, text=True, check=True
    )
    assert ends(done.stdout.splitlines()) == {("127.0.0.2:ssh", "0.0.0.0:*")}
    assert [line.split()[3] for line in ss.stdout.splitlines()] == ["127.0.0.2:ssh"]


# --- host names -----------------------------------------------------------------------------


def test_names_agree_with_ss_resolving(cli: Cli, sockets: Sockets) -> None:
    v4 = sockets.listener(LOOP4)
    sockets.connect(v4)
    v6 = sockets.listener(LOOP6)
    sockets.connect(v6)
    ports = [v4.getsockname()[1], v6.getsockname()[1]]
    ours: set[tuple[str, str]] = set()
    theirs: set[tuple[str, str]] = set()
    for port in ports:
        done = cli("-r", "-o", "plain", "--port", str(port))
        assert done.returncode == 0 and said(done.stderr) == "", done.stderr
        ours |= ends(done.stdout.splitlines())
        # ss without -n names ports too; ss and tcpstates leave ephemeral ones numeric.
        ss = subprocess.run(
            [
                ss_path(),
                "-Htar",
                "(",
                "sport",
                "=",
                f":{port}",
                "or",
                "dport",
                "=",
                f":{port}",
                ")",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        theirs |= {(line.split()[3], line.split()[4]) for line in ss.stdout.splitlines()}
    assert ours == theirs
    assert (f"localhost:{ports[0]}", "0.0.0.0:*") in ours
    assert (f"[::1]:{ports[1]}", "[::]:*") in ours  # ::1 has no name in /etc/hosts here
    assert len(ours) == 6


def test_a_v4_mapped_end_is_named_as_its_ipv4_host_as_ss_names_it(
    cli: Cli, sockets: Sockets
) -> None:
    listener = sockets.listener("::")  # dual-stack: an IPv4 client's ends are v4-mapped
    sockets.connect(listener, LOOP4)
    port = str(listener.getsockname()[1])
    done = cli("-r", "-o", "plain", "-s", "established", "--port", port)
    ss = subprocess.run(
        [ss_path(), "-Htr", "state", "established", "(", "sport", "=", f":{port}", "or",
         "dport", "=", f":{port}", ")"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    # One state asked for: ss leaves its State column out; the ends are the last two.
    theirs = {(line.split()[-2], line.split()[-1]) for line in ss.stdout.splitlines()}
    ours = ends(done.stdout.splitlines())
    assert ours == theirs and len(ours) == 2
    assert all(cell.startswith("localhost:") for pair in ours for cell in pair), ours


def test_a_namespace_is_named_by_this_hosts_resolver(cli: Cli, netns: Any) -> None:
    # A namespace has no resolver of its own: its 127.0.0.1 is localhost through this host's
    # /etc/hosts, as ss -N names it.
    space = netns("resolve")
    listen = "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen();"
    proc = space.popen(
        sys.executable,
        "-c",
        listen + " print(s.getsockname()[1], flush=True); time.sleep(60)",
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    done = cli("--netns", space.name, "-r", "-o", "plain", "--no-owners")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    ss = subprocess.run(
        [ss_path(), "-N", space.name, "-Htlr"], capture_output=True, text=True, check=True
    )
    theirs = {(line.split()[3], line.split()[4]) for line in ss.stdout.splitlines()}
    assert ends(done.stdout.splitlines()) == theirs == {(f"localhost:{port}", "0.0.0.0:*")}


def test_nothing_is_looked_up_unless_asked(
    cli: Cli, sockets: Sockets, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Any] = []
    monkeypatch.setattr(socket, "gethostbyaddr", lambda *a: asked.append(a))
    monkeypatch.setattr(socket, "getservbyport", lambda *a: asked.append(a))
    monkeypatch.setattr("tcpstates.sources.names.port_names", lambda *a: asked.append(a))
    port = sockets.listener(LOOP4).getsockname()[1]
    done = cli("-o", "plain", "--port", str(port))
    assert ends(done.stdout.splitlines()) == {(f"127.0.0.1:{port}", "0.0.0.0:*")}
    assert asked == []


def test_names_from_dns_are_escaped(sockets: Sockets) -> None:
    port = sockets.listener(LOOP4).getsockname()[1]
    evil = Resolving(lookup=lambda address: "evil\x1b]8;;x\x07host\u202e")
    lines, _ = listing(evil, Query(port=port))
    assert "\x1b" not in "".join(lines) and "\u202e" not in "".join(lines)
    assert ends(lines) == {(f"evil\\x1b]8;;x\\x07host\\u202e:{port}", "0.0.0.0:*")}


def test_a_name_too_wide_for_the_terminal_gives_way_to_the_address(sockets: Sockets) -> None:
    port = sockets.listener(LOOP4).getsockname()[1]
    query = Query(port=port)
    long = Resolving(lookup=lambda address: "h" * 120 + ".example")
    narrow, _ = listing(long, query, "table", width=80)
    assert any(f"127.0.0.1:{port}" in line for line in narrow)
    assert "h" * 10 not in "\n".join(narrow)  # not cut: not there at all
    assert "host names as addresses" in narrow[-1] and max(map(len, narrow)) <= 80
    whole, _ = listing(long, query, "table", width=None)  # -W: the name, whole
    assert any("h" * 120 + f".example:{port}" in line for line in whole)
    short, _ = listing(Resolving(), query, "table", width=80)  # a name that fits stays
    assert any(f"localhost:{port}" in line for line in short)
    assert not any("host names as addresses" in line for line in short)


# --- the budget -----------------------------------------------------------------------------


def test_lookups_run_in_parallel() -> None:
    def slow(address: str) -> str:
        time.sleep(0.05)
        return f"host-{address}"

    hosts = HostNames(slow, Budget(total=2.0, each=1.0, parallel=16))
    addresses = [f"10.0.{i // 256}.{i % 256}" for i in range(160)]
    started = time.monotonic()
    assert hosts.resolve(addresses) == 0
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"{elapsed:.2f} s: 160 lookups of 0.05 s were not run 16 at a time"
    assert hosts.names["10.0.0.7"] == "host-10.0.0.7" and len(hosts.names) == 160


def test_the_budget_holds_when_lookups_hang() -> None:
    never = threading.Event()
    calls: list[str] = []

    def hanging(address: str) -> str | None:
        calls.append(address)
        if address.endswith(".1"):  # every 10th or so answers at once
            return "quick"
        never.wait(60)
        return None

    hosts = HostNames(hanging, Budget(total=0.5, each=0.1, parallel=8))
    addresses = [f"10.1.{i}.{j}" for i in range(10) for j in range(1, 11)]  # 100 distinct
    started = time.monotonic()
    numeric = hosts.resolve([*addresses, *addresses, "0.0.0.0", "::"])
    elapsed = time.monotonic() - started
    assert elapsed < 0.8, f"the 0.5 s budget took {elapsed:.2f} s"
    answered = {a for a in calls if a.endswith(".1")}
    assert numeric == 100 - len(answered) and hosts.names == dict.fromkeys(answered, "quick")
    # Each lookup past 0.1 s gave its place to another: some 8 every 0.1 s were asked, where
    # 8 hanging ones holding their places would have let only the 10 quick ones by.
    assert 24 <= len(calls) <= 100 and len(set(calls)) == len(calls), len(calls)
    assert "0.0.0.0" not in calls and "::" not in calls  # the any-address is never asked
    never.set()


def test_a_late_answer_is_kept_and_not_asked_again() -> None:
    answer = threading.Event()
    calls: list[str] = []

    def late(address: str) -> str:
        calls.append(address)
        answer.wait(10)
        return "late.example"

    hosts = HostNames(late, Budget(total=0.2, each=0.1, parallel=4))
    assert hosts.resolve(["192.0.2.1"]) == 1 and hosts.names == {}
    answer.set()
    deadline = time.monotonic() + 5
    while hosts.resolve(["192.0.2.1"]) and time.monotonic() < deadline:  # a watch's next frames
        time.sleep(0.01)
    assert hosts.names == {"192.0.2.1": "late.example"} and calls == ["192.0.2.1"]


def test_a_listing_says_how_many_addresses_it_left_numeric(sockets: Sockets) -> None:
    never = threading.Event()
    v4 = sockets.listener(LOOP4)
    sockets.listener("127.0.0.3", port=v4.getsockname()[1])  # a second address on that port

    def hanging(address: str) -> str | None:
        never.wait(60)
        return None

    hang = Resolving(lookup=hanging, budget=Budget(total=0.3, each=0.2, parallel=4))
    started = time.monotonic()
    lines, stderr = listing(hang, Query(port=v4.getsockname()[1]))
    assert time.monotonic() - started < 2
    assert stderr == (
        "tcpstates: 2 addresses left numeric: reverse DNS gave no answer in time"
        " (0.2 s each, 0.3 s in all)\n"
    ), stderr
    assert all(not cell.startswith("localhost") for end in ends(lines) for cell in end)
    never.set()


def test_a_resolver_that_never_answers_costs_a_bounded_time(
    sockets: Sockets, tmp_path: Path
) -> None:
    # The real resolver, pointed (in a private mount namespace) at a DNS server that reads
    # the query and never answers: glibc would wait 5 s twice; tcpstates gives up in time.
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip(NEEDS_ROOT + " and unshare, to mount a resolv.conf of the test's own")
    try:
        dns = sockets.udp("127.0.0.9", port=53)
    except OSError as e:
        pytest.skip(f"127.0.0.9:53 is taken: {e}")
    port = sockets.listener("127.0.0.5").getsockname()[1]  # in no /etc/hosts: DNS is asked
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.9\noptions timeout:5 attempts:2\n")
    mount = f'mount --bind {conf} /etc/resolv.conf && exec "$@"'
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", mount, "sh", *TCPSTATES]
    started = time.monotonic()
    done = subprocess.run(
        [*argv, "-r", "-o", "plain", "--no-owners", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("tcpstates: 1 address left numeric: "), done.stderr
    assert ends(done.stdout.splitlines()) == {(f"127.0.0.5:{port}", "0.0.0.0:*")}
    assert elapsed < 4, f"{elapsed:.1f} s: the resolver's 10 s were waited for"
    dns.setblocking(False)
    assert dns.recv(512), "the resolver was never asked"


# --- what is refused --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-r", "-n"], ["-n", "-r"]),
        (["-rn"], ["-n", "-r"]),
        (["-r", "-o", "json"], ["--resolve", "numeric"]),
        (["-r", "-o", "jsonl"], ["--resolve", "numeric"]),
        (["-r", "-o", "csv"], ["--resolve", "numeric"]),
        (["-r", "--summary"], ["--resolve", "--summary"]),
        (["-r", "--watch", "-o", "jsonl"], ["--resolve", "numeric"]),
        (["-r", "--watch", "--summary"], ["--resolve", "no addresses"]),
        (["-r", "--watch"], ["-r", "JSON Lines"]),  # stdout is no terminal: JSON Lines
        (["-r", "doctor"], ["--resolve", "doctor"]),
    ],
)
def test_resolve_where_it_cannot_apply_is_refused_in_one_line(
    cli: Cli, args: list[str], named: list[str]
) -> None:
    done = cli(*args)
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.count("\n") == 1 and all(n in done.stderr for n in named), done.stderr


def test_the_examples_in_the_docstrings_hold() -> None:
    import doctest

    from tcpstates.render import columns
    from tcpstates.sources import names

    for module in (names, columns):
        result = doctest.testmod(module)
        assert result.attempted and not result.failed, module.__name__


# --- --watch ------------------------------------------------------------------------------------


def test_a_watch_view_names_ends_and_gives_way_as_a_listing_does() -> None:
    from rich.console import Console

    from tcpstates.model.sockets import Socket
    from tcpstates.model.states import TcpState
    from tcpstates.render.columns import Layout, Names
    from tcpstates.watch.frames import frames
    from tcpstates.watch.render import frame_view

    listener = Socket("tcp", 4, LOOP4, 8080, "0.0.0.0", 0, TcpState.LISTEN, 0, 0, 0, 10)
    frame = next(frames(lambda: [listener], 2, sleep=lambda s: None))

    def view(host: str, width: int) -> list[str]:
        names = Names({LOOP4: host}, {("tcp", 8080): "http-alt"})
        buffer = io.StringIO()
        console = Console(file=buffer, width=width, height=40, color_system=None)
        console.print(frame_view(frame, Layout(owners=False, names=names), interval=2, width=width))
        return buffer.getvalue().splitlines()

    assert any("localhost:http-alt" in line for line in view("localhost", 80))
    narrow = view("x" * 90, 80)
    assert any("127.0.0.1:http-alt" in line for line in narrow) and "x" * 10 not in str(narrow)
    assert "host names as addresses" in narrow[-1]


def test_a_live_watch_on_a_terminal_names_hosts(sockets: Sockets) -> None:
    import pty
    import select

    port = sockets.listener(LOOP4).getsockname()[1]
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    proc = subprocess.Popen(
        (*TCPSTATES, "--watch", "0.2", "-r", "--port", str(port), "--no-owners"),
        stdin=slave, stdout=slave, stderr=slave, env=env | {"TERM": "xterm-256color"},
    )  # fmt: skip
    os.close(slave)
    screen = b""
    try:
        deadline = time.monotonic() + 10
        while f"localhost:{port}".encode() not in screen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.05)[0]:
                screen += os.read(master, 65536)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.close(master)
    assert f"localhost:{port}".encode() in screen, screen[-2000:]
    assert b"Traceback" not in screen
