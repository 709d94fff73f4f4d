"""``tcpstates top``'s screen: the live table, the filter bar, the per-state history strip, and
a side panel with the selected socket's story or its state's explanation.

Readings are made on a worker thread by the watch's own ``frames`` (the same source, diff and
order as --watch) and handed to the screen as whole frames; what a frame shows is worked out
by top/view.py. Nothing here reads the kernel or decides what a row says.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, OptionList, Static

from tcpstates.doctor.findings import Finding
from tcpstates.doctor.render import findings_renderable
from tcpstates.explain.render_diagram import diagram_lines
from tcpstates.explain.render_sockets import accounts_text
from tcpstates.explain.render_states import explanation_text
from tcpstates.explain.sockets import account
from tcpstates.explain.states import explain
from tcpstates.model.errors import TcpstatesError
from tcpstates.model.i18n import N_, _, ngettext
from tcpstates.model.query import Query
from tcpstates.model.sockets import Socket
from tcpstates.render.columns import STATE, Layout
from tcpstates.render.fit import pack
from tcpstates.render.safe import safe
from tcpstates.top.filters import FilterError, from_command, parse_filter
from tcpstates.top.table import SocketTable
from tcpstates.top.view import (
    MARK,
    History,
    Ordered,
    Settings,
    Window,
    find,
    order,
    state_counts,
    window,
)
from tcpstates.watch.frames import Frame, Key, frames, socket_key
from tcpstates.watch.memory import collect_as_before, collect_less

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
        keys = Text.from_markup(_("\n\n[b]y[/b] yes   [b]n[/b] no"))
        yield Static(Text(self.question) + keys)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


# (key, action, label) of each key the footer shows.
KEYS = (
    ("q", "quit", N_("Quit")),
    ("slash", "filter", N_("Filter")),
    ("s", "sort", N_("Sort")),
    ("r", "reverse", N_("Reverse")),
    ("e", "explain_state", N_("State")),
    ("i", "story", N_("Socket")),
    ("f", "findings", N_("Findings")),
    ("k", "kill_selected", N_("Kill")),
)


class TopApp(App[None]):
    """The screen; ``read`` gives the sockets of one reading (the command line's query
    applied), ``destroy`` (when the place allows it) destroys sockets and says how it went."""

    TITLE = "tcpstates top"
    # Its "^p palette" took 12 of the footer's 80 columns, and it lists nothing the keys lack.
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #status { height: auto; background: $boost; }
    #strip { height: auto; }
    #main { height: 1fr; }
    #table { width: 1fr; }
    #panel { display: none; width: 48%; border-left: vkey $accent; padding: 0 1; }
    #panel.shown { display: block; }
    #panel.alone { width: 1fr; border-left: none; }
    #filter { display: none; }
    #filter.shown { display: block; }
    """
    # The keys the footer shows are bound in __init__, labelled in the language chosen by then.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "quit", show=False, priority=True),
        Binding("K", "kill_filtered", show=False),
        Binding("escape", "close", "Close", show=False),
        *(Binding(str(n), f"pick({n})", show=False) for n in range(1, STRIP_ROWS + 1)),
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
        for key, action, label in KEYS:
            self.bind(key, action, description=_(label))
        self.read, self.asked, self.layout, self.interval = read, query, layout, interval
        self.where, self.destroy = where, destroy
        self.typed: Query | None = None  # the filter bar's query; None: nothing typed
        self.typed_text = ""
        self.sort_column, self.reverse = STATE, False
        self.frame: Frame | None = None
        self.ordered = Ordered(self.settings(), [], {})
        self.shown: Window | None = None  # the rows on screen, as text
        self.history = History()
        self.stopping = threading.Event()
        self.drawn = threading.Event()  # the last frame posted is on screen
        self.drawn.set()
        self.failure: str | None = None
        self.table = SocketTable(id="table")
        # The selected socket read again with what a story tells (tcp_info, every holder);
        # top/run.py gives it. Without: the story of the socket as the last frame read it.
        self.detailed: Callable[[Socket], Socket | None] = lambda sock: sock
        # doctor's findings on a frame's sockets (top/run.py gives it), and the last shown.
        self.findings: Callable[[Iterable[Socket]], list[Finding]] = lambda sockets: []
        self.found: list[Finding] = []

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Input(placeholder="state:close-wait port:8080 process:nginx", id="filter")
        yield Static(id="strip")
        with Horizontal(id="main"):
            yield self.table
            with VerticalScroll(id="panel"):
                yield Static(id="story")
                yield OptionList(id="findings")
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.collecting = collect_less()
        self.run_worker(self._readings, thread=True, exit_on_error=False)

    def on_unmount(self) -> None:
        self.stopping.set()
        collect_as_before(self.collecting)

    # -- readings, on the worker thread ------------------------------------------------------

    class FrameRead(Message):
        """A frame read, counted and ordered on the reading's thread, for the screen's."""

        def __init__(self, frame: Frame, counts: Counter[str], ordered: Ordered) -> None:
            super().__init__()
            self.frame, self.counts, self.ordered = frame, counts, ordered

    def _readings(self) -> None:
        # Posted, not called: the next reading starts while the screen draws this one (the
        # kernel's part of it, and the owner scan's other half, run without the GIL), but not
        # before the last frame posted is drawn, so frames never queue behind a slow screen.
        try:
            for frame in frames(self.read, self.interval, query=self.asked, sleep=self._sleep):
                ordered = order(frame, self.layout, self.settings(), self.selected_key)
                while not self.drawn.wait(0.1):
                    if self._leaving():
                        return
                if self._leaving():
                    return
                self.drawn.clear()
                self.post_message(self.FrameRead(frame, state_counts(frame), ordered))
        except (TcpstatesError, OSError) as e:  # a reading that fails (a namespace gone)
            if not self._leaving():
                self.call_from_thread(self.fail, str(e) or type(e).__name__)

    def on_top_app_frame_read(self, message: FrameRead) -> None:
        try:
            if not self._leaving():
                self.show_frame(message.frame, message.counts, message.ordered)
        finally:
            self.drawn.set()

    def _leaving(self) -> bool:
        """Whether the app is on its way out, by q, by an error, or by Textual's shutdown.

        Textual stops running and takes the widgets down before the app's own unmount sets
        ``stopping``: a frame, a resize or a table's message queued just before is handled
        in between, with nothing to draw on, so each handler that draws asks this first.
        """
        ending = self.stopping.is_set() or not self.is_running
        return ending or bool(self._exit_renderables) or bool(self.return_code)

    def _sleep(self, seconds: float) -> None:
        self.stopping.wait(seconds)

    def fail(self, message: str) -> None:
        self.failure = message
        self.exit(message=f"tcpstates top: {message}")

    # -- drawing -----------------------------------------------------------------------------

    def show_frame(self, frame: Frame, counts: Counter[str], ordered: Ordered) -> None:
        self.frame = frame
        self.history.add(counts)
        if ordered.settings == self.settings():
            self._list(ordered)
        else:  # a key changed the filter or the order while it was being read
            self.redraw()

    def settings(self) -> Settings:
        """What a frame is ordered for; read by the reading's thread too: plain values."""
        return (self.typed, self.sort_column, self.reverse)

    def redraw(self) -> None:
        """List the last frame again, as the filter and the order now say."""
        if self.frame is not None:
            self._list(order(self.frame, self.layout, self.settings(), self.selected_key))

    def _list(self, ordered: Ordered) -> None:
        selected, self.ordered = self.selected_key, ordered
        table = self.table
        # The cursor stays on its socket, wherever that is now; the reading's thread found it
        # unless the cursor moved meanwhile.
        if selected == ordered.on:
            at = ordered.cursor
        else:
            at = None if selected is None else find(ordered.sockets, selected)
        if at is not None:
            table.cursor_row = at
        table.rows = len(ordered.sockets)  # before the window: where the cursor may be
        table.move_cursor(table.cursor_row)
        self._refit()

    def _refit(self) -> None:
        """The rows on screen fitted to the table's width again, and the lines above it: what
        a new size needs, which leaves the order as it was."""
        if self.frame is None or self._leaving():
            return
        self._show_window(round(self.table.scroll_offset.y), self.table.lines_for_rows)
        self._draw_status()
        self._draw_strip()

    def on_socket_table_window_needed(self, event: SocketTable.WindowNeeded) -> None:
        if self._leaving():
            return
        self._show_window(event.start, event.count)
        self._draw_status()

    def _show_window(self, start: int, count: int) -> None:
        self.shown = window(self.ordered, start, count, self.layout, self._table_width())
        self.table.show(len(self.ordered.sockets), self.shown)

    def on_resize(self) -> None:
        if self.frame is not None:
            self.call_after_refresh(self._refit)  # once the table has its new size

    @property
    def selected_key(self) -> Key | None:
        """The cursor's socket, by its ends: the same from one reading to the next."""
        sock = self.selected()
        return None if sock is None else socket_key(sock)

    def _table_width(self) -> int:
        """What the cells may take: the table's width but the mark and the scroll bar."""
        width = self.table.size.width or self.size.width
        return max(20, width - MARK - SCROLLBAR)

    def selected(self) -> Socket | None:
        listed, row = self.ordered.sockets, self.table.cursor_row
        return listed[row] if 0 <= row < len(listed) else None

    def _draw_status(self) -> None:
        assert self.frame is not None
        order = "▼" if not self.reverse else "▲"
        shown, read = len(self.ordered.sockets) - self.ordered.gone, len(self.frame.sockets)
        parts = [
            self.where
            + "  "
            + ngettext("{shown} of {n} socket", "{shown} of {n} sockets", read).format(
                shown=shown, n=read
            ),
            _("sorted by {column} {order}").format(column=self.sort_column.header, order=order),
        ]
        if self.typed_text:
            parts.append(_("filter: {words}").format(words=safe(self.typed_text)))
        if self.shown is not None and self.shown.fitted.notes:
            parts.append("; ".join(self.shown.fitted.notes))
        if self.shown is not None and self.shown.fitted.width > self._table_width():
            # A row is one line here, for the cursor: ends too long for it are scrolled to,
            # never cut (the listing gives such a row two lines instead).
            parts.append(_("wider than the screen: ← → scroll"))
        # Wrapped between its parts, never within one: a narrow pane gets a second line.
        lines = pack(parts, "  ·  ", max(20, self.size.width))
        self.query_one("#status", Static).update(Text("\n".join(lines)))

    def _draw_strip(self) -> None:
        width = max(10, self.size.width - 24)
        lines = [
            f"{n} {name:<12} {count:>7} {line}"
            for n, (name, line, count) in enumerate(self.strip(width), start=1)
        ]
        self.query_one("#strip", Static).update(Text("\n".join(lines)))

    def strip(self, width: int) -> list[tuple[str, str, int]]:
        return self.history.lines(width)[:STRIP_ROWS]

    # -- keys ----------------------------------------------------------------------------------

    def action_pick(self, n: int) -> None:
        """Show only the sockets in the strip's ``n``th state (the same as typing its filter)."""
        strip = self.strip(1)
        if n <= len(strip):
            self._filter(f"state:{strip[n - 1][0]}")

    def action_filter(self) -> None:
        bar = self.query_one("#filter", Input)
        bar.add_class("shown")
        bar.value = self.typed_text
        bar.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._filter(event.value)

    def _filter(self, text: str) -> None:
        try:
            typed = parse_filter(text, self.asked)
        except FilterError as e:
            self.notify(str(e), severity="error", timeout=6, markup=False)
            return
        self.typed_text = text.strip()
        self.typed = typed if self.typed_text else None  # nothing typed: no filter to apply
        self._close_filter()
        self.redraw()

    def _close_filter(self) -> None:
        self.query_one("#filter", Input).remove_class("shown")
        self.table.focus()

    def action_close(self) -> None:
        self._close_filter()
        panel = self.query_one("#panel", VerticalScroll)
        if panel.has_class("shown"):
            panel.remove_class("shown")
            table = self.table
            table.display = True
            table.focus()
            self.call_after_refresh(self._refit)

    def action_sort(self) -> None:
        columns = self.layout.columns
        self.sort_column = columns[(columns.index(self.sort_column) + 1) % len(columns)]
        self.redraw()

    def action_reverse(self) -> None:
        self.reverse = not self.reverse
        self.redraw()

    def on_socket_table_header_clicked(self, event: SocketTable.HeaderClicked) -> None:
        if self.shown is None or event.index >= len(self.shown.fitted.columns):
            return
        chosen = self.shown.fitted.columns[event.index]
        self.reverse = chosen == self.sort_column and not self.reverse
        self.sort_column = chosen
        self.redraw()

    def on_socket_table_chosen(self, event: SocketTable.Chosen) -> None:
        self.action_story()

    def action_story(self) -> None:
        row = self.selected()
        if row is not None:
            sock = self.detailed(row)
            if sock is None:
                self.notify(_("it has just closed"), markup=False)
                sock = row  # its story as the last reading saw it
            self._panel(accounts_text([account(sock)], self._panel_width()))

    def action_explain_state(self) -> None:
        row, frame = self.selected(), self.frame
        if row is None or frame is None:
            return
        state, width = row.state, self._panel_width()
        # The diagram's boxes count TCP sockets, as --diagram's do: a UDP socket has no such life.
        counts = Counter(sock.state for sock in frame.sockets if sock.proto == "tcp")
        text = explanation_text(explain(state, counts[state]), width)
        picture = "\n".join(diagram_lines(dict(counts), focus=state, width=width))
        self._panel(f"{text}\n{picture}\n")

    def _panel_width(self) -> int:
        """The text's width: the panel is beside the table from SIDE_BY_SIDE columns up, and in
        its place below that, where the table beside it could not show a socket's two ends."""
        share = 48 if self.size.width >= SIDE_BY_SIDE else 100
        return max(30, self.size.width * share // 100 - 4)

    def action_findings(self) -> None:
        """doctor's findings on the last frame, worst first; Enter on one shows its sockets."""
        if self.frame is None:
            return
        self.found = self.findings(self.frame.sockets)
        listed = self.query_one("#findings", OptionList)
        listed.clear_options()
        # As doctor shows them (escaped: a title names processes, whose names anyone picks),
        # each an option of its own; none found is one option, saying so.
        listed.add_options([findings_renderable([finding]) for finding in self.found])
        if not self.found:
            listed.add_option(findings_renderable([]))
        listed.highlighted = 0
        self._panel("", findings=True)
        listed.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_index >= len(self.found):
            return
        words = from_command(self.found[event.option_index].next_command)
        self.action_close()
        if words:
            self._filter(words)

    def _panel(self, text: str, findings: bool = False) -> None:
        self.query_one("#findings", OptionList).display = findings
        self.query_one("#story", Static).display = not findings
        self.query_one("#story", Static).update(Text(text))
        panel = self.query_one("#panel", VerticalScroll)
        panel.scroll_home(animate=False)
        if not panel.has_class("shown"):
            panel.add_class("shown")
            alone = self.size.width < SIDE_BY_SIDE
            panel.set_class(alone, "alone")
            self.table.display = not alone
            self.call_after_refresh(self._refit)  # the table is narrower now: fit it again

    def action_kill_selected(self) -> None:
        row = self.selected()
        if row is not None:
            self._kill([row])

    def action_kill_filtered(self) -> None:
        listed = self.ordered
        self._kill([sock for sock in listed.sockets if listed.mark(sock) != "-"])

    def _kill(self, chosen: list[Socket]) -> None:
        destroy = self.destroy
        if destroy is None:
            self.notify(_("killing needs root, and one live namespace"), severity="warning")
            return
        if not chosen:
            return
        first = self.layout.row_maker()(chosen[0])
        index = self.layout.state_index
        what = " ".join(first[index : index + 1] + first[index + 3 : index + 5])
        if len(chosen) > 1:
            what = _("{n} sockets, the first {socket}").format(n=len(chosen), socket=what)

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(destroy(chosen), timeout=8, markup=False)

        question = _("Destroy {sockets}?\nEach peer gets a RST.").format(sockets=what)
        self.push_screen(Confirm(question), answered)
