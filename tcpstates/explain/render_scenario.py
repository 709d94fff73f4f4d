"""A scenario as a two-column timeline: a on the left, b on the right, the segments between.

Each step is two lines: what the acting end does (the transition's event), then the state each
end is in after it, with the segment it sent drawn as an arrow towards the other end. With
``--live``, a table follows: at each checkpoint the states the scenario expects beside those
the kernel reported.
"""

from __future__ import annotations

import json
import textwrap
from typing import TYPE_CHECKING, Any, TextIO

from tcpstates.explain.scenario_live import LiveRun
from tcpstates.model.i18n import N_, _
from tcpstates.model.lifecycle import Scenario
from tcpstates.model.states import TcpState

if TYPE_CHECKING:
    from rich.console import RenderableType

STEP_WIDTH = 5
SEGMENT_WIDTH = 19

LIVE = N_("Played on {address} (a: port {a}, b: port {b}); states as the socket table shows them:")
AFTER = N_("after step")
START = N_("start")
EXPECTED = N_("expected")
KERNEL = N_("kernel")
AGREES = N_("agrees")
DIFFERS = N_("differs")
TOO_FAST = N_("over within microseconds on loopback: not seen")
NOT_WAITED = N_("after TIME_WAIT's 60 s: not waited for")
ALL_AGREE = N_("The kernel showed the expected states at every checkpoint.")
SOME_DIFFER = N_("The kernel differed from the scenario at {n} of {total} checkpoints.")


Piece = tuple[str, str, TcpState | None]  # text, role, and the state a "state" piece names


def timeline_lines(
    scenario: Scenario, width: int = 100, ascii_only: bool = False
) -> list[tuple[str, list[Piece]]]:
    """The ladder as lines of (text, role, state) pieces: roles "state", "changed" (these two
    with their state), "event", "segment", "" (so that Rich can colour them and plain text can
    ignore them)."""
    a_events = [_(step.transition.event) for step in scenario.steps if step.end == "a"]
    name = max(len(s.name) for s in TcpState) + 2  # a state name is never cut, on either side
    side = min(max([name] + [len(e) + 2 for e in a_events]), 42)
    # Narrow terminals take room from a's events (they wrap) to leave b a whole state name.
    side = max(name, min(side, width - STEP_WIDTH - SEGMENT_WIDTH - name))
    b_width = max(width - STEP_WIDTH - side - SEGMENT_WIDTH, name)
    h, right, left = ("-", ">", "<") if ascii_only else ("─", "▶", "◀")
    lines: list[tuple[str, list[Piece]]] = []

    def states_row(a: TcpState, b: TcpState, changed: str | None, segment: str) -> list[Piece]:
        return [
            (" " * STEP_WIDTH, "", None),
            (f"{a.name:<{side}}", "changed" if changed == "a" else "state", a),
            (f"{segment:^{SEGMENT_WIDTH}}", "segment", None),
            (b.name, "changed" if changed == "b" else "state", b),
        ]

    heading = f"{'a':<{side + SEGMENT_WIDTH}}b"
    lines.append(("heading", [(" " * STEP_WIDTH, "", None), (heading, "", None)]))
    lines.append(("states", states_row(scenario.a_start, scenario.b_start, None, "")))
    for number, (step, a, b) in enumerate(scenario.timeline(), start=1):
        wrap_at = side - 2 if step.end == "a" else b_width
        event = textwrap.wrap(_(step.transition.event), wrap_at) or [""]
        for i, piece in enumerate(event):
            label = f"{number:>3}  " if i == 0 else " " * STEP_WIDTH
            row: list[Piece] = [(label, "", None)]
            if step.end == "b":
                row.append((" " * (side + SEGMENT_WIDTH), "", None))
            row.append((piece, "event", None))
            lines.append(("event", row))
        sends = step.transition.sends or ""
        segment = ""
        if sends:
            body = f" {sends} "
            span = SEGMENT_WIDTH - 3 - len(body)
            dashes = h * (span // 2), h * (span - span // 2)
            if step.end == "a":
                segment = f"{dashes[0]}{body}{dashes[1]}{right}"
            else:
                segment = f"{left}{dashes[0]}{body}{dashes[1]}"
        lines.append(("states", states_row(a, b, step.end, segment)))
    return lines


def scenario_text(
    scenario: Scenario, run: LiveRun | None = None, width: int = 100, ascii_only: bool = False
) -> str:
    parts = [f"{scenario.name}: {_(scenario.title)}"]
    if scenario.story:
        parts.append(
            "\n".join(
                textwrap.wrap(
                    _(scenario.story), width - 2, initial_indent="  ", subsequent_indent="  "
                )
            )
        )
    ladder = [
        "".join(text for text, _role, _state in row).rstrip()
        for _kind, row in timeline_lines(scenario, width, ascii_only)
    ]
    parts.append("\n".join(ladder))
    if run is not None:
        parts.append("\n".join(live_lines(run, width)))
    return "\n\n".join(parts) + "\n"


def live_lines(run: LiveRun, width: int = 100) -> list[str]:
    """The checkpoints: expected states beside the kernel's, and the steps in between. Where
    the four states and the verdict do not go in one line of ``width``, the kernel's go on a
    second line, under the expected ones; a state is never cut."""
    scenario = run.scenario
    lines = textwrap.wrap(
        _(LIVE).format(address=run.address, a=run.ports.get("a", "-"), b=run.ports.get("b", "-")),
        width,
    )
    timeline = scenario.timeline()
    names = [s.name for _s, a, b in timeline for s in (a, b)]
    names += [s.name for c in run.checkpoints for s in c.seen]
    names += [scenario.a_start.name, scenario.b_start.name]
    w = max([*map(len, names), len(_(EXPECTED)) + 2, len(_(KERNEL)) + 2])
    label_width = max(len(_(AFTER)), len(_(START)), 3)
    verdicts = max(len(_(AGREES)), len(_(DIFFERS)))
    stacked = 2 + label_width + 4 * (2 + w) + 2 + verdicts > width
    indent = " " * (label_width + 4)

    def row(label: str, a: str, b: str, rest: str = "") -> list[str]:
        first = f"  {label:<{label_width}}  {a:<{w}}  {b:<{w}}"
        if not rest:
            return [first.rstrip()]
        if not stacked:  # the rest wraps under itself: a note of why nothing was seen
            lead = first + "  "
            return textwrap.wrap(
                rest, width, initial_indent=lead, subsequent_indent=" " * len(lead)
            )
        return [first.rstrip(), *textwrap.wrap(rest, width, initial_indent=indent,
                                               subsequent_indent=indent)]  # fmt: skip

    kernel = f"{_(KERNEL) + ' a':<{w}}  {_(KERNEL) + ' b'}"
    lines += ["", *row(_(AFTER), _(EXPECTED) + " a", _(EXPECTED) + " b", kernel)]
    seen = {c.step: c for c in run.checkpoints}
    last = max(seen, default=0)
    for step in range(len(timeline) + 1):
        label = _(START) if step == 0 else str(step)
        a, b = (scenario.a_start, scenario.b_start) if step == 0 else timeline[step - 1][1:]
        checkpoint = seen.get(step)
        if checkpoint is not None:
            ka, kb = checkpoint.seen
            verdict = _(AGREES) if checkpoint.agrees else _(DIFFERS)
            lines += row(label, a.name, b.name, f"{ka.name:<{w}}  {kb.name:<{w}}  {verdict}")
            lines += textwrap.wrap(
                _(checkpoint.action), width, initial_indent=indent, subsequent_indent=indent
            )
        else:
            transition = timeline[step - 1][0].transition if step else None
            waited = (
                transition is not None and transition.source is TcpState.TIME_WAIT and step > last
            )
            lines += row(label, a.name, b.name, f"({_(NOT_WAITED) if waited else _(TOO_FAST)})")
    differing = sum(not c.agrees for c in run.checkpoints)
    lines.append("")
    if differing:
        lines.append(_(SOME_DIFFER).format(n=differing, total=len(run.checkpoints)))
    else:
        lines.append(_(ALL_AGREE))
    return lines


def scenario_renderable(
    scenario: Scenario, run: LiveRun | None = None, width: int = 100
) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    from tcpstates.render.styles import state_style

    parts: list[RenderableType] = []
    title = Text()
    title.append(scenario.name, style="bold")
    title.append(f": {_(scenario.title)}")
    parts.append(title)
    if scenario.story:
        parts.append(
            Text(
                "\n"
                + textwrap.fill(
                    _(scenario.story), width - 2, initial_indent="  ", subsequent_indent="  "
                )
                + "\n"
            )
        )
    ladder = Text(no_wrap=True)
    for kind, row in timeline_lines(scenario, width):
        for piece, role, state in row:
            if state is not None:
                style = state_style(state)
                style = f"bold {style}" if role == "changed" else f"dim {style}"
            else:
                style = {"event": "italic", "segment": "bold yellow"}.get(role, "")
            if kind == "heading":
                style = "bold"
            ladder.append(piece, style=style)
        ladder.append("\n")
    parts.append(ladder)
    if run is not None:
        live = Text()
        for line in live_lines(run, width):
            style = ""
            if line.endswith(_(DIFFERS)) or line.startswith(_(SOME_DIFFER).split("{")[0]):
                style = "bold red"
            elif line.endswith(_(AGREES)):
                style = "green"
            elif line.strip().startswith("("):
                style = "dim"
            live.append(line + "\n", style=style)
        parts.append(live)
    return Group(*parts)


def render_scenario_json(
    scenario: Scenario, run: LiveRun | None, out: TextIO, indent: int | None
) -> None:
    data: dict[str, Any] = {
        "scenario": scenario.name,
        "title": _(scenario.title),
        "story": _(scenario.story),
        "start": {"a": scenario.a_start.name, "b": scenario.b_start.name},
        "steps": [
            {
                "step": number,
                "end": step.end,
                "from": step.transition.source.name,
                "to": step.transition.target.name,
                "event": _(step.transition.event),
                "sends": step.transition.sends,
                "a": a.name,
                "b": b.name,
            }
            for number, (step, a, b) in enumerate(scenario.timeline(), start=1)
        ],
    }
    if run is not None:
        data["live"] = {
            "address": run.address,
            "ports": run.ports,
            "agrees": run.agrees,
            "checkpoints": [
                {
                    "step": c.step,
                    "action": _(c.action),
                    "expected": {"a": c.expected[0].name, "b": c.expected[1].name},
                    "kernel": {"a": c.seen[0].name, "b": c.seen[1].name},
                    "agrees": c.agrees,
                }
                for c in run.checkpoints
            ],
        }
    out.write(json.dumps(data, indent=indent, ensure_ascii=False) + "\n")
