"""Grouped counts (``--summary --by``): a table with bars on a terminal, JSON or plain otherwise."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TextIO

from tcpstates.model.i18n import N_, _
from tcpstates.model.states import Phase
from tcpstates.render.columns import Column
from tcpstates.render.safe import safe
from tcpstates.render.text import write_rows
from tcpstates.summary.groups import Group

if TYPE_CHECKING:
    from rich.table import Table

BAR_WIDTH = 20
TOTAL, STATES = N_("Total"), N_("States")
BY_HEADERS = {
    "process": N_("Process"),
    "local-port": N_("Local-port"),
    "remote": N_("Remote"),
    "state-group": N_("State-group"),
}


def _header(by: str) -> str:
    return _(BY_HEADERS[by]) if by in BY_HEADERS else by.capitalize()


def _key(group: Group) -> str:
    """The group as shown in text: a part of a connection's life in the language in use."""
    return _(group.text) if isinstance(group.key, Phase) else safe(group.text)


def _states(group: Group) -> str:
    return ", ".join(f"{name} {n}" for name, _state, n in group.states())


def groups_data(groups: list[Group], by: str) -> list[dict[str, object]]:
    return [g.as_dict(by) for g in groups]


def render_groups_json(groups: list[Group], by: str, out: TextIO) -> None:
    out.write(json.dumps(groups_data(groups, by), indent=2) + "\n")


def render_groups_plain(groups: list[Group], by: str, out: TextIO) -> None:
    header = (Column(_header(by), "left"), Column(_(TOTAL), "right"), Column(_(STATES), "left"))
    write_rows([(_key(g), str(g.total), _states(g)) for g in groups], header, out)


def bar(total: int, largest: int, width: int = BAR_WIDTH) -> str:
    """A bar of eighth-blocks, at least one eighth for any non-zero count."""
    if not largest or not total:
        return ""
    eighths = max(1, round(total * width * 8 / largest))
    full, rest = divmod(eighths, 8)
    return "█" * full + ("" if not rest else " ▏▎▍▌▋▊▉"[rest])


def groups_table(groups: list[Group], by: str) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from tcpstates.render.styles import state_style

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(_header(by))
    table.add_column(_(TOTAL), justify="right")
    table.add_column("", no_wrap=True)
    table.add_column(_(STATES))
    largest = max((g.total for g in groups), default=0)
    for group in groups:
        states = Text()
        for i, (name, state, n) in enumerate(group.states()):
            if i:
                states.append(", ")
            states.append(name, style=state_style(state))
            states.append(f" {n}")
        table.add_row(Text(_key(group)), str(group.total), bar(group.total, largest), states)
    return table
