"""Grouped counts (``--summary --by``): a table with bars on a terminal, JSON or plain otherwise."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TextIO

from tcpstates.model.i18n import N_, _
from tcpstates.model.states import Phase, TcpState
from tcpstates.render.columns import Column
from tcpstates.render.safe import safe
from tcpstates.render.text import write_rows
from tcpstates.summary.groups import Group

if TYPE_CHECKING:
    from rich.table import Table
    from rich.text import Text

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


MIN_BAR = 5  # a bar narrower than this tells no pile from another: none is drawn instead
EDGES, GAP = 2, 3  # the blanks Rich's SIMPLE_HEAD table puts at its edges, and between columns


def groups_table(groups: list[Group], by: str, width: int | None = None) -> Table:
    """The groups with a bar each, fitted to ``width`` (None: as wide as they are) the way
    the listing is: a group's name (an address, a port, a process) and its total are never
    cut; the bar narrows, then goes; the states break between ``STATE n`` entries, never
    inside one; and where even one entry has no room beside the name, the states go under
    it."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from tcpstates.render.fit import display_width

    keys = [_key(group) for group in groups]
    entries = [[(name, state, f"{name} {n}") for name, state, n in g.states()] for g in groups]
    fixed = [max(map(display_width, [_header(by), *keys])), len(_(TOTAL))]
    fixed[1] = max([fixed[1], *(len(str(g.total)) for g in groups)])
    texts = [[entry[2] for entry in listed] for listed in entries]
    bar_width, room, under = _layout(width, sum(fixed), texts)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(_header(by) + ("\n  " + _(STATES)) * under, no_wrap=True)
    table.add_column(_(TOTAL), justify="right", no_wrap=True)
    if bar_width:
        table.add_column("", no_wrap=True)
    if not under:
        table.add_column(_(STATES), no_wrap=True)
    largest = max((g.total for g in groups), default=0)
    for key, group, listed in zip(keys, groups, entries, strict=True):
        bars = [bar(group.total, largest, bar_width)] if bar_width else []
        if under:  # as wide as the name, less the indent, or one entry a line
            states = _states_text(listed, max(fixed[0] - 2, 1), "\n  ")
            table.add_row(Text(key + "\n  ") + states, str(group.total), *bars)
        else:
            table.add_row(Text(key), str(group.total), *bars, _states_text(listed, room))
    return table


def _states_text(
    listed: list[tuple[str, TcpState, str]], room: int | None, lead: str = "\n"
) -> Text:
    """``STATE n`` entries, coloured, comma-separated, in lines of at most ``room``, each line
    after the first led by ``lead``."""
    from rich.text import Text

    from tcpstates.render.fit import lines_of
    from tcpstates.render.styles import state_style

    states = Text()
    for n, line in enumerate(lines_of([len(entry[2]) for entry in listed], 2, room, 1)):
        states.append("," + lead if n else "")
        for i, k in enumerate(line):
            name, state, text = listed[k]
            states.append(", " if i else "").append(name, style=state_style(state))
            states.append(text[len(name) :])
    return states


def _layout(width: int | None, fixed: int, texts: list[list[str]]) -> tuple[int, int | None, bool]:
    """The bar's width, the states' room (None: one line), and whether the states go under
    the name, at ``width``: the bar as long as BAR_WIDTH while the states keep one line, then
    shorter down to MIN_BAR, then the states in several lines without a bar, then under the
    name, with a bar again beside the total where it has room."""
    if width is None:
        return BAR_WIDTH, None, False
    # A line that breaks ends in a comma: one more character than its entries.
    one_line = max((len(", ".join(listed)) for listed in texts), default=0) + 1
    widest = max((len(text) for listed in texts for text in listed), default=0) + 1
    room = width - fixed - EDGES - 3 * GAP  # for the bar and the states
    if room - BAR_WIDTH >= one_line:
        return BAR_WIDTH, None, False
    if room - MIN_BAR >= widest:
        bar_width = max(MIN_BAR, min(BAR_WIDTH, room - one_line))
        return bar_width, room - bar_width, False
    if room + GAP >= widest:
        return 0, room + GAP, False  # no bar, nor the gap before it
    beside = min(BAR_WIDTH, room + GAP)  # the bar's column, with no states' column after it
    return beside * (beside >= MIN_BAR), None, True
