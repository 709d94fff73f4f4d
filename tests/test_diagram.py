"""The state diagram: drawn from lifecycle's transitions, golden at 100 columns, live counts."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from tcpstates.explain import diagram
from tcpstates.explain.render_diagram import (
    diagram_lines,
    diagram_renderable,
    diagram_text,
    focus_lines,
    legend_lines,
)
from tcpstates.model import lifecycle
from tcpstates.model.states import TcpState

S = TcpState
# Fixed counts for the golden files: every state a different number, one of each width.
COUNTS = {state: count for count, state in zip(
    (0, 12, 3, 7, 1, 5, 2041, 0, 3, 1, 9, 0, 0, 0), TcpState, strict=True)}  # fmt: skip


def test_golden_diagram_at_100_columns(golden) -> None:  # type: ignore[no-untyped-def]
    golden("diagram.txt", diagram_text(COUNTS, None, 100))


def test_golden_diagram_with_time_wait_highlighted(golden) -> None:  # type: ignore[no-untyped-def]
    golden("diagram-time-wait.txt", diagram_text(COUNTS, S.TIME_WAIT, 100))


@pytest.mark.parametrize("width", [80, 60])
def test_golden_diagram_for_narrow_terminals(golden, width: int) -> None:  # type: ignore[no-untyped-def]
    # 80: the compact boxes, count under name; 60: no picture, the counts and what it needs.
    text = diagram_text(COUNTS, S.CLOSE_WAIT, width)
    assert max(map(len, text.splitlines())) <= width
    golden(f"diagram-close-wait-{width}.txt", text)


def test_golden_ascii_diagram_for_outputs_without_box_drawing(golden) -> None:  # type: ignore[no-untyped-def]
    text = diagram_text(COUNTS, S.CLOSE_WAIT, 100, ascii_only=True)
    assert text.isascii()
    golden("diagram-close-wait-ascii.txt", text)


def test_every_state_has_a_box_and_every_transition_an_arrow() -> None:
    lay = diagram.layout(100)
    assert {box.state for box in lay.boxes} == set(TcpState) - {S.UNKNOWN}
    assert [route.transition for route in lay.routes] == list(lifecycle.TRANSITIONS)
    for route in lay.routes:
        source = lay.box_of(route.transition.source)
        targets = [b for b in lay.boxes if b.state is route.transition.target]
        assert _beside(source, route.cells[0]), route.number
        assert any(_beside(t, route.cells[-1]) for t in targets), route.number


def _beside(box: diagram.Box, cell: tuple[int, int]) -> bool:
    return cell in {port for port, _away in box.ports()}


def test_every_state_is_reachable_from_close_in_the_diagram() -> None:
    lay = diagram.layout(100)
    edges = {(r.transition.source, r.transition.target) for r in lay.routes}
    seen, frontier = {S.CLOSE}, [S.CLOSE]
    while frontier:
        state = frontier.pop()
        for source, target in edges:
            if source is state and target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen == {box.state for box in lay.boxes}


def test_arrows_never_share_a_line_and_every_tag_is_drawn() -> None:
    lay, canvas = diagram.draw(COUNTS, 100)
    straight: dict[tuple[int, int], set[int]] = {}
    for route in lay.routes:
        for cell in route.cells:
            straight.setdefault(cell, set()).add(route.number)
    assert all(len(numbers) <= 2 for numbers in straight.values())  # at most a crossing
    text = "\n".join(canvas.lines())
    for route in lay.routes:
        x, y, _inline = route.tag
        assert canvas.lines()[y][x : x + len(str(route.number))] == str(route.number)
    assert "▶" in text and "▼" in text and "┼" in text


@pytest.mark.parametrize("focus", [None, *diagram.PLACES], ids=lambda s: getattr(s, "name", "-"))
def test_everything_fits_100_columns(focus: TcpState | None) -> None:
    text = diagram_text({s: 123456 for s in TcpState}, focus, 100)
    assert max(len(line) for line in text.splitlines()) <= 100


def test_counts_and_the_highlight_are_drawn_in_the_boxes() -> None:
    lines = diagram_lines(COUNTS, S.TIME_WAIT)
    joined = "\n".join(lines)
    assert "║ TIME_WAIT       2041 ╟" in joined  # double lines: the highlighted state
    assert "│ ESTABLISHED       12 │" in joined and "│ CLOSE_WAIT         3 │" in joined
    assert "━" in joined and "┃" in joined  # its arrows heavy
    marked = [line for line in legend_lines(S.TIME_WAIT) if line.startswith("►")]
    assert [int(line[1:4]) for line in marked] == [15, 16, 18, 20]
    assert all("TIME_WAIT" in line for line in marked)


def test_the_focus_spells_out_events() -> None:
    lines = focus_lines(S.TIME_WAIT, 2)
    assert lines[0].startswith("  FIN_WAIT1 ─15─ rcv FIN,ACK / snd ACK ─") and lines[0][-1] == "┐"
    assert any("FIN_WAIT2 ─16─ rcv FIN / snd ACK" in line for line in lines)
    assert any("║ TIME_WAIT  2 ║" in line for line in lines)
    assert lines[-1].startswith("  CLOSE     ◀18─ timeout = 2MSL (60 s on Linux) ")


def test_rich_on_a_terminal_matches_the_plain_picture() -> None:
    console = Console(file=io.StringIO(), width=100, color_system=None, legacy_windows=False)
    console.print(diagram_renderable(COUNTS, S.TIME_WAIT, 100))
    rich_lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert [line.rstrip() for line in rich_lines[: len(diagram_lines(COUNTS, S.TIME_WAIT))]] == (
        diagram_lines(COUNTS, S.TIME_WAIT)
    )
    coloured = Console(file=io.StringIO(), width=100, force_terminal=True, color_system="standard")
    coloured.print(diagram_renderable(COUNTS, S.TIME_WAIT, 100))
    assert "\x1b[1;7;36m" in coloured.file.getvalue()  # type: ignore[attr-defined]


def test_the_cli_counts_every_state_with_one_summary(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import tcpstates.summary.counts

    calls = []
    real = tcpstates.summary.counts.summarize

    def counting(source, query):  # type: ignore[no-untyped-def]
        calls.append(query)
        return real(source, query)

    monkeypatch.setattr(tcpstates.summary.counts, "summarize", counting)
    result = cli("--explain", "--diagram", "-o", "plain")
    assert result.returncode == 0 and len(calls) == 1
    assert "Boxes show how many TCP sockets are in each state on this host now." in result.stdout


def test_diagram_alone_implies_explain_and_a_state_highlights(cli) -> None:
    plain = cli("--diagram", "--explain", "06", "-o", "plain").stdout
    assert "║ TIME_WAIT" in plain and "Into TIME_WAIT and out of it:" in plain
    assert cli("--diagram", "-o", "plain").stdout.startswith("┌")


def test_diagram_json_is_the_same_data(cli) -> None:
    data = json.loads(cli("--explain", "CLOSING", "--diagram", "-o", "json").stdout)
    assert data["focus"] == "CLOSING"
    assert [t["number"] for t in data["transitions"]] == list(
        range(1, len(lifecycle.TRANSITIONS) + 1)
    )
    assert {t["number"] for t in data["transitions"] if t["highlighted"]} == {19, 20}
    closes = [s for s in data["states"] if s["state"] == "CLOSE"]
    assert [s["final"] for s in closes] == [False, True]
    assert all(isinstance(s["count"], int) for s in data["states"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--diagram", "--explain", "127.0.0.1:80"], "highlights a state, not an endpoint"),
        (["--diagram", "-o", "csv"], "-o csv does not apply to --diagram"),
        (["--diagram", "--scenario", "close"], "--diagram does not apply to --scenario"),
    ],
)
def test_bad_combinations_are_usage_errors(cli, args: list[str], needle: str) -> None:
    done = cli.process(*args)
    assert done.returncode == 2 and needle in done.stderr and done.stderr.count("\n") == 1
