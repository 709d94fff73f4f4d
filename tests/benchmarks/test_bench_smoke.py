"""Smoke test: bench.py runs end to end on a tiny zoo and reports every command.

Needs root, `ip` and `ss` (network namespaces, the zoo) and `netstat` (a baseline); skipped
otherwise. It only checks that the benchmark works, not how fast tcpstates is: the baselines must
succeed, and every tcpstates row must be there, timed or FAILED (options may not exist yet).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).with_name("bench.py")
BASELINES = [
    "ss -tan",
    "ss -tanp",
    "ss -tan state time-wait",
    "ss -tin",
    "netstat -tanp",
    "netstat -tan",
    "psutil.net_connections('tcp')",
    "python -c pass",
]
OURS = [
    "tcpstates -o plain",
    "tcpstates -o json",
    "tcpstates -o plain --state time-wait",
    "tcpstates --summary -o json",
    "tcpstates -i -o json --no-owners",
    "tcpstates --version",
    "tcpstates --explain TIME_WAIT -o plain",
    "tcpstates on a 100x50 pty, paged",
]


MISSING = [tool for tool in ("ss", "netstat") if shutil.which(tool) is None]
# bench.py makes its own namespace: the netns marker skips, saying why, without root or ip.
pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)}"),
]


def _row(output: str, label: str) -> str:
    """The table row of `label`: the label, then a time and a ratio, or FAILED."""
    pattern = rf"^{re.escape(label)}\s+(\d+\.\d+\s+\d+\.\d+\s.*|FAILED: .*)$"
    match = re.search(pattern, output, re.MULTILINE)
    assert match, f"no row for {label!r} in:\n{output}"
    return match.group(1)


def test_bench_runs_on_a_tiny_zoo(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- bench:begin -->\nold\n<!-- bench:end -->\nafter\n")
    argv = [sys.executable, str(BENCH), "--sizes", "300", "--runs", "1", "--quiet", "--markdown"]
    argv += ["--readme", str(readme)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:  # timed out: SIGTERM lets bench.py clean up
                proc.terminate()
                proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert re.search(r"^== 300 sockets: ESTAB \d+, TIME-WAIT \d+", out, re.MULTILINE), out
    for label in BASELINES:
        assert not _row(out, label).startswith("FAILED"), _row(out, label)
    for label in OURS:
        _row(out, label)
    # At 300 sockets only the targets of every size are judged (--version, the table), and
    # peak memory.
    assert len(re.findall(r"^  (PASS|FAIL)  ", out, re.MULTILINE)) == 3, out
    assert "| `ss -tan` | `ss -tan` | " in out
    assert f"tcpstates-bench-{proc.pid}" not in _namespaces(), "namespace left behind"
    table = readme.read_text()
    assert table.startswith("before\n<!-- bench:begin -->\n") and table.endswith("after\n")
    assert "| `tcpstates -o plain` | `ss -tanp` | " in table and "old" not in table
    assert "PASS" not in table and "FAIL" not in table and "<=" not in table


def _namespaces() -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, errors="replace"
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]
