"""Captures: --from a directory, files, concatenated tables or standard input; --save and back.

The same tables read every way must give the same records; a live zoo saved and read back
must give what the live host gave; bad input gets one line naming the file and line.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_run import run_cli
from zoo import Zoo

DATA = Path(__file__).parent / "data"
LITTLE = DATA / "proc-little"
TABLES = ("tcp", "tcp6", "udp", "udp6")


def listing(*args: str, stdin: str = "") -> list[dict[str, object]]:
    done = run_cli(*args, "-t", "-u", "-o", "json", stdin=stdin)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def concatenated() -> str:
    return "".join((LITTLE / name).read_text() for name in TABLES)


def test_directory_files_concatenation_and_stdin_agree(tmp_path: Path) -> None:
    from_dir = listing("--from", str(LITTLE))
    assert len(from_dir) > 5 and {r["proto"] for r in from_dir} == {"tcp", "udp"}
    joined = tmp_path / "all.txt"
    joined.write_text(concatenated())
    assert listing("--from", str(joined)) == from_dir
    assert listing("--from", "-", stdin=concatenated()) == from_dir
    files = [arg for name in TABLES for arg in ("--from", str(LITTLE / name))]
    assert listing(*files) == from_dir


def test_captures_have_no_owners_but_kernel_held_sockets_say_so() -> None:
    rows = listing("--from", str(LITTLE))
    assert all(r["pid"] is None and r["process"] is None for r in rows)
    plain = run_cli("--from", str(LITTLE), "-o", "plain").stdout
    assert "(kernel)" in plain or all(r["inode"] for r in rows)


def test_filters_and_summary_work_on_a_capture() -> None:
    everything = listing("--from", str(LITTLE))
    listeners = listing("--from", str(LITTLE), "-l")
    assert listeners and all(r["state"] in ("LISTEN", "UNCONN") for r in listeners)
    done = run_cli("--from", "-", "--summary", "-o", "json", stdin=concatenated())
    counts = json.loads(done.stdout)
    tcp = [r for r in everything if r["proto"] == "tcp"]
    assert sum(counts.values()) == len(tcp)


def test_save_then_from_gives_what_the_live_host_gave(tmp_path: Path) -> None:
    with Zoo(only=["LISTEN", "ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT2"]) as zoo:
        ports = zoo.ports
        live = listing("--source", "procfs", "--no-owners")
        saved = run_cli("--save", str(tmp_path / "cap"))
        assert saved.returncode == 0 and "saved" in saved.stderr
    captured = listing("--from", str(tmp_path / "cap"))

    def ours(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
        # Both ends on the zoo's ports (another test's TIME_WAIT may reuse one port number),
        # and every field but the timer, which ticks between the two reads.
        picked = [
            r
            for r in rows
            if r["local_port"] in ports and (r["remote_port"] in ports or not r["remote_port"])
        ]
        return sorted(tuple(v for k, v in r.items() if k != "timer_ms") for r in picked)

    assert ours(captured) == ours(live) and ours(live)
    assert (tmp_path / "cap" / "sys" / "net" / "ipv4" / "ip_local_port_range").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such file"),
        (lambda p: Path("/dev/zero"), "not a regular file or a pipe"),
        (lambda p: p, "no /proc/net tables under"),
    ],
)
def test_bad_paths_are_one_line_errors(tmp_path: Path, make, message: str) -> None:
    done = run_cli("--from", str(make(tmp_path)))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and message in done.stderr


def test_malformed_text_names_the_source_and_line(tmp_path: Path) -> None:
    bad = concatenated().replace(" 0A ", " ZZ ", 1)
    lineno = bad[: bad.index(" ZZ ")].count("\n") + 1
    path = tmp_path / "bad.txt"
    path.write_text(bad)
    done = run_cli("--from", str(path))
    assert done.returncode == 1
    assert done.stderr.startswith(f"tcpstates: {path}:{lineno}: st 'ZZ' is not 2 hex digits")
    piped = run_cli("--from", "-", stdin="hello\n")
    assert piped.stderr == "tcpstates: standard input:1: no /proc/net table header: 'hello'\n"


def test_a_fifo_without_a_writer_is_an_error_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = run_cli("--from", str(fifo), "-o", "json", timeout=10)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"tcpstates: {fifo}: a FIFO with nothing to read (no writer)\n"


BURST = """
import socket, subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
    f.write("40000 40019")
server = socket.create_server(("127.0.0.1", 9000), backlog=64)
for _ in range(15):
    client = socket.create_connection(("127.0.0.1", 9000))
    accepted, _ = server.accept()
    client.close()
    accepted.close()
subprocess.run([sys.executable, "-m", "tcpstates", "--save", sys.argv[1]], check=True)
"""


def test_doctor_reads_a_saved_capture_with_its_settings(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("network namespaces need root and unshare (CI runs as root)")
    target = tmp_path / "cap"
    subprocess.run(
        ["unshare", "-n", sys.executable, "-c", textwrap.dedent(BURST), str(target)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    done = run_cli("doctor", "--from", str(target), "-o", "json")
    findings = json.loads(done.stdout)["findings"]
    titles = [f["title"] for f in findings]
    assert "Ephemeral ports towards 127.0.0.1:9000: 15 of 20 used (75%)" in titles


# --- --save: private, all or nothing, never through another user's symlink ------------------


def needs_root() -> None:
    if os.geteuid() != 0 or not shutil.which("runuser") or not shutil.which("mount"):
        pytest.skip("needs root, runuser and mount (CI runs as root)")


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under root: a file's bytes, a symlink's target, a directory's mode."""
    shot: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            shot[key] = "-> " + os.readlink(path)
        elif path.is_dir():
            shot[key] = oct(path.stat().st_mode)
        else:
            shot[key] = path.read_bytes()
    return shot


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A sticky world-writable directory, like /tmp, that nobody can reach."""
    needs_root()
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(0o1777)
    for parent in directory.parents:
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o001)
    return directory


def as_user(user: str, script: str, *args: str) -> None:
    subprocess.run(["runuser", "-u", user, "--", "sh", "-euc", script, "sh", *args], check=True)


def test_save_never_writes_through_a_symlink_another_user_planted(
    tmp_path: Path, shared: Path
) -> None:
    victim = tmp_path / "victim"  # a file of root's that nobody cannot write
    victim.write_bytes(b"precious\n")
    before = (victim.read_bytes(), victim.stat().st_mtime_ns)
    cap = shared / "cap"
    as_user(
        "nobody",
        'mkdir -p "$1/net" "$1/sys/net/core"; ln -s "$2" "$1/net/tcp";'
        ' ln -s "$2" "$1/net/netstat"; ln -s "$2" "$1/sys/net/core/somaxconn"',
        str(cap), str(victim),
    )  # fmt: skip
    refused = run_cli("--save", str(cap))
    assert (refused.returncode, refused.stderr) == (
        1, f"tcpstates: --save {cap}: not empty; --replace replaces a capture\n"
    )  # fmt: skip
    replaced = run_cli("--save", str(cap), "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert (victim.read_bytes(), victim.stat().st_mtime_ns) == before
    assert os.listdir(shared) == ["cap"]  # nobody's tree swapped out and removed, no temp left
    info = cap.lstat()
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and stat.S_IMODE(info.st_mode) == 0o700
    tcp = cap / "net" / "tcp"
    assert not tcp.is_symlink() and tcp.read_text().split()[:2] == ["sl", "local_address"]
    assert listing("--from", str(cap))  # and it reads back


def test_save_refuses_a_symlink_as_its_directory(tmp_path: Path, shared: Path) -> None:
    target = tmp_path / "roots"  # root's own directory, empty: --save may not put files there
    target.mkdir()
    as_user("nobody", 'ln -s "$2" "$1"', str(shared / "cap"), str(target))
    for extra in ((), ("--replace",)):
        done = run_cli("--save", str(shared / "cap"), *extra)
        assert (done.returncode, done.stderr) == (
            1, f"tcpstates: --save {shared}/cap: a symbolic link; give the directory itself\n"
        )  # fmt: skip
    assert os.listdir(target) == [] and sorted(os.listdir(shared)) == ["cap"]


def test_replace_removes_the_old_capture_without_following_its_symlinks(
    tmp_path: Path, shared: Path
) -> None:
    precious = tmp_path / "precious"  # a directory of root's with a file in it
    precious.mkdir()
    (precious / "keep").write_text("keep me\n")
    cap = shared / "cap"
    as_user(
        "nobody", 'mkdir "$1"; ln -s "$2" "$1/net"; ln -s "$2" "$1/sys"', str(cap), str(precious)
    )
    done = run_cli("--save", str(cap), "--replace")
    assert done.returncode == 0, done.stderr
    assert snapshot(precious) == {"keep": b"keep me\n"}
    assert not (cap / "net").is_symlink() and (cap / "net" / "tcp").is_file()


@pytest.mark.parametrize(
    ("make", "args", "reason"),
    [
        (lambda p: p.write_text("x"), (), "exists and is not a directory"),
        (lambda p: (p / "notes.txt").write_text("x"), ("--replace",), "holds 'notes.txt', which"),
        (lambda p: (p / "net").mkdir(), (), "not empty; --replace replaces a capture"),
    ],
)
def test_save_leaves_what_is_not_a_capture_alone(tmp_path: Path, make, args, reason) -> None:
    target = tmp_path / "cap"
    if "not a directory" not in reason:
        target.mkdir()
    make(target)
    before = snapshot(tmp_path)
    done = run_cli("--save", str(target), *args)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"tcpstates: --save {target}: {reason}")
    assert snapshot(tmp_path) == before


def test_save_into_an_empty_directory_or_a_new_one(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for name in ("empty", "new"):
        done = run_cli("--save", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
        assert (tmp_path / name / "net" / "tcp").is_file()
    assert sorted(os.listdir(tmp_path)) == ["empty", "new"]


def test_replace_goes_with_save() -> None:
    done = run_cli("--replace")
    assert (done.returncode, done.stderr) == (2, "tcpstates: --replace goes with --save DIR\n")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 KiB tmpfs: four pages, fewer than a capture's files."""
    needs_root()
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tcpstates-test", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_save_on_a_full_disk_leaves_nothing_behind(small_disk: Path) -> None:
    done = run_cli("--save", str(small_disk / "cap"))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"tcpstates: cannot save to {small_disk}/cap: No space left on device\n"
    assert os.listdir(small_disk) == []  # no capture, no half of one, no temporary directory


def test_a_replace_on_a_full_disk_keeps_the_previous_capture(small_disk: Path) -> None:
    cap = small_disk / "cap"
    (cap / "net").mkdir(parents=True)
    shutil.copy(LITTLE / "tcp", cap / "net" / "tcp")  # one page of the four
    before, rows = snapshot(cap), listing("--from", str(cap))
    done = run_cli("--save", str(cap), "--replace")
    assert (done.returncode, done.stderr) == (
        1, f"tcpstates: cannot save to {cap}: No space left on device\n"
    )  # fmt: skip
    assert os.listdir(small_disk) == ["cap"] and snapshot(cap) == before
    assert listing("--from", str(cap)) == rows


def test_a_save_with_room_enough_is_the_capture_alone(tmp_path: Path) -> None:
    needs_root()  # the control for the two above: the same tmpfs, larger, and the save succeeds
    mount = tmp_path / "roomy"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tcpstates-test", str(mount)], check=True
    )
    try:
        for _ in range(2):
            done = run_cli("--save", str(mount / "cap"), "--replace")
            assert done.returncode == 0, done.stderr
            assert os.listdir(mount) == ["cap"]
    finally:
        subprocess.run(["umount", str(mount)], check=True)
