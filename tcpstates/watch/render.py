"""Frames of ``--watch``: one JSON object a line for pipes and files, a Rich view on a terminal.

The JSON lines never carry a control character (JSON escapes them), so a log of them is safe to
``cat``. The terminal view is built here as a renderable; ``show_live`` redraws it in place.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

from tcpstates.model.sockets import Socket
from tcpstates.render.columns import Column, Layout
from tcpstates.render.fit import (
    GAP,
    ONE_LINE_GIVE_WAY,
    STACKS,
    UNICODE,
    Columns,
    Fitted,
    Give,
    Glyphs,
    Step,
    fit_layout,
    lines_of,
)
from tcpstates.watch.frames import Change, ChangeKind, Frame, sort_key

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

    from tcpstates.render.output import Output

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
    from tcpstates.render.formats import json_record_maker

    record = json_record_maker()  # one for the whole watch: what it escaped once, it keeps
    for frame in frames:
        if changes:
            write_frame(frame, out, record)
        else:
            out.write(frame_line(frame, changes=False))
        out.flush()
        # Let it go before the next reading: a loop's variable holds the frame until the next
        # one comes, and a first frame's change per socket is 8 MB at 100,000 sockets.
        del frame


CHUNK = 1000  # changes per write


def write_frame(frame: Frame, out: TextIO, record: Callable[[Socket], str]) -> None:
    """``frame_line``'s bytes, written a thousand changes at a time.

    A first frame holds every socket: at 100,000 sockets frame_line builds a dict per change
    and then one string of 37 MB, which took a 50k watch past 100 MiB. Here no more than a
    chunk's text is held; ``record`` is render/formats' json_record_maker, which writes what
    json.dumps would (tests/test_watch.py holds the two writers to the same bytes).
    """
    head = json.dumps(frame_record(frame, changes=False))
    out.write(head[:-1] + ', "changes": [')
    for start in range(0, len(frame.changes), CHUNK):
        chunk = frame.changes[start : start + CHUNK]
        out.write((", " if start else "") + ", ".join(_change_json(c, record) for c in chunk))
    out.write("]}\n")


def _change_json(change: Change, record: Callable[[Socket], str]) -> str:
    """``change_record(change)`` as JSON: the change, then the socket's record's own fields."""
    old = change.old_state_name
    shown = "null" if old is None else json.dumps(old)
    return f'{{"change": "{change.kind.value}", "old_state": {shown}, ' + record(change.socket)[1:]


def show_live(
    frames: Iterable[Frame],
    out: Output,
    layout: Layout,
    *,
    interval: float,
    listing: bool = True,
) -> None:
    """Redraw each frame in place until ``frames`` ends or Ctrl-C; the last one stays on screen.

    Each frame is fitted to the terminal's size as it is then: a resize shows from the next
    frame on. A terminal that rewraps its lines when it narrows leaves the view's old lines
    taller than Live knows, so a frame of another width starts from a cleared screen.

    Leaving the ``Live`` context, by an exception too, shows the cursor again. While it lasts,
    what is written to sys.stderr on the same terminal is printed above the view (written
    raw, it would tear the view); a stderr sent elsewhere (2>file) gets it as written.
    """
    import sys

    from rich.control import Control
    from rich.live import Live

    console = out.console()
    on_screen = sys.stderr.isatty()
    drawn_at = None
    with Live(
        console=console,
        screen=False,
        transient=False,
        auto_refresh=False,
        redirect_stderr=on_screen,
    ) as live:
        for frame in frames:
            width = out.fit_width()
            view = fitted_view(frame, console, layout, interval, listing, width)
            if drawn_at is not None and drawn_at != console.width:
                console.control(Control.clear(), Control.home())
            drawn_at = console.width
            live.update(view, refresh=True)
            del frame, view  # see write_jsonl


def fitted_view(
    frame: Frame,
    console: Console,
    layout: Layout,
    interval: float,
    listing: bool,
    width: int | None = None,
) -> RenderableType:
    """The view with its table fitted to ``width`` columns (None: as wide as it is) and as many
    socket rows as the terminal's height leaves room for.

    A row may take several lines (render/fit.py's Shape), and lines wider than the terminal
    (with -W) wrap, so the height is measured, not counted: render, and drop as many rows as
    the view is too tall by, in rows of the height they have. One line stays free for the
    cursor.
    """
    room = console.height - 1
    limit = room
    glyphs = Glyphs.for_stream(console.file)
    while True:
        view = frame_view(
            frame, layout, interval=interval, listing=listing, max_rows=limit, width=width,
            glyphs=glyphs,
        )  # fmt: skip
        excess = len(console.render_lines(view, console.options, pad=False)) - room
        if excess <= 0 or not listing or limit == 1:
            return view
        limit = max(1, limit - -(-excess // row_height(view)))


def row_height(view: RenderableType) -> int:
    """How many lines a socket's row of ``view`` takes: its tallest line's (a row's lines
    are one Text, as are its header's)."""
    from rich.console import Group
    from rich.text import Text

    parts = view.renderables if isinstance(view, Group) else []
    return max((part.plain.count("\n") + 1 for part in parts if isinstance(part, Text)), default=1)


def frame_view(
    frame: Frame,
    layout: Layout,
    *,
    interval: float,
    listing: bool = True,
    max_rows: int | None = None,
    width: int | None = None,
    glyphs: Glyphs = UNICODE,
) -> RenderableType:
    """A heading, the counts, and (unless ``listing`` is off) the socket table.

    With the sockets, the counts are one line of the states that hold any or just moved (the
    table of every state would leave a small terminal no room for sockets); alone, they are
    that table.
    """
    from rich.console import Group

    if not listing:
        return Group(*heading(frame, interval, width), "", counts_table(frame))
    lines: list[RenderableType] = [*heading(frame, interval, width), *counts_line(frame, width)]
    lines.append("")
    return Group(*lines, *sockets_lines(frame, layout, max_rows, width, glyphs))


def heading(frame: Frame, interval: float, width: int | None = None) -> list[Text]:
    """When, how many, and how many of them changed (nothing to compare the first frame with),
    in lines of at most ``width``, broken between those parts."""
    from rich.text import Text

    local = frame.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    noun = "socket" if len(frame.sockets) == 1 else "sockets"
    parts = [
        Text(part, style="bold")
        for part in (f"Every {interval:g} s", local, f"{len(frame.sockets)} {noun}")
    ]
    if frame.number:
        tally = Counter(change.kind for change in frame.changes)
        for kind in ChangeKind:
            if tally[kind]:
                mark, style = MARKS[kind]
                parts.append(Text(f"{mark}{tally[kind]} {kind.value}", style=style))
        if not tally:
            parts.append(Text("no change", style="dim"))
    return _packed(parts, width)


def counts_line(frame: Frame, width: int | None) -> list[Text]:
    """The states that hold sockets or just changed, each with its count and its change since
    the last frame: ``LISTEN 1  FIN_WAIT2 1 +1  ESTABLISHED 0 -2``, then how the total moved
    since the first frame. One line of at most ``width``: where they do not all go in, the
    states that did not move give way, the smallest first, and ``3 more states`` says so."""
    from rich.text import Text

    from tcpstates.render.styles import state_style

    several = len(frame.protos) > 1
    shown = [row for row in frame.counts if row.count or (frame.number and row.since_last)]
    entries: list[Text] = []
    for i, row in enumerate(shown):
        first = several and (i == 0 or shown[i - 1].proto != row.proto)
        entry = Text(f"{row.proto}: " if first else "")
        entry.append(row.state_name, style=state_style(row.state)).append(f" {row.count}")
        if frame.number and row.since_last:
            entry.append(f" {row.since_last:+d}", style="bold")
        entries.append(entry)
    tail = []
    if frame.number:
        since_start = sum(row.since_start for row in frame.counts)
        tail.append(Text(f"{since_start:+d} since start", style=_nonzero(since_start)))
    # Who gives way first: unmoved before moved, then the smaller pile.
    order = sorted(
        range(len(shown)),
        key=lambda i: (bool(frame.number and shown[i].since_last), shown[i].count),
    )
    kept = list(range(len(shown)))
    while True:
        more = len(shown) - len(kept)
        noun = "state" if more == 1 else "states"
        said = [Text(f"{more} more {noun}", style="dim")] * bool(more)
        line = [*(entries[i] for i in kept), *said, *tail]
        if width is None or not kept or _width(line) <= width:
            return _packed(line, width)
        kept.remove(order[more])


def _width(parts: list[Text]) -> int:
    return sum(part.cell_len for part in parts) + len(GAP_TEXT) * (len(parts) - 1)


def _packed(parts: list[Text], width: int | None) -> list[Text]:
    """``parts`` two spaces apart in lines of at most ``width``, never broken inside one."""
    from rich.text import Text

    lines = lines_of([part.cell_len for part in parts], len(GAP_TEXT), width)
    return [Text(GAP_TEXT).join(parts[i] for i in line) for line in lines]


GAP_TEXT = " " * GAP


def counts_table(frame: Frame) -> Table:
    """Count, change since the last frame and since the first, per state; then the total.

    The first frame has nothing to compare with, so its change columns are left empty.
    """
    from rich.text import Text

    from tcpstates.render.styles import state_style

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


# The sockets' table: the listing's columns, the state led by the change's mark, and Was (the
# state a changed socket left) after it. Was gives way last, after the Process column (and
# before a row's ends go on lines of their own): in a watch, where a socket came from is the news.
MARKED_STATE = Column("  State", "left")
WAS = Column("Was", "left")
WATCH_GIVE_WAY = (*ONE_LINE_GIVE_WAY, Step(Give.HIDE, (WAS,), "{}"), *STACKS)


def sockets_lines(
    frame: Frame,
    layout: Layout,
    max_rows: int | None = None,
    width: int | None = None,
    glyphs: Glyphs = UNICODE,
) -> list[Text]:
    """The filtered sockets fitted to ``width``, what changed since the last frame marked
    before the state. Vanished sockets show once, dimmed, where they were.

    When ``max_rows`` cuts the table, marked rows are kept before unmarked ones, and a line
    says how many are left out; a footer says what gave way to the width.
    """
    from rich.text import Text

    entries = _entries(frame)
    hidden = 0
    if max_rows is not None and len(entries) > max_rows:
        entries, hidden = _cut(entries, max_rows), len(entries) - max_rows

    def columns_of(chosen: Layout) -> Columns:
        columns, rows = _columns(entries, chosen)
        return columns, list(zip(*rows, strict=True)) if rows else [()] * len(columns)

    fitted = fit_layout(columns_of, layout, width, WATCH_GIVE_WAY, glyphs.ellipsis)
    lines = [
        Text(fitted.text(fitted.headers), style="bold"),
        Text(glyphs.rule * fitted.width),
    ]
    lines += [_row_line(fitted, n, entry) for n, entry in enumerate(entries)]
    if hidden:
        noun = "row does" if hidden == 1 else "rows do"
        lines.append(Text(f"{glyphs.ellipsis} {hidden} more {noun} not fit the screen"))
    lines += [Text(line, style="dim") for line in fitted.footer(width)]
    return lines


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


def _columns(entries: list[Entry], layout: Layout) -> tuple[list[Column], list[list[str]]]:
    """The columns and each row's cells: the listing's, the State cell led by the mark (blank
    on an unmarked row), and Was where some row changed state."""
    state = layout.state_index
    was = any(change is not None and change.kind is ChangeKind.CHANGED for _, change in entries)
    columns = list(layout.columns)
    columns[state : state + 1] = [MARKED_STATE, WAS][: 1 + was]
    rows = []
    for sock, change in entries:
        cells = list(layout.cells(sock))
        mark = " " if change is None else MARKS[change.kind][0]
        cells[state : state + 1] = [
            f"{mark} {cells[state]}",
            change and change.old_state_name or "",
        ][: 1 + was]
        rows.append(cells)
    return columns, rows


def _row_line(fitted: Fitted, n: int, entry: Entry) -> Text:
    """Row ``n`` of the table as styled text, its lines joined by newlines: the mark and the
    states coloured, a vanished socket dimmed."""
    from rich.text import Text

    change = entry[1]
    row = Text()
    for number, (indent, line) in enumerate(zip(fitted.indents, fitted.lines, strict=True)):
        row.append("\n" * bool(number) + " " * indent)
        for at, k in enumerate(line):
            row.append(GAP_TEXT * bool(at))
            _append_cell(row, fitted.columns[k], fitted.pad(k, fitted.cells[k][n]), entry)
    if change is not None and change.kind is ChangeKind.VANISHED:
        row.stylize("dim")
    return row


def _append_cell(row: Text, column: Column, padded: str, entry: Entry) -> None:
    """A cell, padded, styled as its column and the row's change say."""
    from tcpstates.render.styles import state_style

    sock, change = entry
    if column is MARKED_STATE and change is not None:
        row.append(padded[0], style=MARKS[change.kind][1]).append(padded[1:2])
        row.append(padded[2:], style=state_style(sock.state))
    elif column is MARKED_STATE:
        row.append(padded, style=state_style(sock.state))
    elif column is WAS and change is not None and change.old_state is not None:
        row.append(padded, style=state_style(change.old_state))
    else:
        row.append(padded)


def _compact_table() -> Table:
    # A rule under the header and two spaces between columns, like the plain listing, and no
    # blank edge lines: every line the view saves is one more socket row on the screen.
    from rich import box
    from rich.table import Table

    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
