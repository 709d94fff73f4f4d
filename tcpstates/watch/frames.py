"""Live refresh: read the sockets every interval and say what changed since the last read.

No rendering here: ``frames`` yields ``Frame`` values and render/watch.py draws them. Memory
stays bounded over hours because only the previous read (and the first read's counts) is kept.
"""

from __future__ import annotations

import enum
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import groupby

from tcpstates.model.query import Query
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState, state_name
from tcpstates.summary.counts import TCP_STATES, UDP_STATES, Summary

# What identifies a socket from one read to the next: its protocol, family and both ends.
# Listeners and unconnected UDP sockets bound with SO_REUSEPORT share one; see ``diff``.
# The namespace first: the same ends can exist in several network namespaces at once.
Key = tuple[int, str, int, str, int, str, int]
Row = tuple[str, TcpState]  # (protocol, state): one line of the counts
Tally = Counter[Row]

# The longest interval between two readings (--watch, export --interval): a day. Longer is no
# watch, and time.sleep(1e10) overflows time_t.
MAX_INTERVAL = 86400.0


class ChangeKind(enum.Enum):
    APPEARED = "appeared"
    VANISHED = "vanished"
    CHANGED = "changed"  # same socket, new state


@dataclass(frozen=True, slots=True)
class Change:
    """One socket that appeared, vanished or changed state between two reads."""

    kind: ChangeKind
    socket: Socket  # as read now; a vanished one as it was last seen
    old_state: TcpState | None = None  # CHANGED only: the state in the previous read

    @property
    def old_state_name(self) -> str | None:
        if self.old_state is None:
            return None
        return state_name(self.old_state, self.socket.proto)


@dataclass(frozen=True, slots=True)
class Count:
    """Sockets of one protocol in one state, and how that number moved."""

    proto: str
    state: TcpState
    count: int
    since_last: int  # against the previous frame (the first frame compares with nothing)
    since_start: int  # against the first frame

    @property
    def state_name(self) -> str:
        return state_name(self.state, self.proto)


@dataclass(frozen=True, slots=True)
class Frame:
    """One read: when, how many per state, what changed, and the sockets themselves."""

    number: int  # 0 for the first read
    time: datetime  # wall clock, UTC, when the read began
    protos: tuple[str, ...]  # the protocols asked for, each counted even with no rows
    counts: tuple[Count, ...]  # per protocol, in summary order
    changes: tuple[Change, ...]  # in ``sort_key`` order of their sockets
    sockets: tuple[Socket, ...]  # what the read returned, in ``sort_key`` order

    @property
    def summary(self) -> Summary:
        """The counts alone, as ``--summary`` gives them (and as JSON nests them)."""
        return self._per_state(lambda row: row.count)

    @property
    def since_last(self) -> Summary:
        """How each count moved since the previous frame, keyed like ``summary``."""
        return self._per_state(lambda row: row.since_last)

    @property
    def since_start(self) -> Summary:
        """How each count moved since the first frame, keyed like ``summary``."""
        return self._per_state(lambda row: row.since_start)

    def _per_state(self, value: Callable[[Count], int]) -> Summary:
        nested: dict[str, dict[TcpState, int]] = {proto: {} for proto in self.protos}
        for row in self.counts:
            nested.setdefault(row.proto, {})[row.state] = value(row)
        return Summary(nested)


def socket_key(sock: Socket) -> Key:
    return (
        sock.netns or 0,
        sock.proto,
        sock.family,
        sock.local_address,
        sock.local_port,
        sock.remote_address,
        sock.remote_port,
    )


def sort_key(sock: Socket) -> tuple[int | str | bool, ...]:
    """A total order on sockets that does not depend on the order a source read them in:
    ``socket_key``, then ``_rank``. One flat tuple, written out: a watch sorts every reading,
    and the nested (key, rank) pair took 310 ms at 100,000 sockets, this 130 (the order is the
    same: tests/test_watch.py holds them together)."""
    inode, pid = sock.inode, sock.pid
    return (
        sock.netns or 0, sock.proto, sock.family, sock.local_address, sock.local_port,
        sock.remote_address, sock.remote_port,
        sock.state.value, inode is None, inode or 0, pid is None, pid or 0,
    )  # fmt: skip


def in_order(sockets: Iterable[Socket]) -> list[Socket]:
    """``sorted(sockets, key=sort_key)``, with about half of its keys' memory.

    A sort holds a key for every socket at once, and sort_key's 12-tuples take 15 MB at
    100,000 sockets, on top of the two readings a watch holds then. Here the sockets are split
    by namespace, protocol and family (a handful of parts), each part is sorted by its two ends
    (a 4-tuple), and the few runs of sockets with the same ends are put in ``_rank`` order.
    tests/test_watch.py holds this to the plain sort.
    """
    parts: dict[tuple[int, str, int], list[Socket]] = {}
    for sock in sockets:
        part = (sock.netns or 0, sock.proto, sock.family)
        members = parts.get(part)
        if members is None:
            members = parts[part] = []
        members.append(sock)
    ordered: list[Socket] = []
    for part in sorted(parts):
        members = parts.pop(part)
        members.sort(key=_ends)
        _rank_ties(members)
        ordered += members
    return ordered


def _ends(sock: Socket) -> tuple[str, int, str, int]:
    return sock.local_address, sock.local_port, sock.remote_address, sock.remote_port


def _rank_ties(members: list[Socket]) -> None:
    """Put each run of sockets with the same ends (``members`` sorted by them) in rank order."""
    start, ends = 0, None
    for at, sock in enumerate([*members, None]):
        now = None if sock is None else _ends(sock)
        if now != ends:
            if at - start > 1:
                members[start:at] = sorted(members[start:at], key=_rank)
            start, ends = at, now


def _rank(sock: Socket) -> tuple[int, bool, int, bool, int]:
    # Among sockets sharing a key: by state, then inode, then owner; None sorts last.
    return (
        sock.state.value,
        sock.inode is None,
        sock.inode or 0,
        sock.pid is None,
        sock.pid or 0,
    )


def diff(previous: Iterable[Socket], current: Iterable[Socket]) -> tuple[Change, ...]:
    """What appeared, vanished or changed state from ``previous`` to ``current``.

    Sockets are matched by ``socket_key``. Where several share a key (SO_REUSEPORT listeners,
    UDP sockets bound to one port, a TIME_WAIT beside a new connection on the same four-tuple)
    they are paired in three rounds, each over what the rounds before left unpaired:

    1. the same inode: the same open socket;
    2. the same state: nothing to report;
    3. any two whose inodes do not tell them apart: one socket that changed state.

    Two non-zero inodes that differ are never paired: those are two sockets, one gone and one
    new. An inode of 0 pairs with anything, because a connection loses its inode when its
    owner closes it (ESTABLISHED -> FIN_WAIT2, now the kernel's) and gains one when accepted.
    Each round walks the sockets in ``sort_key`` order, so the result does not depend on the
    order of the input.
    """
    return diff_sorted(in_order(previous), in_order(current))


def diff_sorted(before: Iterable[Socket], after: Iterable[Socket]) -> tuple[Change, ...]:
    """``diff`` of two readings already in ``sort_key`` order, as a watch keeps them.

    The two are walked side by side, one key at a time, as a merge walks two sorted files: a
    watch keeps the last reading as it was sorted and nothing else of it. Grouping both by key
    in dicts, as a plain diff does, cost a watch 7.4 MB for each reading of 50,000 sockets.
    The changes come out in ``sort_key`` order with no sort of their own, since every change
    of one key has a socket of that key (tests/test_watch.py holds this to the plain diff).
    """
    changes: list[Change] = []
    old_runs, new_runs = groupby(before, socket_key), groupby(after, socket_key)
    old, new = next(old_runs, None), next(new_runs, None)
    while old is not None or new is not None:
        if old is not None and (new is None or old[0] < new[0]):
            changes += [Change(ChangeKind.VANISHED, sock) for sock in old[1]]
            old = next(old_runs, None)
        elif new is not None and (old is None or new[0] < old[0]):
            changes += [Change(ChangeKind.APPEARED, sock) for sock in new[1]]
            new = next(new_runs, None)
        elif old is not None and new is not None:  # one key in both
            changes += _diff_key(list(old[1]), list(new[1]))
            old, new = next(old_runs, None), next(new_runs, None)
    return tuple(changes)


def _diff_key(old: list[Socket], new: list[Socket]) -> list[Change]:
    """The changes of the sockets of one key, in the order ``diff`` gives them."""
    changes = _diff_group(old, new)
    if len(changes) > 1:
        changes.sort(key=lambda change: (sort_key(change.socket), _KIND_ORDER[change.kind]))
    return changes


_KIND_ORDER = {ChangeKind.VANISHED: 0, ChangeKind.CHANGED: 1, ChangeKind.APPEARED: 2}


def _diff_group(old: list[Socket], new: list[Socket]) -> list[Change]:
    if len(old) == 1 and len(new) == 1:  # nearly every key: no rounds needed
        return _pair_or_split(old[0], new[0])
    old = sorted(old, key=_rank)
    new = sorted(new, key=_rank)
    changes: list[Change] = []
    for same in (_same_inode, _same_state, _may_be_same):
        for before in list(old):
            after = next((sock for sock in new if same(before, sock)), None)
            if after is not None:
                old.remove(before)
                new.remove(after)
                changes += _pair_or_split(before, after)
    changes += [Change(ChangeKind.VANISHED, sock) for sock in old]
    changes += [Change(ChangeKind.APPEARED, sock) for sock in new]
    return changes


def _pair_or_split(before: Socket, after: Socket) -> list[Change]:
    if not _may_be_same(before, after):
        return [Change(ChangeKind.VANISHED, before), Change(ChangeKind.APPEARED, after)]
    if before.state == after.state:
        return []
    return [Change(ChangeKind.CHANGED, after, before.state)]


def _same_inode(before: Socket, after: Socket) -> bool:
    return bool(before.inode) and before.inode == after.inode


def _same_state(before: Socket, after: Socket) -> bool:
    return before.state == after.state and _may_be_same(before, after)


def _may_be_same(before: Socket, after: Socket) -> bool:
    return not (before.inode and after.inode and before.inode != after.inode)


def shown_states(query: Query) -> list[Row]:
    """The (protocol, state) rows every frame shows, zero or not, as ``--summary`` does."""
    return [
        (proto, state)
        for proto, states in (("tcp", TCP_STATES), ("udp", UDP_STATES))
        if proto in query.protos
        for state in states
        if query.wants_state(state)
    ]


def count_rows(shown: Sequence[Row], now: Tally, last: Tally, first: Tally) -> tuple[Count, ...]:
    """``shown`` first, then any other state seen in one of the three reads (so a state that
    just emptied still shows its drop), protocol by protocol."""
    extra = sorted((now.keys() | last.keys() | first.keys()) - set(shown))
    rows = [*shown, *extra]
    rows.sort(key=lambda row: row[0] != "tcp")  # stable: keeps the summary order per protocol
    return tuple(_count(row, now, last, first) for row in rows)


def _count(row: Row, now: Tally, last: Tally, first: Tally) -> Count:
    proto, state = row
    return Count(proto, state, now[row], now[row] - last[row], now[row] - first[row])


def frames(
    read: Callable[[], Iterable[Socket]],
    interval: float,
    *,
    query: Query | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Iterator[Frame]:
    """Call ``read`` (the filtered sockets) every ``interval`` seconds and yield a Frame each time.

    The first frame compares with nothing: every socket in it has appeared, so a log of frames
    holds every socket from the start. ``query`` says which (protocol, state) rows are always
    counted. The first read is immediate; after each frame the generator sleeps what is left
    of the interval once the consumer is done with the frame, never less than 0 nor more than
    ``interval`` (a wall clock stepped back or forward costs at most one short or long gap).
    """
    if not (math.isfinite(interval) and 0 < interval <= MAX_INTERVAL):
        raise ValueError(
            f"interval must be a number of seconds above 0, at most {MAX_INTERVAL:g},"
            f" not {interval!r}"
        )
    query = query or Query()
    shown = shown_states(query)
    protos = tuple(proto for proto in ("tcp", "udp") if proto in query.protos)
    # Of the last reading only its sockets, in order, are kept: what the next diff walks.
    previous: tuple[Socket, ...] = ()
    last: Tally = Counter()
    first: Tally | None = None
    number = 0
    while True:
        started = clock()
        current = tuple(in_order(read()))
        now = Counter((sock.proto, sock.state) for sock in current)
        if first is None:
            first = now
        changes = diff_sorted(previous, current)
        previous = current  # the reading before goes before the frame is shown: one is kept
        yield Frame(
            number=number,
            time=datetime.fromtimestamp(started, timezone.utc),
            protos=protos,
            counts=count_rows(shown, now, last, first),
            changes=changes,
            sockets=current,
        )
        last, number = now, number + 1
        del current, changes  # the next reading is made with only ``previous`` held
        sleep(min(interval, max(0.0, interval - (clock() - started))))
