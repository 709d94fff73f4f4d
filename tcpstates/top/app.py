"""``tcpstates top``'s screen: the live table, the filter bar, the per-state history strip, and
a side panel with the selected socket's story or its state's explanation.

Readings are made on a worker thread by the watch's own ``frames`` (the same source, diff and
order as --watch) and handed to the screen as whole frames; what a frame shows is worked out
by top/view.py. Nothing here reads the kernel or decides what a row says.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Static

from tcpstates.explain.render_sockets import accounts_text
from tcpstates.explain.render_states import explanation_text
from tcpstates.explain.sockets import account
from tcpstates.explain.states import explain
from tcpstates.model.errors import TcpstatesError
from tcpstates.model.query import Query
from tcpstates.model.sockets import Socket
from tcpstates.render.columns import STATE, Column, Layout
from tcpstates.render.fit import GAP, Fitted
from tcpstates.render.safe import safe
from tcpstates.top.filters import FilterError, parse_filter
from tcpstates.top.view import History, Row, fitted_rows, rows, sort_rows
from tcpstates.watch.frames import Frame, frames

# What a mark looks like for the one frame it is shown (top/view.py MARKS).
MARK_STYLES = {"+": "bold green", "~": "bold yellow", "-": "dim strike"}
STRIP_ROWS = 5  # states shown in the history strip, the largest piles
SCROLLBAR = 2  # the table's vertical scroll bar, there once rows outnumber lines
SIDE_BY_SIDE = 120  # columns from which the side panel leaves the table room for both ends


class Confirm(ModalScreen[bool]):
    """A yes/no question; anything but y is no."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape,q", "answer(False)", "No"),
    ]
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Static { width: auto; max-width: 90%; border: thick $warning; padding: 1 2; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        yield Static(Text(self.question) + Text.from_markup("\n\n[b]y[/b] yes   [b]n[/b] no"))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TopApp(App[None]):
    """The screen; ``read`` gives the sockets of one reading (the command line's query
    applied), ``destroy`` (when the place allows it) destroys sockets and says how it went."""

    TITLE = "tcpstates top"
    CSS = """
    #status { height: 1; background: $boost; }
    #strip { height: auto; }
    #main { height: 1fr; }
    #table { width: 1fr; }
    #panel { display: none; width: 48%; border-left: vkey $accent; padding: 0 1; }
    #panel.shown { display: block; }
    #panel.alone { width: 1fr; border-left: none; }
    #filter { display: none; }
    #filter.shown { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("r", "reverse", "Reverse"),
        Binding("e", "explain_state", "State"),
        Binding("i", "story", "Socket"),
        Binding("k", "kill_selected", "Kill"),
        Binding("K", "kill_filtered", "Kill shown", show=False),
        Binding("escape", "close", "Close", show=False),
    ]

    def __init__(
        self,
        read: Callable[[], Iterable[Socket]],
        query: Query,
        layout: Layout,
        interval: float,
        where: str,
        destroy: Callable[[list[Socket]], str] | None = None,
    ) -> None:
        super().__init__()
        self.read, self.asked, self.layout, self.interval = read, query, layout, interval
        self.where, self.destroy = where, destroy
        self.typed, self.typed_text = query, ""
        self.sort_column, self.reverse = STATE, False
        self.frame: Frame | None = None
        self.shown: list[Row] = []
        self.history = History()
        self.stopping = threading.Event()
        self.failure: str | None = None
        self.headers: tuple[str, ...] = ()
        self.notes: tuple[str, ...] = ()  # what fitting the width hid or cut

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Input(placeholder="state:close-wait port:8080 process:nginx", id="filter")
        yield Static(id="strip")
        with Horizontal(id="main"):
            yield DataTable(id="table", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="panel"):
                yield Static(id="story")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.run_worker(self._readings, thread=True, exit_on_error=False)

    def on_resize(self) -> None:
        self.redraw()

    def on_unmount(self) -> None:
        self.stopping.set()

    # -- readings, on the worker thread ------------------------------------------------------

    def _readings(self) -> None:
        try:
            for frame in frames(self.read, self.interval, query=self.asked, sleep=self._sleep):
                if self.stopping.is_set():
                    return
                self.call_from_thread(self.show_frame, frame)
        except (TcpstatesError, OSError) as e:  # a reading that fails (a namespace gone)
            if not self.stopping.is_set():
                self.call_from_thread(self.fail, str(e) or type(e).__name__)

    def _sleep(self, seconds: float) -> None:
        self.stopping.wait(seconds)

    def fail(self, message: str) -> None:
        self.failure = message
        self.exit(message=f"tcpstates top: {message}")

    # -- drawing -----------------------------------------------------------------------------

    def show_frame(self, frame: Frame) -> None:
        self.frame = frame
        self.history.add(frame)
        self.redraw()

    def redraw(self) -> None:
        if self.frame is None:
            return
        table = self.query_one(DataTable)
        selected = self._selected_key()
        self.shown = sort_rows(
            rows(self.frame, self.layout, self.typed), self.sort_column, self.layout, self.reverse
        )
        fitted = fitted_rows(self.shown, self.layout, self._table_width())
        self._set_columns(table, fitted)
        table.clear()
        for i, row in enumerate(self.shown):
            cells = [_aligned(fitted.cells[k][i], c) for k, c in enumerate(fitted.columns)]
            table.add_row(Text(row.mark, style=MARK_STYLES.get(row.mark, "")), *cells, key=row.key)
        keys = [row.key for row in self.shown]
        if selected in keys:
            table.move_cursor(row=keys.index(selected), scroll=False)
        self.notes = fitted.notes
        self._draw_status()
        self._draw_strip()

    def _table_width(self) -> int:
        """What the cells may take: the table's width but the mark column and the scroll bar."""
        width = self.query_one(DataTable).size.width or self.size.width
        return max(20, width - (1 + GAP) - SCROLLBAR)

    def _set_columns(self, table: DataTable[Text], fitted: Fitted) -> None:
        headers = tuple(fitted.headers)
        if headers == self.headers:
            return
        table.clear(columns=True)
        table.add_column(" ", key="mark", width=1)
        for column, header in zip(fitted.columns, headers, strict=True):
            table.add_column(_aligned(header, column), key=column.header)
        self.headers = headers

    def _selected_key(self) -> str | None:
        row = self.selected()
        return None if row is None else row.key

    def selected(self) -> Row | None:
        table = self.query_one(DataTable)
        if not self.shown or not 0 <= table.cursor_row < len(self.shown):
            return None
        return self.shown[table.cursor_row]

    def _draw_status(self) -> None:
        assert self.frame is not None
        order = "▼" if not self.reverse else "▲"
        parts = [
            f"{self.where}  {len(self.shown)} of {len(self.frame.sockets)} sockets",
            f"sorted by {self.sort_column.header} {order}",
        ]
        if self.typed_text:
            parts.append(f"filter: {safe(self.typed_text)}")
        if self.notes:
            parts.append("; ".join(self.notes))
        self.query_one("#status", Static).update(Text("  ·  ".join(parts)))

    def _draw_strip(self) -> None:
        width = max(10, self.size.width - 30)
        lines = [
            f"{name:<12} {count:>7} {line}"
            for name, line, count in self.history.lines(width)[:STRIP_ROWS]
        ]
        self.query_one("#strip", Static).update(Text("\n".join(lines)))

    # -- keys ----------------------------------------------------------------------------------

    def action_filter(self) -> None:
        bar = self.query_one("#filter", Input)
        bar.add_class("shown")
        bar.value = self.typed_text
        bar.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            self.typed = parse_filter(event.value, self.asked)
        except FilterError as e:
            self.notify(str(e), severity="error", timeout=6, markup=False)
            return
        self.typed_text = event.value.strip()
        self._close_filter()
        self.redraw()

    def _close_filter(self) -> None:
        self.query_one("#filter", Input).remove_class("shown")
        self.query_one(DataTable).focus()

    def action_close(self) -> None:
        self._close_filter()
        panel = self.query_one("#panel", VerticalScroll)
        if panel.has_class("shown"):
            panel.remove_class("shown")
            table = self.query_one(DataTable)
            table.display = True
            table.focus()
            self.call_after_refresh(self.redraw)

    def action_sort(self) -> None:
        columns = self.layout.columns
        self.sort_column = columns[(columns.index(self.sort_column) + 1) % len(columns)]
        self.redraw()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.redraw()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        header = event.column_key.value
        chosen = next((c for c in self.layout.columns if c.header == header), None)
        if chosen is not None:
            self.reverse = chosen == self.sort_column and not self.reverse
            self.sort_column = chosen
            self.redraw()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_story()

    def action_story(self) -> None:
        row = self.selected()
        if row is not None:
            self._panel(accounts_text([account(row.socket)], self._panel_width()))

    def action_explain_state(self) -> None:
        row, frame = self.selected(), self.frame
        if row is None or frame is None:
            return
        state = row.socket.state
        count = sum(1 for sock in frame.sockets if sock.state is state)
        self._panel(explanation_text(explain(state, count), self._panel_width()))

    def _panel_width(self) -> int:
        """The text's width: the panel is beside the table from SIDE_BY_SIDE columns up, and in
        its place below that, where the table beside it could not show a socket's two ends."""
        share = 48 if self.size.width >= SIDE_BY_SIDE else 100
        return max(30, self.size.width * share // 100 - 4)

    def _panel(self, text: str) -> None:
        self.query_one("#story", Static).update(Text(text))
        panel = self.query_one("#panel", VerticalScroll)
        panel.scroll_home(animate=False)
        if not panel.has_class("shown"):
            panel.add_class("shown")
            alone = self.size.width < SIDE_BY_SIDE
            panel.set_class(alone, "alone")
            self.query_one(DataTable).display = not alone
            self.call_after_refresh(self.redraw)  # the table is narrower now: fit it again

    def action_kill_selected(self) -> None:
        row = self.selected()
        if row is not None:
            self._kill([row.socket])

    def action_kill_filtered(self) -> None:
        self._kill([row.socket for row in self.shown if row.mark != "-"])

    def _kill(self, chosen: list[Socket]) -> None:
        destroy = self.destroy
        if destroy is None:
            self.notify("killing needs root, and one live namespace", severity="warning")
            return
        if not chosen:
            return
        first = self.layout.row_maker()(chosen[0])
        index = self.layout.state_index
        what = " ".join(first[index : index + 1] + first[index + 3 : index + 5])
        if len(chosen) > 1:
            what = f"{len(chosen)} sockets, the first {what}"

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(destroy(chosen), timeout=8, markup=False)

        self.push_screen(Confirm(f"Destroy {what}?\nEach peer gets a RST."), answered)


def _aligned(text: str, column: Column) -> Text:
    return Text(text, justify="right" if column.align == "right" else "left")
