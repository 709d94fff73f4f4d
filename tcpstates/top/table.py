"""top's socket table: a header that stays, and rows drawn line by line, only those on screen.

Textual's DataTable makes a widget row per row: 10,000 rows took 1.0 s, each refresh.
This one is told how many rows there are and is given the text of those on screen (a
``Window``); when it scrolls past them it asks for the next (``WindowNeeded``). It knows
nothing of sockets: it says which row the cursor is on and which header was clicked.
"""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tcpstates.top.view import Window

HEADER = Style(bold=True, underline=True)
CURSOR = Style(reverse=True)
# What a mark looks like for the one refresh it is shown.
MARK_STYLES = {"+": Style(color="green"), "~": Style(color="yellow"), "-": Style(dim=True)}
FAR = 1_000_000_000  # Home and End: a move this far stops at the first or last row


class SocketTable(ScrollView, can_focus=True):
    """Rows under a header; a cursor row that Up, Down, Page Up, Page Down, Home, End and a
    click move."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", show=False),
        Binding("down", "cursor(1)", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("home", f"cursor({-FAR})", show=False),
        Binding("end", f"cursor({FAR})", show=False),
        Binding("enter", "choose", show=False),
    ]

    class HeaderClicked(Message):
        """The header was clicked over column ``index`` (of the columns shown)."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    class Chosen(Message):
        """Enter, or a double click, on the cursor's row."""

    class WindowNeeded(Message):
        """The rows from ``start`` are on screen and their text is not here."""

        def __init__(self, start: int, count: int) -> None:
            super().__init__()
            self.start, self.count = start, count

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows = 0
        self.shown: Window | None = None
        self.cursor_row = 0
        self._asked: tuple[int, int] | None = None  # the window asked for and not yet given

    @property
    def lines_for_rows(self) -> int:
        return max(1, self.size.height - 1)  # the header takes a line

    def show(self, rows: int, shown: Window) -> None:
        """``rows`` in all from now on, ``shown`` the text of those on screen."""
        self.rows, self.shown, self._asked = rows, shown, None
        self.cursor_row = max(0, min(self.cursor_row, rows - 1))
        widest = max((len(line) for line in shown.lines), default=0)
        self.virtual_size = Size(max(widest, len(shown.header)), rows + 1)
        self.refresh()

    def move_cursor(self, row: int) -> None:
        self.cursor_row = max(0, min(row, self.rows - 1))
        rows, top = self.lines_for_rows, round(self.scroll_offset.y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + rows:
            self.scroll_to(y=self.cursor_row - rows + 1, animate=False, immediate=True)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width, x, shown = self.size.width, self.scroll_offset.x, self.shown
        if shown is None:
            return Strip.blank(width)
        if y == 0:
            return Strip([Segment(shown.header[x : x + width].ljust(width), HEADER)])
        index = self.scroll_offset.y + y - 1
        if index >= self.rows:
            return Strip.blank(width)
        k = index - shown.start
        if not 0 <= k < len(shown.lines):
            self._ask(self.scroll_offset.y)
            return Strip.blank(width)
        style = MARK_STYLES.get(shown.marks[k], Style())
        if index == self.cursor_row:
            style += CURSOR
        return Strip([Segment(shown.lines[k][x : x + width].ljust(width), style)])

    def _ask(self, start: int) -> None:
        wanted = (start, self.lines_for_rows)
        if self._asked != wanted:
            self._asked = wanted
            self.post_message(self.WindowNeeded(*wanted))

    def action_cursor(self, by: int) -> None:
        self.move_cursor(self.cursor_row + by)

    def action_page(self, by: int) -> None:
        self.move_cursor(self.cursor_row + by * self.lines_for_rows)

    def action_choose(self) -> None:
        if self.rows:
            self.post_message(self.Chosen())

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            if self.shown is not None:
                x = event.x + self.scroll_offset.x
                for k, (start, width) in enumerate(self.shown.spans):
                    if start <= x < start + width:
                        self.post_message(self.HeaderClicked(k))
            return
        index = self.scroll_offset.y + event.y - 1
        if index < self.rows:
            self.move_cursor(index)
            if event.chain == 2:  # a double click: the socket's story
                self.post_message(self.Chosen())
