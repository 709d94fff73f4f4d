"""tcpstates top on real sockets: a CLOSE_WAIT pile appears while it runs, comes to the top,
is filtered, explained and (as root) destroyed after a question, checked with ss; the real
program fits 60 to 200 columns in a tmux pane and leaves the terminal as it was.

The screen is driven by Textual's own pilot (``App.run_test``), on the same screen
``tcpstates top`` builds (top/run.py's ``screen``), reading this host's sockets through a
port filter, so that the suite runs as root and as nobody alike.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import weakref
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from conftest import TCPSTATES, Netns
from terminal import needs_tmux, terminal
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widgets import OptionList

from tcpstates.cli.root import resolve
from tcpstates.model.place import NamedNetns, Place
from tcpstates.model.query import Query
from tcpstates.model.record import replace
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState
from tcpstates.render.columns import STATE, Layout
from tcpstates.top import filters, view
from tcpstates.top.app import Confirm, TopApp
from tcpstates.top.run import MISSING, screen
from tcpstates.top.table import SocketTable
from tcpstates.watch.frames import frames, socket_key
from tcpstates.watch.memory import COLLECT_AFTER

PAIRS, CLOSED = 12, 9  # connections to the pile's server; clients that close theirs


class Pile:
    """A server on 127.0.0.1 that never closes what it accepts, and its clients."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.clients = [socket.create_connection(("127.0.0.1", self.port)) for _ in range(PAIRS)]
        self.accepted = [self.server.accept()[0] for _ in range(PAIRS)]

    def close_clients(self, n: int) -> None:
        """The clients' ends close first: the server's ends go to CLOSE_WAIT and stay, the
        clients' to FIN_WAIT2 (once their FIN is acknowledged: waited for, 5 s at most)."""
        for client in self.clients[:n]:
            client.close()
        deadline = time.monotonic() + 5
        while in_state("fin-wait-2", f"dport = :{self.port}") < n:
            assert time.monotonic() < deadline, "the clients' ends never reached FIN_WAIT2"
            time.sleep(0.01)

    def close(self) -> None:
        for s in (self.server, *self.clients, *self.accepted):
            s.close()


@pytest.fixture
def pile() -> Iterator[Pile]:
    made = Pile()
    yield made
    made.close()


def close_waits(port: int) -> int:
    """How many of the server's ends ss sees in CLOSE_WAIT."""
    return in_state("close-wait", f"sport = :{port}")


def in_state(state: str, where: str) -> int:
    done = subprocess.run(
        ["ss", "-Htn", "state", state, f"( {where} )"],
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    return len(done.stdout.splitlines())


def run(
    app: TopApp,
    scenario: Callable[[Pilot[None]], Awaitable[None]],
    size: tuple[int, int] = (80, 24),
) -> None:
    """``scenario`` played on ``app`` in a headless terminal of ``size`` (columns, lines)."""

    async def play() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)

    asyncio.run(play())


async def until(pilot: Pilot[None], done: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not shown in time"
        await pilot.pause(0.05)


def server_side(port: int) -> TopApp:
    return screen(Query(sport=port), Place(), 0.2, owners=True)


def states(app: TopApp) -> list[str]:
    return [sock.state_name for sock in app.ordered.sockets]


def listed(app: TopApp) -> list[Socket]:
    return app.ordered.sockets


# -- the filter bar ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "argv"),
    [
        ("state:close-wait port:8080 process:nginx", "-s close-wait --port 8080 --process nginx"),
        ("s:listen,established sport:22", "-s listen -s established --sport 22"),
        ("dport:443 remote:10.0.0.0/8 pid:7", "--dport 443 --remote 10.0.0.0/8 --pid 7"),
        ("local:::1 nginx*", "--local ::1 --process nginx*"),
    ],
)
def test_the_filter_bar_reads_as_the_command_line_does(typed: str, argv: str) -> None:
    asked = resolve(["top", *argv.split()]).query  # type: ignore[attr-defined]
    assert filters.parse_filter(typed, Query()) == asked


@pytest.mark.parametrize(
    "command",
    [
        "tcpstates kill -s close-wait --pid 812 --dry-run",
        "tcpstates --remote 10.0.0.5 --dport 5432 --summary",
        "tcpstates -s time-wait --remote 192.0.2.7",
        "tcpstates -s time-wait -s fin-wait-2 --summary",
    ],
)
def test_a_findings_next_command_selects_what_the_command_line_does(command: str) -> None:
    # What doctor says to run next, turned into the filter bar's words (Enter on a finding).
    asked = resolve(shlex.split(command)[1:]).query  # type: ignore[attr-defined]
    typed = filters.parse_filter(filters.from_command(command), Query())
    for name in ("states", "port", "sport", "dport", "local", "remote", "pid", "process"):
        assert getattr(typed, name) == getattr(asked, name), name


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("colour:red", "colour: no such key"),
        ("port:70000", "port:70000: not a port"),
        ("pid:x", "pid:x: not a pid"),
        ("state:sleepy", "state:sleepy: no such state"),
        ("local:nowhere", "local:nowhere:"),
        ("sport:", "sport: needs a value"),
    ],
)
def test_a_filter_that_cannot_be_read_says_why_in_one_line(typed: str, said: str) -> None:
    with pytest.raises(filters.FilterError) as caught:
        filters.parse_filter(typed, Query())
    assert str(caught.value).startswith(said) and "\n" not in str(caught.value)


def test_a_typed_filter_narrows_what_was_asked_and_never_widens_it() -> None:
    asked = Query(states=frozenset({TcpState.LISTEN, TcpState.ESTABLISHED}))
    typed = filters.parse_filter("state:established,time-wait", asked)
    assert typed.states == {TcpState.ESTABLISHED}


# -- rows, order, history ------------------------------------------------------------------


def test_a_pile_comes_to_the_top_whatever_its_name(pile: Pile) -> None:
    # The clients' side: 9 FIN_WAIT2 and 3 ESTABLISHED. By name ESTABLISHED would lead.
    pile.close_clients(CLOSED)
    query = Query(dport=pile.port)
    app = screen(query, Place(), 1.0, owners=True)
    frame = next(frames(app.read, 1.0, query=query))
    shown = view.order(frame, app.layout, (None, STATE, False)).sockets
    expected = ["FIN_WAIT2"] * CLOSED + ["ESTABLISHED"] * (PAIRS - CLOSED)
    assert [sock.state_name for sock in shown] == expected
    backwards = view.order(frame, app.layout, (None, STATE, True)).sockets
    assert backwards[0].state_name == "ESTABLISHED"


def test_piles_are_ordered_as_sorting_by_pile_size_orders_them(pile: Pile) -> None:
    # by_pile spares a refresh the sort; it must give what sorting (pile size, name) gives,
    # TCP's CLOSE and UDP's UNCONN (one state, two names) included, both ways.
    pile.close_clients(CLOSED)
    udp = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        for u in udp:
            u.bind(("127.0.0.1", 0))
        query = Query(protos=frozenset({"tcp", "udp"}))
        app = screen(query, Place(), 1.0, owners=False)
        frame = next(frames(app.read, 1.0, query=query))
        listed = list(frame.sockets)
        names = {s.state_name for s in listed}
        assert {"UNCONN", "CLOSE_WAIT", "LISTEN"} <= names
        pile_size = Counter(s.state for s in listed)
        for reverse in (False, True):
            plain = sorted(
                listed, key=lambda s: (-pile_size[s.state], s.state_name), reverse=reverse
            )
            assert view.by_pile(listed, reverse) == plain
        assert view.state_counts(frame) == Counter(s.state_name for s in listed)
    finally:
        for u in udp:
            u.close()


def test_ports_sort_as_numbers_not_text(pile: Pile) -> None:
    query = Query(dport=pile.port)
    app = screen(query, Place(), 1.0, owners=True)
    frame = next(frames(app.read, 1.0, query=query))
    local = next(c for c in app.layout.columns if c.header == "Local Address:Port")
    ports = [s.local_port for s in view.order(frame, app.layout, (None, local, False)).sockets]
    assert ports == sorted(ports) and len(ports) == PAIRS


def test_the_socket_under_the_cursor_is_found_again_wherever_it_went(pile: Pile) -> None:
    query = Query(dport=pile.port)
    app = screen(query, Place(), 1.0, owners=True)
    frame = next(frames(app.read, 1.0, query=query))
    first = view.order(frame, app.layout, (None, STATE, False)).sockets
    chosen = first[3]
    again = view.order(frame, app.layout, (None, STATE, True), socket_key(chosen))
    assert again.cursor is not None and again.sockets[again.cursor] is chosen


def test_the_history_strip_puts_the_largest_pile_first() -> None:
    history = view.History()
    for counts in ([0, 5], [3, 5], [9, 5]):
        history.counts.setdefault("CLOSE_WAIT", deque(maxlen=view.HISTORY))
        history.counts.setdefault("LISTEN", deque(maxlen=view.HISTORY))
        history.counts["CLOSE_WAIT"].append(counts[0])
        history.counts["LISTEN"].append(counts[1])
    assert history.lines(3) == [("CLOSE_WAIT", "▁▃█", 9), ("LISTEN", "███", 5)]


def test_a_fitted_window_never_cuts_a_state_an_address_a_port_or_a_pid(pile: Pile) -> None:
    query = Query(sport=pile.port)
    layout = Layout(owners=True)
    app = screen(query, Place(), 1.0, owners=True)
    frame = next(frames(app.read, 1.0, query=query))
    ordered = view.order(frame, layout, (None, STATE, False))
    for width in (40, 55, 80):
        shown = view.window(ordered, 2, 8, layout, width)
        assert len(shown.lines) == 8 and shown.start == 2
        fitted = shown.fitted
        for name in ("State", "Local Address:Port", "Peer Address:Port", "PID"):
            column = next(c for c in layout.columns if c.header == name)
            k = fitted.index(column)
            assert k is not None, (name, width)
            index = layout.columns.index(column)
            wholes = [layout.row_maker()(sock)[index] for sock in ordered.sockets[2:10]]
            for cell, whole in zip(fitted.cells[k], wholes, strict=True):
                # Written shorter at most (a listener's peer 0.0.0.0:* as *:*), never cut.
                assert "…" not in cell and cell.rpartition(":")[2] == whole.rpartition(":")[2]
                assert cell == whole or name.endswith("Port"), (name, width)
            assert all(
                cell in line for cell, line in zip(fitted.cells[k], shown.lines, strict=True)
            )


# -- the screen, under Textual's pilot -----------------------------------------------------


def test_a_pile_appears_comes_to_the_top_and_is_explained(pile: Pile) -> None:
    app = server_side(pile.port)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: states(app).count("ESTABLISHED") == PAIRS)
        pile.close_clients(CLOSED)
        await until(pilot, lambda: states(app)[:CLOSED] == ["CLOSE_WAIT"] * CLOSED)
        marks = [app.ordered.mark(sock) for sock in listed(app)[:CLOSED]]
        assert marks == ["~"] * CLOSED or marks == [""] * CLOSED  # marked for one refresh
        assert app.history.counts["CLOSE_WAIT"][-1] == CLOSED
        await pilot.press("slash", *"state:close-wait", "enter")
        assert states(app) == ["CLOSE_WAIT"] * CLOSED and app.typed_text == "state:close-wait"
        await pilot.press("i")
        story = str(app.query_one("#story").render())
        assert "CLOSE_WAIT" in story and "close() this socket" in story
        # Read again with its tcp_info: how long it has been held, its round trip.
        assert "held in CLOSE_WAIT for" in story and "round trip" in story
        # And the cgroup its holder (this test) runs in, as /proc/self/cgroup has it.
        cgroup = Path("/proc/self/cgroup").read_text().split("0::", 1)[1].split("\n")[0]
        assert f"cgroup {cgroup}" in " ".join(story.split())
        await pilot.press("escape", "e")
        said = " ".join(str(app.query_one("#story").render()).split())
        assert "The remote end has shut down, waiting for the socket to close." in said
        await pilot.press("escape", "escape", "f")  # doctor's findings: one on the pile
        findings = app.query_one("#findings", OptionList)
        titles = [finding.title for finding in app.found]
        at = next(i for i, t in enumerate(titles) if "CLOSE_WAIT sockets held by" in t)
        findings.highlighted = at
        await pilot.press("enter")  # its sockets: the filter of what doctor says to run next
        assert app.typed_text == f"state:close-wait pid:{os.getpid()}"
        assert states(app) == ["CLOSE_WAIT"] * CLOSED
        await pilot.press("q")

    run(app, scenario)


@pytest.mark.parametrize(("size", "beside"), [((160, 50), True), ((80, 24), False)])
def test_the_side_panel_is_beside_the_table_when_both_fit(
    pile: Pile, size: tuple[int, int], beside: bool
) -> None:
    pile.close_clients(CLOSED)
    app = server_side(pile.port)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: states(app)[:1] == ["CLOSE_WAIT"])
        await pilot.press("i")
        await pilot.pause(0.2)
        panel, table = app.query_one("#panel"), app.table
        assert panel.display and table.display == beside
        if beside:  # the table, narrower, fitted again: both ends and the PID still whole
            assert table.size.width + panel.size.width <= size[0]
            shown = app.shown
            assert shown is not None
            assert all(len(line) <= table.size.width for line in shown.lines)
            for line, sock in zip(shown.lines, listed(app)[shown.start :], strict=False):
                peer = f":{sock.remote_port}" if sock.remote_port else "*:*"  # a listener's
                assert f":{sock.local_port}" in line and peer in line
                assert f" {sock.pid} " in f"{line} "
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert not panel.display and table.display

    run(app, scenario, size)


HOSTILE = r"""
import ctypes, socket, sys
server = socket.create_server(("127.0.0.1", 0))
clients = [socket.create_connection(server.getsockname()) for _ in range(3)]
held = [server.accept()[0] for _ in clients]
for c in clients:
    c.close()  # the held ends go to CLOSE_WAIT
ctypes.CDLL(None).prctl(15, b"ev\x1b[31mil")  # PR_SET_NAME: a name that colours a terminal
print(server.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_a_hostile_process_name_reaches_the_findings_escaped() -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOSTILE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        port = int(holder.stdout.readline())
        app = server_side(port)

        async def scenario(pilot: Pilot[None]) -> None:
            await until(pilot, lambda: states(app).count("CLOSE_WAIT") == 3)
            await pilot.press("f")
            await pilot.pause(0.2)
            shown = screen_text(app)  # what reaches the terminal
            assert "CLOSE_WAIT sockets held by ev\\x1b[31mil" in shown, shown
            assert "\x1b" not in shown

        run(app, scenario, (160, 50))
    finally:
        holder.communicate(input="", timeout=10)


def test_a_filter_that_cannot_be_read_leaves_the_last_one(pile: Pile) -> None:
    app = server_side(pile.port)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: len(listed(app)) == PAIRS + 1)
        await pilot.press("slash", *"state:listen", "enter")
        await pilot.press("slash", "ctrl+u", *"colour:red", "enter")
        assert app.typed_text == "state:listen" and states(app) == ["LISTEN"]
        assert any("colour: no such key" in str(n.message) for n in app._notifications)

    run(app, scenario)


def test_no_key_raises(pile: Pile) -> None:
    app = server_side(pile.port)
    keys = [*"qwertyuiopasdfghjklzxcvbnm", "slash", "escape", "enter", "tab", "up", "down"]
    keys.remove("q")
    keys.remove("k")  # destroys, after a question: played below

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: len(listed(app)) == PAIRS + 1)
        for key in keys * 2:
            await pilot.press(key)
            if app.query_one("#filter").has_class("shown"):
                await pilot.press("escape")
        assert app.is_running and app.failure is None

    run(app, scenario)


def test_what_lands_while_textual_takes_the_screen_down_is_dropped(pile: Pile) -> None:
    """Textual stops the app and removes its widgets before the app's unmount: a frame, a
    resize or a table's message queued just before is handled in between, with no #status
    to draw on (a frame's was seen in CI)."""
    app = server_side(pile.port)
    close_all, landed = app._close_all, []

    async def close_then_land() -> None:
        await close_all()
        app.drawn.clear()
        frame = TopApp.FrameRead(app.frame, Counter(), app.ordered)
        for handle in (
            lambda: app.on_top_app_frame_read(frame),
            lambda: app.on_socket_table_window_needed(SocketTable.WindowNeeded(0, 10)),
            app._refit,  # what a resize calls
        ):
            try:
                handle()
            except NoMatches:  # caught so that the shutdown still ends
                landed.append("raised")
        landed.append(app.drawn.is_set())

    app._close_all = close_then_land  # type: ignore[method-assign]

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: len(listed(app)) == PAIRS + 1)

    run(app, scenario)
    assert landed == [True]  # dropped, and the reading's thread let go


def test_no_is_no(pile: Pile) -> None:
    pile.close_clients(CLOSED)
    app = server_side(pile.port)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: states(app)[:1] == ["CLOSE_WAIT"])
        await pilot.press("k")
        if app.destroy is not None:
            assert isinstance(app.screen, Confirm)
            await pilot.press("n")
        assert not isinstance(app.screen, Confirm)

    run(app, scenario)
    assert close_waits(pile.port) == CLOSED


@pytest.mark.root
def test_a_socket_is_destroyed_after_yes_and_ss_agrees(pile: Pile) -> None:
    pile.close_clients(CLOSED)
    app = server_side(pile.port)

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: states(app)[:1] == ["CLOSE_WAIT"])
        chosen = listed(app)[0]
        await pilot.press("k")
        assert isinstance(app.screen, Confirm)
        assert f"{chosen.remote_port}" in str(app.screen.query_one("Static").render())
        await pilot.press("y")
        await until(pilot, lambda: states(app).count("CLOSE_WAIT") == CLOSED - 1)
        left = {s.remote_port for s in listed(app) if app.ordered.mark(s) != "-"}
        assert chosen.remote_port not in left

    run(app, scenario)
    assert close_waits(pile.port) == CLOSED - 1


def test_without_root_nothing_can_be_destroyed(pile: Pile) -> None:
    if os.geteuid() == 0:
        assert server_side(pile.port).destroy is not None
    else:
        assert server_side(pile.port).destroy is None


# -- the real program ----------------------------------------------------------------------


@needs_tmux
@pytest.mark.parametrize("width", [60, 72, 80, 120, 200])
def test_the_real_screen_fits_and_leaves_the_terminal_as_it_was(pile: Pile, width: int) -> None:
    pile.close_clients(CLOSED)
    argv = [*TCPSTATES, "top", "--sport", str(pile.port), "--interval", "0.3"]
    with terminal(argv, width, 24) as term:
        shown = term.wait_for("CLOSE_WAIT")
        lines = [line for line in shown.splitlines() if "CLOSE_WAIT" in line and ":" in line]
        assert lines, shown
        for line in lines:
            assert len(line) <= width
            assert re.search(rf"127\.0\.0\.1:{pile.port}\b", line), line
            assert re.search(r"127\.0\.0\.1:\d{4,5}\b", line.split(f":{pile.port}", 1)[1]), line
            assert f" {os.getpid()} " in f"{line} ", line  # the holder's PID, whole
        term.keys("q")
        after = term.wait_for("EXIT=")
        assert "EXIT=0" in after and "CLOSE_WAIT" not in after  # the screen it drew is gone


def test_off_a_terminal_it_says_so_in_one_line() -> None:
    done = subprocess.run(
        [*TCPSTATES, "top"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 2
    assert done.stderr == (
        "tcpstates: top draws a terminal, and stdout is not one; use --watch -o jsonl\n"
    )


def test_without_textual_one_line_says_how_to_get_it() -> None:
    code = (
        "import sys; sys.modules['textual'] = None; sys.argv[1:] = ['top']\n"
        "from tcpstates.__main__ import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert (done.returncode, done.stderr) == (1, f"tcpstates: {MISSING}\n")


@needs_tmux
def test_in_indonesian_the_keys_the_status_and_a_bad_filter_say_it_in_indonesian(
    pile: Pile,
) -> None:
    pile.close_clients(CLOSED)
    argv = [*TCPSTATES, "top", "--lang", "id", "--sport", str(pile.port), "--interval", "0.3"]
    with terminal(argv, 80, 24) as term:
        shown = term.wait_for("k Matikan")  # the footer's last key: every label fits
        assert re.search(r"host ini  \d+ dari \d+ soket  ·  diurutkan menurut State", shown)
        footer = shown.rstrip().splitlines()[-1]
        for key in ("q Keluar", "/ Saring", "s Urutkan", "i Soket", "f Temuan", "k Matikan"):
            assert key in footer, footer
        term.keys("/")
        term.wait_for("state:close-wait port:8080")  # the filter bar, open to type in
        term.keys("colour:red", "Enter")
        assert "colour: tidak ada kunci seperti itu" in term.wait_for("tidak ada kunci")
        term.keys("Escape")  # apart from the q: a terminal sends Escape then q as Alt+q
        term.wait_until(lambda screen: "colour:red" not in screen)
        term.keys("q")
        assert "EXIT=0" in term.wait_for("EXIT=")


# -- golden screens ------------------------------------------------------------------------

CW, EST, LISTEN, TW = TcpState.CLOSE_WAIT, TcpState.ESTABLISHED, TcpState.LISTEN, TcpState.TIME_WAIT


def fixed_reading() -> list[Socket]:
    """One reading that never changes: a golden screen needs ports and PIDs that real sockets
    get anew each run (the tests above read real ones). A CLOSE_WAIT pile under gunicorn,
    both families, a v4-mapped pair, a dual-stack listener, a 7-digit PID, TIME_WAIT."""
    here, peer, mapped = "10.0.0.5", "10.0.0.9", "::ffff:127.0.0.1"
    gunicorn, sshd = (31337, "gunicorn"), (812, "sshd")
    pile = [tcp((here, 8080), (peer, 41000 + n), CW, (1, 0), 5000 + n, gunicorn) for n in range(30)]
    pile[0] = replace(pile[0], cgroup="/system.slice/docker-" + "4c01db0b339c" * 5 + "abcd.scope")
    return [
        *pile,
        tcp(("0.0.0.0", 8080), ("0.0.0.0", 0), LISTEN, (0, 4096), 4000, gunicorn),
        tcp(("::", 22), ("::", 0), LISTEN, (0, 128), 4001, sshd, v6only=False),
        tcp(("2001:db8::5", 22), ("2001:db8::77", 51000), EST, (0, 36), 4002, (1234567, "sshd")),
        tcp((mapped, 5432), (mapped, 48000), EST, (0, 0), 4003, (2201, "postgres")),
        tcp((mapped, 48000), (mapped, 5432), EST, (0, 0), 4004, gunicorn),
        *(tcp((here, 52000 + n), ("10.0.0.7", 443), TW, (0, 0), 0) for n in range(4)),
    ]


def tcp(
    local: tuple[str, int],
    remote: tuple[str, int],
    state: TcpState,
    queues: tuple[int, int],
    inode: int,
    owner: tuple[int | None, str | None] = (None, None),
    v6only: bool | None = None,
) -> Socket:
    family = 6 if ":" in local[0] else 4
    return Socket("tcp", family, *local, *remote, state, *queues, 0, inode, *owner, v6only=v6only)


def fixed_screen() -> TopApp:
    """``top``'s own screen, reading the fixed reading once (the next is an hour away)."""
    from tcpstates.doctor.checks import Evidence, diagnose
    from tcpstates.sources.kernel import KernelState

    app = screen(Query(), Place(), 3600, owners=True)
    app.read, app.where = fixed_reading, "golden"
    app.detailed = lambda sock: sock  # its story as the reading has it: no tcp_info to ask
    app.findings = lambda sockets: diagnose(Evidence(list(sockets), KernelState({}, {})))
    return app


def screen_text(app: TopApp) -> str:
    """The screen as text: export_screenshot's own render (Textual's snapshot tests compare
    its SVG), written as plain lines that a review reads in a diff."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), record=True, color_system=None
    )
    console.print(app.screen._compositor.render_update(full=True))
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"


@pytest.mark.parametrize(
    ("size", "keys", "name"),
    [
        ((80, 24), (), "top-80x24.txt"),
        ((160, 50), (), "top-160x50.txt"),
        ((80, 24), ("i",), "top-story-80x24.txt"),
        ((160, 50), ("e",), "top-explain-160x50.txt"),
        ((160, 50), ("f",), "top-findings-160x50.txt"),
        ((80, 24), ("k",), "top-kill-80x24.txt"),
    ],
)
def test_golden_screens(golden, size: tuple[int, int], keys: tuple[str, ...], name: str) -> None:  # type: ignore[no-untyped-def]
    app = fixed_screen()
    app.destroy = lambda chosen: "not here"  # the question is asked; nothing is destroyed
    shown: list[str] = []

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.frame is not None)
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.2)
        shown.append(screen_text(app))

    run(app, scenario, size)
    golden(name, shown[0])


def test_while_the_screen_runs_cycles_are_collected_later_and_still_freed(pile: Pile) -> None:
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    app = server_side(pile.port)
    freed: list[bool] = []

    class Node:
        other: Node

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.frame is not None)
        assert gc.get_threshold()[0] == COLLECT_AFTER and gc.get_freeze_count() > frozen
        a, b = Node(), Node()
        a.other, b.other = b, a
        weakref.finalize(a, freed.append, True)
        del a, b  # a cycle: only the collector frees it
        kept = [[] for _ in range(2 * COLLECT_AFTER)]  # objects enough to start a collection
        await until(pilot, lambda: bool(freed))
        del kept

    run(app, scenario)
    assert freed == [True]
    assert (gc.get_threshold(), gc.get_freeze_count()) == (thresholds, frozen)


def test_in_a_namespace_it_makes_a_pile_is_found_explained_and_one_socket_killed(
    netns: Callable[[str], Netns],
) -> None:
    # As root (the netns fixture skips otherwise, saying so): kill's own holder of a pile, in
    # a namespace of this test's, read with --netns; ss inside it checks what was destroyed.
    from test_kill import LEAKED, PORT, leak_in

    space = netns("top")
    leak = leak_in(space)
    proc = leak.proc
    app = screen(Query(sport=PORT), Place(NamedNetns(space.name)), 0.2, owners=True)
    assert app.destroy is not None and app.where == f"--netns {space.name}"

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: states(app)[:LEAKED] == ["CLOSE_WAIT"] * LEAKED)
        assert {sock.pid for sock in listed(app)} == {proc.pid} or proc.pid is None
        await pilot.press("i")  # the story, read again inside the namespace
        assert "close() this socket" in str(app.query_one("#story").render())
        await pilot.press("escape", "k")
        await until(pilot, lambda: isinstance(app.screen, Confirm))
        await pilot.press("y")
        await until(pilot, lambda: states(app).count("CLOSE_WAIT") == LEAKED - 1)

    run(app, scenario)
    assert leak.states() == ["CLOSE-WAIT"] * (LEAKED - 1) + ["LISTEN"]


def test_ends_too_long_for_a_line_are_scrolled_to_never_cut() -> None:
    # A row is one line in top (the cursor's): the status says the table is wider than the
    # screen, and Right brings the PID, whole, into view.
    app = fixed_screen()
    ends = ("2a02:8109:9d40:1a00:b5f2:2c4d:8a1e:3f10", 51514), ("2a00:1450:4001:82b::200e", 443)
    far = tcp(*ends, EST, (0, 0), 4005, (1234568, "firefox"))
    app.read = lambda: [far]
    shown: list[str] = []

    async def scenario(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.frame is not None)
        await pilot.pause(0.2)
        shown.append(screen_text(app))
        for _ in range(30):
            await pilot.press("right")
        await pilot.pause(0.2)
        shown.append(screen_text(app))

    run(app, scenario, (80, 24))
    before, after = shown
    assert "wider than the screen: ← → scroll" in before and "1234568" not in before
    assert "1234568" in after and "[2a00:1450:4001:82b::200e]:443" in after + before
