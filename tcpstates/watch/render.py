"""Frames of ``--watch``: one JSON object a line for pipes and files, a Rich view on a terminal.

The JSON lines never carry a control character (JSON escapes them), so a log of them is safe to
``cat``. The terminal view is built here as a renderable; ``show_live`` redraws it in place.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

from tcpstates.model.sockets import Socket
from tcpstates.render.columns import KERNEL, Layout
from tcpstates.watch.frames import Change, ChangeKind, Frame, sort_key

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

# The marker column: what happened to a row since the previous frame, and its colour.
MARKS: dict[ChangeKind, tuple[str, str]] = {
    ChangeKind.APPEARED: ("+", "bold green"),
    ChangeKind.VANISHED: ("-", "bold red"),
    ChangeKind.CHANGED: ("~", "bold yellow"),
}


def iso_time(moment: datetime) -> str:
    """UTC, to the millisecond, as logs and ``jq`` expect: ``2026-01-05T14:03:22.125Z``."""
    utc = moment.astimezone(timezone.utc)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def change_record(change: Change) -> dict[str, Any]:
    """What happened, then the socket's record exactly as ``-o json`` gives it."""
    return {
        "change": change.kind.value,
        "old_state": change.old_state_name,
        **change.socket.as_dict(),
    }


def frame_record(frame: Frame, *, changes: bool = True) -> dict[str, Any]:
    """The frame as JSON data; without ``changes`` (``--summary``) only the time and counts.

    ``since_last`` and ``since_start`` hold how each count moved, keyed like ``counts``.
    """
    record: dict[str, Any] = {
        "time": iso_time(frame.time),
        "counts": frame.summary.as_dict(),
        "since_last": frame.since_last.as_dict(),
        "since_start": frame.since_start.as_dict(),
    }
    if changes:
        record["changes"] = [change_record(change) for change in frame.changes]
    return record


def frame_line(frame: Frame, *, changes: bool = True) -> str:
    return json.dumps(frame_record(frame, changes=changes)) + "\n"


def write_jsonl(frames: Iterable[Frame], out: TextIO, *, changes: bool = True) -> None:
    """A line per frame, flushed at once: ``tail -f`` and ``jq`` see each frame as it is read."""
    for frame in frames:
        out.write(frame_line(frame, changes=changes))
        out.flush()


def show_live(
    frames: Iterable[Frame],
    console: Console,
    layout: Layout,
    *,
    interval: float,
    listing: bool = True,
) -> None:
    """Redraw each frame in place until ``frames`` ends or Ctrl-C; the last one stays on screen.

    Leaving the ``Live`` context, by an exception too, shows the cursor again. While it lasts,
    what is written to sys.stderr on the same terminal is printed above the view (written
    raw, it would tear the view); a stderr sent elsewhere (2>file) gets it as written.
    """
    import sys

    from rich.live import Live

    on_screen = sys.stderr.isatty()
    with Live(
        console=console,
        screen=False,
        transient=False,
        auto_refresh=False,
        redirect_stderr=on_screen,
    ) as live:
        for frame in frames:
            live.update(fitted_view(frame, console, layout, interval, listing), refresh=True)


def fitted_view(
    frame: Frame, console: Console, layout: Layout, interval: float, listing: bool
) -> RenderableType:
    """The view with as many socket rows as the terminal's height leaves room for.

    Rows can fold (a long process name), so the height is measured, not guessed: render, and
    drop as many rows as the view is too tall by. One line stays free for the cursor.
    """
    room = console.height - 1
    limit = room
    while True:
        view = frame_view(frame, layout, interval=interval, listing=listing, max_rows=limit)
        excess = len(console.render_lines(view, console.options, pad=False)) - room
        if excess <= 0 or not listing or limit == 1:
            return view
        limit = max(1, limit - excess)


def frame_view(
    frame: Frame,
    layout: Layout,
    *,
    interval: float,
    listing: bool = True,
    max_rows: int | None = None,
) -> RenderableType:
    """A heading, the counts, and (unless ``listing`` is off) the socket table."""
    from rich.console import Group

    parts: list[RenderableType] = [heading(frame, interval), "", counts_table(frame)]
    if listing:
        parts += ["", sockets_table(frame, layout, max_rows)]
    return Group(*parts)


def heading(frame: Frame, interval: float) -> Text:
    """When, how many, and how many of them changed (nothing to compare the first frame with)."""
    from rich.text import Text

    local = frame.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    noun = "socket" if len(frame.sockets) == 1 else "sockets"
    text = Text(f"Every {interval:g} s  {local}  {len(frame.sockets)} {noun}", style="bold")
    if frame.number:
        tally = Counter(change.kind for change in frame.changes)
        for kind in ChangeKind:
            if tally[kind]:
                mark, style = MARKS[kind]
                text.append(f"  {mark}{tally[kind]} {kind.value}", style=style)
        if not tally:
            text.append("  no change", style="dim")
    return text


def counts_table(frame: Frame) -> Table:
    """Count, change since the last frame and since the first, per state; then the total.

    The first frame has nothing to compare with, so its change columns are left empty.
    """
    from rich.text import Text

    from tcpstates.render.table import state_style

    several = len(frame.protos) > 1
    table = _compact_table()
    if several:
        table.add_column("Proto")
    table.add_column("State")
    for header in ("Count", "Since last", "Since start"):
        table.add_column(header, justify="right")
    for row in frame.counts:
        state = Text(row.state_name, style=state_style(row.state))
        numbers = _numbers(frame, row.count, row.since_last, row.since_start)
        table.add_row(*([Text(row.proto)] if several else []), state, *numbers)
    table.add_section()
    numbers = _numbers(
        frame,
        sum(row.count for row in frame.counts),
        sum(row.since_last for row in frame.counts),
        sum(row.since_start for row in frame.counts),
    )
    table.add_row(*([Text("")] if several else []), Text("Total", style="bold"), *numbers)
    return table


def _numbers(frame: Frame, count: int, since_last: int, since_start: int) -> list[Text]:
    from rich.text import Text

    if frame.number == 0:
        return [Text(str(count)), Text(""), Text("")]
    return [Text(str(count)), _delta(since_last), _delta(since_start)]


def _delta(value: int) -> Text:
    from rich.text import Text

    return Text(f"{value:+d}" if value else "0", style=_nonzero(value))


def _nonzero(value: int) -> str:
    return "bold" if value else "dim"


def sockets_table(frame: Frame, layout: Layout, max_rows: int | None = None) -> Table:
    """The filtered sockets, with what changed since the last frame marked in a first column.

    Vanished sockets show once, dimmed, where they were. When ``max_rows`` cuts the table,
    marked rows are kept before unmarked ones, and the caption says how many are left out.
    """
    entries = _entries(frame)
    hidden = 0
    if max_rows is not None and len(entries) > max_rows:
        entries, hidden = _cut(entries, max_rows), len(entries) - max_rows
    return _table([sock for sock, _ in entries], [c for _, c in entries], layout, hidden)


Entry = tuple[Socket, Change | None]


def _entries(frame: Frame) -> list[Entry]:
    if frame.number == 0:  # everything has "appeared": a mark on every row says nothing
        return [(sock, None) for sock in frame.sockets]
    marked = {c.socket: c for c in frame.changes if c.kind is not ChangeKind.VANISHED}
    entries: list[Entry] = [(sock, marked.get(sock)) for sock in frame.sockets]
    entries += [(c.socket, c) for c in frame.changes if c.kind is ChangeKind.VANISHED]
    entries.sort(key=lambda entry: sort_key(entry[0]))
    return entries


def _cut(entries: list[Entry], limit: int) -> list[Entry]:
    marked = [i for i, (_, change) in enumerate(entries) if change is not None]
    unmarked = [i for i, (_, change) in enumerate(entries) if change is None]
    return [entries[i] for i in sorted((marked + unmarked)[:limit])]


def _table(
    sockets: list[Socket], changes: list[Change | None], layout: Layout, hidden: int
) -> Table:
    # The columns of render/table.py's listing, the mark leading the State cell. Where the
    # terminal is too narrow, Rich wraps a transition (OLD -> NEW) and folds a process name;
    # the mark, at the start of its cell, and the addresses are never cut.
    rows = [_cells(sock, change, layout) for sock, change in zip(sockets, changes, strict=True)]
    caption = f"... {hidden} more" if hidden else None
    table = _compact_table(caption)
    columns = layout.columns
    state = _state_index(layout)
    for i, column in enumerate(columns):
        header = MARK_ROOM + column.header if i == state else column.header
        width = max([len(header), *(len(row[i]) for row in rows)])
        if i == state:
            narrowest = max([len(header), *(len(MARK_ROOM + s.state_name) for s in sockets)])
            table.add_column(header, min_width=narrowest)
        elif i == len(columns) - 1:  # a process name, down to the width of "(kernel)"
            narrowest = min(width, len(KERNEL))
            table.add_column(header, justify=column.align, overflow="fold", min_width=narrowest)
        else:
            table.add_column(header, justify=column.align, no_wrap=True, min_width=width)
    for row in rows:
        table.add_row(*row)
    return table


MARK_ROOM = "  "  # a mark and a space before each state, blank on unmarked rows


def _state_index(layout: Layout) -> int:
    return layout.state_index


def _cells(sock: Socket, change: Change | None, layout: Layout) -> list[Text]:
    from rich.text import Text

    from tcpstates.render.table import state_style

    cells = [Text(cell) for cell in layout.cells(sock)]
    state = Text(sock.state_name, style=state_style(sock.state))
    if change is not None and change.kind is ChangeKind.CHANGED:
        state = Text(f"{change.old_state_name} -> ").append(state)
    if change is None:
        cells[_state_index(layout)] = Text(MARK_ROOM).append(state)
        return cells
    mark, style = MARKS[change.kind]
    cells[_state_index(layout)] = Text(mark + " ", style=style).append(state)
    if change.kind is ChangeKind.VANISHED:
        for cell in cells:
            cell.stylize("dim")
    return cells


def _compact_table(caption: str | None = None) -> Table:
    # A rule under the header and two spaces between columns, like the plain listing, and no
    # blank edge lines: every line the view saves is one more socket row on the screen.
    from rich import box
    from rich.table import Table

    return Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), caption=caption
    )
