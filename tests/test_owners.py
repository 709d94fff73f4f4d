"""The owner scan over a /proc-shaped tree: sockets found, vanished and forbidden processes."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import time
from array import array
from pathlib import Path

import pytest

from tcpstates.sources import owners
from tcpstates.sources.owners import scan_owners


def fake_proc(tmp_path, pid: int, name: str, inodes: list[int]) -> None:
    fd = tmp_path / str(pid) / "fd"
    fd.mkdir(parents=True)
    (tmp_path / str(pid) / "comm").write_text(name + "\n")
    for number, inode in enumerate(inodes, 3):
        os.symlink(f"socket:[{inode}]", fd / str(number))
    os.symlink("/dev/null", fd / "0")


def test_scan_maps_inodes_to_the_lowest_pid(tmp_path):
    fake_proc(tmp_path, 200, "worker", [11, 12])
    fake_proc(tmp_path, 100, "nginx", [11])
    (tmp_path / "self").mkdir()  # not a pid: ignored
    scan = scan_owners(str(tmp_path))
    assert {i: (o.pid, o.process) for i, o in scan.by_inode.items()} == {
        11: (100, "nginx"),
        12: (200, "worker"),
    }


def test_wanted_stops_early_and_empty_wanted_scans_nothing(tmp_path):
    fake_proc(tmp_path, 100, "a", [11])
    fake_proc(tmp_path, 200, "b", [12])
    assert set(scan_owners(str(tmp_path), wanted={11}).by_inode) == {11}
    assert scan_owners(str(tmp_path), wanted=set()).by_inode == {}


def forbid_fd_tables(monkeypatch, suffix: str) -> None:
    """Refuse to open fd tables whose path ends with ``suffix``, as for another user's process.

    Root reads every fd table, so the refusal a normal user meets is simulated.
    """
    real_open = os.open

    def open_(path, flags, *args, **kwargs):
        if str(path).endswith(suffix):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(owners.os, "open", open_)


def test_forbidden_processes_are_counted_not_fatal(tmp_path, monkeypatch):
    fake_proc(tmp_path, 100, "mine", [11])
    fake_proc(tmp_path, 200, "theirs", [12])
    forbid_fd_tables(monkeypatch, "/200/fd")
    scan = scan_owners(str(tmp_path))
    assert set(scan.by_inode) == {11} and scan.hidden_processes == 1


def test_hidden_owners_give_one_hint_and_exit_0(cli, monkeypatch):
    forbid_fd_tables(monkeypatch, "/fd")
    result = cli("--source", "procfs")
    assert result.returncode == 0
    hints = [line for line in result.stderr.splitlines() if line]
    assert len(hints) == 1 and "cannot be attributed; their owner shows as -" in hints[0]
    assert "sudo" not in result.stderr
    rows = result.stdout.splitlines()[1:]
    assert all(row.endswith(("-", "(kernel)")) for row in rows)


def test_split_scan_matches_the_serial_one_and_keeps_the_lowest_pid(tmp_path, monkeypatch):
    # pid 100 holds 11 and 12; pid 200 shares 12 and has 13..; the split cuts pid 200's list.
    fake_proc(tmp_path, 100, "parent", [11, 12])
    fake_proc(tmp_path, 200, "child", [12, *range(13, 40)])
    fake_proc(tmp_path, 300, "other", [40, 41])
    serial = scan_owners(str(tmp_path))
    monkeypatch.setattr(owners, "SPLIT_AT", 1)
    split = scan_owners(str(tmp_path), wanted=set(range(11, 42)))
    assert split.by_inode == serial.by_inode
    assert split.by_inode[12].pid == 100 and split.by_inode[40].process == "other"


def test_split_scan_on_the_live_host_finds_what_the_serial_scan_finds(sockets, monkeypatch):
    listeners = [sockets.listener() for _ in range(20)]
    wanted = {os.fstat(s.fileno()).st_ino for s in listeners}
    serial = scan_owners("/proc", wanted)
    monkeypatch.setattr(owners, "SPLIT_AT", 1)
    split = scan_owners("/proc", wanted)
    assert {i: split.by_inode[i] for i in wanted} == {i: serial.by_inode[i] for i in wanted}
    assert {split.by_inode[i].pid for i in wanted} == {os.getpid()}


def test_child_results_come_back_and_a_failed_child_is_reported():
    sent = array("Q", [1, 2, 3, 3, 2**40, 4])
    assert owners._Child(lambda: sent).result() == sent
    assert owners._Child(lambda: array("Q", [1 // 0])).result() is None


@pytest.fixture
def alone() -> None:
    """No thread of an earlier test's still running (a read-ahead ends within its 1 s wake, a
    name lookup within 1 s): a scan may fork only then, and these tests look at whether it
    does. Waits 5 s at most."""
    deadline = time.monotonic() + 5
    while _thread._count():
        assert time.monotonic() < deadline, f"{_thread._count()} threads still running"
        time.sleep(0.02)


def test_no_fork_beside_a_thread_started_without_threading(tmp_path, monkeypatch, alone):
    # inet_diag's read-ahead is such a thread: threading.active_count() does not see it.
    fake_proc(tmp_path, 100, "a", [11, 12])
    monkeypatch.setattr(owners, "SPLIT_AT", 1)
    forks: list[int] = []
    child = owners._Child
    monkeypatch.setattr(owners, "_Child", lambda work: forks.append(1) or child(work))
    scan_owners(str(tmp_path), wanted={11, 12})
    assert forks == [1] or (os.cpu_count() or 1) == 1
    forks.clear()
    with Thread():
        scan = scan_owners(str(tmp_path), wanted={11, 12})
    assert forks == [] and set(scan.by_inode) == {11, 12}


class Thread:
    """A thread started without threading, as inet_diag's read-ahead is, until ``stop``."""

    def __enter__(self) -> Thread:
        self.release = _thread.allocate_lock()
        self.release.acquire()
        _thread.start_new_thread(self.release.acquire, ())
        deadline = time.monotonic() + 2
        while not _thread._count():  # counted once it runs
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.release()


def asked(monkeypatch) -> list[int]:
    """How many halves the helper is asked to read, from here on."""
    halves: list[int] = []
    ask = owners._Helper.ask
    monkeypatch.setattr(owners._Helper, "ask", lambda *a: halves.append(1) or ask(*a))
    return halves


def test_beside_threads_the_helper_reads_half_and_finds_what_a_plain_scan_finds(
    sockets, monkeypatch, alone
):
    listeners = [sockets.listener() for _ in range(20)]
    wanted = {os.fstat(s.fileno()).st_ino for s in listeners}
    plain = scan_owners("/proc", wanted, holders=True)
    monkeypatch.setattr(owners, "SPLIT_AT", 1)
    halves = asked(monkeypatch)
    with owners.ScanHelper():
        helper = owners._helper
        assert helper is not None or (os.cpu_count() or 1) == 1
        with Thread():
            for holders in (False, True, False):  # one helper, asked again and again
                split = scan_owners("/proc", wanted, holders)
                assert {i: split.by_inode[i] for i in wanted} == {
                    i: plain.by_inode[i] for i in wanted
                }
                if holders:
                    assert split.fds == plain.fds and split.shared == plain.shared
    if helper is not None:
        assert halves == [1, 1, 1]
        assert owners._helper is None
        with pytest.raises(ChildProcessError):
            os.waitpid(helper.pid, os.WNOHANG)  # gone, and reaped


def test_a_helper_that_dies_leaves_the_scan_whole(tmp_path, monkeypatch, alone):
    fake_proc(tmp_path, 100, "a", [11, 12])
    fake_proc(tmp_path, 200, "b", [13, *range(14, 40)])
    plain = scan_owners(str(tmp_path))
    monkeypatch.setattr(owners, "SPLIT_AT", 1)
    with owners.ScanHelper():
        if owners._helper is None:
            pytest.skip("one core: no helper is made")
        os.kill(owners._helper.pid, signal.SIGKILL)
        with Thread():
            for _ in range(2):  # it dies asked, then is asked no more
                assert scan_owners(str(tmp_path), wanted=set(range(11, 40))).by_inode == (
                    plain.by_inode
                )


def test_the_helper_ignores_ctrl_c_and_leaves_with_its_process(tmp_path):
    # Ctrl-C goes to the terminal's whole process group: the screen decides, not the helper.
    script = (
        "import os, signal, sys, time\n"
        "from tcpstates.sources.owners import ScanHelper\n"
        "import tcpstates.sources.owners as owners\n"
        "with ScanHelper():\n"
        "    print(owners._helper.pid, flush=True)\n"
        "    os.kill(owners._helper.pid, signal.SIGINT)\n"
        "    time.sleep(0.3)\n"
        "    print(os.waitpid(owners._helper.pid, os.WNOHANG)[0], flush=True)\n"
        "    os._exit(0)  # no goodbye: the helper must see its requests end and leave\n"
    )
    if (os.cpu_count() or 1) == 1:
        pytest.skip("one core: no helper is made")
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    helper, waited = (int(line) for line in run.stdout.split())
    assert waited == 0 and run.stderr == ""  # still there after SIGINT, and silent
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{helper}") and "Z" not in status(helper):
        assert time.monotonic() < deadline, "the helper outlived its process"
        time.sleep(0.02)


def status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
