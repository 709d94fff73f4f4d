"""Explanations as text: one state in sections, or every state in a table."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from tcpstates.explain import Explanation
from tcpstates.lifecycle import Transition
from tcpstates.render.columns import Column
from tcpstates.states import TcpState

if TYPE_CHECKING:
    from rich.console import RenderableType

Section = tuple[str, list[str]]

STATE_COLUMNS = (
    Column("State", "left"),
    Column("ss", "left"),
    Column("Code", "right"),
    Column("Phase", "left"),
    Column("Description", "left"),
)


def sections(expl: Explanation, width: int) -> list[Section]:
    """The explanation as (heading, lines) pairs, each paragraph wrapped to ``width``."""
    state = expl.state
    source = "netstat(8)" if state.info.from_manual else "tcpstates"
    result: list[Section] = [
        (f"{state.name} ({expl.names})", _wrap(f"{source}: {state.description}", width)),
    ]
    if expl.sides:
        result.append(("Who is in it", [side.value for side in expl.sides]))
    if expl.into:
        result.append(("How a socket gets here", _transitions(expl.into)))
    if expl.out_of:
        result.append(("Where it goes next", _transitions(expl.out_of)))
    result.append(("When many sockets are here", _wrap(expl.piles_up, width)))
    result.append(("What to check", _wrap(expl.check, width)))
    if expl.count is not None:
        noun = "socket" if expl.count == 1 else "sockets"
        result.append(("On this host now", [f"{expl.count} TCP {noun} in {state.name}"]))
    return result


def explanation_text(expl: Explanation, width: int = 80) -> str:
    blocks = []
    for i, (heading, lines) in enumerate(sections(expl, width - 2)):
        body = "\n".join("  " + line for line in lines)
        blocks.append(f"{heading}\n{body}" if i else f"{heading}\n\n{body}")
    return "\n\n".join(blocks) + "\n"


def explanation_renderable(expl: Explanation, width: int) -> RenderableType:
    from rich.text import Text

    from tcpstates.render.table import state_style

    text = Text()
    for i, (heading, lines) in enumerate(sections(expl, width - 2)):
        style = f"bold {state_style(expl.state)}" if i == 0 else "bold"
        text.append(("\n" if i else "") + heading + "\n", style=style)
        text.append("".join("  " + line + "\n" for line in lines))
    return text


def state_rows() -> list[tuple[str, ...]]:
    return [
        (s.name, s.ss_name, str(s.value), s.phase.value, s.description)
        for s in sorted(TcpState, key=_order)
    ]


def states_table() -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    from tcpstates.render.table import state_style

    table = Table(title="TCP states (descriptions from netstat(8))", show_lines=False)
    for column in STATE_COLUMNS:
        table.add_column(column.header, justify=column.align)
    for state, row in zip(sorted(TcpState, key=_order), state_rows(), strict=True):
        cells = [Text(cell) for cell in row]
        cells[0].stylize(state_style(state))
        table.add_row(*cells)
    return table


def _order(state: TcpState) -> tuple[bool, int]:
    return state is TcpState.UNKNOWN, state.value


def _transitions(transitions: tuple[Transition, ...]) -> list[str]:
    width = max(len(t.source.name) for t in transitions)
    to_width = max(len(t.target.name) for t in transitions)
    return [
        f"{t.source.name:<{width}} -> {t.target.name:<{to_width}}  {t.event}"
        + ("  (Linux)" if t.linux_only else "")
        for t in transitions
    ]


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width=max(width, 20))
