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
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DATA, SYSTEM_PYTHON, TCPSTATES, Cli
from zoo import Zoo

from tcpstates.sources.save import SAVED

LITTLE = DATA / "proc-little"
TABLES = ("tcp", "tcp6", "udp", "udp6")


def listing(cli: Cli, *args: str, stdin: str = "") -> list[dict[str, object]]:
    done = cli.process(*args, "-t", "-u", "-o", "json", stdin=stdin)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def concatenated() -> str:
    return "".join((LITTLE / name).read_text() for name in TABLES)


def test_directory_files_concatenation_and_stdin_agree(cli, tmp_path: Path) -> None:
    from_dir = listing(cli, "--from", str(LITTLE))
    assert len(from_dir) > 5 and {r["proto"] for r in from_dir} == {"tcp", "udp"}
    joined = tmp_path / "all.txt"
    joined.write_text(concatenated())
    assert listing(cli, "--from", str(joined)) == from_dir
    assert listing(cli, "--from", "-", stdin=concatenated()) == from_dir
    files = [arg for name in TABLES for arg in ("--from", str(LITTLE / name))]
    assert listing(cli, *files) == from_dir


def test_captures_have_no_owners_but_kernel_held_sockets_say_so(cli) -> None:
    rows = listing(cli, "--from", str(LITTLE))
    assert all(r["pid"] is None and r["process"] is None for r in rows)
    plain = cli.process("--from", str(LITTLE), "-o", "plain").stdout
    assert "(kernel)" in plain or all(r["inode"] for r in rows)


def test_filters_and_summary_work_on_a_capture(cli) -> None:
    everything = listing(cli, "--from", str(LITTLE))
    listeners = listing(cli, "--from", str(LITTLE), "-l")
    assert listeners and all(r["state"] in ("LISTEN", "UNCONN") for r in listeners)
    done = cli.process("--from", "-", "--summary", "-o", "json", stdin=concatenated())
    counts = json.loads(done.stdout)
    tcp = [r for r in everything if r["proto"] == "tcp"]
    assert sum(counts.values()) == len(tcp)


def test_save_then_from_gives_what_the_live_host_gave(cli, tmp_path: Path) -> None:
    with Zoo(only=["LISTEN", "ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT2"]) as zoo:
        ports = zoo.ports
        live = listing(cli, "--source", "procfs", "--no-owners")
        saved = cli.process("--save", str(tmp_path / "cap"))
        assert saved.returncode == 0 and "saved" in saved.stderr
    captured = listing(cli, "--from", str(tmp_path / "cap"))

    def ours(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
        # Both ends on the zoo's ports (another test's TIME_WAIT may reuse one port number),
        # and every field but the timer, which ticks between the two reads, and the owners
        # (the capture's, asked for, are null: its inodes are another host's; the live
        # listing was read without them).
        picked = [
            r
            for r in rows
            if r["local_port"] in ports and (r["remote_port"] in ports or not r["remote_port"])
        ]
        left_out = ("timer_ms", "owners")
        return sorted(tuple(v for k, v in r.items() if k not in left_out) for r in picked)

    assert ours(captured) == ours(live) and ours(live)
    assert (tmp_path / "cap" / "sys" / "net" / "ipv4" / "ip_local_port_range").exists()


def test_malformed_text_names_the_source_and_line(cli, tmp_path: Path) -> None:
    bad = concatenated().replace(" 0A ", " ZZ ", 1)
    lineno = bad[: bad.index(" ZZ ")].count("\n") + 1
    path = tmp_path / "bad.txt"
    path.write_text(bad)
    done = cli.process("--from", str(path))
    assert done.returncode == 1
    assert done.stderr.startswith(f"tcpstates: {path}:{lineno}: st 'ZZ' is not 2 hex digits")
    piped = cli.process("--from", "-", stdin="hello\n")
    assert piped.stderr == "tcpstates: standard input:1: not a /proc/net header: 'hello'\n"


BURST = """
import socket, subprocess, sys
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


def test_doctor_reads_a_saved_capture_with_its_settings(cli, netns, tmp_path: Path) -> None:
    target = tmp_path / "cap"
    netns("capture").run(sys.executable, "-c", textwrap.dedent(BURST), str(target), timeout=60)
    done = cli.process("doctor", "--from", str(target), "-o", "json")
    findings = json.loads(done.stdout)["findings"]
    titles = [f["title"] for f in findings]
    assert "Ephemeral ports towards 127.0.0.1:9000: 15 of 20 used (75%)" in titles


# --- one opener for every capture path --------------------------------------------------------

TRACE_PIPES = [
    path
    for path in ("/sys/kernel/tracing/trace_pipe", "/sys/kernel/debug/tracing/trace_pipe")
    if os.path.exists(path)
][:1]
EMPTY = "empty, as kernel files (/proc, tracefs) say; not a capture file"
# What is never read as a capture file (made by the function, given the path), and why.
NOT_CAPTURES = {
    "fifo": (os.mkfifo, "a FIFO, not a capture file"),
    "symlink to /dev/zero": (lambda p: p.symlink_to("/dev/zero"), "a character device, not a"),
    "directory": (os.mkdir, "a directory, not a capture file"),
    "empty file": (lambda p: p.write_bytes(b""), EMPTY),
    "symlink to /proc/kmsg": (lambda p: p.symlink_to("/proc/kmsg"), EMPTY),
}
if TRACE_PIPES:
    NOT_CAPTURES["symlink to trace_pipe"] = (lambda p: p.symlink_to(TRACE_PIPES[0]), EMPTY)
# Where a capture file may be: given itself, in a directory, or where --save puts it.
PLACES = {"file": "tcp", "in a directory": "cap/tcp", "as --save lays it out": "cap/net/tcp"}


@pytest.mark.parametrize(
    ("kind", "place"),
    # A directory given itself is a capture directory (test_a_directory_without_tables_...).
    [
        (kind, place)
        for kind in NOT_CAPTURES
        for place in PLACES
        if (kind, place) != ("directory", "file")
    ],
)
def test_what_is_not_a_capture_file_is_one_line_wherever_it_is(
    cli, tmp_path: Path, kind: str, place: str
) -> None:
    make, reason = NOT_CAPTURES[kind]
    path = tmp_path / PLACES[place]
    path.parent.mkdir(parents=True, exist_ok=True)
    make(path)
    given = path if place == "file" else tmp_path / "cap"
    started = time.monotonic()
    done = cli.process("--from", str(given), "-o", "json", timeout=20)  # a hang fails here
    assert time.monotonic() - started < 15
    assert (done.returncode, done.stdout) == (1, "")
    if kind.startswith("symlink") and place != "file":  # inside a directory no link is followed
        reason = "a symbolic link (a capture directory holds none), not a capture file"
    assert done.stderr.startswith(f"tcpstates: {path}: {reason}") and done.stderr.count("\n") == 1


@pytest.mark.root
def test_a_link_planted_in_a_capture_directory_is_not_followed(
    cli, tmp_path: Path, shared: Path
) -> None:
    # Another user's capture directory whose net/tcp points at a file only root may read:
    # following it, root would quote that file's first line in its error (/etc/shadow's).
    secret = tmp_path / "secret"
    secret.write_text("root:$6$hash-of-roots-password:20000:0:99999:7:::\n")
    secret.chmod(0o600)
    cap = shared / "cap"
    as_user("nobody", 'mkdir -p "$1/net"; ln -s "$2" "$1/net/tcp"', str(cap), str(secret))
    for args in (["--from", str(cap)], ["doctor", "--from", str(cap)]):
        done = cli.process(*args)
        assert done.returncode == 1
        assert "hash-of-roots-password" not in done.stdout + done.stderr
        assert "a symbolic link (a capture directory holds none)" in done.stderr


@pytest.mark.root
def test_a_lease_on_a_capture_file_is_one_line_not_a_wait(cli, shared: Path) -> None:
    # The owner of a file may hold a write lease on it: an open for reading by anyone else
    # then waits fs.lease-break-time (45 s) unless it asks not to wait.
    table = shared / "tcp"
    script = (
        "import fcntl, os, signal, sys, time\n"
        "signal.signal(signal.SIGIO, signal.SIG_IGN)\n"  # told to let go, it holds on
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)\n"
        "os.write(fd, sys.stdin.buffer.read())\n"
        "fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)\n"
        "print('held', flush=True)\n"
        "time.sleep(30)\n"
    )
    with subprocess.Popen(
        ["runuser", "-u", "nobody", "--", SYSTEM_PYTHON, "-c", script, str(table)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    ) as holder:  # fmt: skip
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write((LITTLE / "tcp").read_bytes())
        holder.stdin.close()
        try:
            assert holder.stdout.readline() == b"held\n"
            started = time.monotonic()
            done = cli.process("--from", str(table), timeout=30)
            assert time.monotonic() - started < 10
            assert (done.returncode, done.stderr) == (
                1,
                f"tcpstates: {table}: another process holds a lease on it\n",
            )
        finally:
            holder.kill()


def test_a_fifo_with_a_writer_is_refused_without_taking_its_data(cli, tmp_path: Path) -> None:
    fifo = tmp_path / "tcp"
    os.mkfifo(fifo)
    table = (LITTLE / "tcp").read_bytes()
    writer = subprocess.Popen(["sh", "-c", 'cat "$1" > "$2"', "sh", str(LITTLE / "tcp"), fifo])
    try:
        done = cli.process("--from", str(fifo), timeout=20)
        assert (done.returncode, done.stderr) == (
            1,
            f"tcpstates: {fifo}: a FIFO, not a capture file\n",
        )
        with open(fifo, "rb") as f:  # what the writer wrote is all still there for its reader
            assert f.read() == table
    finally:
        writer.kill()
        writer.wait()


def test_a_directory_without_tables_is_one_line(cli, tmp_path: Path) -> None:
    done = cli.process("--from", str(tmp_path))
    assert (done.returncode, done.stderr) == (
        1,
        f"tcpstates: no /proc/net tables under {tmp_path}\n",
    )


def test_a_missing_file_is_one_line(cli, tmp_path: Path) -> None:
    done = cli.process("--from", str(tmp_path / "missing"))
    assert (done.returncode, done.stderr) == (1, f"tcpstates: {tmp_path}/missing: no such file\n")


@pytest.mark.parametrize("place", PLACES)
def test_an_unreadable_capture_file_is_one_line_for_another_user(
    nobody,
    tmp_path: Path,
    place: str,
) -> None:
    path = tmp_path / PLACES[place]
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(LITTLE / "tcp", path)
    path.chmod(0o000)
    for directory in [tmp_path, *path.parents]:
        if directory == tmp_path.parent:
            break
        directory.chmod(0o755)
    given = path if place == "file" else tmp_path / "cap"
    done = nobody("--from", str(given))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"tcpstates: {path}: permission denied\n"


@pytest.mark.parametrize(
    ("device", "kind"), [("/dev/zero", "a character device"), ("/dev/null", "a character device")]
)
def test_standard_input_must_be_a_pipe_or_a_file(device: str, kind: str) -> None:
    with open(device, "rb") as stdin:
        done = subprocess.run(
            [*TCPSTATES, "--from", "-"],
            stdin=stdin, capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"tcpstates: --from -: standard input is {kind}; pipe a capture into it\n"


def test_an_empty_pipe_is_no_host_rather_than_an_empty_one(cli) -> None:
    # `ssh host cat /proc/net/tcp | tcpstates --from -` with ssh failing must not read as a
    # host without sockets.
    done = cli.process("--from", "-", "-o", "json", stdin="")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "tcpstates: standard input: empty; no /proc/net table in it\n"


def test_standard_input_is_bounded_like_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from tcpstates.model.errors import SourceError
    from tcpstates.model.query import Query
    from tcpstates.sources import capture

    monkeypatch.setattr(capture, "MAX_BYTES", 1 << 20)  # the bound, scaled down to 1 MiB
    header = (LITTLE / "tcp").read_bytes().splitlines(keepends=True)[0]
    read, write = os.pipe()

    def feed() -> None:  # more than the bound, line after line, then EOF
        with os.fdopen(write, "wb") as out:
            try:
                out.write(header * ((2 << 20) // len(header)))
            except BrokenPipeError:
                pass

    writer = threading.Thread(target=feed)
    writer.start()
    with os.fdopen(read, "rb") as stdin, pytest.raises(SourceError, match="more than 1 MiB"):
        list(capture.CaptureSource(["-"], stdin=stdin).read(Query()).sockets)
    writer.join(timeout=10)
    assert not writer.is_alive()


# --- a capture cut short ----------------------------------------------------------------------


def test_a_table_cut_mid_line_is_refused_wherever_it_is(cli, tmp_path: Path) -> None:
    text = (LITTLE / "tcp").read_text()
    cut = text[: text.rindex("\n", 0, len(text) - 1) + 20]  # 20 bytes into the last line
    lineno = cut.count("\n") + 1
    (tmp_path / "cap" / "net").mkdir(parents=True)
    (tmp_path / "cap" / "net" / "tcp").write_text(cut)
    (tmp_path / "tcp").write_text(cut)
    reason = "no newline at the end: cut short"
    for given, shown in (
        (str(tmp_path / "tcp"), tmp_path / "tcp"),
        (str(tmp_path / "cap"), tmp_path / "cap" / "net" / "tcp"),
        ("-", "standard input"),
    ):
        done = cli.process("--from", given, stdin=cut)
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr.startswith(f"tcpstates: {shown}:{lineno}: {reason}: ")
        assert done.stderr.count("\n") == 1
    whole = cli.process("--from", "-", "-o", "json", stdin=text)  # the same table, whole: it reads
    assert whole.returncode == 0 and json.loads(whole.stdout)


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        ("   5: " + "A" * (10 << 20) + "\n", "longer than 4096 bytes"),  # read no further
        ("   5: 0100007F:1F90\0 0100007F:C350 01\n", "NUL byte"),
    ],
)
def test_a_line_no_table_has_is_refused_at_its_number(
    cli, tmp_path: Path, tail: str, reason: str
) -> None:
    text = (LITTLE / "tcp").read_text()
    path = tmp_path / "tcp"
    path.write_text(text + tail)
    done = cli.process("--from", str(path))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"tcpstates: {path}:{text.count(chr(10)) + 1}: {reason}")
    assert len(done.stderr) < 300


# --- memory grows with the sockets kept, not the file ----------------------------------------

PEAK = """
import sys
from tcpstates.cli.root import run
status = run(sys.argv[1:])
with open("/proc/self/status") as f:
    peak = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
print(f"\\npeak-kib {peak} status {status}", file=sys.stderr)
"""


def peak_kib(*args: str) -> tuple[int, float, str]:
    """Run tcpstates ARGS in a fresh process: its peak RSS (VmHWM, KiB), seconds, stdout."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    seconds = time.monotonic() - started
    words = done.stderr.split()
    assert words[-2:] == ["status", "0"], done.stderr
    return int(words[words.index("peak-kib") + 1]), seconds, done.stdout


def test_a_large_capture_costs_memory_for_the_sockets_kept_not_the_file(tmp_path: Path) -> None:
    header = (LITTLE / "tcp").read_text().splitlines(keepends=True)[0]
    line = (
        "{:4d}: 0100007F:{:04X} 0100007F:1F90 01 00000000:00000000 00:00000000 00000000"
        "     0        0 {} 1 0000000000000000 20 4 30 10 -1\n"
    )
    sockets = "".join(line.format(i, 10000 + i % 50000, 5000 + i) for i in range(200_000))
    listeners = "".join(line.format(i, 20000 + i, 1).replace(" 01 ", " 0A ", 1) for i in range(5))
    big = tmp_path / "big"
    with big.open("w") as f:
        f.write(header * 350_000)  # about 50 MB of header lines
        f.write(sockets)  # 30 MB of sockets the filter leaves out
        f.write(listeners)
    small = tmp_path / "small"
    small.write_text(header + listeners)
    assert big.stat().st_size > 75_000_000
    base, _, expected = peak_kib("--from", str(small), "-l", "-o", "json")
    try:
        peak, seconds, listed = peak_kib("--from", str(big), "-l", "-o", "json")
    finally:
        big.unlink()  # pytest keeps its last temporary directories: not 80 MB of them
    assert listed == expected and len(json.loads(listed)) == 5
    # Measured on a loaded 2-core machine: 17 MiB for the 5 lines, 19 MiB and 1 s for the 80 MB;
    # read whole and split, as before, the same file took 250 MiB.
    assert peak - base < 16 * 1024, (peak, base)
    assert seconds < 20, seconds  # linear is 1 s; a quadratic step takes minutes


# --- --save: private, all or nothing, never through another user's symlink ------------------


def needs_tools() -> None:
    if not shutil.which("runuser") or not shutil.which("mount"):
        pytest.skip("needs runuser and mount (util-linux)")


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
    needs_tools()
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


@pytest.mark.root
def test_save_never_writes_through_a_symlink_another_user_planted(
    cli, tmp_path: Path, shared: Path
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
    refused = cli.process("--save", str(cap))
    assert (refused.returncode, refused.stderr) == (
        1, f"tcpstates: --save {cap}: not empty; --replace replaces a capture\n"
    )  # fmt: skip
    replaced = cli.process("--save", str(cap), "--replace")
    assert replaced.returncode == 0, replaced.stderr
    assert (victim.read_bytes(), victim.stat().st_mtime_ns) == before
    assert os.listdir(shared) == ["cap"]  # nobody's tree swapped out and removed, no temp left
    info = cap.lstat()
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and stat.S_IMODE(info.st_mode) == 0o700
    tcp = cap / "net" / "tcp"
    assert not tcp.is_symlink() and tcp.read_text().split()[:2] == ["sl", "local_address"]
    assert listing(cli, "--from", str(cap))  # and it reads back


@pytest.mark.root
def test_save_refuses_a_symlink_as_its_directory(cli, tmp_path: Path, shared: Path) -> None:
    target = tmp_path / "roots"  # root's own directory, empty: --save may not put files there
    target.mkdir()
    as_user("nobody", 'ln -s "$2" "$1"', str(shared / "cap"), str(target))
    for extra in ((), ("--replace",)):
        done = cli.process("--save", str(shared / "cap"), *extra)
        assert (done.returncode, done.stderr) == (
            1, f"tcpstates: --save {shared}/cap: a symbolic link; give the directory itself\n"
        )  # fmt: skip
    assert os.listdir(target) == [] and sorted(os.listdir(shared)) == ["cap"]


@pytest.mark.root
def test_replace_removes_the_old_capture_without_following_its_symlinks(
    cli, tmp_path: Path, shared: Path
) -> None:
    precious = tmp_path / "precious"  # a directory of root's with a file in it
    precious.mkdir()
    (precious / "keep").write_text("keep me\n")
    cap = shared / "cap"
    as_user(
        "nobody", 'mkdir "$1"; ln -s "$2" "$1/net"; ln -s "$2" "$1/sys"', str(cap), str(precious)
    )
    done = cli.process("--save", str(cap), "--replace")
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
def test_save_leaves_what_is_not_a_capture_alone(cli, tmp_path: Path, make, args, reason) -> None:
    target = tmp_path / "cap"
    if "not a directory" not in reason:
        target.mkdir()
    make(target)
    before = snapshot(tmp_path)
    done = cli.process("--save", str(target), *args)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"tcpstates: --save {target}: {reason}")
    assert snapshot(tmp_path) == before


def test_save_into_an_empty_directory_or_a_new_one(cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for name in ("empty", "new"):
        done = cli.process("--save", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
        assert (tmp_path / name / "net" / "tcp").is_file()
    assert sorted(os.listdir(tmp_path)) == ["empty", "new"]


def test_replace_goes_with_save(cli) -> None:
    done = cli.process("--replace")
    assert (done.returncode, done.stderr) == (
        2,
        "tcpstates: --replace does not apply to a listing: it goes with --save DIR\n",
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 16 KiB tmpfs: four pages, fewer than a capture's files."""
    needs_tools()
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tcpstates-test", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.root
def test_a_save_on_a_full_disk_leaves_nothing_behind(cli, small_disk: Path) -> None:
    done = cli.process("--save", str(small_disk / "cap"))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"tcpstates: cannot save to {small_disk}/cap: No space left on device\n"
    assert os.listdir(small_disk) == []  # no capture, no half of one, no temporary directory


@pytest.mark.root
def test_a_replace_on_a_full_disk_keeps_the_previous_capture(cli, small_disk: Path) -> None:
    cap = small_disk / "cap"
    (cap / "net").mkdir(parents=True)
    shutil.copy(LITTLE / "tcp", cap / "net" / "tcp")  # one page of the four
    before, rows = snapshot(cap), listing(cli, "--from", str(cap))
    done = cli.process("--save", str(cap), "--replace")
    assert (done.returncode, done.stderr) == (
        1, f"tcpstates: cannot save to {cap}: No space left on device\n"
    )  # fmt: skip
    assert os.listdir(small_disk) == ["cap"] and snapshot(cap) == before
    assert listing(cli, "--from", str(cap)) == rows


def _size_now(path: str) -> int:
    """How many bytes /proc/PATH reads as now (its stat size is 0); 0 where it is missing."""
    try:
        return len(Path("/proc", path).read_bytes())
    except OSError:
        return 0


@pytest.mark.root
def test_a_save_with_room_enough_is_the_capture_alone(cli, tmp_path: Path) -> None:
    needs_tools()  # the control for the two above: the same tmpfs, larger, and the save succeeds
    mount = tmp_path / "roomy"
    mount.mkdir()
    # Room for two captures of this host as it is now (a replace holds both for a moment),
    # twice over: a busy host's tables outgrew a fixed 4 MiB once in a CI run.
    room = max(4 << 20, 4 * sum(_size_now(path) for path in SAVED))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={room}", "tcpstates-test", str(mount)], check=True
    )
    try:
        for _ in range(2):
            done = cli.process("--save", str(mount / "cap"), "--replace")
            assert done.returncode == 0, done.stderr
            assert os.listdir(mount) == ["cap"]
    finally:
        subprocess.run(["umount", str(mount)], check=True)
