"""Ages that mean something: how long a CLOSE_WAIT socket has been held since its peer left,
and how long a TIME_WAIT or orphaned FIN_WAIT2 socket has left, in doctor and --explain.

The connections are real; the times are made by sleeping, so each check allows for the time
the program takes to start and read (SLACK_MS), and no more.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TCPSTATES
from zoo import LOOP4, Sockets

SLACK_MS = 3000
QUIET_BEFORE_FIN_S = 1.5  # the peer's last data came this long before its FIN
SINCE_FIN_S = 2.0


def run_json(*args: str) -> Any:
    done = subprocess.run(
        [*TCPSTATES, *args, "-o", "json"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode in (0, 3), done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def close_wait(sockets: Sockets) -> Iterator[tuple[int, float]]:
    """A CLOSE_WAIT socket this process holds: (its local port, when its peer closed)."""
    listener = sockets.listener(LOOP4)
    client, server = sockets.connect(listener)
    client.sendall(b"last words")
    server.recv(64)
    time.sleep(QUIET_BEFORE_FIN_S)
    sockets.drop(client)  # its FIN: the server's end goes to CLOSE_WAIT, and stays there
    closed = time.monotonic()
    time.sleep(SINCE_FIN_S)
    yield listener.getsockname()[1], closed


def test_explain_says_how_long_close_wait_has_been_held(close_wait):
    port, closed = close_wait
    found = run_json("--explain", f"{LOOP4}:{port}")
    waiting = [s for s in found["sockets"] if s["socket"]["state"] == "CLOSE_WAIT"]
    assert len(waiting) == 1
    held = waiting[0]["held_since_peer_closed_ms"]
    elapsed_ms = (time.monotonic() - closed) * 1000
    # Since the FIN, not since the last data (that would be 1.5 s more).
    assert SINCE_FIN_S * 1000 - 50 <= held <= elapsed_ms + 50
    text = subprocess.run(
        [*TCPSTATES, "--explain", f"{LOOP4}:{port}", "-o", "plain"],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert re.search(r"held in CLOSE_WAIT for [2-5]s: the application has not called close", text)


def test_doctor_names_the_age_of_the_oldest_close_wait(close_wait):
    _, closed = close_wait
    report = run_json("doctor")
    (finding,) = [
        f for f in report["findings"]
        if f["data"].get("pid") == os.getpid() and "CLOSE_WAIT" in f["title"]
    ]  # fmt: skip
    oldest = finding["data"]["oldest_ms"]
    assert SINCE_FIN_S * 1000 - 50 <= oldest <= (time.monotonic() - closed) * 1000 + 50
    assert ", held for " in finding["evidence"][0]  # after the port, first: what matters most


def test_without_tcp_info_doctor_still_diagnoses_and_claims_no_age(close_wait):
    report = run_json("doctor", "--source", "procfs")
    (finding,) = [
        f for f in report["findings"]
        if f["data"].get("pid") == os.getpid() and "CLOSE_WAIT" in f["title"]
    ]  # fmt: skip
    assert finding["data"]["oldest_ms"] is None
    assert not any("held for " in line for line in finding["evidence"])


def test_time_wait_and_orphaned_fin_wait2_say_what_they_have_left(sockets: Sockets):
    listener = sockets.listener(LOOP4)
    port = listener.getsockname()[1]
    client, server = sockets.connect(listener)
    sockets.drop(client)  # the client's end: FIN_WAIT2, held by nobody once closed
    server.recv(1)
    found = run_json("--explain", f"{LOOP4}:{port}")
    orphan = [s for s in found["sockets"] if s["socket"]["state"] == "FIN_WAIT2"]
    fin_timeout = int(Path("/proc/sys/net/ipv4/tcp_fin_timeout").read_text()) * 1000
    assert len(orphan) == 1
    assert fin_timeout - SLACK_MS <= orphan[0]["left_ms"] <= fin_timeout
    sockets.drop(server)  # now both have closed: the client's end is in TIME_WAIT
    time.sleep(0.2)
    found = run_json("--explain", f"{LOOP4}:{port}")
    (waiting,) = [s for s in found["sockets"] if s["socket"]["state"] == "TIME_WAIT"]
    assert 60_000 - SLACK_MS <= waiting["left_ms"] <= 60_000
    text = subprocess.run(
        [*TCPSTATES, "--explain", f"{LOOP4}:{port}", "-o", "plain"],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert "the kernel frees it in 5" in text  # 59s or 58s
