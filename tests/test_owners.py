"""The owner scan over a /proc-shaped tree: sockets found, vanished and forbidden processes."""

from __future__ import annotations

import os

from click.testing import CliRunner

from tcpstates.cli import cli
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


def test_forbidden_processes_are_counted_not_fatal(tmp_path, monkeypatch):
    # Root reads every fd table, so the refusal a normal user meets is simulated here.
    fake_proc(tmp_path, 100, "mine", [11])
    fake_proc(tmp_path, 200, "theirs", [12])
    real_open = os.open

    def open_(path, flags, *args, **kwargs):
        if str(path).endswith("/200/fd"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(owners.os, "open", open_)
    scan = scan_owners(str(tmp_path))
    assert set(scan.by_inode) == {11} and scan.hidden_processes == 1


def test_hidden_owners_give_one_hint_and_exit_0(monkeypatch):
    monkeypatch.setattr(owners, "_scan_process", _forbid_all)
    result = CliRunner().invoke(cli, ["--source", "procfs"], catch_exceptions=False)
    assert result.exit_code == 0
    hints = [line for line in result.stderr.splitlines() if line]
    assert len(hints) == 1 and "cannot be attributed; their owner shows as -" in hints[0]
    assert "sudo" not in result.stderr
    rows = result.stdout.splitlines()[1:]
    assert all(row.endswith(("-", "(kernel)")) for row in rows)


def _forbid_all(proc, pid, result):
    result.hidden_processes += 1
