"""--summary against ss's own counts, on a zoo in a network namespace of its own.

A namespace of its own (the netns fixture) holds nothing but the zoo, so the counts of
tcpstates' fast paths, its record path and ss must agree exactly, with no other process's
sockets racing them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

SCRIPT = """
import json, subprocess, sys
sys.path.insert(0, {tests!r})
from zoo import Zoo
def tcpstates(*args):
    out = subprocess.run([sys.executable, "-m", "tcpstates", *args], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)
with Zoo():
    ss = subprocess.run(["ss", "-tanH"], capture_output=True, text=True, check=True).stdout
    print(json.dumps({{
        "ss": [line.split()[0] for line in ss.splitlines()],
        "netlink": tcpstates("--summary", "-o", "json", "--source", "netlink"),
        "procfs": tcpstates("--summary", "-o", "json", "--source", "procfs"),
        "fast4": tcpstates("--summary", "-o", "json", "-4"),
        "records4": tcpstates("--summary", "-o", "json", "-4", "--local", "127.0.0.0/8"),
        "filtered": tcpstates("--summary", "-o", "json", "-s", "bucket"),
        "both": tcpstates("--summary", "-o", "json", "-t", "-u"),
    }}))
"""

SS_NAMES = {"ESTAB": "ESTABLISHED", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECV",
            "FIN-WAIT-1": "FIN_WAIT1", "FIN-WAIT-2": "FIN_WAIT2", "TIME-WAIT": "TIME_WAIT",
            "CLOSE-WAIT": "CLOSE_WAIT", "LAST-ACK": "LAST_ACK", "LISTEN": "LISTEN",
            "CLOSING": "CLOSING", "UNCONN": "CLOSE"}  # fmt: skip


@pytest.fixture(scope="module")
def counts(netns) -> dict:  # type: ignore[no-untyped-def]
    script = SCRIPT.format(tests=str(TESTS))
    result = netns("summary").run(sys.executable, "-c", script, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_fast_counts_equal_ss(counts):
    from collections import Counter

    expected = Counter(SS_NAMES[name] for name in counts["ss"])
    netlink = {state: n for state, n in counts["netlink"].items() if n}
    assert netlink == dict(expected)
    assert counts["netlink"]["CLOSING"] >= 1 and counts["netlink"]["TIME_WAIT"] >= 1


def test_every_path_agrees(counts):
    assert counts["procfs"] == counts["netlink"]
    # An address filter forces the record path; the zoo's IPv4 sockets are all on 127.0.0.1.
    assert counts["records4"] == counts["fast4"]
    assert sum(counts["fast4"].values()) > 10


def test_state_filter_and_protocols(counts):
    assert counts["filtered"] == {
        "SYN_RECV": counts["netlink"]["SYN_RECV"],
        "TIME_WAIT": counts["netlink"]["TIME_WAIT"],
    }
    assert counts["both"]["tcp"] == counts["netlink"]
    assert counts["both"]["udp"]["UNCONN"] >= 2 and counts["both"]["udp"]["ESTABLISHED"] >= 1
