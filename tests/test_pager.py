"""The pager, on a real terminal (tmux): used for documents on a terminal, never in a pipe.

A recording pager (a shell script) keeps what it was given and the LESS it saw; a real
``less -FRX`` is quit with ``q``.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import TCPSTATES, Cli
from terminal import needs_tmux, terminal

ANSI = re.compile(r"\x1b\[[0-9;]*m")

pytestmark = needs_tmux


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    """A pager that writes its LESS and its input into files beside it."""
    script = tmp_path / "pager"
    script.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "LESS=$LESS" > {tmp_path}/env\ncat > {tmp_path}/paged\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def paged(recorder: Path) -> str | None:
    path = recorder.parent / "paged"
    return path.read_text() if path.exists() else None


def test_a_listing_on_a_terminal_goes_through_the_pager_in_colour(recorder: Path) -> None:
    with terminal([*TCPSTATES, "-s", "listen"], 60, 24, PAGER=str(recorder)) as term:
        assert "EXIT=0" in term.wait_for("EXIT=")
    text = paged(recorder)
    assert text is not None and "\x1b[" in text  # the terminal's colours, through the pipe
    assert (recorder.parent / "env").read_text() == "LESS=FRX\n"
    lines = ANSI.sub("", text).splitlines()
    assert lines[0].startswith("State") and max(map(len, lines)) <= 60  # the terminal's width


def test_tcpstates_pager_wins_over_pager_and_empty_means_none(recorder: Path) -> None:
    env = {"PAGER": "/nonexistent/pager", "TCPSTATES_PAGER": str(recorder)}
    with terminal([*TCPSTATES, "--summary"], 80, 24, **env) as term:
        term.wait_for("EXIT=0")
    assert paged(recorder) is not None and "ESTABLISHED" in paged(recorder)  # type: ignore[operator]
    (recorder.parent / "paged").unlink()
    with terminal([*TCPSTATES, "--summary"], 80, 24, TCPSTATES_PAGER="", PAGER=str(recorder)) as t:
        assert "ESTABLISHED" in t.wait_for("EXIT=0")
    assert paged(recorder) is None


def test_no_pager_and_pipes_never_page(cli: Cli, recorder: Path) -> None:
    with terminal([*TCPSTATES, "--no-pager", "-s", "listen"], 80, 24, PAGER=str(recorder)) as t:
        assert "LISTEN" in t.wait_for("EXIT=0")
    piped = cli.process("-s", "listen", env={**os.environ, "PAGER": str(recorder)})
    assert piped.returncode == 0 and "LISTEN" in piped.stdout
    assert paged(recorder) is None


def test_the_commands_status_survives_the_pager(recorder: Path) -> None:
    # No socket has this end: exit 1, said on stderr, whatever the pager did.
    with terminal([*TCPSTATES, "--explain", "127.0.0.1:1"], 80, 24, PAGER=str(recorder)) as t:
        assert "EXIT=1" in t.wait_for("EXIT=")


def test_a_pager_quit_at_once_is_not_an_error(sockets: Any) -> None:
    listener = sockets.listener()
    for _ in range(300):  # far more than a screen, and more than a pipe's buffer holds
        sockets.connect(listener)
    with terminal([*TCPSTATES, "--no-owners"], 80, 24, PAGER="true") as term:
        shown = term.wait_for("EXIT=")
    assert "EXIT=0" in shown and "Traceback" not in shown and "Broken pipe" not in shown


def test_a_missing_pager_is_one_line_and_the_output_still_shown() -> None:
    with terminal([*TCPSTATES, "-s", "listen"], 80, 24, PAGER="no-such-pager-x") as term:
        shown = term.wait_for("EXIT=0")
    assert shown.count("no-such-pager-x") == 1 and "LISTEN" in shown


def test_a_pager_that_cannot_run_is_one_line_too(tmp_path: Path) -> None:
    pager = tmp_path / "pager"
    pager.write_text("#!/bin/sh\ncat\n")  # not executable
    with terminal([*TCPSTATES, "-s", "listen"], 80, 24, PAGER=str(pager)) as term:
        shown = term.wait_for("EXIT=0")
    assert shown.count("cannot run") == 1 and "LISTEN" in shown and "Traceback" not in shown


def test_less_pages_a_long_listing_and_q_leaves_it(sockets: Any) -> None:
    listener = sockets.listener()
    for _ in range(40):  # 81 rows of our own: whatever else the host holds is left out
        sockets.connect(listener)
    port = str(listener.getsockname()[1])
    with terminal([*TCPSTATES, "--no-owners", "--port", port], 80, 24) as term:  # less -FRX
        screen = term.wait_for("ESTABLISHED")
        assert "EXIT=" not in screen  # less holds the screen: more rows than it has
        term.keys("q")
        assert "EXIT=0" in term.wait_for("EXIT=")
