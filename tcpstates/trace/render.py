"""Transitions as they stream: one line each, written as it comes (plain, jsonl or csv).

Plain text cannot know its column widths in advance, so it uses widths that fit the usual case
and lets a longer address push its line wider rather than cut it. On a terminal narrower than
a line (one is 110 columns before the process's name) the event takes more than one instead,
as a listing's row does: its time, states, milliseconds and owner, then its ends indented
under them. Nothing that identifies it is cut; a process name is, or gives way.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TextIO

from tcpstates.model.sockets import endpoint, owner
from tcpstates.model.states import TcpState
from tcpstates.render.columns import more_suffix_length, owner_cells
from tcpstates.render.fit import CUT_FLOOR, cut, display_width
from tcpstates.render.safe import safe
from tcpstates.trace.events import Lost, Transition

# The jsonl and csv record; a contract like the socket record's.
FIELDS = (
    "time",
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "old_state",
    "new_state",
    "ms_in_old_state",
    "pid",
    "process",
    "netns",  # the network namespace's inode, as in the socket record
)
_PLAIN = "{:<15}  {:<21}  {:<21}  {:<25}  {:>9}  {:>7}  {}\n"
PLAIN_HEADER = _PLAIN.format("TIME", "LOCAL", "REMOTE", "OLD -> NEW", "MS", "PID", "PROCESS")
# With several namespaces a Netns column leads, as in a listing: the inode and a name or a
# process in it. Wide enough for "4026532240 (pid 12345 nginx)"; a longer one pushes its line.
_NETNS = "{:<28}  "
# An event stacked on a narrow terminal: this first, the ends (and the namespace) indented
# under it. At 60 columns the time loses its microseconds so that the owner's PID still fits.
_HEAD = "{:<{time}}  {:<25}  {:>9}  {:>7}"
_TIME, _SHORT_TIME = 15, 12  # HH:MM:SS.uuuuuu, HH:MM:SS.mmm
_INDENT = "    "


def as_dict(transition: Transition) -> dict[str, Any]:
    event = transition.event
    return {
        "time": _iso(transition.wall_time),
        "local_address": event.local_address,
        "local_port": event.local_port,
        "remote_address": event.remote_address,
        "remote_port": event.remote_port,
        "old_state": event.old_state.name,
        "new_state": event.new_state.name,
        "ms_in_old_state": transition.ms_in_old_state,
        "pid": event.pid,
        "process": event.process,
        "netns": event.netns,
    }


def _iso(wall_time: float) -> str:
    moment = datetime.fromtimestamp(wall_time, tz=timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class TraceWriter:
    """Writes transitions in one format, flushing after each batch so a pipe sees them at once."""

    def __init__(
        self,
        out: TextIO,
        fmt: str,
        netns_labels: Mapping[int, str] | None = None,
        width: Callable[[], int | None] = lambda: None,
    ) -> None:
        """``netns_labels`` (inode -> label; the caller's dict, which grows as namespaces are
        found) makes plain text lead with a Netns column. ``width`` (Output.fit_width) is read
        at each event, so a resized terminal is fitted from the next one; None: one line an
        event, however wide (a pipe, -W)."""
        self.out, self.fmt, self.labels, self.width = out, fmt, netns_labels, width
        if fmt == "csv":
            import csv

            self._csv = csv.writer(out, lineterminator="\n")
            self._csv.writerow(FIELDS)
        elif fmt == "plain":
            out.write(self._header())
        out.flush()

    def _header(self) -> str:
        one = PLAIN_HEADER if self.labels is None else _NETNS.format("NETNS") + PLAIN_HEADER
        width = self.width()
        if width is None or _fits(one, width):
            return one
        ends = f"{_INDENT}LOCAL -> REMOTE\n"
        netns = "" if self.labels is None else f"{_INDENT}NETNS\n"
        return _head("TIME", "OLD -> NEW", "MS", "PID", "PROCESS", width) + "\n" + ends + netns

    def write(self, item: Transition | Lost) -> None:
        if isinstance(item, Lost):
            self._lost(item)
        elif self.fmt == "jsonl":
            # As the socket record: the name exact, for programs, and still safe on a terminal,
            # as json.dumps writes everything outside printable ASCII as a \\u escape.
            self.out.write(json.dumps(as_dict(item), ensure_ascii=True) + "\n")
        elif self.fmt == "csv":
            row = as_dict(item)
            self._csv.writerow(["" if v is None else safe(v) if isinstance(v, str) else v
                                for v in row.values()])  # fmt: skip
        else:
            self._plain(item)

    def _plain(self, item: Transition) -> None:
        label = None
        if self.labels is not None:
            netns = item.event.netns or 0
            label = safe(self.labels.get(netns, str(netns)))  # names are anyone's
        cells = _Cells.of(item)  # once, for the line and, where it does not fit, the lines
        line = cells.line() if label is None else _NETNS.format(label) + cells.line()
        width = self.width()
        if width is None or _fits(line, width):  # None: piped, or -W
            self.out.write(line)
        else:
            self.out.write(cells.stacked(width, label))

    def _lost(self, lost: Lost) -> None:
        if self.fmt == "jsonl":
            self.out.write(json.dumps({"lost_events": lost.events}) + "\n")
        elif self.fmt == "plain":
            self.out.write(f"# the kernel dropped {lost.events} events here (reading too slowly)\n")

    def flush(self) -> None:
        self.out.flush()


@dataclass(frozen=True, slots=True)
class _Cells:
    """What a plain line shows of a transition, as text."""

    time: str
    local: str
    remote: str
    states: str
    ms: str
    pid: str
    process: str
    note: str | None  # TIMEWAIT_NOTE, where it applies

    @classmethod
    def of(cls, transition: Transition) -> _Cells:
        event = transition.event
        moment = datetime.fromtimestamp(transition.wall_time).strftime("%H:%M:%S.%f")
        ms = "-" if transition.ms_in_old_state is None else f"{transition.ms_in_old_state:.3f}"
        pid, process = owner_cells(owner(event.pid, event.process))
        handed = event.new_state is TcpState.CLOSE and event.old_state in _HANDED_TO_TIMEWAIT
        return cls(
            moment,
            endpoint(event.local_address, event.local_port),
            endpoint(event.remote_address, event.remote_port),
            f"{event.old_state.name} -> {event.new_state.name}",
            ms,
            pid,
            process,
            TIMEWAIT_NOTE if handed else None,
        )

    def line(self) -> str:
        """The event's one line, however wide."""
        line = _PLAIN.format(
            self.time, self.local, self.remote, self.states, self.ms, self.pid, self.process
        )
        return line if self.note is None else f"{line[:-1]}  {self.note}\n"

    def stacked(self, width: int, netns: str | None = None) -> str:
        """The event on a terminal ``width`` columns wide that its one line does not fit: the
        time, states, milliseconds and owner on a line, then indented under it its ends (on
        two lines where one is too narrow for both), its namespace and the timewait note."""
        lines = [_head(self.time, self.states, self.ms, self.pid, self.process, width)]
        both = f"{_INDENT}{self.local} -> {self.remote}"
        if display_width(both) <= width:
            lines.append(both)
        else:
            lines += [_INDENT + self.local, f"{_INDENT}-> {self.remote}"]
        room = width - len(_INDENT)
        if netns is not None:  # its inode first: a long name is what is cut
            lines.append(_INDENT + cut(netns, room))
        if self.note is not None:
            lines += textwrap.wrap(self.note, max(room, 20), initial_indent=_INDENT,
                                   subsequent_indent=_INDENT, break_on_hyphens=False)  # fmt: skip
        return "\n".join(lines) + "\n"


def plain_line(transition: Transition) -> str:
    return _Cells.of(transition).line()


def _fits(line: str, width: int) -> bool:
    """Whether ``line`` (ending in a newline) goes in ``width`` columns."""
    return display_width(line) - 1 <= width


def _head(time_: str, states: str, ms: str, pid: str, process: str, width: int) -> str:
    """The first line of a stacked event (or the header's): the process's name whole where it
    fits, cut where CUT_FLOOR columns are left, else left out; the rest never cut."""
    head = _HEAD.format(time_, states, ms, pid, time=_TIME)
    if display_width(head) > width:  # the microseconds give way first (60 columns)
        head = _HEAD.format(time_[:_SHORT_TIME], states, ms, pid, time=_SHORT_TIME)
    room = width - display_width(head) - 2
    if room >= min(CUT_FLOOR, display_width(process)):
        return f"{head}  {cut(process, room, more_suffix_length)}"
    return head


# Usually the full socket closes here because the connection now lives on in a timewait socket,
# which the tracepoint never reports; ss shows it as FIN-WAIT-2 until the peer's FIN, then
# TIME-WAIT for 60 s. (A reset ends the connection the same way, so the note says "usually".)
_HANDED_TO_TIMEWAIT = frozenset({TcpState.FIN_WAIT2, TcpState.CLOSING})
TIMEWAIT_NOTE = "(usually a timewait socket now, which is not traced: tcpstates -s time-wait)"


class SkipNotice:
    """Says on stderr how many trace lines could not be read: at once, then at most once a
    ``every`` seconds while the trace runs (it may run for days), and at ``close`` the rest."""

    def __init__(
        self, err: TextIO, every: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.err, self.every, self.clock = err, every, clock
        self.total = self._said = 0
        self._next = clock()

    def add(self, lines: int) -> None:
        self.total += lines
        if self.clock() >= self._next:
            self._say()

    def close(self) -> None:
        if self.total > self._said:
            self._say()

    def _say(self) -> None:
        self.err.write(f"tcpstates: skipped {self.total} trace lines it could not parse\n")
        self.err.flush()
        self._said, self._next = self.total, self.clock() + self.every
