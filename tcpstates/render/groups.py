"""Grouped counts (``--summary --by``): a table with bars on a terminal, JSON or plain otherwise."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TextIO

from tcpstates.grouping import Group
from tcpstates.render.columns import Column
from tcpstates.render.safe import safe
from tcpstates.render.text import write_rows

if TYPE_CHECKING:
    from rich.table import Table

BAR_WIDTH = 20
COLUMNS = (Column("Group", "left"), Column("Total", "right"), Column("States", "left"))


def _states(group: Group) -> str:
    return ", ".join(f"{state} {n}" for state, n in group.counts.items())


def render_groups_json(groups: list[Group], by: str, out: TextIO) -> None:
    out.write(json.dumps([g.as_dict(by) for g in groups], indent=2) + "\n")


def render_groups_plain(groups: list[Group], by: str, out: TextIO) -> None:
    header = (Column(by.capitalize(), "left"), *COLUMNS[1:])
    write_rows([(safe(g.key), str(g.total), _states(g)) for g in groups], header, out)


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

    from tcpstates.render.table import state_style
    from tcpstates.states import parse_state

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(by.capitalize())
    table.add_column("Total", justify="right")
    table.add_column("", no_wrap=True)
    table.add_column("States")
    largest = max((g.total for g in groups), default=0)
    for group in groups:
        states = Text()
        for i, (state, n) in enumerate(group.counts.items()):
            if i:
                states.append(", ")
            states.append(state, style=state_style(parse_state(state)))
            states.append(f" {n}")
        table.add_row(Text(safe(group.key)), str(group.total), bar(group.total, largest), states)
    return table
