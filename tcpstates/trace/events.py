"""TCP state transitions as they happen, from the ``sock:inet_sock_set_state`` tracepoint.

The kernel fires the tracepoint at each change of ``sk_state``, formatted as one line of text:

    curl-4242 [001] ..... 1927.010744: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP
      sport=38364 dport=80 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=... daddrv6=...
      oldstate=TCP_SYN_SENT newstate=TCP_ESTABLISHED

What the tracepoint does not say, and how this module copes:
* which socket: it names no socket in its text, so a connection is followed by its addresses and
  ports. connect() reports CLOSE -> SYN_SENT before a local port is chosen (sport 0); the next
  event of a socket to the same peer takes that place.
* TIME_WAIT: the kernel never sets a full socket to TIME_WAIT; it swaps in a small timewait socket,
  and the full one goes FIN_WAIT2 (or CLOSING) -> CLOSE. That CLOSE is reported as it is.
* who: the task on the CPU at the time. Transitions driven by an arriving segment run in softirq
  context, on behalf of whatever task was running (on loopback, usually the sender); those carry
  no pid or process rather than a wrong one. Where the socket still exists when the event is
  read, ``Owners`` replaces the guess with the process that holds the socket's file.
* where: the tracepoint is the whole kernel's and names no network namespace; ``places`` finds
  each event's, and the timeline remembers it for the connection's next events.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tcpstates.model.query import Query
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState
from tcpstates.sources.owners import Owner, OwnerMap, process_name

if TYPE_CHECKING:
    from tcpstates.trace.places import Placer

# "%16s-%-7d [%03d] FLAGS %5lu.%06lu: inet_sock_set_state: ...": the task's name comes first, raw
# (it may hold spaces, '-', '[', escape bytes, and newlines that split the line), and all after it
# is the kernel's own text. So the line is read from its fixed end: the name is whatever precedes
# the last "-PID [CPU]" that the rest of the line follows; a name cannot forge a field.
_LINE = re.compile(
    r"(?P<task>.*)-(?P<pid>\d+) +\[(?P<cpu>\d+)\] +(?:(?P<flags>\S+) +)?(?P<ts>\d+\.\d+):"
    r" inet_sock_set_state: family=(?P<family>\w+) protocol=(?P<protocol>\w+)"
    r" sport=(?P<sport>\d+) dport=(?P<dport>\d+) saddr=(?P<saddr>\S+) daddr=(?P<daddr>\S+)"
    r" saddrv6=(?P<saddr6>\S+) daddrv6=(?P<daddr6>\S+)"
    r" oldstate=TCP_(?P<old>\w+) newstate=TCP_(?P<new>\w+) *",
    re.DOTALL | re.ASCII,
)
# The event's own words, which end every event line. A task's name is at most 15 bytes
# (TASK_COMM_LEN), too short to hold them: a piece of text that holds them ends an event.
_MARKER = " inet_sock_set_state: family="
# The kernel pads a name to 16 columns ("%16s"), and a name has at most 15 bytes: a name's pieces
# take 16 bytes together, newlines included. Older pieces belong to no name.
_NAME_WIDTH = 16
_ESCAPED_BYTE = re.compile(r"\\x[0-9a-f]{2}")  # one byte that was not UTF-8, as the reader shows it
_FAMILIES = {"AF_INET": 4, "AF_INET6": 6}
# Sockets remembered for "time in the old state"; old ones are forgotten first, so memory
# stays bounded on a host that opens millions of connections.
MEMORY = 100_000
# An event's namespace when it was looked for and could not be told (the socket had gone, or
# the same ends were in use in two namespaces). A namespace's inode is never 0.
NOWHERE = 0
Connection = tuple[int, str, int, str, int]  # family, local address and port, remote ones


@dataclass(frozen=True, slots=True)
class Event:
    """One transition, as the kernel reported it."""

    timestamp: float  # CLOCK_MONOTONIC seconds (the instance's trace clock)
    family: int
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    old_state: TcpState
    new_state: TcpState
    pid: int | None  # the task on the CPU; None in interrupt context
    process: str | None
    netns: int | None = None  # the network namespace's inode, once placed (NOWHERE: not found)

    @property
    def connection(self) -> Connection:
        return (
            self.family,
            self.local_address,
            self.local_port,
            self.remote_address,
            self.remote_port,
        )

    def placed(self, netns: int) -> Event:
        """The event in namespace ``netns`` (dataclasses.replace costs four times as much)."""
        return Event(
            self.timestamp, self.family, self.local_address, self.local_port,
            self.remote_address, self.remote_port, self.old_state, self.new_state,
            self.pid, self.process, netns,
        )  # fmt: skip

    def as_socket(self) -> Socket:
        """The socket after the transition, so that a Query can judge the event."""
        return Socket(
            proto="tcp",
            family=self.family,
            local_address=self.local_address,
            local_port=self.local_port,
            remote_address=self.remote_address,
            remote_port=self.remote_port,
            state=self.new_state,
            pid=self.pid,
            process=self.process,
            netns=self.netns,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """An event and how long the socket had been in its old state (None: not seen entering)."""

    event: Event
    ms_in_old_state: float | None
    wall_time: float  # seconds since the epoch


class ParseError(ValueError):
    pass


def parse_line(line: str) -> Event | None:
    """The event on one trace_pipe line; None for a transition of another protocol.

    A line that a newline in the task's name split comes whole, its pieces joined with "\\n"
    (``Splicer`` does that). Raises ParseError for a line that is not an inet_sock_set_state
    event at all.
    """
    m = _LINE.fullmatch(line)
    if m is None:
        raise ParseError(f"not an inet_sock_set_state event: {line[:120]!r}")
    if m["protocol"] != "IPPROTO_TCP":
        return None
    family = _FAMILIES.get(m["family"])
    if family is None:
        return None
    in_interrupt = any(c in (m["flags"] or "") for c in "shH")
    local, remote = (m["saddr"], m["daddr"]) if family == 4 else (m["saddr6"], m["daddr6"])
    return Event(
        timestamp=float(m["ts"]),
        family=family,
        local_address=local,
        local_port=int(m["sport"]),
        remote_address=remote,
        remote_port=int(m["dport"]),
        old_state=_state(m["old"]),
        new_state=_state(m["new"]),
        pid=None if in_interrupt else int(m["pid"]),
        process=None if in_interrupt else _task_name(m["task"].lstrip(" "), int(m["pid"])),
    )


def _task_name(name: str, pid: int) -> str:
    # Only the padding is taken off: a name may itself end in a space or a newline.
    # "<...>": the tracer's small table of task names lost this one; /proc still knows it.
    if name != "<...>":
        return name
    known = process_name("/proc", pid)
    return name if known is None else known


def _state(name: str) -> TcpState:
    try:
        return TcpState[name]
    except KeyError:
        return TcpState.UNKNOWN


class Splicer:
    """Joins the pieces of event lines that newlines in task names split; counts what it cannot.

    ``prctl(PR_SET_NAME, "x\\ny")`` makes the kernel print one event as two lines, the first
    holding only the start of the name. A piece without the event's words (``_MARKER``) is held
    as the start of the next event's name; the piece with them ends the event, and takes as many
    held pieces as fit in a name's 16 columns. What is left over, or cannot be read, is counted
    in ``skipped`` (never raised), and nothing held grows beyond one name.
    """

    def __init__(self) -> None:
        self._held: list[str] = []
        self.skipped = 0

    def events(self, lines: Iterable[str]) -> Iterator[Event]:
        for line in lines:
            if _MARKER not in line:
                self._hold(line)
                continue
            pieces = [*self._name_start(line), line]
            try:
                event = parse_line("\n".join(pieces))
            except ParseError:
                self._skip(pieces)
                continue
            if event is not None:
                yield event

    def _hold(self, piece: str) -> None:
        self._held.append(piece)
        while sum(_width(held) + 1 for held in self._held) > _NAME_WIDTH:
            self._skip([self._held.pop(0)])

    def _name_start(self, line: str) -> list[str]:
        """The held pieces that fit before ``line``'s own start of a name; the rest are skipped."""
        if not self._held:
            return []
        m = _LINE.fullmatch(line)
        width = _NAME_WIDTH if m is None else _width(m["task"])  # unreadable: it takes none
        keep = len(self._held)
        while keep and width + _width(self._held[keep - 1]) + 1 <= _NAME_WIDTH:
            keep -= 1
            width += _width(self._held[keep]) + 1
        self._skip(self._held[:keep])
        taken, self._held = self._held[keep:], []
        return taken

    def _skip(self, pieces: list[str]) -> None:
        self.skipped += sum(1 for piece in pieces if piece.strip())  # a blank piece is no line


def _width(text: str) -> int:
    """The bytes the kernel wrote for ``text`` (a byte shown as \\xNN counts one)."""
    return len(_ESCAPED_BYTE.sub("?", text).encode("utf-8", "surrogatepass"))


class Timeline:
    """Remembers when each connection entered its state, to say how long it stayed there, and
    the network namespace it was placed in, for its next events to inherit.

    Connections are known by their ends, which two namespaces may use at once. So an event
    takes a time and a namespace from what is remembered only where it is the next step of the
    same socket (its old state is the state remembered) in the same namespace; ends that break
    this are placed NOWHERE until they close, for no event to inherit.
    """

    def __init__(self, memory: int = MEMORY) -> None:
        self._since: OrderedDict[Connection, _Entry] = OrderedDict()
        self._unbound: deque[tuple[Peer, float, int | None]] = deque(maxlen=1024)
        self._memory = memory
        self._clock_offset = time.time() - time.monotonic()

    def netns_of(self, event: Event) -> int | None:
        """Where the socket's earlier events were placed (NOWHERE: they could not be); None
        when none was seen, or the event is no next step of what was (a new socket, or
        another namespace's with the same ends)."""
        known = self._since.get(event.connection)
        if known is not None:
            return known[1] if known[2] is event.old_state else None
        if event.old_state is TcpState.SYN_SENT and event.local_port:
            peer = peer_of(event)
            places = {netns for candidate, _, netns in self._unbound if candidate == peer}
            if len(places) == 1:  # two namespaces connecting to the same peer: neither
                return places.pop()
        return None

    def unbound_to(self, peer: Peer) -> int:
        """How many connect()s to ``peer`` are waiting for their port to be known."""
        return sum(1 for candidate, _, _ in self._unbound if candidate == peer)

    def follow(self, event: Event) -> Transition:
        key = event.connection
        known = self._since.pop(key, None)
        if known is None and event.old_state is TcpState.SYN_SENT:
            known = self._claim_unbound(event)
        entered, netns = None, event.netns
        if known is not None:
            since, where, state = known
            if (
                state is not event.old_state
                or where == NOWHERE
                or (where and netns and netns != where)
            ):
                # Two sockets with these ends (in two namespaces), or steps missed: from now
                # on no one's time and no one's place, until they close.
                netns = NOWHERE
            else:
                entered, netns = since, netns or where
        if event.new_state is TcpState.SYN_SENT and event.local_port == 0:
            self._unbound.append((peer_of(event), event.timestamp, netns))
        elif event.new_state is not TcpState.CLOSE:
            self._since[key] = (event.timestamp, netns, event.new_state)
            if len(self._since) > self._memory:
                self._since.popitem(last=False)
        ms = None if entered is None else round((event.timestamp - entered) * 1000, 3)
        return Transition(event, ms, event.timestamp + self._clock_offset)

    def _claim_unbound(self, event: Event) -> _Entry | None:
        # connect() announced SYN_SENT before it had a local port: the oldest such announcement
        # towards the same peer, from the same namespace, is this socket's.
        peer = peer_of(event)
        for i, (candidate, entered, netns) in enumerate(self._unbound):
            if candidate == peer and (not netns or not event.netns or netns == event.netns):
                del self._unbound[i]
                return entered, netns, TcpState.SYN_SENT
        return None


# When a socket entered its state, where it was placed, and the state.
_Entry = tuple[float, int | None, TcpState]
Peer = tuple[int, str, str, int]


def peer_of(event: Event) -> Peer:
    """What a connect() names before its local port is chosen: its address and the peer's."""
    return (event.family, event.local_address, event.remote_address, event.remote_port)


def kernel_filter(query: Query) -> str:
    """The tracepoint filter: TCP only, and the family and ports, so the kernel drops the rest."""
    terms = ["protocol == 6"]
    if query.families == frozenset({4}):
        terms.append("family == 2")
    elif query.families == frozenset({6}):
        terms.append("family == 10")
    if query.sport is not None:
        terms.append(f"sport == {query.sport}")
    if query.dport is not None:
        terms.append(f"dport == {query.dport}")
    if query.port is not None:
        terms.append(f"(sport == {query.port} || dport == {query.port})")
    return " && ".join(terms)


def wanted(query: Query, event: Event) -> bool:
    """The query's states match either side of a transition; everything else as for sockets."""
    if event.family not in query.families:
        return False
    if query.states and not {event.old_state, event.new_state} & query.states:
        return False
    return query.matches(event.as_socket())


class Owners:
    """The process holding an event's socket, from the inode map, where that can still be had.

    The task on the CPU is a guess (and none at all in softirq context); the owner of the
    socket's file is the truth. The socket is looked up by its ends, in the namespace the event
    was placed in, when the event is read; one that has closed since cannot be found, and the
    event keeps what the tracepoint said.
    """

    def __init__(
        self,
        inode_of: Callable[[Event], int | None] | None = None,
        scan: Callable[[str, set[int]], OwnerMap] | None = None,
        memory: int = 10_000,
    ) -> None:
        from tcpstates.sources.owners import scan_owners

        self._inode_of = inode_of or _inode_here
        self._scan = scan or scan_owners
        self._known: OrderedDict[int, Owner | None] = OrderedDict()
        self._memory = memory

    def resolve(self, event: Event) -> Event:
        return self.resolve_all([event])[0]

    def resolve_all(self, events: list[Event]) -> list[Event]:
        """Each event with its socket's owner, from one /proc scan for all the new sockets.

        One scan per read, not per event: on a host with 50,000 sockets a scan takes a fifth
        of a second, and events keep coming meanwhile; the next read then holds them all.
        """
        inodes = [self._inode(event) for event in events]  # at once, while the sockets live
        unknown = {inode for inode in inodes if inode is not None and inode not in self._known}
        if unknown:
            found = self._scan("/proc", unknown).by_inode
            for inode in unknown:
                self._known[inode] = found.get(inode)
        resolved = [self._with_owner(e, inode) for e, inode in zip(events, inodes, strict=True)]
        while len(self._known) > self._memory:  # the oldest first; this read's are in hand
            self._known.popitem(last=False)
        return resolved

    def _inode(self, event: Event) -> int | None:
        if not event.local_port:  # connect() before its port is chosen: nothing to look up
            return None
        return self._inode_of(event)

    def _with_owner(self, event: Event, inode: int | None) -> Event:
        owner = None if inode is None else self._known.get(inode)
        if owner is None:
            return event
        return dataclasses.replace(event, pid=owner.pid, process=owner.process)


def _inode_here(event: Event) -> int | None:
    """The inode of an event's socket in the namespace tcpstates runs in (none without netlink).

    A socket for each question: a trace keeps one per namespace instead (``places``).
    """
    from tcpstates.model.errors import SourceError
    from tcpstates.sources.inet_diag import Lookup

    try:
        lookup = Lookup()
    except SourceError:
        return None
    try:
        return lookup.inode(*event.connection) or None
    finally:
        lookup.close()


def transitions(
    events: Iterable[Event],
    query: Query,
    timeline: Timeline,
    owners: Owners | None = None,
    placer: Placer | None = None,
) -> list[Transition]:
    """The transitions the query wants, each with its time in the old state and its owner;
    with a ``placer``, each placed in its namespace, and only those of the namespaces kept."""
    batch = list(events)
    wants = [wanted(query, event) for event in batch]
    if placer is None:  # every event is followed, so that durations stay right
        picked = [t for t, want in zip(map(timeline.follow, batch), wants, strict=True) if want]
    else:
        followed = placer.follow(batch, wants, timeline)
        picked = [t for t, want in followed if want and placer.keeps(t.event)]
    if owners is not None and picked:
        resolved = owners.resolve_all([transition.event for transition in picked])
        picked = [dataclasses.replace(t, event=e) for t, e in zip(picked, resolved, strict=True)]
    return picked


class Pipe(Protocol):
    """What ``follow`` reads from: a tracefs instance, or anything with the same two methods."""

    def read(self, timeout: float) -> Any: ...  # .lines: list[str], .lost: int

    def overruns(self) -> int: ...


def follow(
    pipe: Pipe,
    query: Query,
    duration: float | None = None,
    count: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    owners: Owners | None = None,
    placer: Placer | None = None,
) -> Iterator[Transition | Lost | Skipped]:
    """Transitions as they come, until ``duration`` seconds or ``count`` transitions.

    Lost events (the kernel dropped them because we read too slowly) come as ``Lost`` markers,
    so the consumer can say so where it happens instead of presenting a gapless story; lines
    that could not be read come as ``Skipped`` markers, and the trace goes on.
    """
    timeline, splicer = Timeline(), Splicer()
    deadline = None if duration is None else clock() + duration
    seen, interrupted = 0, False
    while count is None or seen < count:
        remaining = 0.5 if deadline is None else deadline - clock()
        done = remaining <= 0  # one last round, with no read: what a placer holds comes out
        try:
            lines, lost = ([], 0) if done else _read(pipe, min(remaining, 0.5))
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM: that last round, then stop as asked
            lines, lost, done, interrupted = [], 0, True, True
        items: list[Transition | Lost | Skipped] = []
        if lost:  # what waited for this read came before the gap
            items += transitions([], query, timeline, owners, placer) if placer else []
            items.append(Lost(lost))
        skipped = splicer.skipped
        found = transitions(splicer.events(lines), query, timeline, owners, placer)
        if splicer.skipped > skipped:
            items.append(Skipped(splicer.skipped - skipped))
        for item in items + found:
            yield item
            if isinstance(item, Transition):
                seen += 1
                if count is not None and seen >= count:
                    return
        if interrupted:
            raise KeyboardInterrupt
        if done:
            return


def _read(pipe: Pipe, timeout: float) -> tuple[list[str], int]:
    batch = pipe.read(timeout)
    return batch.lines, batch.lost


@dataclass(frozen=True, slots=True)
class Lost:
    """The kernel dropped this many events between two reads."""

    events: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """This many lines of the trace could not be read as events, and were left out."""

    lines: int
