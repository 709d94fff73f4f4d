"""What a person sees of the prose commands in a real terminal (tmux) at 60 to 200 columns.

The diagram, a scenario, the explanations, doctor, and the counts: read with wrapped lines
joined again (``capture-pane -J``), no line may be wider than the terminal and no state name
cut. A pile of CLOSE_WAIT on a listener of ours gives doctor and ``--explain :PORT`` something
to say.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import TCPSTATES
from terminal import needs_tmux, terminal

from tcpstates.model.states import TcpState, UnknownStateError, parse_state

pytestmark = [needs_tmux, pytest.mark.slow]

WIDTHS = (60, 72, 80, 120, 200)
NAMES = {state.name for state in TcpState} | {"UNCONN"}
SEGMENTS = {"FIN", "ACK", "SYN", "RST"}  # what travels between the ends, not states
WORD = re.compile(r"[A-Z][A-Z0-9_-]{2,}")


@pytest.fixture(scope="module")
def pile(request: pytest.FixtureRequest) -> Any:
    """A listener and three connections its peers closed: CLOSE_WAIT here, FIN_WAIT2 there."""
    from zoo import Sockets

    held = Sockets()
    request.addfinalizer(held.close)
    listener = held.listener()
    for _ in range(3):
        client, _server = held.connect(listener)
        client.close()
    dual = held.listener("::")  # takes IPv4 too: its peers are v4-mapped, the longest ends
    held.connect(dual, "127.0.0.1")
    return listener.getsockname()[1]


def commands(port: int) -> list[list[str]]:
    return [
        ["--explain", "TIME_WAIT", "--diagram"],
        ["--explain", "CLOSE_WAIT", "--diagram"],
        ["--scenario", "close"],
        ["--scenario", "close", "--live"],
        ["--explain"],
        ["--explain", "CLOSE_WAIT"],
        ["--explain", f":{port}"],
        ["doctor"],
        ["--summary", "--by", "process"],
        ["--summary", "--by", "remote"],
    ]


def cut_names(lines: list[str]) -> list[str]:
    """Words that begin a state's name without being one (``EST``, ``CLOSE_WA…``)."""
    cut = []
    for line in lines:
        for word in WORD.findall(line.replace("…", "")):
            if word in SEGMENTS or _spelling(word.rstrip("-")):
                continue
            if any(name.startswith(word) for name in NAMES):
                cut.append(word)
    return cut


def _spelling(word: str) -> bool:
    """Whether ``word`` is a whole state in some tool's spelling (ss's ESTAB, RFC's TIME-WAIT)."""
    try:
        parse_state(word)
    except UnknownStateError:
        return False
    return True


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("which", range(10))
def test_prose_fits_the_terminal_with_every_state_whole(pile: int, width: int, which: int):
    args = commands(pile)[which]
    with terminal([*TCPSTATES, *args], width, 200, TCPSTATES_PAGER="") as term:
        term.wait_for("EXIT=")
        lines = term.joined_lines()
    assert lines[-1] == "EXIT=0" or "EXIT=0" in lines, lines
    too_wide = [line for line in lines if len(line) > width]
    assert not too_wide, f"{args} at {width}: {too_wide[:3]}"
    assert not cut_names(lines), f"{args} at {width}: {cut_names(lines)}"


@pytest.mark.parametrize("width", (80, 120))
def test_the_highlighted_state_is_in_the_picture(width: int) -> None:
    # At 80 the picture once was cropped; the focus box (double lines) must be on screen.
    with terminal(
        [*TCPSTATES, "--no-pager", "--explain", "CLOSE_WAIT", "--diagram"], width, 200
    ) as t:
        t.wait_for("EXIT=")
        screen = "\n".join(t.joined_lines())
    assert re.search(r"║ CLOSE_WAIT", screen), screen
    assert screen.count("┌") >= 13  # every other state's box is drawn too


def test_below_the_pictures_width_the_counts_are_said_instead() -> None:
    with terminal([*TCPSTATES, "--no-pager", "--explain", "06", "--diagram"], 60, 200) as t:
        t.wait_for("EXIT=")
        screen = " ".join(t.joined_lines())
    assert "needs 78 columns" in screen and "TIME_WAIT" in screen and "┌" not in screen


@pytest.mark.parametrize("width", WIDTHS)
def test_a_live_scenarios_rows_are_never_broken(width: int) -> None:
    # Rich wraps a line too wide itself, so no line is wider than the terminal even then: a
    # broken row shows as a line of the table that starts at the margin (``kernel b``).
    with terminal([*TCPSTATES, "--scenario", "close", "--live"], width, 200) as term:
        term.wait_for("EXIT=")
        lines = term.joined_lines()
    table = lines[next(i for i, line in enumerate(lines) if "after step" in line) :]
    table = table[: table.index("")]
    assert all(line.startswith("  ") for line in table), "\n".join(table)
    assert sum(len(re.findall(r"\bagrees\b", line)) for line in table) >= 4
