"""Hardening: no privileges, churn, hostile process names, and the output contract.

Real where it can be: an unprivileged user (runuser -u nobody, with Debian's python3.11 and a
copy of the package it may read), a /proc mounted with hidepid, processes whose names are
hostile, and a background process opening and closing a thousand connections a second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from conftest import TCPSTATES

from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState
from tcpstates.sources.base import unique

HOSTILE_NAMES = [
    "[bold red]x[/]",
    "\x1b[2Jwipe",
    "\x1b]8;;http://e\x07a",
    "c1\u009b31mred",
    "bell\x07",
    "rtl\u202etxt",
    "café☃",
    "sshd\n",  # a name that ends in a newline keeps it: it is not the plain "sshd"
]
RAW = ["\x1b", "\x07", "\u009b", "\u202e", "\x00"]


# --- without privileges ----------------------------------------------------------------------


@pytest.fixture
def root_listener(sockets) -> int:  # type: ignore[no-untyped-def]
    return sockets.listener().getsockname()[1]  # type: ignore[no-any-return]


def test_unprivileged_full_list_with_one_hint_and_no_sudo(nobody, root_listener) -> None:
    done = nobody("-o", "json")
    assert done.returncode == 0, done.stderr
    mine = [r for r in json.loads(done.stdout) if r["local_port"] == root_listener]
    assert len(mine) == 1 and mine[0]["pid"] is None  # root's socket: listed, owner unseen
    hints = done.stderr.splitlines()
    assert len(hints) == 1 and "cannot be attributed" in hints[0] and "sudo" not in done.stderr
    plain = nobody("-o", "plain", "--port", str(root_listener))
    assert plain.returncode == 0 and plain.stdout.splitlines()[1].endswith("-  -")


def test_hidepid_proc_behaves_the_same(nobody, root_listener) -> None:
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    done = nobody("-o", "json", wrap="mount -t proc -o hidepid=2 proc /proc")
    assert done.returncode == 0, done.stderr
    mine = [r for r in json.loads(done.stdout) if r["local_port"] == root_listener]
    assert len(mine) == 1 and mine[0]["pid"] is None and "sudo" not in done.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("trace", "--duration", "1"), "needs root"),
        (("--netns", "anything"), "no network namespace named"),
        (("export", "--textfile", "/root/x.prom"), "cannot write"),
    ],
)
def test_what_needs_root_says_so_in_one_line(nobody, args, needle) -> None:
    done = nobody(*args)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and needle in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_all_netns_without_root_leaves_out_what_it_may_not_enter_and_says_so(nobody) -> None:
    # A named namespace (a private /run/netns, so that nobody else's are involved): nobody may
    # see its name but not enter it. The listing goes on with what it can read, and one line
    # says how many namespaces it could not.
    made = "mount -t tmpfs tmpfs /run/netns && ip netns add secret-a && ip netns add secret-b"
    done = nobody("--all-netns", "-o", "json", "--no-owners", wrap=made)
    assert done.returncode == 0, done.stderr
    assert {r["netns"] for r in json.loads(done.stdout)} == {os.stat("/proc/self/ns/net").st_ino}
    assert done.stderr == (
        "tcpstates: 2 network namespaces cannot be entered without root (CAP_SYS_ADMIN);"
        " their sockets are not listed\n"
    )
    verbose = nobody("--all-netns", "-v", "-o", "json", "--no-owners", wrap=made)
    lines = verbose.stderr.splitlines()
    assert lines[0].startswith("tcpstates: reading sockets with netns")
    assert sorted(re.sub(r"out \d+ ", "out INODE ", line) for line in lines[1:]) == [
        f"tcpstates: left out INODE ({name}): entering it needs root (CAP_SYS_ADMIN)"
        for name in ("secret-a", "secret-b")
    ]


def test_an_unreadable_capture_is_one_line(nobody, tmp_path: Path) -> None:
    secret = tmp_path / "tcp"
    secret.write_text("  sl  local_address rem_address   st\n")
    secret.chmod(0o600)
    tmp_path.chmod(0o755)
    done = nobody("--from", str(secret))
    assert (done.returncode, done.stderr) == (1, f"tcpstates: {secret}: permission denied\n")


# --- hostile process names -------------------------------------------------------------------

HOLDER = """
import ctypes, socket, sys
name = sys.argv[1].encode()[:15]
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def hostile() -> Iterator[dict[int, str]]:
    """Processes named with markup, escapes, C1, BEL and bidi overrides, each with a listener."""
    procs, ports = [], {}
    try:
        for name in HOSTILE_NAMES:
            proc = subprocess.Popen(
                [sys.executable, "-c", HOLDER, name],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(proc)
            assert proc.stdout is not None
            ports[int(proc.stdout.readline())] = name
        yield ports
    finally:
        for proc in procs:
            proc.communicate(input="", timeout=10)


def _ports_args(ports: dict[int, str]) -> list[str]:
    return ["--local", "127.0.0.1", "-l"]


@pytest.mark.parametrize(
    "args",
    [
        ("-o", "table", "--color", "never"),
        ("-o", "table", "--color", "always"),
        ("-o", "plain"),
        ("-o", "csv"),
        ("--summary", "--by", "process", "-o", "table", "--color", "always"),
        ("--summary", "--by", "process", "-o", "plain"),
        ("-o", "openmetrics", "--by", "process"),
    ],
)
def test_hostile_names_reach_no_terminal_raw(cli, hostile, args) -> None:
    done = cli.process(*args, *_ports_args(hostile))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for raw in RAW[1:]:
        assert raw not in out, (args, repr(raw))
    if "never" in args or "plain" in args or "csv" in args:
        assert "\x1b" not in out
    else:  # our own colours only: no clear-screen, no OSC 8 hyperlink
        assert "\x1b[2J" not in out and "\x1b]8" not in out
    assert "[bold red]x" in out  # shown as the text it is, never taken as markup


def test_json_escapes_hostile_names(cli, hostile) -> None:
    done = cli.process("-o", "json", *_ports_args(hostile))
    assert all(ord(c) < 128 and (c >= " " or c == "\n") for c in done.stdout)
    names = {r["process"] for r in json.loads(done.stdout) if r["local_port"] in hostile}
    assert names == {
        name.encode()[:15].decode("utf-8", "backslashreplace") for name in HOSTILE_NAMES
    }


def test_a_non_ascii_name_under_the_c_locale(cli, hostile) -> None:
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    done = cli.process("-o", "plain", "-l", env=env)
    assert done.returncode == 0 and "Traceback" not in done.stderr


# --- the output contract ---------------------------------------------------------------------


def big_capture(path: Path, rows: int = 4000) -> Path:
    """A capture large enough that `| head -1` closes the pipe while we still write."""
    header = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
        "   uid  timeout inode\n"
    )
    line = (
        "{:4d}: 0100007F:{:04X} 0100007F:1F90 01 00000000:00000000 00:00000000 00000000"
        "     0        0 {} 1 0 20 4 30 10 -1\n"
    )
    path.write_text(header + "".join(line.format(i, 10000 + i, 5000 + i) for i in range(rows)))
    return path


@pytest.mark.parametrize("fmt", ["plain", "table", "json", "jsonl", "csv", "openmetrics"])
def test_head_closing_the_pipe_is_quiet_in_every_format(tmp_path: Path, fmt: str) -> None:
    capture = big_capture(tmp_path / "tcp")
    script = (
        f"{sys.executable} -m tcpstates --from {capture} -o {fmt} | head -1 >/dev/null;"
        " echo ${PIPESTATUS[0]}"
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.stderr == ""
    assert done.stdout.strip() in ("0", "141")  # 141 if we were still writing, 0 if it all fit


@pytest.mark.parametrize(
    ("env", "args", "coloured"),
    [
        ({"NO_COLOR": "1"}, ("--color", "auto"), False),
        ({"NO_COLOR": ""}, ("--color", "always"), True),  # empty NO_COLOR does not count
        ({"FORCE_COLOR": "1"}, (), True),
        ({"TERM": "dumb"}, (), False),
        ({}, ("--color", "never"), False),
        ({}, ("--color", "always"), True),
    ],
)
def test_colour_switches(cli, env: dict[str, str], args: tuple[str, ...], coloured: bool) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    done = cli.process("--explain", "-o", "table", *args, env={**clean, **env})
    assert done.returncode == 0
    assert ("\x1b[" in done.stdout) is coloured


def test_narrow_columns_never_cut_an_address_when_piped(cli, tmp_path: Path) -> None:
    capture = tmp_path / "tcp6"
    capture.write_text(
        "  sl  local_address                         remote_address                        st"
        " tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 000080FE00000000FF005452120000FE:1F90 000080FE00000000FF005452130000FE:C350 01"
        " 00000000:00000000 00:00000000 00000000     0        0 77 1 0 20 4 30 10 -1\n"
    )
    done = cli.process("--from", str(capture), env={**os.environ, "COLUMNS": "40"})
    assert "[fe80::5254:ff:fe00:12]:8080" in done.stdout
    assert "[fe80::5254:ff:fe00:13]:50000" in done.stdout


# --- churn -----------------------------------------------------------------------------------

CHURN = """
import socket, sys, time
server = socket.create_server(("127.0.0.1", 0), backlog=512)
print(server.getsockname()[1], flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    started = time.monotonic()
    for _ in range(100):
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        client.close()
        accepted.close()
    time.sleep(max(0, 0.1 - (time.monotonic() - started)))  # about 1,000 a second
"""


@pytest.mark.slow
def test_churn_every_format_fifty_times(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    churn = subprocess.Popen(
        [sys.executable, "-c", CHURN, "120"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert churn.stdout is not None and churn.stdout.readline()
        for args in (["-o", "json"], ["-o", "jsonl"], ["-o", "csv"], ["-o", "plain"],
                     ["--summary", "-o", "json"]):  # fmt: skip
            for _ in range(50):
                result = cli(*args)
                assert result.returncode == 0, result.stderr
                if args == ["-o", "json"]:
                    rows = json.loads(result.stdout)
                    keys = Counter(
                        (r["proto"], r["local_address"], r["local_port"], r["remote_address"],
                         r["remote_port"], r["state"], r["inode"])
                        for r in rows
                    )  # fmt: skip
                    assert max(keys.values(), default=1) == 1  # no row twice
    finally:
        churn.kill()
        churn.wait()
        if churn.stdout is not None:
            churn.stdout.close()  # left open, its ResourceWarning fails whichever test runs next


# --- each socket once ------------------------------------------------------------------------
#
# The kernel hands out /proc/net/tcp a page at a time and finds its place again by counting, so
# under churn a socket already sent comes again. No listing may show it twice.


def _sock(state: TcpState, inode: int, rport: int = 40000, proto: str = "tcp") -> Socket:
    remote = "127.0.0.1" if rport else "0.0.0.0"
    return Socket(proto, 4, "127.0.0.1", 8080, remote, rport, state, 0, 0, 0, inode)


@pytest.mark.parametrize(
    ("records", "kept"),
    [
        # a page read twice
        ([_sock(TcpState.ESTABLISHED, 11), _sock(TcpState.ESTABLISHED, 11)], 1),
        # TIME_WAIT has no inode; one four-tuple is one socket in the established hash
        ([_sock(TcpState.TIME_WAIT, 0), _sock(TcpState.TIME_WAIT, 0)], 1),
        # its owner closed it between two pages: read with its inode, then without
        ([_sock(TcpState.ESTABLISHED, 11), _sock(TcpState.FIN_WAIT2, 0)], 1),
        # SO_REUSEPORT listeners and UDP sockets share their ends, never their inode
        ([_sock(TcpState.LISTEN, 11, 0), _sock(TcpState.LISTEN, 12, 0)], 2),
        ([_sock(TcpState.CLOSE, 11, 0, "udp"), _sock(TcpState.CLOSE, 12, 0, "udp")], 2),
        (
            [
                _sock(TcpState.ESTABLISHED, 11, proto="udp"),
                _sock(TcpState.ESTABLISHED, 12, proto="udp"),
            ],
            2,
        ),  # fmt: skip
        ([_sock(TcpState.LISTEN, 11, 0), _sock(TcpState.LISTEN, 11, 0)], 1),
    ],
)
def test_unique_keeps_one_record_per_socket(records: list[Socket], kept: int) -> None:
    assert list(unique(records)) == records[:kept] if kept == 1 else records


def test_sockets_sharing_their_ends_are_all_listed(cli, sockets) -> None:
    # Real SO_REUSEPORT listeners and UDP sockets on one port: distinct sockets, each listed.
    first = sockets.listener(reuseport=True)
    port = first.getsockname()[1]
    made = [first, sockets.listener(port=port, reuseport=True)]
    made += [sockets.udp(port=port, reuseport=True) for _ in range(2)]
    for source in ("procfs", "netlink"):
        rows = json.loads(cli.process("--source", source, "-t", "-u", "--sport", str(port),
                                      "-o", "json").stdout)  # fmt: skip
        assert sorted((r["proto"], r["inode"]) for r in rows) == sorted(
            ("tcp" if s.type == socket.SOCK_STREAM else "udp", os.fstat(s.fileno()).st_ino)
            for s in made
        )


POOL_CHURN = """
import socket, sys, time
server = socket.create_server(("127.0.0.1", 0), backlog=1024)
port = server.getsockname()[1]
pool = []
for _ in range(int(sys.argv[2])):  # standing connections: tables of many pages
    client = socket.create_connection(("127.0.0.1", port))
    pool += [client, server.accept()[0]]
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[1])
opened = 0
while time.monotonic() < end:
    started = time.monotonic()
    for _ in range(150):
        client = socket.create_connection(("127.0.0.1", port))
        accepted = server.accept()[0]
        client.close()
        accepted.close()
        opened += 1
    time.sleep(max(0, 0.1 - (time.monotonic() - started)))  # 1,500 a second at most
print(opened, flush=True)
"""


def _repeats(sockets: list[Socket]) -> int:
    """Records that name a socket already listed: a TCP four-tuple with a peer, or an inode."""
    tuples = Counter(
        (s.family, s.local_address, s.local_port, s.remote_address, s.remote_port)
        for s in sockets
        if s.proto == "tcp" and s.remote_port
    )
    inodes = Counter(s.inode for s in sockets if s.inode)
    return sum(n - 1 for n in (*tuples.values(), *inodes.values()))


@pytest.mark.slow
def test_no_listing_holds_a_socket_twice_under_churn(netns) -> None:
    from tcpstates.model.query import Query
    from tcpstates.sources import netns as namespaces
    from tcpstates.sources.namespaced import NamespacedSource
    from tcpstates.sources.place import open_source
    from tcpstates.sources.procfs import parse_table

    made = netns("dup")
    churn = made.popen(sys.executable, "-c", POOL_CHURN, "60", "3000",
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert churn.stdout is not None and churn.stdout.readline() == "ready\n"
        space = namespaces.by_name(made.name)
        found = namespaces.Found((space,))
        repeats: Counter[str] = Counter()
        raw = 0  # repeats in the kernel's own text, read as it comes: the attack is real
        for _ in range(15):
            with namespaces.entered(space):
                for source in ("procfs", "netlink"):
                    rows = list(open_source(source).read(Query(), owners=False).sockets)
                    assert len(rows) > 6000
                    repeats[source] += _repeats(rows)
                with open("/proc/net/tcp") as table:
                    raw += _repeats(list(parse_table(table, "tcp")))
            for inner in ("procfs", "netlink"):
                source = NamespacedSource(
                    lambda: found, partial(open_source, inner), skip_unavailable=False, why=""
                )
                repeats[f"netns+{inner}"] += _repeats(list(source.read(Query()).sockets))
        assert churn.poll() is None  # still churning at the last listing
    finally:
        churn.kill()
        churn.communicate(timeout=10)
    assert repeats == Counter(), repeats
    if raw == 0:
        pytest.skip("this kernel repeated no row of /proc/net/tcp under churn: nothing to prove")


@pytest.mark.parametrize(
    "args",
    [
        ["-o", "plain"],
        ["-o", "json"],
        ["--summary", "-o", "json"],  # the fast path
        ["doctor"],
        ["--watch", "0.2", "-o", "jsonl"],
        pytest.param(["trace", "-o", "csv", "--duration", "1"], marks=pytest.mark.root),
    ],
)
def test_a_full_disk_under_stdout_is_one_line(args: list[str]) -> None:
    # /dev/full answers every write with ENOSPC, as a /tmp another user filled would.
    instances = "/sys/kernel/tracing/instances"
    before = set(os.listdir(instances)) if os.path.isdir(instances) else set()
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*TCPSTATES, *args],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert (done.returncode, done.stderr) == (
        1,
        "tcpstates: cannot write the output: No space left on device\n",
    )
    if os.path.isdir(instances):
        assert set(os.listdir(instances)) <= before  # a trace removed its instance
