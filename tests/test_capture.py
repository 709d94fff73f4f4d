"""Captures: --from a directory, files, concatenated tables or standard input; --save and back.

The same tables read every way must give the same records; a live zoo saved and read back
must give what the live host gave; bad input gets one line naming the file and line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
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
