"""The command line: every option, every error path, exact one-line errors, no tracebacks."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import DATA, TCPSTATES

from tcpstates import __version__
from tcpstates.model.errors import ExitStatus


def test_version(cli):
    result = cli.process("--version")
    assert (result.returncode, result.stdout) == (0, f"tcpstates, version {__version__}\n")


def test_default_is_plain_when_piped(cli):
    result = cli()
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].split() == [
        "State", "Recv-Q", "Send-Q", "Local", "Address:Port", "Peer", "Address:Port", "PID",
        "Process",
    ]  # fmt: skip


def test_table_format_when_asked(cli, sockets):
    # A few rows of our own: past 2,000 rows (a host after a churn test) the table turns plain.
    port = str(sockets.listener().getsockname()[1])
    result = cli("-o", "table", "--no-owners", "--sport", port)
    assert result.returncode == 0
    assert "State" in result.stdout and " socket" in result.stdout
    assert "\x1b[" not in result.stdout  # not a terminal: no colour codes


def test_no_owners_drops_owner_columns(cli):
    result = cli("--no-owners")
    assert "PID" not in result.stdout.splitlines()[0]


def test_proto_column_only_with_both_protocols(cli):
    assert cli("-t", "-u").stdout.startswith("Proto")
    assert cli("-u").stdout.startswith("State")


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "plain"])
def test_every_format_runs(cli, fmt):
    result = cli("-o", fmt, "-4")
    assert result.returncode == 0
    if fmt == "json":
        assert isinstance(json.loads(result.stdout), list)


@pytest.mark.slow
def test_source_choices_all_work(cli):
    for source in ("auto", "netlink", "procfs", "psutil"):
        result = cli("--source", source, "-o", "json", "-l")
        assert result.returncode == 0, source


def test_verbose_names_the_source(cli):
    result = cli("-v", "-l")
    assert "tcpstates: reading sockets with netlink" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-s", "TIME_WAITING"], "unknown state 'TIME_WAITING'; valid: UNKNOWN, ESTABLISHED"),
        (["--explain", "nope"], "unknown state 'nope'"),
        (["--port", "70000"], "70000 is not in the range 0<=x<=65535"),
        (["--local", "localhost"], "'localhost' is not an IP address or CIDR block"),
        (["-o", "yaml"], "'yaml' is not one of"),
        (["--bogus"], "No such option '--bogus'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(cli, args, needle):
    result = cli.process(*args)
    assert result.returncode == ExitStatus.USAGE
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("tcpstates: ")
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_source_is_exit_1(cli, monkeypatch):
    from tcpstates.sources import procfs

    monkeypatch.setattr(procfs.ProcfsSource, "__init__", _point_at_nothing)
    result = cli("--source", "procfs")
    assert (result.returncode, result.stdout) == (ExitStatus.ERROR, "")
    assert result.stderr == "tcpstates: no /proc/net tables under /nonexistent\n"


def _point_at_nothing(self, root="/proc", byteorder=sys.byteorder):
    self.root = __import__("pathlib").Path("/nonexistent")
    self.byteorder = byteorder
    self.live = False


def test_closed_pipe_is_quiet():
    # `tcpstates -u -t | head -1`, with enough rows that the pipe closes mid-write.
    script = f"{sys.executable} -m tcpstates -o jsonl -t -u | head -c 10 >/dev/null; " \
             "echo ${{PIPESTATUS[0]}}"  # fmt: skip
    result = subprocess.run(["bash", "-c", script.replace("{{", "{").replace("}}", "}")],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    # Unprivileged, when every row fit in the pipe, the run ends with its one hint about owners
    # it could not see; that is no word about the pipe.
    said = [line for line in result.stderr.splitlines() if "cannot be attributed" not in line]
    assert said == []
    assert result.stdout.strip() in {"0", str(ExitStatus.BROKEN_PIPE)}


def test_broken_pipe_status_when_the_reader_is_gone():
    read, write = os.pipe()
    os.close(read)
    result = subprocess.run(
        [*TCPSTATES, "--explain"], stdout=write, stderr=subprocess.PIPE,
        text=True, timeout=60,
    )  # fmt: skip
    os.close(write)
    assert result.returncode == ExitStatus.BROKEN_PIPE
    assert result.stderr == ""


def test_ctrl_c_exits_130_quietly():
    # A pipe nobody reads, shrunk to one page: the write blocks, so tcpstates is surely
    # mid-output when the interrupt arrives.
    read, write = os.pipe()
    fcntl.fcntl(write, 1031, 4096)  # F_SETPIPE_SZ
    proc = subprocess.Popen(
        [*TCPSTATES, "--explain", "-o", "json"],
        stdout=write, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(write)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    os.close(read)
    assert proc.returncode == ExitStatus.INTERRUPTED
    assert err == ""


def test_explain_one_state_plain(cli):
    result = cli("--explain", "close-wait")
    text = result.stdout
    assert text.startswith("CLOSE_WAIT (ss: CLOSE-WAIT, kernel: TCP_CLOSE_WAIT = 8")
    assert "netstat(8): The remote end has shut down, waiting for the socket to close." in text
    assert "passive closer" in text
    assert "ESTABLISHED -> CLOSE_WAIT  rcv FIN / snd ACK" in text
    assert "CLOSE_WAIT -> LAST_ACK  close() / snd FIN" in text
    assert "not called close()" in " ".join(text.split())
    assert "On this host now" in text


def test_explain_all_states_table(cli):
    lines = cli("--explain").stdout.splitlines()
    assert lines[0].split()[:3] == ["State", "ss", "Code"]
    assert any(line.startswith("NEW_SYN_RECV") and "Linux-internal" in line for line in lines)
    assert len(lines) == 1 + 14


def test_explain_json(cli):
    data = json.loads(cli("--explain", "TIME_WAIT", "-o", "json").stdout)
    assert data["state"] == "TIME_WAIT" and data["ss_name"] == "TIME-WAIT"
    assert {t["from"] for t in data["from"]} == {"FIN_WAIT1", "FIN_WAIT2", "CLOSING"}
    assert isinstance(data["count"], int)


def test_explain_on_a_terminal_uses_colour(cli):
    result = cli("--explain", "LISTEN", "--color", "always")
    assert "\x1b[" in result.stdout and "LISTEN" in result.stdout


def test_no_color_env_is_honoured(cli):
    result = cli("--explain", "LISTEN", "-o", "table", env={"NO_COLOR": "1"})
    assert "\x1b[" not in result.stdout


def test_help_lists_every_state_and_example(cli):
    text = cli("--help").stdout
    for name in ("ESTABLISHED", "SYN_SENT", "TIME_WAIT", "CLOSE_WAIT", "NEW_SYN_RECV", "bucket"):
        assert name in text
    assert "tcpstates --explain CLOSE_WAIT" in text


def test_explain_does_not_import_psutil_or_rich():
    code = (
        "import sys; from tcpstates.cli.root import run;"
        " run(['--explain', 'TIME_WAIT', '-o', 'plain']);"
        " print(sorted(m for m in ('psutil', 'rich') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip().endswith("[]")


def test_capture_fixture_is_readable_through_the_library():
    # A capture read through the library, without the command line.
    from tcpstates.model.query import Query
    from tcpstates.sources.procfs import ProcfsSource

    assert list(ProcfsSource(DATA / "proc-little").read(Query()).sockets)
