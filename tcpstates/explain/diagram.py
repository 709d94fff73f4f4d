"""The TCP state machine drawn on a character grid, from ``lifecycle.TRANSITIONS``.

The only data kept here is where each state's box goes (rows and columns shaped like RFC 9293's
figure, CLOSE drawn twice as the RFC does: once at the top where connections start, once at the
bottom where they end). Every arrow comes from the transitions: each is routed between its two
boxes by a shortest-path search on the grid that prefers few bends and few crossings, and is
tagged with its number in ``TRANSITIONS`` (the legend's number). Nothing depends on the counts
or on which state is highlighted, so the picture is the same on every run at a given width.

The result is a grid of characters and of *roles* (which box, arrow or tag each character
belongs to); ``render/diagram.py`` turns it into plain text or a Rich renderable.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from tcpstates.model.lifecycle import TRANSITIONS, Transition
from tcpstates.model.states import Phase, TcpState

S = TcpState

# (row, column) of each box; columns 0 (left), 1 (middle), 2 (right). The closing states of the
# end that closes first are on the left, those of the end that closes second on the right.
PLACES: dict[TcpState, tuple[int, int]] = {
    S.BOUND_INACTIVE: (0, 0),
    S.CLOSE: (0, 1),
    S.LISTEN: (1, 0),
    S.NEW_SYN_RECV: (1, 1),
    S.SYN_SENT: (1, 2),
    S.SYN_RECV: (2, 0),
    S.ESTABLISHED: (2, 1),
    S.FIN_WAIT1: (3, 0),
    S.CLOSE_WAIT: (3, 2),
    S.FIN_WAIT2: (4, 0),
    S.CLOSING: (4, 1),
    S.LAST_ACK: (4, 2),
    S.TIME_WAIT: (5, 1),
}
END_CLOSE = (5, 2)  # the second CLOSE box, where connections end

ROW_GAP = 3  # blank lines between rows of boxes: room for arrows and their tags
MARGIN = 3  # blank lines above the first row and below the last
SIDE = 2  # blank columns left of the left boxes and right of the right ones
NAME_WIDTH = max(len(s.name) for s in PLACES)
COUNT_WIDTH = 5  # counts are written in at most five characters (see count_text)
CHANNEL = 10  # the least room between two columns of boxes, for arrows and their tags


@dataclass(frozen=True, slots=True)
class Geometry:
    """A box's size: the wide boxes hold the name and the count on one line; the compact ones,
    six columns narrower, put the count under the name, so that the picture fits 80 columns."""

    box_width: int
    box_height: int

    @property
    def min_width(self) -> int:
        """Three columns of boxes, the two channels between them and the sides."""
        return 3 * self.box_width + 2 * CHANNEL + 2 * SIDE


WIDE = Geometry(NAME_WIDTH + 1 + COUNT_WIDTH + 4, 3)  # "│ " name " " count " │"
COMPACT = Geometry(NAME_WIDTH + 4, 4)  # "│ " name " │", then the count right-aligned
MIN_WIDTH = WIDE.min_width  # 96: narrower gets the compact boxes
COMPACT_WIDTH = COMPACT.min_width  # 78: narrower gets no picture (render_diagram says so)

N, E, SOUTH, W = (0, -1), (1, 0), (0, 1), (-1, 0)
DIRECTIONS = (N, E, SOUTH, W)

_ARROWS = {N: ("▲", "^"), SOUTH: ("▼", "v"), E: ("▶", ">"), W: ("◀", "<")}


@dataclass(frozen=True, slots=True)
class Box:
    state: TcpState
    row: int
    column: int
    x: int
    y: int
    final: bool = False  # the second CLOSE, where connections end
    size: Geometry = WIDE

    def cells(self) -> Iterable[tuple[int, int]]:
        for dy in range(self.size.box_height):
            for dx in range(self.size.box_width):
                yield self.x + dx, self.y + dy

    def ports(self) -> Iterable[tuple[tuple[int, int], tuple[int, int]]]:
        """The cells just outside the box where an arrow may start or end, with the direction
        pointing away from the box."""
        width, height = self.size.box_width, self.size.box_height
        middle = self.y + height // 2
        yield (self.x - 1, middle), W
        yield (self.x + width, middle), E
        for dx in range(2, width - 2):
            yield (self.x + dx, self.y - 1), N
            yield (self.x + dx, self.y + height), SOUTH


@dataclass(frozen=True, slots=True)
class Route:
    number: int  # 1-based index in TRANSITIONS: the tag and the legend's number
    transition: Transition
    cells: tuple[tuple[int, int], ...]  # from the cell beside the source to the arrowhead
    tag: tuple[int, int, bool]  # x, y of the tag's first character; True: written in the line


@dataclass(frozen=True, slots=True)
class Layout:
    width: int
    height: int
    boxes: tuple[Box, ...]
    routes: tuple[Route, ...]

    def box_of(self, state: TcpState, final: bool = False) -> Box:
        return next(b for b in self.boxes if b.state is state and b.final == final)


@dataclass(slots=True)
class Canvas:
    """Characters and, for each, the role it plays: ("box", state), ("edge", number), ..."""

    width: int
    height: int
    chars: list[list[str]] = field(default_factory=list)
    roles: list[list[tuple[str, object] | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.chars = [[" "] * self.width for _ in range(self.height)]
        self.roles = [[None] * self.width for _ in range(self.height)]

    def put(self, x: int, y: int, text: str, role: tuple[str, object] | None) -> None:
        for i, char in enumerate(text):
            self.chars[y][x + i] = char
            self.roles[y][x + i] = role

    def lines(self) -> list[str]:
        return ["".join(row).rstrip() for row in self.chars]


def count_text(count: int | None) -> str:
    """A count in at most COUNT_WIDTH characters: 12345, 1234k, 12M; "" when unknown.

    >>> count_text(42), count_text(99999), count_text(123456), count_text(12345678)
    ('42', '99999', '123k', '12M')
    """
    if count is None:
        return ""
    if count < 100_000:
        return str(count)
    if count < 10_000_000:
        return f"{count // 1000}k"
    return f"{count // 1_000_000}M"


@lru_cache(maxsize=4)
def layout(width: int = 100) -> Layout:
    """Boxes placed and every transition routed, for a canvas ``width`` characters wide: wide
    boxes from MIN_WIDTH, compact ones below it (never narrower than COMPACT_WIDTH)."""
    size = WIDE if width >= MIN_WIDTH else COMPACT
    width = max(width, size.min_width)
    rows = 1 + max(row for row, _ in (*PLACES.values(), END_CLOSE))
    height = 2 * MARGIN + rows * size.box_height + (rows - 1) * ROW_GAP
    box_width = size.box_width
    columns = (SIDE, (width - box_width) // 2, width - box_width - SIDE)

    def box(state: TcpState, place: tuple[int, int], final: bool = False) -> Box:
        row, column = place
        y = MARGIN + row * (size.box_height + ROW_GAP)
        return Box(state, row, column, columns[column], y, final, size)

    boxes = [box(state, place) for state, place in PLACES.items()]
    boxes.append(box(S.CLOSE, END_CLOSE, final=True))
    router = _Router(width, height, boxes)
    numbered = list(enumerate(TRANSITIONS, start=1))
    # Short arrows first: they take the direct ways, long ones go around them.
    numbered.sort(key=lambda item: (_distance(item[1]), item[0]))
    routes = [router.route(number, t) for number, t in numbered]
    routes.sort(key=lambda r: r.number)
    return Layout(width, height, tuple(boxes), tuple(routes))


def _target_final(t: Transition) -> bool:
    """Whether an arrow into CLOSE goes to the bottom copy: the end of a connection's life."""
    return t.target is S.CLOSE and t.source.phase not in (
        Phase.HANDSHAKE,
        Phase.LISTENING,
        Phase.INACTIVE,
    )


def _distance(t: Transition) -> int:
    (r1, c1) = PLACES[t.source]
    (r2, c2) = END_CLOSE if _target_final(t) else PLACES[t.target]
    return abs(r1 - r2) + abs(c1 - c2)


BEND = 6  # the cost of a turn, in steps
CROSS = 8  # the cost of crossing another arrow
HUG = 2  # the cost of running right beside a box or another arrow


class _Router:
    def __init__(self, width: int, height: int, boxes: list[Box]) -> None:
        self.width, self.height = width, height
        self.boxes = boxes
        self.blocked: set[tuple[int, int]] = {cell for b in boxes for cell in b.cells()}
        self.near_box: set[tuple[int, int]] = {
            (x + dx, y + dy) for b in boxes for x, y in b.cells() for dx, dy in DIRECTIONS
        } - self.blocked
        self.used: dict[tuple[int, int], set[tuple[int, int]]] = {}  # cell -> axes in use
        self.ends: set[tuple[int, int]] = set()  # arrowheads, starts and tags: never crossed

    def route(self, number: int, t: Transition) -> Route:
        source = next(b for b in self.boxes if b.state is t.source and not b.final)
        target = next(b for b in self.boxes if b.state is t.target and b.final == _target_final(t))
        goals = {cell: (-away[0], -away[1]) for cell, away in target.ports()}
        path = self._search(list(source.ports()), goals)
        self._occupy(path)
        tag = self._place_tag(path, str(number))
        return Route(number, t, tuple(path), tag)

    def _free(self, cell: tuple[int, int], axis: tuple[int, int]) -> bool:
        x, y = cell
        if not (0 <= x < self.width and 0 <= y < self.height):
            return False
        if cell in self.blocked or cell in self.ends:
            return False
        axes = self.used.get(cell)
        return axes is None or (len(axes) == 1 and axis not in axes)

    def _search(
        self,
        starts: list[tuple[tuple[int, int], tuple[int, int]]],
        goals: dict[tuple[int, int], tuple[int, int]],
    ) -> list[tuple[int, int]]:
        """A* over (cell, direction): a path leaving the source straight out of a port and
        reaching a goal port heading into the target box. The estimate is the distance to the
        ring of ports around the target, which never overstates what is left."""
        xs = [x for x, _y in goals]
        ys = [y for _x, y in goals]
        left, right, top, bottom = min(xs), max(xs), min(ys), max(ys)

        def estimate(cell: tuple[int, int]) -> int:
            x, y = cell
            return max(left - x, 0, x - right) + max(top - y, 0, y - bottom)

        queue: list[tuple[int, int, int, tuple[int, int], tuple[int, int]]] = []
        best: dict[tuple[tuple[int, int], tuple[int, int]], int] = {}
        came: dict[
            tuple[tuple[int, int], tuple[int, int]],
            tuple[tuple[int, int], tuple[int, int]] | None,
        ] = {}
        order = 0
        for cell, away in starts:
            if self._free(cell, _axis(away)) and cell not in self.used:
                best[cell, away] = 0
                came[cell, away] = None
                heapq.heappush(queue, (estimate(cell), order, 0, cell, away))
                order += 1
        while queue:
            _priority, _order, cost, cell, heading = heapq.heappop(queue)
            if best.get((cell, heading)) != cost:
                continue
            if goals.get(cell) == heading:
                return self._unwind(came, (cell, heading))
            for step in DIRECTIONS:
                if step == (-heading[0], -heading[1]):
                    continue
                nxt = (cell[0] + step[0], cell[1] + step[1])
                if not self._free(nxt, _axis(step)):
                    continue
                if step != heading and cell in self.used:
                    continue  # no turning where another arrow passes
                extra = 1 + (BEND if step != heading else 0)
                extra += CROSS if nxt in self.used else 0
                extra += HUG if nxt in self.near_box and nxt not in goals else 0
                extra += HUG if self._beside_line(nxt, step) else 0
                total = cost + extra
                if total < best.get((nxt, step), 1 << 30):
                    best[nxt, step] = total
                    came[nxt, step] = (cell, heading)
                    heapq.heappush(queue, (total + estimate(nxt), order, total, nxt, step))
                    order += 1
        raise RuntimeError("no route")  # the layout leaves room; tests draw every width used

    def _beside_line(self, cell: tuple[int, int], step: tuple[int, int]) -> bool:
        # Running parallel right next to another arrow makes two lines read as one.
        side = (step[1], step[0])
        for d in (side, (-side[0], -side[1])):
            axes = self.used.get((cell[0] + d[0], cell[1] + d[1]))
            if axes and _axis(step) in axes:
                return True
        return False

    @staticmethod
    def _unwind(
        came: dict[
            tuple[tuple[int, int], tuple[int, int]],
            tuple[tuple[int, int], tuple[int, int]] | None,
        ],
        last: tuple[tuple[int, int], tuple[int, int]],
    ) -> list[tuple[int, int]]:
        path = []
        node: tuple[tuple[int, int], tuple[int, int]] | None = last
        while node is not None:
            path.append(node[0])
            node = came[node]
        return path[::-1]

    def _occupy(self, path: list[tuple[int, int]]) -> None:
        for i, cell in enumerate(path):
            axes = self.used.setdefault(cell, set())
            for other in (path[i - 1] if i else None, path[i + 1] if i + 1 < len(path) else None):
                if other is not None:
                    axes.add(_axis((other[0] - cell[0], other[1] - cell[1])))
        self.ends.update((path[0], path[-1]))
        for cell in path:  # a turn is a corner: nothing may cross it
            axes = self.used[cell]
            if len(axes) == 2 and not self._straight_crossing(cell, path):
                self.ends.add(cell)

    @staticmethod
    def _straight_crossing(cell: tuple[int, int], path: list[tuple[int, int]]) -> bool:
        i = path.index(cell)
        if i == 0 or i + 1 == len(path):
            return False
        before, after = path[i - 1], path[i + 1]
        return before[0] == after[0] or before[1] == after[1]

    def _place_tag(self, path: list[tuple[int, int]], tag: str) -> tuple[int, int, bool]:
        """Where the arrow's number goes: inside its longest horizontal run (──12──), or
        beside its longest vertical one; the cells taken are kept free of later arrows."""
        runs = _runs(path)
        for run in sorted(runs, key=lambda r: -len(r)):
            horizontal = run[0][1] == run[-1][1]
            if horizontal and len(run) >= len(tag) + 4:
                inner = run[2:-2]
                if all(len(self.used[c]) == 1 for c in inner):
                    start = sorted(inner)[(len(inner) - len(tag)) // 2]
                    cells = [(start[0] + i, start[1]) for i in range(len(tag))]
                    if all(c in inner for c in cells):
                        self.ends.update(cells)
                        return start[0], start[1], True
            if not horizontal and len(run) >= 3:
                middle = sorted(run, key=lambda c: c[1])[len(run) // 2]
                for x in (middle[0] + 1, middle[0] - len(tag)):
                    cells = [(x + i, middle[1]) for i in range(len(tag))]
                    around = cells + [(cells[-1][0] + 1, middle[1]), (cells[0][0] - 1, middle[1])]
                    if all(self._empty(c) for c in cells) and all(
                        self._empty(c) or c == middle for c in around
                    ):
                        self.ends.update(cells)
                        self.blocked.update(cells)
                        return x, middle[1], False
        x, y = path[len(path) // 2]
        return x, y, True  # never reached with the layouts drawn; keeps the number visible

    def _empty(self, cell: tuple[int, int]) -> bool:
        x, y = cell
        return (
            0 <= x < self.width
            and 0 <= y < self.height
            and cell not in self.blocked
            and cell not in self.used
            and cell not in self.ends
        )


def _axis(step: tuple[int, int]) -> tuple[int, int]:
    return (1, 0) if step[1] == 0 else (0, 1)


def _runs(path: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """The straight stretches of a path (cells shared by two stretches at the turns)."""
    runs: list[list[tuple[int, int]]] = []
    current = [path[0]]
    for cell in path[1:]:
        if len(current) >= 2 and ((current[0][0] == current[-1][0]) != (current[-1][0] == cell[0])):
            runs.append(current)
            current = [current[-1]]
        current.append(cell)
    runs.append(current)
    return runs


def draw(
    counts: dict[TcpState, int] | None = None,
    width: int = 100,
    ascii_only: bool = False,
    focus: TcpState | None = None,
) -> tuple[Layout, Canvas]:
    """The diagram as characters with roles; ``counts`` go into the boxes. The ``focus``
    state's box is drawn with double lines and its arrows with heavy ones, so it stands out
    without colour too."""
    lay = layout(width)
    canvas = Canvas(lay.width, lay.height)
    for box in lay.boxes:
        _draw_box(canvas, box, counts, ascii_only, box.state is focus)
    for route in lay.routes:
        t = route.transition
        heavy = focus is not None and focus in (t.source, t.target) and not ascii_only
        _draw_route(canvas, lay, route, ascii_only, heavy, focus)
    return lay, canvas


_BOX_CHARS = {  # horizontal, vertical, corners: top left, top right, bottom left, bottom right
    (False, False): tuple("─│┌┐└┘"),
    (False, True): tuple("═║╔╗╚╝"),
    (True, False): tuple("-|++++"),
    (True, True): tuple("=#####"),
}


def _draw_box(
    canvas: Canvas,
    box: Box,
    counts: dict[TcpState, int] | None,
    ascii_only: bool,
    focused: bool,
) -> None:
    h, v, tl, tr, bl, br = _BOX_CHARS[ascii_only, focused]
    role = ("box", box.state)
    width, height = box.size.box_width, box.size.box_height
    inner = width - 2
    canvas.put(box.x, box.y, tl + h * inner + tr, role)
    canvas.put(box.x, box.y + height - 1, bl + h * inner + br, role)
    for y in range(box.y + 1, box.y + height - 1):
        canvas.put(box.x, y, v, role)
        canvas.put(box.x + width - 1, y, v, role)
    count = "" if counts is None else count_text(counts.get(box.state, 0))
    canvas.put(box.x + 1, box.y + 1, f" {box.state.name:<{inner - 1}}", ("name", box.state))
    if count:  # on the name's line, or under it in a compact box
        line = box.y + height - 2
        canvas.put(box.x + inner - len(count), line, count, ("count", box.state))


# A line's character from the directions it leaves a cell in and whether it is heavy; where
# a heavy arrow crosses a light one, the heavy one's axis is given.
_LIGHT = {
    frozenset({E, W}): "─",
    frozenset({N, SOUTH}): "│",
    frozenset({SOUTH, E}): "┌",
    frozenset({SOUTH, W}): "┐",
    frozenset({N, E}): "└",
    frozenset({N, W}): "┘",
}
_HEAVY = {
    frozenset({E, W}): "━",
    frozenset({N, SOUTH}): "┃",
    frozenset({SOUTH, E}): "┏",
    frozenset({SOUTH, W}): "┓",
    frozenset({N, E}): "┗",
    frozenset({N, W}): "┛",
}
_ASCII = {links: "|" if links == frozenset({N, SOUTH}) else "-" for links in _LIGHT}
_ASCII.update({links: "+" for links in _LIGHT if len({d[0] == 0 for d in links}) == 2})
# Crossings: (horizontal heavy, vertical heavy) -> character.
_CROSSINGS = {(False, False): "┼", (True, False): "┿", (False, True): "╂", (True, True): "╋"}
# Where an arrow leaves a box: (box focused, arrow heavy) -> junction per direction.
_STEMS = {
    (False, False): {N: "┴", SOUTH: "┬", E: "├", W: "┤"},
    (False, True): {N: "┸", SOUTH: "┰", E: "┝", W: "┥"},
    (True, False): {N: "╧", SOUTH: "╤", E: "╟", W: "╢"},
    (True, True): {N: "╧", SOUTH: "╤", E: "╟", W: "╢"},
}


def _draw_route(
    canvas: Canvas,
    lay: Layout,
    route: Route,
    ascii_only: bool,
    heavy: bool,
    focus: TcpState | None,
) -> None:
    path = list(route.cells)
    role = ("edge", route.number)
    source = lay.box_of(route.transition.source)
    first = path[0]
    away = _away_from(source, first)
    border = (first[0] - away[0], first[1] - away[1])
    stem = "+" if ascii_only else _STEMS[source.state is focus, heavy][away]
    canvas.put(border[0], border[1], stem, role)
    for i, (x, y) in enumerate(path):
        if i == len(path) - 1:
            heading = (x - path[i - 1][0], y - path[i - 1][1]) if i else away
            canvas.put(x, y, _ARROWS[heading][1 if ascii_only else 0], ("arrow", route.number))
            continue
        before = path[i - 1] if i else border
        links = frozenset(
            {(before[0] - x, before[1] - y), (path[i + 1][0] - x, path[i + 1][1] - y)}
        )
        existing = canvas.chars[y][x]
        if existing != " ":  # a crossing: the other arrow is already drawn here
            mine_horizontal = links == frozenset({E, W})
            other_heavy = existing in "━┃┿╂╋"
            horizontal_heavy = heavy if mine_horizontal else other_heavy
            vertical_heavy = other_heavy if mine_horizontal else heavy
            char = "+" if ascii_only else _CROSSINGS[horizontal_heavy, vertical_heavy]
        elif ascii_only:
            char = _ASCII[links]
        else:
            char = (_HEAVY if heavy else _LIGHT)[links]
        canvas.put(x, y, char, role)
    x, y, _inline = route.tag
    canvas.put(x, y, str(route.number), ("tag", route.number))


def _away_from(box: Box, cell: tuple[int, int]) -> tuple[int, int]:
    x, y = cell
    if x < box.x:
        return W
    if x >= box.x + box.size.box_width:
        return E
    return N if y < box.y else SOUTH
