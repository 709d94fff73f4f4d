"""Every holder of a socket: a prefork server's listener, held by its parent (twice, after a
dup()) and by three forked workers, is listed with every process and fd that holds it, as
/proc and ss see them; --pid and --process match any holder; the table shows ``+3``."""

from __future__ import annotations

import doctest
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import TCPSTATES
from hypothesis import given, settings
from hypothesis import strategies as st
from terminal import needs_tmux, terminal

from tcpstates.model.query import Query
from tcpstates.model.sockets import Details, Holder, Socket
from tcpstates.model.states import TcpState
from tcpstates.render import columns, fit
from tcpstates.render.columns import PROCESS, Layout
from tcpstates.sources import owners
from tcpstates.sources.owners import scan_owners

# The server: the parent listens on 127.0.0.1, forks three workers that keep the listener,
# dup()s it, and says who is who once all are up; all end when the test closes their stdin.
PREFORK = r"""
import ctypes, json, os, socket, sys
def name(text):  # PR_SET_NAME: /proc/PID/comm, what ss and tcpstates show
    ctypes.CDLL(None).prctl(15, text.encode(), 0, 0, 0)
name("prefork-main")
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
ready_r, ready_w = os.pipe()
workers = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        name("prefork-work")
        os.write(ready_w, b"x")
        os.read(0, 1)  # until the test closes stdin
        os._exit(0)
    workers.append(pid)
spare = os.dup(listener.fileno())  # after the forks: the parent alone holds it twice
got = b""
while len(got) < 3:
    got += os.read(ready_r, 3 - len(got))
print(json.dumps({"port": listener.getsockname()[1], "parent": os.getpid(),
                  "workers": workers, "fds": [listener.fileno(), spare]}), flush=True)
os.read(0, 1)
for pid in workers:
    os.waitpid(pid, 0)
"""


@dataclass(frozen=True)
class Prefork:
    port: int
    parent: int
    workers: list[int]
    inode: int

    @property
    def pids(self) -> list[int]:
        return [self.parent, *self.workers]

    def held_in_proc(self) -> list[tuple[int, int]]:
        """(pid, fd) of every descriptor /proc shows holding the listener, by pid then fd."""
        target = f"socket:[{self.inode}]"
        return sorted(
            (pid, int(fd))
            for pid in self.pids
            for fd in os.listdir(f"/proc/{pid}/fd")
            if _readlink(f"/proc/{pid}/fd/{fd}") == target
        )


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def start(argv: list[str], popen: object = subprocess.Popen) -> tuple[subprocess.Popen[str], dict]:
    proc = popen(  # type: ignore[operator]
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    line = proc.stdout.readline()
    assert line, "the prefork server did not start"
    return proc, json.loads(line)


def stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)
    proc.stdout.close()


def _inode(pid: int, fd: int) -> int:
    target = os.readlink(f"/proc/{pid}/fd/{fd}")
    return int(target[len("socket:[") : -1])


@pytest.fixture(scope="module")
def prefork() -> Iterator[Prefork]:
    proc, said = start([sys.executable, "-c", PREFORK])
    try:
        yield Prefork(
            said["port"], said["parent"], said["workers"], _inode(said["parent"], said["fds"][0])
        )
    finally:
        stop(proc)


def listener_records(cli, prefork: Prefork, *args: str) -> list[dict]:
    result = cli("-l", "--sport", str(prefork.port), "-o", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- the listing -----------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["netlink", "procfs"])
def test_json_owners_are_every_pid_and_fd_proc_shows(cli, prefork, source) -> None:
    (record,) = listener_records(cli, prefork, "--source", source)
    held = prefork.held_in_proc()
    assert len(held) == 5  # the parent twice (dup), each worker once
    assert [(o["pid"], o["fd"]) for o in record["owners"]] == held  # by pid, then fd
    names = {o["pid"]: o["process"] for o in record["owners"]}
    assert names == {pid: _comm(pid) for pid in prefork.pids}
    assert names[prefork.parent] == "prefork-main"
    assert {names[pid] for pid in prefork.workers} == {"prefork-work"}
    first = record["owners"][0]
    assert (record["pid"], record["process"]) == (first["pid"], first["process"])
    assert record["pid"] == min(prefork.pids)


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().removesuffix("\n")


def ss_users(port: int) -> list[tuple[str, int, int]]:
    """(name, pid, fd) of each holder ss -tlnp lists for the listener on ``port``."""
    ss = shutil.which("ss")
    if ss is None:
        pytest.skip("needs ss (iproute2)")
    out = subprocess.run(
        [ss, "-tlnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    (line,) = out.splitlines()
    users = re.findall(r'\("([^"]*)",pid=(\d+),fd=(\d+)\)', line)
    return sorted((name, int(pid), int(fd)) for name, pid, fd in users)


def test_owners_agree_with_ss_tlnp(cli, prefork) -> None:
    (record,) = listener_records(cli, prefork)
    ours = sorted((o["process"], o["pid"], o["fd"]) for o in record["owners"])
    assert ours == ss_users(prefork.port)
    assert len(ours) == 5


def test_no_owners_writes_no_owners_key(cli, prefork) -> None:
    (record,) = listener_records(cli, prefork, "--no-owners")
    assert "owners" not in record and record["pid"] is None


def test_a_socket_no_process_holds_has_empty_owners_and_csv_has_one_cell(cli, prefork, sockets):
    listener = sockets.listener()
    client, server = sockets.connect(listener)
    port = listener.getsockname()[1]
    sockets.drop(client)  # closed first: orphaned in FIN_WAIT (or TIME_WAIT), held by nobody
    result = cli("--port", str(port), "-o", "json")
    records = json.loads(result.stdout)
    (orphan,) = [r for r in records if r["local_port"] != port]  # the client's end
    assert orphan["state"] in ("FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"), records
    assert orphan["inode"] == 0 and orphan["owners"] == []
    (served,) = [r for r in records if r["state"] == "CLOSE_WAIT"]
    assert [(o["pid"], o["fd"]) for o in served["owners"]] == [(os.getpid(), server.fileno())]
    result = cli("-l", "--sport", str(prefork.port), "-o", "csv")
    header, row = result.stdout.splitlines()
    cells = dict(zip(header.split(","), row.split(","), strict=True))
    assert cells["owners"].split() == [f"{pid}/{fd}" for pid, fd in prefork.held_in_proc()]


@pytest.mark.parametrize("source", ["netlink", "procfs"])
def test_pid_and_process_match_any_holder(cli, prefork, source) -> None:
    worker = str(prefork.workers[-1])
    (record,) = listener_records(cli, prefork, "--source", source, "--pid", worker)
    assert record["pid"] == prefork.parent  # the first holder is still the one shown
    (record,) = listener_records(cli, prefork, "--source", source, "--process", "prefork-w*")
    assert record["process"] == "prefork-main"
    # Without owners shown the filter still sees every holder.
    (record,) = listener_records(cli, prefork, "--source", source, "--pid", worker, "--no-owners")
    assert record["local_port"] == prefork.port
    assert listener_records(cli, prefork, "--source", source, "--pid", "1") == []


def test_pid_and_process_are_one_holders() -> None:
    sock = Socket(
        "tcp", 4, "127.0.0.1", 80, "0.0.0.0", 0, TcpState.LISTEN, inode=9, pid=10, process="a",
        holders=(Holder(10, "a", 3), Holder(11, "b", 3)),
    )  # fmt: skip
    assert Query(pid=11).matches(sock) and Query(process="b").matches(sock)
    assert Query(pid=11, process="b").matches(sock)
    assert not Query(pid=10, process="b").matches(sock)  # no one holder is both
    assert not Query(pid=12).matches(sock)


def test_the_table_shows_the_first_holder_and_how_many_more(cli, prefork) -> None:
    for fmt in ("table", "plain"):
        result = cli("-l", "--sport", str(prefork.port), "-o", fmt)
        (row,) = [line for line in result.stdout.splitlines() if f":{prefork.port} " in line]
        assert row.split()[-3:] == [str(prefork.parent), "prefork-main", "+3"], fmt


def test_a_cut_process_name_keeps_its_count() -> None:
    layout = Layout()
    sock = Socket(
        "tcp", 4, "127.0.0.1", 80, "0.0.0.0", 0, TcpState.LISTEN, inode=9, pid=10,
        process="a-long-process-name",
        holders=(Holder(10, "a-long-process-name", 3), *(Holder(p, "w", 3) for p in range(11, 23))),
    )  # fmt: skip
    row = layout.cells(sock)
    assert row[-1] == "a-long-process-name +12"
    cells = [[cell] for cell in row]
    # Compacted (Local, Peer, *:*), the table is 72 wide; at 62 the name gives 10.
    fitted = fit.fit(layout.columns, cells, 62)
    assert fitted.cells[fitted.index(PROCESS)] == ["a-long-p… +12"] and fitted.width == 62
    assert "process names cut" in fitted.notes
    # Too narrow to keep a letter before the count: cut as any cell is.
    assert fit._cut(["abc +12"], 5, "…", columns.PROCESS, columns.more_suffix_length) == ["abc …"]


@given(st.from_regex(r"[ab ]{0,2}( ?\+?[0-9\u0663]{0,3}){0,2}\n?", fullmatch=True))
@settings(max_examples=1000)  # a thousandth of a second each
def test_the_count_after_a_process_is_what_its_pattern_says(cell: str) -> None:
    # more_suffix_length spares a listing the import of re; it must say what the pattern says.
    found = re.search(r" \+[1-9][0-9]*\Z", cell)
    assert columns.more_suffix_length(cell) == (len(found.group()) if found else 0)


def test_doctests() -> None:
    for module in (columns, fit):
        assert doctest.testmod(module).failed == 0


# --- the scan --------------------------------------------------------------------------------


def fake_proc(tmp_path, pid: int, name: str, fds: dict[int, int]) -> None:
    fd = tmp_path / str(pid) / "fd"
    fd.mkdir(parents=True)
    (tmp_path / str(pid) / "comm").write_text(name + "\n")
    for number, inode in fds.items():
        os.symlink(f"socket:[{inode}]", fd / str(number))
    os.symlink("/dev/null", fd / "0")


def test_holders_are_every_pid_and_fd_by_pid_then_fd_and_the_owner_stays_the_lowest(tmp_path):
    fake_proc(tmp_path, 300, "worker", {3: 11, 12: 12})
    fake_proc(tmp_path, 100, "nginx", {10: 11, 3: 11, 4: 13})
    fake_proc(tmp_path, 200, "worker", {3: 11})
    scan = scan_owners(str(tmp_path), wanted={11, 12}, holders=True)
    assert {i: (o.pid, o.process) for i, o in scan.by_inode.items()} == {
        11: (100, "nginx"),
        12: (300, "worker"),
    }
    assert scan.shared == {
        11: (Holder(100, "nginx", 3), Holder(100, "nginx", 10), Holder(200, "worker", 3),
             Holder(300, "worker", 3)),
    }  # fmt: skip
    assert scan.fds == {11: 3, 12: 12}  # the owner's lowest fd
    kernel, unseen, untold, single, shared = (
        Socket("tcp", 4, "a", 1, "b", 2, TcpState.ESTABLISHED, inode=inode, pid=pid)
        for inode, pid in ((0, None), (99, None), (None, None), (12, 300), (11, 100))
    )
    filled = list(scan.fill_holders([kernel, unseen, untold, single, shared], every=True))
    assert [s.holders for s in filled[:4]] == [(), None, None, (Holder(300, "worker", 12),)]
    assert filled[4].holders == scan.shared[11]
    # The owner alone stops at the first holder and records no holders.
    alone = scan_owners(str(tmp_path), wanted={11})
    assert (alone.fds, alone.shared) == ({}, {}) and alone.by_inode[11].pid == 100


def test_without_every_holder_only_shared_sockets_get_theirs(tmp_path):
    fake_proc(tmp_path, 100, "nginx", {3: 11, 4: 12})
    fake_proc(tmp_path, 200, "worker", {3: 11})
    scan = scan_owners(str(tmp_path), wanted={11, 12}, holders=True)
    shared, single = (
        Socket("tcp", 4, "a", 1, "b", 2, TcpState.LISTEN, inode=inode) for inode in (11, 12)
    )
    filled = list(scan.fill_holders([shared, single], every=False))
    assert [len(s.holders or ()) for s in filled] == [2, 0] and filled[1].holders is None


def test_split_scan_gives_the_same_holders_as_the_plain_one(tmp_path, monkeypatch):
    # pid 200's list is long enough for the split to cut it in two.
    fake_proc(tmp_path, 100, "parent", {3: 11, 4: 12})
    fake_proc(tmp_path, 200, "child", {3: 12, **{n: n + 10 for n in range(4, 40)}, 40: 11})
    fake_proc(tmp_path, 300, "other", {5: 12, 6: 70})
    wanted = set(range(11, 50)) | {70}
    plain = scan_owners(str(tmp_path), wanted, holders=True)
    monkeypatch.setattr(owners, "SPLIT_AT", 1)
    split = scan_owners(str(tmp_path), wanted, holders=True)
    assert (split.shared, split.fds, split.by_inode) == (plain.shared, plain.fds, plain.by_inode)
    assert [h.pid for h in split.shared[12]] == [100, 200, 300]


def test_split_scan_on_the_live_host_finds_every_prefork_holder(prefork, monkeypatch):
    plain = scan_owners("/proc", {prefork.inode}, holders=True)
    monkeypatch.setattr(owners, "SPLIT_AT", 1)
    split = scan_owners("/proc", {prefork.inode}, holders=True)
    assert split.shared == plain.shared
    assert [(h.pid, h.fd) for h in split.shared[prefork.inode]] == prefork.held_in_proc()


# --- explain and namespaces ------------------------------------------------------------------


def test_explain_names_every_holder(cli, prefork) -> None:
    result = cli("--explain", f"127.0.0.1:{prefork.port}", "-o", "plain")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "prefork-main (pid" in text and "and 3 more processes: accept()" in text
    for pid, fd in prefork.held_in_proc():
        assert f"(pid {pid}, fd {fd})" in text
    result = cli("--explain", f"127.0.0.1:{prefork.port}", "-o", "json")
    (account,) = [
        a for a in json.loads(result.stdout)["sockets"] if a["socket"]["state"] == "LISTEN"
    ]
    assert [(o["pid"], o["fd"]) for o in account["socket"]["owners"]] == prefork.held_in_proc()


def test_a_namespaced_listing_lists_every_holder(cli, netns) -> None:
    space = netns("holders")
    proc, said = start(space.argv(sys.executable, "-c", PREFORK))
    try:
        pids = [said["parent"], *said["workers"]]
        result = cli("--netns", space.name, "-l", "-o", "json")
        (record,) = json.loads(result.stdout)
        assert sorted({o["pid"] for o in record["owners"]}) == sorted(pids)
        assert len(record["owners"]) == 5 and record["netns"] == space.inode
        result = cli("--netns", space.name, "-l", "--pid", str(said["workers"][0]), "-o", "json")
        assert len(json.loads(result.stdout)) == 1
    finally:
        stop(proc)


def test_holders_are_not_read_unless_asked(prefork) -> None:
    from tcpstates.sources.netlink import NetlinkSource

    query = Query(states=frozenset({TcpState.LISTEN}), sport=prefork.port)
    (sock,) = NetlinkSource().read(query, owners=True).sockets
    assert sock.holders is None and sock.pid == prefork.parent
    for details in (Details(holders=True), Details(sharers=True)):
        (sock,) = NetlinkSource().read(query, owners=True, details=details).sockets
        assert sock.holders is not None and len(sock.holders) == 5


@needs_tmux
def test_the_live_watch_shows_how_many_more_hold_a_socket(prefork) -> None:
    watch = [*TCPSTATES, "--watch", "0.5", "-l", "--sport", str(prefork.port)]
    with terminal(watch, 100, 20) as term:
        screen = term.wait_for("prefork-main +3")
    (row,) = [line for line in screen.splitlines() if "prefork-main" in line]
    assert row.split()[-3:] == [str(prefork.parent), "prefork-main", "+3"]


def test_a_summary_filtered_by_a_workers_pid_counts_the_listener(cli, prefork) -> None:
    worker = str(prefork.workers[0])
    result = cli("--summary", "-l", "--pid", worker, "--sport", str(prefork.port), "-o", "json")
    assert json.loads(result.stdout) == {"LISTEN": 1}
    result = cli("--summary", "-l", "--pid", "1", "--sport", str(prefork.port), "-o", "json")
    assert json.loads(result.stdout).get("LISTEN", 0) == 0
