"""The state diagram as text or Rich, its legend, and one state's arrows spelled out.

``diagram.draw`` gives characters and their roles; here they become plain lines (for pipes, and
with box-drawing characters only where the output can encode them) or a Rich ``Text`` whose
colours follow the table's: each state in its phase's colour, the highlighted state and its
arrows in bold.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TextIO

from tcpstates.explain import diagram
from tcpstates.model import lifecycle
from tcpstates.model.i18n import N_, _
from tcpstates.model.lifecycle import Transition
from tcpstates.model.states import TcpState

if TYPE_CHECKING:
    from rich.console import RenderableType

LEGEND = N_("Transitions (numbers as in the diagram):")
FOCUS = N_("Into {state} and out of it:")
COUNTS = N_("Boxes show how many TCP sockets are in each state on this host now.")
NARROW = N_(
    "The diagram needs {needed} columns and this terminal has {width}: widen it, or pipe the"
    " output (-o plain draws it 100 columns wide). In each state now:"
)
NEW_SYN_RECV_NOTE = N_(
    "NEW_SYN_RECV is Linux's request socket for a handshake in progress; the kernel reports"
    " it as SYN_RECV, so it is counted there."
)


def diagram_lines(
    counts: dict[TcpState, int] | None = None,
    focus: TcpState | None = None,
    width: int = 100,
    ascii_only: bool = False,
) -> list[str]:
    if width < diagram.COMPACT_WIDTH:
        return narrow_lines(counts, width)
    _layout, canvas = diagram.draw(counts, width, ascii_only, focus)
    return _trim(canvas.lines())


def narrow_lines(counts: dict[TcpState, int] | None, width: int) -> list[str]:
    """Where no picture fits: why, and each state's count, packed into lines of ``width``."""
    import textwrap

    said = _(NARROW).format(needed=diagram.COMPACT_WIDTH, width=width)
    lines = textwrap.wrap(said, width)
    # PLACES is the boxes' order; no layout is routed (a tenth of a second) to list them.
    cells = [f"{s.name} {diagram.count_text((counts or {}).get(s, 0))}" for s in diagram.PLACES]
    return lines + textwrap.wrap(
        ", ".join(cells), width, initial_indent="  ", subsequent_indent="  "
    )


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _touches(t: Transition, focus: TcpState | None) -> bool:
    return focus is not None and focus in (t.source, t.target)


def legend_lines(
    focus: TcpState | None = None, ascii_only: bool = False, width: int = 100
) -> list[str]:
    """Every transition by its number: from, to, event; the focus state's marked. An event
    too long for ``width`` goes on under itself, never past the edge."""
    import textwrap

    numbered = list(enumerate(lifecycle.TRANSITIONS, start=1))
    source_width = max(len(t.source.name) for _n, t in numbered)
    target_width = max(len(t.target.name) for _n, t in numbered)
    arrow, mark = ("->", ">") if ascii_only else ("→", "►")
    lines = [_(LEGEND)]
    for number, t in numbered:
        marker = mark if _touches(t, focus) else " "
        lead = f"{marker}{number:>3}  {t.source.name:<{source_width}} {arrow} "
        lead += f"{t.target.name:<{target_width}}  "
        event = _(t.event) + ("  (Linux)" if t.linux_only else "")
        room = max(width - len(lead), 20)
        wrapped = textwrap.wrap(event, room) or [""]
        lines.append(lead + wrapped[0])
        lines.extend(" " * len(lead) + more for more in wrapped[1:])
    return lines


def focus_lines(
    state: TcpState, count: int | None = None, width: int = 100, ascii_only: bool = False
) -> list[str]:
    """``state``'s arrows with their events written out: those in above its box, those out
    below it. Falls back to one arrow a line where the picture would be wider than ``width``."""
    numbers = {t: n for n, t in enumerate(lifecycle.TRANSITIONS, start=1)}
    into = lifecycle.transitions_into(state)
    out_of = lifecycle.transitions_out_of(state)
    h, v, down, right_end, tee, left_end, arrow_out = tuple("-|v+++<" if ascii_only else "─│▼┐┤┘◀")
    name_width = max([len(t.source.name) for t in into] + [len(t.target.name) for t in out_of])
    count_text = diagram.count_text(count)
    label = f" {state.name}" + (f"  {count_text}" if count_text else "") + " "
    top, side, bottom = ("=" * len(label), "#", "=" * len(label))
    corners = "####" if ascii_only else "╔╗╚╝"
    if not ascii_only:
        top = bottom = "═" * len(label)
        side = "║"

    tag_width = max(len(str(numbers[t])) for t in (*into, *out_of))

    def tag(t: Transition, first: str) -> str:
        return f"{first}{numbers[t]}{h * (1 + tag_width - len(str(numbers[t])))}"

    def text(t: Transition, other: TcpState) -> str:
        return f"  {other.name:<{name_width}} {tag(t, h)} {_(t.event)} "

    texts = [text(t, t.source) for t in into] + [text(t, t.target) for t in out_of]
    stem = max([len(s) for s in texts], default=0) + 2
    stem = max(stem, len(label) // 2 + 4)
    box_left = stem - len(label) // 2 - 1
    if box_left + len(label) + 2 > width:
        return _focus_list(state, into, out_of, numbers, ascii_only)
    lines = []
    for i, t in enumerate(into):
        line = text(t, t.source)
        line = line + h * (stem - len(line))
        lines.append(line + (right_end if i == 0 else tee))
    if into:
        lines.append(" " * stem + down)
    lines.append(" " * box_left + corners[0] + top + corners[1])
    lines.append(" " * box_left + side + label + side)
    lines.append(" " * box_left + corners[2] + bottom + corners[3])
    if out_of:
        lines.append(" " * stem + v)
        for i, t in enumerate(out_of):
            # "  CLOSE ◀18─ event ───┘": the arrowhead points at the state it goes to.
            line = f"  {t.target.name:<{name_width}} {tag(t, arrow_out)} {_(t.event)} "
            line = line + h * (stem - len(line))
            lines.append(line + (left_end if i == len(out_of) - 1 else tee))
    return lines


def _focus_list(
    state: TcpState,
    into: tuple[Transition, ...],
    out_of: tuple[Transition, ...],
    numbers: dict[Transition, int],
    ascii_only: bool,
) -> list[str]:
    arrow = "->" if ascii_only else "→"
    return [
        f"  {numbers[t]:>2}  {t.source.name} {arrow} {t.target.name}  {_(t.event)}"
        for t in (*into, *out_of)
    ]


def diagram_text(
    counts: dict[TcpState, int] | None = None,
    focus: TcpState | None = None,
    width: int = 100,
    ascii_only: bool = False,
) -> str:
    """The whole picture as plain text: diagram, the focus state's arrows, legend, notes."""
    parts = ["\n".join(diagram_lines(counts, focus, width, ascii_only))]
    if focus is not None and focus in diagram.PLACES:
        count = None if counts is None else counts.get(focus, 0)
        heading = _(FOCUS).format(state=focus.name)
        parts.append(heading + "\n\n" + "\n".join(focus_lines(focus, count, width, ascii_only)))
    parts.append("\n".join(legend_lines(focus, ascii_only, width)))
    parts.append("\n".join(_notes(counts, width)))
    return "\n\n".join(part for part in parts if part) + "\n"


def _notes(counts: dict[TcpState, int] | None, width: int = 100) -> list[str]:
    import textwrap

    notes = [_(NEW_SYN_RECV_NOTE)]
    if counts is not None:
        notes.insert(0, _(COUNTS))
    return [line for note in notes for line in textwrap.wrap(note, min(width, 100))]


_STYLES = {"edge": "", "arrow": "", "tag": "bold"}


def diagram_renderable(
    counts: dict[TcpState, int] | None = None,
    focus: TcpState | None = None,
    width: int = 100,
) -> RenderableType:
    """The same picture for a terminal: states in their phase's colours, the focus bold."""
    from rich.console import Group
    from rich.text import Text

    if width < diagram.COMPACT_WIDTH:
        text = Text("\n".join(narrow_lines(counts, width)) + "\n")
    else:
        text = _picture(counts, focus, width)
    parts: list[RenderableType] = [text]
    if focus is not None and focus in diagram.PLACES:
        count = None if counts is None else counts.get(focus, 0)
        parts.append(Text(_(FOCUS).format(state=focus.name) + "\n", style="bold"))
        parts.append(Text("\n".join(focus_lines(focus, count, width)) + "\n", style="yellow"))
    legend = Text()
    for i, line in enumerate(legend_lines(focus, width=width)):
        style = "bold" if i == 0 else ("bold yellow" if line.startswith("►") else "")
        legend.append(line + "\n", style=style)
    parts.append(legend)
    parts.append(Text("\n".join(_notes(counts, width)), style="dim"))
    return Group(*parts)


def _picture(counts: dict[TcpState, int] | None, focus: TcpState | None, width: int) -> Any:
    """The boxes and arrows as Rich text: states in their phase's colours, the focus bold."""
    from rich.text import Text

    from tcpstates.render.styles import state_style

    lay, canvas = diagram.draw(counts, width, False, focus)
    hot = {r.number for r in lay.routes if _touches(r.transition, focus)}
    rows = list(zip(canvas.chars, canvas.roles, strict=True))
    while rows and not "".join(rows[0][0]).strip():
        rows.pop(0)
    while rows and not "".join(rows[-1][0]).strip():
        rows.pop()
    text = Text(no_wrap=True, overflow="crop")
    for chars, roles in rows:
        line = "".join(chars).rstrip()
        run, run_style = "", ""
        for i, char in enumerate(line):
            style = _style(roles[i], focus, hot, counts, state_style) if char != " " else ""
            if style != run_style and run:
                text.append(run, style=run_style)
                run = ""
            run, run_style = run + char, style
        text.append(run + "\n", style=run_style)
    return text


def _style(
    role: tuple[str, object] | None,
    focus: TcpState | None,
    hot: set[int],
    counts: dict[TcpState, int] | None,
    state_style: Any,
) -> str:
    if role is None:
        return ""
    kind, key = role
    if kind in ("box", "name"):
        assert isinstance(key, TcpState)
        style = state_style(key)
        if key is focus:
            return f"bold reverse {style}" if kind == "name" else f"bold {style}"
        return style if kind == "name" else f"dim {style}" if focus else style
    if kind == "count":
        assert isinstance(key, TcpState)
        zero = counts is not None and not counts.get(key, 0)
        return "dim" if zero else "bold"
    if focus is None:
        return _STYLES.get(kind, "")
    if key in hot:
        return "bold yellow"
    return "dim"


def render_diagram_json(
    counts: dict[TcpState, int] | None, focus: TcpState | None, out: TextIO, indent: int | None
) -> None:
    """The diagram as data: each state's box and count, each numbered transition."""
    lay = diagram.layout(100)
    data: dict[str, Any] = {
        "focus": None if focus is None else focus.name,
        "states": [
            {
                "state": box.state.name,
                "count": None if counts is None else counts.get(box.state, 0),
                "row": box.row,
                "column": box.column,
                "final": box.final,
            }
            for box in lay.boxes
        ],
        "transitions": [
            {
                "number": route.number,
                "from": route.transition.source.name,
                "to": route.transition.target.name,
                "event": _(route.transition.event),
                "linux_only": route.transition.linux_only,
                "highlighted": _touches(route.transition, focus),
            }
            for route in lay.routes
        ],
    }
    out.write(json.dumps(data, indent=indent) + "\n")
