"""Lazy imports: each command loads only what it uses (rich alone outweighs Python's start)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from tcpstates.cli.root import run
status = run(sys.argv[1:])
loaded = sorted({name.split(".")[0] for name in sys.modules} | set(sys.modules))
sys.stdout.flush()
print("\\n" + json.dumps({"status": status, "modules": loaded}), file=sys.stderr)
"""

HEAVY = {"rich", "psutil", "csv", "pathlib", "tcpstates.sources.procfs"}


def loaded_modules(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["status"] == 0, done.stderr
    return set(report["modules"])


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (("--version",), set()),
        (("--help",), set()),
        (("--explain", "TIME_WAIT", "-o", "plain"), set()),
        (("--explain", "-o", "json"), set()),
        (("--explain", "TIME_WAIT", "--diagram", "-o", "plain"), set()),
        (("--scenario", "close", "-o", "plain"), set()),
        (("--lang", "id", "--explain", "06", "-o", "plain"), set()),
        (("-o", "plain"), set()),
        (("-o", "json", "--no-owners"), set()),
        (("-o", "csv"), {"csv"}),
        (("--summary", "-o", "json"), set()),
        (("-s", "time-wait", "-o", "plain"), set()),
    ],
)
def test_commands_import_only_what_they_use(args: tuple[str, ...], allowed: set[str]) -> None:
    assert loaded_modules(*args) & HEAVY <= allowed


def test_version_and_help_read_no_sockets() -> None:
    for args in (("--version",), ("--help",)):
        assert not {m for m in loaded_modules(*args) if m.startswith("tcpstates.sources")}


def test_the_table_on_a_terminal_does_use_rich() -> None:
    # The probe itself: a check that it sees imports at all, so the tests above can fail.
    assert "rich" in loaded_modules("--summary", "-o", "table")


def test_a_listing_leaves_the_state_machine_alone() -> None:
    from tcpstates.cli.options import SCENARIO_NAMES
    from tcpstates.model.lifecycle import SCENARIOS

    assert SCENARIO_NAMES == tuple(SCENARIOS)  # the --scenario choices are the scenarios
    assert "tcpstates.model.lifecycle" not in loaded_modules("-o", "plain", "--no-owners")


def test_a_listing_loads_neither_the_resolver_nor_the_watch() -> None:
    # Both were loaded by every listing: -r's request helper imported its resolver before
    # asking whether -r was typed, and click calls --watch's callback even when untyped.
    loaded = loaded_modules("-s", "time-wait", "-o", "plain", "--no-owners")
    assert not loaded & {"tcpstates.sources.names", "tcpstates.watch.frames"}
    assert "tcpstates.sources.names" in loaded_modules("-r", "-s", "listen", "-o", "plain")
