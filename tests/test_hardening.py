"""Hardening: no privileges, churn, hostile process names, and the output contract.

Real where it can be: an unprivileged user (runuser -u nobody, with Debian's python3.11 and a
copy of the package it may read), a /proc mounted with hidepid, processes whose names are
hostile, and a background process opening and closing a thousand connections a second.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_run import run_cli
from click.testing import CliRunner

from tcpstates.cli import cli

ROOT = Path(__file__).parent.parent
SYSTEM_PYTHON = "/usr/bin/python3.11"
HOSTILE_NAMES = [
    "[bold red]x[/]",
    "\x1b[2Jwipe",
    "\x1b]8;;http://e\x07a",
    "c1\u009b31mred",
    "bell\x07",
    "rtl\u202etxt",
    "café☃",
]
RAW = ["\x1b", "\x07", "\u009b", "\u202e", "\x00"]


# --- without privileges ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def nobody(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A command prefix running tcpstates as nobody, on a copy of the package nobody may read."""
    if os.geteuid() != 0 or not shutil.which("runuser") or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip("needs root, runuser and /usr/bin/python3.11 (CI has them)")
    site = tmp_path_factory.mktemp("nobody-site")
    shutil.copytree(ROOT / "tcpstates", site / "tcpstates")
    for name in ("click", "rich", "psutil", "markdown_it", "mdurl", "pygments"):
        module = importlib.import_module(name)
        shutil.copytree(Path(module.__file__).parent, site / name)  # type: ignore[arg-type]
    for path in [site, *site.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    for parent in site.parents:  # pytest's temporary root is private to root
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o005)
    return ["runuser", "-u", "nobody", "--", "env", f"PYTHONPATH={site}", SYSTEM_PYTHON, "-m"]


def as_nobody(prefix: list[str], *args: str, wrap: str = "") -> subprocess.CompletedProcess[str]:
    argv = [*prefix, "tcpstates", *args]
    if wrap:
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", wrap + ' && exec "$@"',
                "sh", *argv]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def root_listener() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


def test_unprivileged_full_list_with_one_hint_and_no_sudo(nobody, root_listener) -> None:
    done = as_nobody(nobody, "-o", "json")
    assert done.returncode == 0, done.stderr
    mine = [r for r in json.loads(done.stdout) if r["local_port"] == root_listener]
    assert len(mine) == 1 and mine[0]["pid"] is None  # root's socket: listed, owner unseen
    hints = done.stderr.splitlines()
    assert len(hints) == 1 and "cannot be attributed" in hints[0] and "sudo" not in done.stderr
    plain = as_nobody(nobody, "-o", "plain", "--port", str(root_listener))
    assert plain.returncode == 0 and plain.stdout.splitlines()[1].endswith("-  -")


def test_hidepid_proc_behaves_the_same(nobody, root_listener) -> None:
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    done = as_nobody(nobody, "-o", "json", wrap="mount -t proc -o hidepid=2 proc /proc")
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
    done = as_nobody(nobody, *args)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and needle in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreadable_capture_is_one_line(nobody, tmp_path: Path) -> None:
    secret = tmp_path / "tcp"
    secret.write_text("  sl  local_address rem_address   st\n")
    secret.chmod(0o600)
    tmp_path.chmod(0o755)
    done = as_nobody(nobody, "--from", str(secret))
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
def test_hostile_names_reach_no_terminal_raw(hostile, args) -> None:
    done = run_cli(*args, *_ports_args(hostile))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for raw in RAW[1:]:
        assert raw not in out, (args, repr(raw))
    if "never" in args or "plain" in args or "csv" in args:
        assert "\x1b" not in out
    else:  # our own colours only: no clear-screen, no OSC 8 hyperlink
        assert "\x1b[2J" not in out and "\x1b]8" not in out
    assert "[bold red]x" in out  # shown as the text it is, never taken as markup


def test_json_escapes_hostile_names(hostile) -> None:
    done = run_cli("-o", "json", *_ports_args(hostile))
    assert all(ord(c) < 128 and (c >= " " or c == "\n") for c in done.stdout)
    names = {r["process"] for r in json.loads(done.stdout) if r["local_port"] in hostile}
    assert names == {
        name.encode()[:15].decode("utf-8", "backslashreplace") for name in HOSTILE_NAMES
    }


def test_a_non_ascii_name_under_the_c_locale(hostile) -> None:
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    done = subprocess.run(
        [sys.executable, "-m", "tcpstates", "-o", "plain", "-l"],
        capture_output=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and b"Traceback" not in done.stderr


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
def test_colour_switches(env: dict[str, str], args: tuple[str, ...], coloured: bool) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    done = subprocess.run(
        [sys.executable, "-m", "tcpstates", "--explain", "-o", "table", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert ("\x1b[" in done.stdout) is coloured


def test_narrow_columns_never_cut_an_address_when_piped(tmp_path: Path) -> None:
    capture = tmp_path / "tcp6"
    capture.write_text(
        "  sl  local_address                         remote_address                        st"
        " tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 000080FE00000000FF005452120000FE:1F90 000080FE00000000FF005452130000FE:C350 01"
        " 00000000:00000000 00:00000000 00000000     0        0 77 1 0 20 4 30 10 -1\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "tcpstates", "--from", str(capture)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "40"},
        timeout=30,
        check=False,
    )
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


def test_churn_every_format_fifty_times(monkeypatch: pytest.MonkeyPatch) -> None:
    churn = subprocess.Popen(
        [sys.executable, "-c", CHURN, "120"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert churn.stdout is not None and churn.stdout.readline()
        runner = CliRunner()
        for args in (["-o", "json"], ["-o", "jsonl"], ["-o", "csv"], ["-o", "plain"],
                     ["--summary", "-o", "json"]):  # fmt: skip
            for _ in range(50):
                result = runner.invoke(cli, args, catch_exceptions=False)
                assert result.exit_code == 0, result.output
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
