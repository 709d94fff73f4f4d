"""Fitting a table of text cells to a terminal's width: what gives way, in which order, and how.

One engine for every socket table a person reads, the listing (render/table.py) and
``--watch`` (watch/render.py): it decides, they draw. The rules:

* A column is as wide as its widest cell or its header; columns are two spaces apart, as in
  the plain text a pipe gets.
* When the table is wider than the terminal, the steps of ``GIVE_WAY`` are taken in order, each
  only while the table is still too wide: addresses written shorter with nothing lost (a
  v4-mapped ``[::ffff:10.0.0.1]`` as ``[10.0.0.1]``, the peer of a listener as ``*:*``, the
  address headers as Local and Peer); then the queues hidden where every one is 0; then
  process names cut, ending in ``…`` as ps does; then the other optional columns hidden.
  A column hidden early comes back when a later step left room for it.
* When a row's state, ends and PID alone are wider than the terminal, a row takes more than
  one line, for an end is never cut: the peer goes under the local end (``Shape.PEER``); if
  that is still too wide, both ends go on lines of their own under the rest of the row
  (``Shape.ENDS``); and what was hidden comes back where it then fits. Nothing is lost, so
  the footer says nothing of it; -W shows a row on one line.
* A column no step names is never cut or hidden: a state, an address, a port, a PID. When
  those alone are wider than the terminal even so (a 200-character host name with -r that
  has no address to fall back to), lines are as wide as they must be (the terminal wraps
  them): a wrapped line is better than an address or a PID that lies.
* A host name (-r) is never cut either: cut, it could name another host. When the columns no
  step names do not fit with names, every host is written as its address instead, and the
  footer says so; ports keep their names.
* What was done is said in one footer line, which ends with how to see everything (-W).
"""

from __future__ import annotations

import dataclasses
import enum
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tcpstates.model.record import replace
from tcpstates.render.columns import (
    CGROUP,
    DETAIL_COLUMNS,
    INODE,
    LOCAL,
    NETNS,
    PEER,
    PROCESS,
    RECV_Q,
    SEND_Q,
    UID,
    Column,
    Layout,
    more_suffix_length,
)
from tcpstates.render.text import template

GAP = 2  # blanks between two columns
CUT_FLOOR = 8  # a cut column keeps this much: "(kernel)" whole, or 7 letters of a name and …
ELLIPSIS = "…"
WIDE_HINT = "-W shows all"
MAPPED = "[::ffff:"  # how a v4-mapped address begins in a cell
MAPPED_NOTE = "v4-mapped as [a.b.c.d]"
HOSTS_NOTE = "host names as addresses"
HIDDEN = " hidden"  # how the note of the hidden columns ends
ANY_PEERS = frozenset({"0.0.0.0:*", "[::]:*"})  # the peer of a listener or unconnected socket


class Give(enum.Enum):
    """How a step makes room."""

    COMPACT = "compact"  # the same cells, written shorter: nothing is lost
    HIDE_ZEROS = "hide zeros"  # hidden where every cell is 0: it says nothing
    CUT = "cut"  # cells cut to what room is left, ending in …, down to CUT_FLOOR
    HIDE = "hide"
    STACK = "stack"  # the ends moved to lines of their own in each row: nothing is lost


class Shape(enum.Enum):
    """How a row's cells lie on its lines."""

    LINE = "one line"
    PEER = "peer under local"  # a second line, the peer under the local end
    ENDS = "ends under"  # a line for the local end, one for the peer, under the rest


HIDING = (Give.HIDE_ZEROS, Give.HIDE)


@dataclass(frozen=True, slots=True)
class Step:
    """One way to make room, for the columns it names (those a table lacks are skipped)."""

    give: Give
    columns: tuple[Column, ...]
    # What the footer says; {} stands for the headers of the columns it changed. The columns
    # hiding steps hid are said together, in one note ending in "hidden".
    note: str
    # COMPACT: a column's cells written shorter. The step compacts all its columns or, when
    # that leaves the table as wide as it was, none: two ends of a row are spelled alike.
    compact: Callable[[Column, Sequence[str]], list[str]] | None = None
    # CUT: how many characters at a cell's end the cut keeps, cutting before them (the ``+3``
    # of ``nginx +3``: how many more processes hold the socket is not to be cut away).
    tail: Callable[[str], int] | None = None
    shape: Shape = Shape.LINE  # STACK: the shape it gives the rows


def compact_ends(column: Column, cells: Sequence[str]) -> list[str]:
    """An address column's cells written shorter, nothing lost: a v4-mapped end
    ``[::ffff:127.0.0.1]:42`` as ``[127.0.0.1]:42`` (the brackets still say IPv6), and in the
    Peer column the peer of a listener (``0.0.0.0:*``, ``[::]:*``) as ``*:*``, as ss writes
    it: the local end, on the same row, says the family. A local any-address keeps it.

    >>> compact_ends(PEER, ["[::ffff:10.0.0.1]:80", "[::1]:22", "10.0.0.1:80", "[::]:*"])
    ['[10.0.0.1]:80', '[::1]:22', '10.0.0.1:80', '*:*']
    >>> compact_ends(LOCAL, ["0.0.0.0:*", "[::]:22"])
    ['0.0.0.0:*', '[::]:22']

    An interface after the address (``%eth0``, ss's spelling) is kept whole, and its name is
    no part of the address: a dot in it makes no address a mapped one.

    >>> compact_ends(LOCAL, ["[::ffff:10.0.0.1]%eth0:80", "[::ffff:1:2:3]%eth0.5:9", "*%lo:22"])
    ['[10.0.0.1]%eth0:80', '[::ffff:1:2:3]%eth0.5:9', '*%lo:22']
    """
    # inet_ntop writes a mapped address dotted (::ffff:1.2.3.4); an IPv6 one is never dotted.
    shorter = [
        "[" + cell[len(MAPPED) :]
        if cell.startswith(MAPPED) and "." in cell.partition("]")[0]
        else cell
        for cell in cells
    ]
    if column != PEER:
        return shorter
    return ["*:*" if cell in ANY_PEERS else cell for cell in shorter]


def compact_netns(column: Column, cells: Sequence[str]) -> list[str]:
    """A namespace's label without its inode, ``4026532174 (web)`` as ``web``: unless two
    namespaces' labels would then read alike (two containers named alike, say).

    >>> compact_netns(NETNS, ["4026531840 (host)", "4026532174 (pid 7 nginx)", "4026532175"])
    ['host', 'pid 7 nginx', '4026532175']
    >>> compact_netns(NETNS, ["4026532174 (web)", "4026532175 (web)"])
    ['4026532174 (web)', '4026532175 (web)']
    """
    # The inode is digits: the first " (" is the label's.
    short = {cell: cell.partition(" (")[2][:-1] or cell for cell in set(cells)}
    if len(set(short.values())) < len(short):
        return list(cells)
    return [short[cell] for cell in cells]


# The listing's order: what gives way first. A column named nowhere never gives way. These
# keep a row on one line, for a view whose rows are picked with the arrow keys (top).
ONE_LINE_GIVE_WAY: tuple[Step, ...] = (
    Step(Give.COMPACT, (NETNS,), "Netns without inodes", compact_netns),
    Step(Give.COMPACT, (LOCAL, PEER), MAPPED_NOTE, compact_ends),
    Step(Give.HIDE_ZEROS, (RECV_Q, SEND_Q), "{} (all 0)"),
    # --cgroup's paths before process names: a detail, where a name tells sockets apart.
    Step(Give.CUT, (CGROUP,), "cgroups cut"),
    Step(Give.CUT, (PROCESS,), "process names cut", tail=more_suffix_length),
    # -e's, -i's, -m's, --timers', --cgroup's: asked for, yet they identify no socket; the
    # last first.
    Step(Give.HIDE, (*reversed(DETAIL_COLUMNS), INODE, UID, CGROUP), "{}"),
    Step(Give.HIDE, (RECV_Q, SEND_Q), "{}"),
    Step(Give.HIDE, (PROCESS,), "{}"),
)
# When a row's identities alone do not fit one line: the ends on lines of their own, and
# what was hidden back where it then fits.
STACKS = (
    Step(Give.STACK, (LOCAL, PEER), "", shape=Shape.PEER),
    Step(Give.STACK, (LOCAL, PEER), "", shape=Shape.ENDS),
)
GIVE_WAY = (*ONE_LINE_GIVE_WAY, *STACKS)
UNDER = 2 * GAP  # how far the lines of Shape.ENDS are indented: past a watch's mark and blank


def arrange(columns: Sequence[Column], shape: Shape) -> tuple[tuple[int, ...], ...]:
    """Which columns (by index) lie on each line of a row of ``shape``, in order; one line
    when ``columns`` lack an end.

    >>> arrange([UID, LOCAL, PEER, PROCESS], Shape.PEER)
    ((0, 1, 3), (2,))
    >>> arrange([UID, LOCAL, PEER, PROCESS], Shape.ENDS)
    ((0, 3), (1,), (2,))
    """
    every = tuple(range(len(columns)))
    if shape is Shape.LINE or LOCAL not in columns or PEER not in columns:
        return (every,)
    local, peer = columns.index(LOCAL), columns.index(PEER)
    if shape is Shape.PEER:
        return tuple(i for i in every if i != peer), (peer,)
    return tuple(i for i in every if i not in (local, peer)), (local,), (peer,)


Lines = tuple[tuple[int, ...], ...]  # the columns (by index) on each line of a row


def shaped(
    columns: Sequence[Column], widths: Sequence[int], shape: Shape
) -> tuple[Lines, tuple[int, ...], tuple[int, ...]]:
    """The lines of a row of ``shape``, each line's indent, and each column's width in it:
    under Shape.PEER the local end is as wide as the wider end, so that the columns after it
    stay in line, and the peer's line starts where the local end does."""
    lines = arrange(columns, shape)
    if len(lines) == 1:
        return lines, (0,), tuple(widths)
    if shape is Shape.ENDS:
        return lines, (0, *[UNDER] * (len(lines) - 1)), tuple(widths)
    local, peer = columns.index(LOCAL), columns.index(PEER)
    wider = list(widths)
    wider[local] = max(widths[local], widths[peer])
    at = sum(wider[i] + GAP for i in lines[0][: lines[0].index(local)])
    return lines, (0, at), tuple(wider)


def widest_line(lines: Lines, indents: Sequence[int], widths: Sequence[int]) -> int:
    """How wide the widest of a row's lines is, its columns ``widths`` wide."""
    return max(
        indent + sum(widths[i] for i in line) + GAP * (len(line) - 1)
        for indent, line in zip(indents, lines, strict=True)
    )


@dataclass(frozen=True, slots=True)
class Glyphs:
    """The rule under a header and the mark of a cut cell, in what the output can encode."""

    rule: str
    ellipsis: str

    @classmethod
    def for_stream(cls, stream: object) -> Glyphs:
        encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "")
        return UNICODE if encoding.startswith("utf") else ASCII


UNICODE, ASCII = Glyphs("─", ELLIPSIS), Glyphs("-", "~")


@dataclass(frozen=True, slots=True)
class Fitted:
    """A table as it is to be drawn: the columns kept, their cells and widths, the footer."""

    columns: tuple[Column, ...]
    headers: tuple[str, ...]
    cells: tuple[Sequence[str], ...]  # per column kept, a cell a row, not padded
    widths: tuple[int, ...]  # under Shape.PEER, the local end's is the wider end's
    notes: tuple[str, ...]  # what was compacted, hidden or cut; empty when nothing was
    shape: Shape = Shape.LINE
    hidden: tuple[Column, ...] = ()  # the columns hidden
    gave: tuple[Give, ...] = ()  # how the notes' columns gave way, as their steps say

    @property
    def lines(self) -> Lines:
        return arrange(self.columns, self.shape)

    @property
    def indents(self) -> tuple[int, ...]:
        return shaped(self.columns, self.widths, self.shape)[1]

    @property
    def width(self) -> int:
        return widest_line(self.lines, self.indents, self.widths)

    def index(self, column: Column) -> int | None:
        return self.columns.index(column) if column in self.columns else None

    def ends_line(self, k: int) -> bool:
        """Whether column ``k`` is the last on its line of a row."""
        return any(line[-1] == k for line in self.lines)

    def pad(self, k: int, cell: str) -> str:
        """``cell`` padded to column ``k``'s width, as render/text.py's template pads it: the
        left-aligned cells last on a line are not (no trailing blanks)."""
        room = self.widths[k] - display_width(cell)
        if self.columns[k].align == "right":
            return " " * room + cell
        return cell if self.ends_line(k) else cell + " " * room

    def text(self, cells: Sequence[str]) -> str:
        """A row's cells (or the headers) as its lines, joined by newlines."""
        return "\n".join(
            " " * indent + (" " * GAP).join(self.pad(k, cells[k]) for k in line)
            for indent, line in zip(self.indents, self.lines, strict=True)
        )

    def template(self, widths: Sequence[int | None]) -> tuple[str, tuple[int, ...]]:
        """One %-format for a whole row, each line ending in a newline, and the order (by
        column) its cells go in. A width of None: that column's cells come padded."""
        form = "".join(
            " " * indent + template([self.columns[k] for k in line], [widths[k] for k in line])
            for indent, line in zip(self.indents, self.lines, strict=True)
        )
        return form, tuple(k for line in self.lines for k in line)

    def footer(self, width: int | None) -> list[str]:
        """The notes and the -W hint in one line. Where that is wider than ``width``, said
        briefer: the hidden columns counted, not named; then only what was done to columns
        (``columns compacted, cut and hidden``). Below that width, the brief line packed in
        several, none wider than ``width``, broken between its parts."""
        if not self.notes:
            return []
        counted = [
            tuple(count if note.endswith(HIDDEN) else note for note in self.notes)
            for count in self.hidden_counts()
        ]
        for notes in (self.notes, *counted, (self.done(),)):
            line = "; ".join((*notes, WIDE_HINT))
            if width is None or display_width(line) <= width:
                return [line]
        return pack((self.done(), WIDE_HINT), "; ", width)

    def hidden_counts(self) -> tuple[str, str]:
        """The hidden columns counted, then more briefly: ``3 columns hidden``, ``3 hidden``."""
        n = len(self.hidden)
        return f"{n} column{'s' * (n != 1)}{HIDDEN}", f"{n}{HIDDEN}"

    def done(self) -> str:
        """What was done to columns, in a word each: ``columns cut and hidden``."""
        words = [
            word
            for word, gives in (
                ("compacted", {Give.COMPACT}),
                ("cut", {Give.CUT}),
                ("hidden", set(HIDING)),
            )
            if gives & set(self.gave)
        ]
        said = " and ".join([", ".join(words[:-1]), *words[-1:]][len(words) < 2 :])
        return f"columns {said}"


def pack(parts: Sequence[str], separator: str, width: int | None) -> list[str]:
    """``parts`` joined by ``separator`` in as few lines of at most ``width`` as they go in,
    never breaking a part (one longer than ``width`` gets a line of its own); a line that
    breaks keeps the separator's mark (``,`` of ``", "``) at its end.

    >>> pack(["3 sockets: 1 LISTEN", "2 ESTABLISHED"], ", ", 20)
    ['3 sockets: 1 LISTEN,', '2 ESTABLISHED']
    """
    if not parts:
        return []
    mark = separator.rstrip()
    lines = [
        separator.join(parts[i] for i in line)
        for line in lines_of(
            [display_width(part) for part in parts], len(separator), width, len(mark)
        )
    ]
    room = width if width is not None else len(max(lines, key=len)) + len(mark)
    ended = [line + mark if display_width(line + mark) <= room else line for line in lines[:-1]]
    return ended + lines[-1:]


def lines_of(widths: Sequence[int], gap: int, width: int | None, mark: int = 0) -> list[list[int]]:
    """Which parts (by index) go on each line, when parts of ``widths`` are laid ``gap`` apart
    in lines of at most ``width``, each line but the last ending in a ``mark`` that wide.

    >>> lines_of([5, 5, 5], 1, 11)
    [[0, 1], [2]]
    """
    lines: list[list[int]] = []
    used = 0
    for i, part in enumerate(widths):
        if lines and (width is None or used + gap + part + mark <= width):
            lines[-1].append(i)
            used += gap + part
        else:
            lines.append([i])
            used = part
    return lines


def fit(
    columns: Sequence[Column],
    cells: Sequence[Sequence[str]],
    width: int | None,
    steps: Sequence[Step] = GIVE_WAY,
    ellipsis: str = ELLIPSIS,
) -> Fitted:
    """``cells`` (a sequence a column) fitted to ``width`` columns; None: as wide as they are.

    When even the columns no step names do not fit, the table is as wide as they are: lines
    longer than ``width`` are what the terminal then wraps, and nothing is cut.
    """
    draft = _Draft(columns, cells)
    if width is not None:
        for step in steps:
            if draft.total() <= width:
                break
            draft.take(step)
        draft.restore(width)
    return draft.result(width, ellipsis)


Columns = tuple[Sequence[Column], Sequence[Sequence[str]]]  # the columns, and a cell list each


def fit_layout(
    columns_of: Callable[[Layout], Columns],
    layout: Layout,
    width: int | None,
    steps: Sequence[Step] = GIVE_WAY,
    ellipsis: str = ELLIPSIS,
) -> Fitted:
    """fit() for the table ``columns_of(layout)`` makes, whose Local and Peer cells name hosts
    with -r: when those do not fit even after every step, the table made with each host as
    its address, and a note that says so. A name is never cut: cut, it could name another."""
    fitted = fit(*columns_of(layout), width, steps, ellipsis)
    names = layout.names
    if width is None or fitted.width <= width or names is None or not names.hosts:
        return fitted
    numeric = replace(layout, names=names.numeric_hosts())
    fallback = fit(*columns_of(numeric), width, steps, ellipsis)
    if fallback.width >= fitted.width:
        return fitted  # no name was wider than its address: nothing to give up
    notes, gave = (HOSTS_NOTE, *fallback.notes), (Give.COMPACT, *fallback.gave)
    return dataclasses.replace(fallback, notes=notes, gave=gave)


class _Draft:
    """The table while steps are taken: every column's cells, width and header, by index."""

    def __init__(self, columns: Sequence[Column], cells: Sequence[Sequence[str]]) -> None:
        self.columns = tuple(columns)
        self.cells = list(cells)
        self.headers = [column.header for column in columns]
        self.widths = [_column_width(h, c) for h, c in zip(self.headers, self.cells, strict=True)]
        self.hidden: dict[int, Step] = {}
        self.cut: dict[int, Step] = {}
        self.compacted: dict[int, Step] = {}
        self.taken: list[Step] = []
        self.shape = Shape.LINE

    def where(self, step: Step) -> list[int]:
        return [i for i, column in enumerate(self.columns) if column in step.columns]

    def floor(self, i: int) -> int:
        return max(min(self.widths[i], CUT_FLOOR), display_width(self.headers[i]))

    def shown(self) -> list[int]:
        return [i for i in range(len(self.columns)) if i not in self.hidden]

    def floors(self, shown: list[int]) -> tuple[Lines, tuple[int, ...], tuple[int, ...]]:
        """The shown columns' lines, indents and widths, each cut column at its floor."""
        widths = [self.floor(i) if i in self.cut else self.widths[i] for i in shown]
        return shaped([self.columns[i] for i in shown], widths, self.shape)

    def total(self) -> int:
        return widest_line(*self.floors(self.shown()))

    def take(self, step: Step) -> None:
        self.taken.append(step)
        if step.give is Give.STACK:
            was, before = self.shape, self.total()
            self.shape = step.shape
            if self.total() >= before:
                self.shape = was  # no narrower: a row stays as it was
            return
        if step.give is Give.COMPACT and step.compact is not None:
            self._compact(step, step.compact)
            return
        for i in self.where(step):
            if i in self.hidden:
                continue
            if step.give is Give.HIDE_ZEROS and set(self.cells[i]) <= {"0"}:
                self.hidden[i] = step
            elif step.give is Give.CUT:
                self.cut[i] = step
            elif step.give is Give.HIDE:
                self.hidden[i] = step

    def restore(self, width: int) -> None:
        """Show again, last hidden first, each column that fits now: a later step can leave
        room for what an earlier one hid (Was hidden, a cut Process fits again)."""
        for i in reversed(list(self.hidden)):
            step = self.hidden.pop(i)
            if self.total() > width:
                self.hidden[i] = step

    def _compact(self, step: Step, compact: Callable[[Column, Sequence[str]], list[str]]) -> None:
        where = [i for i in self.where(step) if i not in self.hidden]
        cells = {i: compact(self.columns[i], self.cells[i]) for i in where}
        headers = {i: self.columns[i].short or self.headers[i] for i in where}
        widths = {i: _column_width(headers[i], cells[i]) for i in where}
        if sum(widths.values()) >= sum(self.widths[i] for i in where):
            return  # as wide as it was: the kernel's own spelling stays
        for i in where:
            if self._says(compact, self.cells[i], cells[i]):
                self.compacted[i] = step
            self.cells[i], self.headers[i], self.widths[i] = cells[i], headers[i], widths[i]

    @staticmethod
    def _says(compact: object, was: Sequence[str], now: Sequence[str]) -> bool:
        """Whether the footer says a compaction: of the ends, only a v4-mapped address's
        new spelling needs saying (``*:*`` is ss's own)."""
        if compact is compact_ends:
            return ("\n" + MAPPED) in ("\n" + "\n".join(was))  # a search in C
        return was != now

    def result(self, width: int | None, ellipsis: str) -> Fitted:
        shown = self.shown()
        widths = {i: self.widths[i] for i in shown}
        cut = [i for i in shown if i in self.cut]  # taken, and shown still
        if cut and width is not None:
            # Cut columns are on a row's first line: its room, with them at their floors.
            lines, indents, floors = self.floors(shown)
            room = width - widest_line(lines[:1], indents[:1], floors)
            for i in cut:
                widths[i] = min(self.widths[i], self.floor(i) + max(room, 0))
                room -= widths[i] - self.floor(i)
        really_cut = {i: self.cut[i] for i in cut if widths[i] < self.widths[i]}
        columns = tuple(self.columns[i] for i in shown)
        return Fitted(
            columns,
            tuple(self.headers[i] for i in shown),
            tuple(
                _cut(self.cells[i], widths[i], ellipsis, self.columns[i], self._tail(i))
                for i in shown
            ),
            shaped(columns, [widths[i] for i in shown], self.shape)[2],
            self._notes(really_cut),
            self.shape,
            tuple(self.columns[i] for i in sorted(self.hidden)),
            tuple(step.give for step in {**self.hidden, **really_cut, **self.compacted}.values()),
        )

    def _named(self, changed: list[Column]) -> list[str]:
        """The headers of ``changed``, those of an option all of whose columns are in it
        named once by the option: ``-i columns`` for five headers."""
        names: list[str] = []
        for column in changed:
            group = [c for c in self.columns if column.option and c.option == column.option]
            name = f"{column.option} columns" if group and set(group) <= set(changed) else None
            names += [name or column.header] * ((name or column.header) not in names)
        return names

    def _tail(self, i: int) -> Callable[[str], int] | None:
        step = self.cut.get(i)
        return step.tail if step else None

    def _notes(self, cut: dict[int, Step]) -> tuple[str, ...]:
        """What changed, in the order the steps were taken; the columns hidden by any step
        in one note: ``Recv-Q (all 0), Process hidden``."""
        notes: list[str] = []
        hidden: list[str] = []
        for step in self.taken:
            done = self.hidden if step.give in HIDING else {**self.compacted, **cut}
            changed = [self.columns[i] for i, by in sorted(done.items()) if by is step]
            if not changed:
                continue
            note = step.note.format(", ".join(self._named(changed)))
            if step.give not in HIDING:
                notes += [note] * (note not in notes)
                continue
            if not hidden:
                notes.append("")  # where the note of what was hidden goes
            hidden.append(note)
        return tuple(note or ", ".join(hidden) + HIDDEN for note in notes)


def _column_width(header: str, cells: Sequence[str]) -> int:
    return max(display_width(header), _widest(cells))


def _widest(cells: Sequence[str]) -> int:
    if not cells:
        return 0
    widest = max(map(len, cells))  # in C; right unless a cell holds a wide character
    if "".join(cells).isascii():
        return widest
    return max(map(display_width, cells))


def display_width(text: str) -> int:
    """The columns ``text`` takes on a terminal: two for a wide (CJK) character, else one."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cut(
    cells: Sequence[str],
    width: int,
    ellipsis: str,
    column: Column,
    tail: Callable[[str], int] | None = None,
) -> Sequence[str]:
    """Cells wider than ``width`` cut to it, ending in ``ellipsis`` and then the ``tail`` of
    the cell the cut keeps (where it leaves room for one character before the ellipsis); cut
    at their start instead for a column whose cells say most at their end (a cgroup path's
    unit or container).

    >>> _cut(["nginx-worker +3", "sshd"], 9, "…", PROCESS, lambda c: c.endswith("+3") and 3)
    ['nginx… +3', 'sshd']
    """
    if _widest(cells) <= width:
        return cells
    if column.keep_end:
        return [
            c if display_width(c) <= width else _shorten_start(c, width, ellipsis) for c in cells
        ]
    return [c if display_width(c) <= width else _cut_one(c, width, ellipsis, tail) for c in cells]


def cut(cell: str, width: int, tail: Callable[[str], int] | None = None) -> str:
    """One cell cut to ``width`` as the table cuts its cells, keeping its ``tail`` (trace's
    lines, which stream and are fitted one at a time).

    >>> cut("nginx-worker +3", 9, more_suffix_length), cut("sshd", 9)
    ('nginx… +3', 'sshd')
    """
    return cell if display_width(cell) <= width else _cut_one(cell, width, ELLIPSIS, tail)


def _cut_one(cell: str, width: int, ellipsis: str, tail: Callable[[str], int] | None) -> str:
    kept = tail(cell) if tail else 0
    end = cell[len(cell) - kept :] if kept else ""
    room = width - display_width(end)
    if not kept or room <= display_width(ellipsis):
        return _shorten(cell, width, ellipsis)
    return _shorten(cell[: len(cell) - kept], room, ellipsis) + end


def _shorten(cell: str, width: int, ellipsis: str) -> str:
    kept, used = [], display_width(ellipsis)
    for ch in cell:
        used += display_width(ch)
        if used > width:
            break
        kept.append(ch)
    return "".join(kept) + ellipsis


def _shorten_start(cell: str, width: int, ellipsis: str) -> str:
    """``…/docker-4c01.scope``: the end kept, as much as fits."""
    return _shorten(cell[::-1], width, ellipsis)[::-1]
