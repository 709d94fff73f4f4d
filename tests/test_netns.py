"""Network namespaces: --netns, --netns-pid and --all-netns against `ip netns exec … ss`.

Two namespaces are made for the test, each with the same listener address and port and its own
connections, so nothing can pass by assuming an address is unique across namespaces.
Needs root and `ip netns` (CI runs as root): every test here is marked netns.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import TCPSTATES, Cli, Netns
from ss_reader import row_key, ss_rows
from terminal import needs_tmux, terminal

from tcpstates.sources import netns as namespaces

pytestmark = pytest.mark.netns

PORT = 7000
HOLDER = """
import socket, sys
server = socket.create_server(("127.0.0.1", {port}))
held = [server]
for _ in range({pairs}):
    client = socket.create_connection(("127.0.0.1", {port}))
    accepted, _ = server.accept()
    held += [client, accepted]
held[-2].shutdown(socket.SHUT_WR)  # one FIN_WAIT2 / CLOSE_WAIT pair
print("ready", flush=True)
sys.stdin.read()
"""


@dataclass(frozen=True)
class Space:
    name: str
    holder: subprocess.Popen[str]

    @property
    def inode(self) -> int:
        return os.stat(f"/run/netns/{self.name}").st_ino


def _make(space: Netns, pairs: int) -> Space:
    holder = space.popen(
        sys.executable, "-c", HOLDER.format(port=PORT, pairs=pairs),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    return Space(space.name, holder)


@pytest.fixture(scope="module")
def spaces(netns) -> Iterator[tuple[Space, Space]]:  # type: ignore[no-untyped-def]
    made = (_make(netns("a"), 2), _make(netns("b"), 3))
    yield made
    for space in made:
        space.holder.communicate(input="", timeout=10)


def records(cli: Cli, *args: str) -> list[dict[str, object]]:
    done = cli.process(*args, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def keys(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return sorted(
        (r["proto"], r["family"], r["local_address"], r["local_port"], r["remote_address"],
         r["remote_port"], r["state"])
        for r in rows
    )  # fmt: skip


def test_netns_by_name_is_what_ss_sees_inside(cli, spaces) -> None:
    for space in spaces:
        ours = records(cli, "--netns", space.name)
        assert keys(ours) == sorted(row_key(r) for r in ss_rows("tcp", netns=space.name))
        assert {r["netns"] for r in ours} == {space.inode}
        assert {r["pid"] for r in ours if r["state"] != "TIME_WAIT"} == {space.holder.pid}


def test_netns_of_a_process_is_the_same_namespace(cli, spaces) -> None:
    a, _ = spaces
    assert keys(records(cli, "--netns-pid", str(a.holder.pid))) == keys(
        records(cli, "--netns", a.name)
    )


def test_all_netns_lists_each_namespace_once_with_its_own_sockets(cli, spaces) -> None:
    ours = records(cli, "--all-netns")
    for space in spaces:
        inside = [r for r in ours if r["netns"] == space.inode]
        assert keys(inside) == sorted(row_key(r) for r in ss_rows("tcp", netns=space.name))
    # The same listener address and port in both namespaces, told apart by the namespace.
    listeners = [r["netns"] for r in ours if r["local_port"] == PORT and r["state"] == "LISTEN"]
    assert {spaces[0].inode, spaces[1].inode} <= set(listeners)
    table = cli.process("--all-netns", "-o", "plain", "--port", str(PORT)).stdout
    assert table.startswith("Netns") and f"{spaces[0].inode} ({spaces[0].name})" in table


def test_all_netns_summary_is_per_namespace(cli, spaces) -> None:
    done = cli.process("--all-netns", "--summary", "-o", "json")
    data = json.loads(done.stdout)
    for space, established in zip(spaces, (4, 6), strict=True):
        label = f"{space.inode} ({space.name})"
        counts = data[label]
        assert counts["ESTABLISHED"] == established - 2 and counts["LISTEN"] == 1
        assert counts["FIN_WAIT2"] == 1 and counts["CLOSE_WAIT"] == 1


def test_without_permission_netns_pid_falls_back_to_proc(cli, spaces, monkeypatch) -> None:
    # setns needs CAP_SYS_ADMIN; root has it, so its refusal is simulated here.
    def refuse(fd: int, what: str) -> None:
        raise namespaces.Unavailable(
            f"entering {what} needs root (CAP_SYS_ADMIN)", namespaces.Why.REFUSED
        )

    monkeypatch.setattr(namespaces, "_setns", refuse)
    a, _ = spaces
    result = cli("--netns-pid", str(a.holder.pid), "-o", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert keys(rows) == sorted(row_key(r) for r in ss_rows("tcp", netns=a.name))
    named = cli("--netns", a.name)  # a SourceError: one line, status 1
    assert (named.returncode, named.stdout, named.stderr.count("\n")) == (1, "", 1)
    assert "needs root" in named.stderr


def test_bad_names_and_conflicting_options_are_one_line_errors(cli) -> None:
    missing = cli.process("--netns", "no-such-namespace-here")
    assert missing.returncode == 1
    assert (
        missing.stderr == "tcpstates: no network namespace named 'no-such-namespace-here'"
        " in /run/netns\n"
    )
    both = cli.process("--netns", "x", "--all-netns")
    assert both.returncode == 2 and both.stderr.count("\n") == 1


# --- namespaces that come and go, and names others chose ------------------------------------
#
# These run in a /run/netns of their own: a tmpfs mounted in a private mount namespace, entered
# with nsenter. The stale entries, churn and hostile names below are real (ip netns, bind mounts,
# FIFOs), yet other tests and other users' tools listing /run/netns never see them.

RAW = ("\x1b", "\x07", "\u202e")  # what must never reach a terminal or a log as it is
HOSTILE_NETNS = "a\x1b[31mb\x07c\u202ed"
HOSTILE_PROCESS = "\x1b]8;;http://e\x07p"  # an OSC 8 hyperlink; 15 bytes, all of it kept

LISTENER = """
import ctypes, socket, sys
if len(sys.argv) > 2:
    ctypes.CDLL(None).prctl(15, ctypes.c_char_p(sys.argv[2].encode()), 0, 0, 0)  # PR_SET_NAME
server = socket.create_server(("0.0.0.0", int(sys.argv[1])))  # lo may be down: not 127.0.0.1
print("ready", flush=True)
sys.stdin.read()
"""

# Bounded churn: WORKERS loops, each adding a named namespace, starting a process in a fresh
# one that lives 0.2 s, and deleting the namespace it added the round before; for SECONDS.
CHURN = """
end=$((SECONDS + $1))
for w in $(seq "$2"); do
  (
    i=0
    while [ "$SECONDS" -lt "$end" ] && [ ! -e "$3" ]; do
      i=$((i + 1))
      ip netns add "churn$w-$i" 2>/dev/null
      unshare -n sleep 0.2 &
      ip netns del "churn$w-$((i - 1))" 2>/dev/null
    done
    ip netns del "churn$w-$i" 2>/dev/null
    wait
  ) &
done
wait
"""


class PrivateNetns:
    """A mount namespace whose /run/netns is an empty tmpfs; commands run inside it."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs tmpfs /run/netns && echo ready && exec cat >/dev/null"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.holder.stdout is not None and self.holder.stdout.readline() == "ready\n"
        self.procs: list[subprocess.Popen[str]] = []

    def argv(self, *argv: str) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--", *argv]

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*argv), capture_output=True, text=True, timeout=60, check=check
        )

    def tcpstates(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(*TCPSTATES, *args, check=False)

    def popen(self, *argv: str, **kwargs: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen(self.argv(*argv), text=True, **kwargs)
        self.procs.append(proc)
        return proc

    def inode(self, name: str) -> int:
        return int(self.run("stat", "-L", "-c", "%i", f"/run/netns/{name}").stdout)

    def named_listener(self, name: str, port: int) -> subprocess.Popen[str]:
        """A namespace called ``name`` with a process listening on ``port`` in it."""
        self.run("ip", "netns", "add", name)
        return self.listener(port, prefix=("ip", "netns", "exec", name))

    def listener(self, port: int, *name: str, prefix: tuple[str, ...]) -> subprocess.Popen[str]:
        proc = self.popen(
            *prefix, sys.executable, "-c", LISTENER, str(port), *name,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
        self.holder.communicate(input="", timeout=10)  # the tmpfs and what is on it go with it


@pytest.fixture
def private() -> Iterator[PrivateNetns]:
    if shutil.which("nsenter") is None or shutil.which("unshare") is None:
        pytest.skip("needs nsenter and unshare (util-linux)")
    space = PrivateNetns()
    try:
        yield space
    finally:
        space.close()


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return json.loads(done.stdout)


def test_stale_run_netns_entries_are_left_out_not_fatal(private) -> None:
    live = private.named_listener("live", 7101)
    private.run("touch", "/run/netns/stale")  # a file nothing is mounted on
    private.run("ip", "netns", "add", "unmounted")
    private.run("umount", "/run/netns/unmounted")  # deleted by hand: the file stays
    private.run("mkfifo", "/run/netns/fifo")  # must not be opened (it would block)
    private.run("ln", "-s", "/dev/zero", "/run/netns/zero")
    inode = private.inode("live")

    rows = _json(private.tcpstates("--all-netns", "-o", "json", "--port", "7101"))
    assert [(r["netns"], r["state"], r["pid"]) for r in rows] == [(inode, "LISTEN", live.pid)]
    summary = _json(private.tcpstates("--all-netns", "--summary", "-o", "json"))
    assert summary[f"{inode} (live)"]["LISTEN"] == 1

    verbose = private.tcpstates("--all-netns", "-v", "-o", "plain", "--port", "7101")
    assert verbose.returncode == 0 and f"{inode} (live)" in verbose.stdout
    left_out = sorted(line for line in verbose.stderr.splitlines() if "left out" in line)
    assert left_out == [
        f"tcpstates: left out /run/netns/{name}: not a network namespace (nothing is mounted on it)"
        for name in ("fifo", "stale", "unmounted", "zero")
    ]
    named = private.tcpstates("--netns", "stale")
    assert (named.returncode, named.stderr) == (
        1, "tcpstates: /run/netns/stale: not a network namespace (nothing is mounted on it)\n",
    )  # fmt: skip


@pytest.mark.slow
def test_listing_while_namespaces_come_and_go(private, tmp_path) -> None:
    live = private.named_listener("survivor", 7102)
    inode = private.inode("survivor")
    stop = tmp_path / "stop"
    churn = private.popen("bash", "-c", CHURN, "churn", "60", "6", str(stop))
    try:
        time.sleep(1)  # churn under way: names and processes appear and vanish
        for args in (["-o", "json"], ["-o", "json", "--no-owners"], ["--source", "procfs",
                     "-o", "json"]) * 4:  # fmt: skip
            rows = _json(private.tcpstates("--all-netns", *args))
            mine = [(r["netns"], r["local_port"]) for r in rows if r["state"] == "LISTEN"]
            assert (inode, 7102) in mine
            assert live.pid in {r["pid"] for r in rows} or "--no-owners" in args
        for _ in range(4):
            summary = _json(private.tcpstates("--all-netns", "--summary", "-o", "json"))
            assert summary[f"{inode} (survivor)"]["LISTEN"] == 1
        assert churn.poll() is None, "the churn ended before the listings did"
    finally:
        stop.touch()
        churn.wait(timeout=30)


@pytest.mark.slow
def test_watch_follows_namespaces_created_and_deleted(private, tmp_path) -> None:
    doomed = private.named_listener("doomed", 7103)
    doomed_inode = private.inode("doomed")
    private.run("touch", "/run/netns/stale")
    stop = tmp_path / "stop"
    churn = private.popen("bash", "-c", CHURN, "churn", "60", "4", str(stop))
    watch = private.popen(
        *TCPSTATES, "--watch", "0.3", "--all-netns", "-v",
        "-o", "jsonl", "--no-owners", "-l",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    frames = _lines(watch)
    try:

        def until(wanted: tuple[str, int, int]) -> None:
            deadline = time.monotonic() + 20
            while True:
                assert time.monotonic() < deadline, f"no {wanted} in the watch's frames"
                changes = json.loads(frames.get(timeout=20))["changes"]
                if wanted in {(c["change"], c["netns"], c["local_port"]) for c in changes}:
                    return

        until(("appeared", doomed_inode, 7103))
        fds = len(os.listdir(f"/proc/{watch.pid}/fd"))  # nsenter has exec'd tcpstates
        # Born after the watch started:
        private.named_listener("newborn", 7104)
        until(("appeared", private.inode("newborn"), 7104))
        # Deleted while watched: its listener vanishes, and the watch goes on.
        doomed.kill()
        doomed.communicate(timeout=10)
        private.run("ip", "netns", "del", "doomed")
        until(("vanished", doomed_inode, 7103))
        for _ in range(5):  # and goes on, each frame through the churn, holding nothing open
            json.loads(frames.get(timeout=20))
        assert watch.poll() is None and churn.poll() is None
        assert len(os.listdir(f"/proc/{watch.pid}/fd")) <= fds
    finally:
        stop.touch()
        churn.wait(timeout=30)
        watch.send_signal(signal.SIGTERM)
        _, err = watch.communicate(timeout=10)
    assert watch.returncode == 0
    # -v: each namespace left out is said once, however many frames left it out.
    assert err.count("left out /run/netns/stale: not a network namespace") == 1, err
    assert "Traceback" not in err


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The lines ``proc`` writes, as they come (a reader thread: a read must never hang a test)."""
    lines: queue.Queue[str] = queue.Queue()
    stream = proc.stdout
    assert stream is not None

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


@pytest.fixture
def hostile(private) -> tuple[PrivateNetns, int, int]:
    """A namespace named with escapes, BEL and a bidi override, and an unnamed one whose only
    process names itself with an OSC 8 hyperlink; each with a listener on 7105.
    Returns the space and the two namespaces' inodes."""
    private.named_listener(HOSTILE_NETNS, 7105)
    proc = private.listener(7105, HOSTILE_PROCESS, prefix=("unshare", "-n"))
    return private, private.inode(HOSTILE_NETNS), os.stat(f"/proc/{proc.pid}/ns/net").st_ino


@pytest.mark.parametrize(
    "args",
    [
        ("-o", "plain"),
        ("-o", "csv"),
        ("-o", "json"),
        ("-o", "jsonl"),
        ("-o", "table", "--color", "always"),
        ("--summary", "-o", "plain"),
        ("--summary", "-o", "table", "--color", "always"),
        ("--summary", "-o", "json"),
        ("--by", "process", "-o", "plain"),
        ("--by", "process", "-o", "json"),
    ],
)
def test_hostile_namespace_and_process_names_are_escaped(hostile, args) -> None:
    space, named, unnamed = hostile
    done = space.tcpstates("--all-netns", "-v", *args, "--port", "7105")
    assert done.returncode == 0, done.stderr
    for text in (done.stdout, done.stderr):
        for raw in RAW[1:]:
            assert raw not in text, (args, raw)
    if "always" not in args:
        assert "\x1b" not in done.stdout
    assert "\x1b" not in done.stderr and "\x1b[31m" not in done.stdout
    escaped_name = "a\\x1b[31mb\\x07c\\u202ed"
    escaped_process = "\\x1b]8;;http://e\\x07p"
    if args[-1] in ("plain", "always") and "--by" not in args:  # labels are shown
        # On a narrow terminal the label may be written without its inode, as the footer says.
        compact = "Netns without inodes" in done.stdout
        label = escaped_name if compact else f"{named} ({escaped_name})"
        assert label in done.stdout
        assert escaped_process in done.stdout
    if args == ("--summary", "-o", "json"):  # labels are keys: JSON escapes them
        labels = set(json.loads(done.stdout))
        assert f"{named} ({HOSTILE_NETNS})" in labels
        assert any(label.endswith(f" {HOSTILE_PROCESS})") for label in labels)
    if "--by" in args and args[-1] == "json":  # per namespace, never added up
        assert {f"{named} ({HOSTILE_NETNS})"} <= set(json.loads(done.stdout))
    elif args[-1] in ("json", "jsonl", "csv"):  # records carry the inode, no label
        assert str(named) in done.stdout and str(unnamed) in done.stdout


def test_counts_of_several_namespaces_are_never_added_up(hostile) -> None:
    # Metrics have no netns label (yet): summing namespaces into one series would lie.
    space, _, _ = hostile
    for args in (("-o", "openmetrics"), ("--watch", "1", "--summary", "-o", "jsonl")):
        done = space.tcpstates("--all-netns", *args)
        assert (done.returncode, done.stdout) == (2, ""), args
        assert done.stderr.startswith("tcpstates: --all-netns does not apply to"), done.stderr


def test_hostile_names_on_stderr_are_escaped(hostile) -> None:
    space, named, _ = hostile
    space.run("touch", "/run/netns/s\x1b[2Jx")  # a stale entry, named to clear the screen
    said = space.tcpstates("--all-netns", "-v", "-o", "json", "--port", "7105")
    chosen = space.tcpstates("--netns", HOSTILE_NETNS, "-v", "-o", "json")
    missing = space.tcpstates("--netns", "zz\x1b[2J\u202e")
    assert (said.returncode, chosen.returncode, missing.returncode) == (0, 0, 1)
    assert "left out /run/netns/s\\x1b[2Jx: not a network namespace" in said.stderr
    assert f"sockets read inside {named} (a\\x1b[31mb\\x07c\\u202ed)" in chosen.stderr
    assert missing.stderr.count("\n") == 1 and "zz\\x1b[2J\\u202e" in missing.stderr
    for text in (said.stderr, chosen.stderr, missing.stderr):
        assert not any(raw in text for raw in RAW), text


@needs_tmux
@pytest.mark.parametrize("watch", [(), ("--watch", "0.3")])
def test_hostile_labels_on_a_real_terminal(hostile, watch) -> None:
    # What the terminal shows (tmux's screen, not our bytes): the names' escapes as text. Had
    # the bytes gone out raw, the terminal would have acted on them and shown no backslash.
    space, named, unnamed = hostile
    space.run("touch", "/run/netns/s\x1b[2Jx")  # -v says it is left out: on the screen too
    listing = space.argv(*TCPSTATES, "--all-netns", "--port", "7105",
                         "--no-owners", "-v", *watch)  # fmt: skip
    with terminal(listing, 160, 40) as term:
        screen = term.wait_until(lambda shown: shown.count("LISTEN") >= 2 and "left out" in shown)
    assert f"{named} (a\\x1b[31mb\\x07c\\u202ed)" in screen
    assert f"{unnamed} (pid " in screen and "\\x1b]8;;http://e\\x07p)" in screen
    assert "left out /run/netns/s\\x1b[2Jx: not a network namespace" in screen
