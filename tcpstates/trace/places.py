"""Which network namespace each traced transition happened in, and which of them a trace shows.

The tracepoint is one for the whole kernel: every namespace's transitions come through it, and
none says where it happened. So each event is placed by the best evidence at hand, cheapest
first, and shown only where that evidence is certain:

1. Its task, in process context (connect, listen, shutdown, close: a system call on the task's
   own socket): the namespace of /proc/PID/ns/net. Trusted only where the tracepoint's pids are
   ours (our /proc is the initial PID namespace's) and for a task with a program: a kernel
   thread works for sockets of any namespace, and an exiting task has left its own.
   In softirq context, where most transitions happen (an arriving segment, on behalf of
   whatever task was running), the task says nothing.
2. The connection's earlier events: the timeline remembers where each connection was placed.
3. A later event of the same connection in the same read, in process context: a short
   connection is often gone before it is read, but its close() was a system call.
4. The kernel: an exact SOCK_DIAG_BY_FAMILY lookup of the four-tuple through a netlink socket
   opened inside each namespace when the trace starts (and in each one found later). Placed
   where exactly one namespace has the socket.

What none of these places (the socket was gone before it was looked up, or the same ends were
in use in two namespaces) is counted and said at the end, never shown under a guessed
namespace. Lookups cost one round trip to the kernel per namespace, and are made only for the
events the query wants and only once per connection (the timeline remembers the answer).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from tcpstates.model.errors import SourceError
from tcpstates.model.place import AllNetns, NamedNetns, NetnsOfPid, Where
from tcpstates.model.states import TcpState
from tcpstates.sources import netns
from tcpstates.sources.inet_diag import Lookup
from tcpstates.trace.events import NOWHERE, Connection, Event, Peer, Timeline, Transition, peer_of

# The inode of the initial PID namespace, fixed by the kernel (PROC_PID_INIT_INO,
# include/linux/proc_ns.h). Where /proc/self/ns/pid has it, /proc/PID is the tracepoint's PID.
_INIT_PID_NAMESPACE = 0xEFFFFFFC
# Namespaces are looked for again at most this often when an event is found in none of those
# known (a container just started), and at least this often to let go of those that have gone:
# a netlink socket holds its namespace alive.
RETRY_SECONDS = 1.0
TIDY_SECONDS = 10.0
# A task seen in a namespace is remembered this long after, for its events read once it has
# exited (a short-lived client; a trace running behind a flood). By pid and name together, and
# only for events from that while, so a pid used again by another program is not taken for it.
TASK_SECONDS = 5.0
TASKS = 4096


class Places:
    """The namespaces a trace shows, and a lookup socket inside every namespace it can enter."""

    def __init__(
        self,
        kept: Sequence[netns.Namespace],
        every: bool = False,
        find: Callable[[], netns.Found] = netns.all_namespaces,
        clock: Callable[[], float] = time.monotonic,
        proc: str = "/proc",
    ) -> None:
        self.every = every  # --all-netns: every namespace is shown, those found later too
        self._kept = {namespace.inode for namespace in kept}
        self._find, self._clock, self._proc = find, clock, proc
        self._tasks_are_ours = _init_pid_namespace(proc)
        self.labels: dict[int, str] = {}  # inode -> how the Netns column shows it
        self._lookups: dict[int, Lookup] = {}
        self._found_at = self._tidied_at = -float("inf")
        self._answers: dict[tuple[int, Connection], int | None] = {}  # this read's lookups
        # (pid, name) -> (namespace, when last seen in it); and the pids gone in this read.
        self._tasks: OrderedDict[tuple[int, str | None], tuple[int, float]] = OrderedDict()
        self._gone: set[int] = set()
        self._read_at = clock()
        try:
            for namespace in kept:  # those asked for must open, or the trace cannot start
                self._lookups[namespace.inode] = _lookup_inside(namespace)
                self.labels[namespace.inode] = namespace.label
            self.refresh()
        except BaseException:
            self.close()
            raise

    def keeps(self, inode: int | None) -> bool:
        """Whether events placed in namespace ``inode`` are shown (not when placed nowhere)."""
        return bool(inode) and (self.every or inode in self._kept)

    def start_read(self) -> None:
        """Forget what the last read learnt of tasks and sockets: both change between reads."""
        self._answers.clear()
        self._gone.clear()
        self._read_at = self._clock()
        if self._read_at - self._tidied_at >= TIDY_SECONDS:
            self._tidied_at = self._clock()
            self.refresh()

    def of_task(self, event: Event) -> int | None:
        """The namespace of an event's task, in process context; None where it cannot be told
        (softirq, untrusted pids, a kernel thread, or a task gone and not seen lately)."""
        if event.pid is None or not self._tasks_are_ours:
            return None
        key = (event.pid, event.process)
        known = self._tasks.get(key)
        if known is not None and known[1] >= self._read_at:
            return known[0]  # seen in this read already
        inode = None if event.pid in self._gone else _task_namespace(self._proc, event.pid)
        if inode is not None:
            self._tasks[key] = (inode, self._clock())
            self._tasks.move_to_end(key)
            if len(self._tasks) > TASKS:
                self._tasks.popitem(last=False)
            return inode
        self._gone.add(event.pid)
        if known is not None and event.timestamp <= known[1] + TASK_SECONDS:
            return known[0]
        return None

    def find(self, connection: Connection) -> list[int]:
        """The namespaces where a TCP socket with these ends exists now."""
        found = []
        for inode, lookup in self._lookups.items():
            answer = self._answers[(inode, connection)] = lookup.inode(*connection)
            if answer is not None:
                found.append(inode)
        return found

    def inode_of(self, event: Event) -> int | None:
        """The inode of an event's socket, asked of the namespace it was placed in."""
        if not event.netns or not event.local_port:
            return None
        key = (event.netns, event.connection)
        if key not in self._answers:  # every event of a connection in a read has one answer
            lookup = self._lookups.get(event.netns)
            self._answers[key] = None if lookup is None else lookup.inode(*event.connection)
        return self._answers[key] or None

    def refresh(self) -> bool:
        """Look for namespaces again: open a lookup in the new ones, close those that have gone.

        True when one was added. At most once in ``RETRY_SECONDS``: a flood of events from
        sockets already gone must not become a flood of /proc scans.
        """
        if self._clock() - self._found_at < RETRY_SECONDS:
            return False
        self._found_at = self._clock()
        found = {namespace.inode: namespace for namespace in self._find().namespaces}
        for inode in [i for i in self._lookups if i not in found and i not in self._kept]:
            self._lookups.pop(inode).close()
            self.labels.pop(inode, None)
        added = False
        for inode, namespace in found.items():
            self.labels.setdefault(inode, namespace.label)
            if inode not in self._lookups:
                with contextlib.suppress(SourceError):  # gone, or not ours to enter: not looked in
                    self._lookups[inode] = _lookup_inside(namespace)
                    added = True
        return added

    def close(self) -> None:
        for lookup in self._lookups.values():
            lookup.close()
        self._lookups.clear()


def open_places(where: Where) -> Places:
    """The namespaces a trace of ``where`` shows: one (this, named, or a process's) or all."""
    if isinstance(where, AllNetns):
        return Places((), every=True)
    if isinstance(where, NamedNetns | NetnsOfPid):
        return Places((netns.named(where),))
    return Places((netns.current(),))


def _lookup_inside(namespace: netns.Namespace) -> Lookup:
    with netns.entered(namespace):  # a netlink socket answers for where it was opened
        return Lookup()


def _init_pid_namespace(proc: str) -> bool:
    try:
        return os.stat(f"{proc}/self/ns/pid").st_ino == _INIT_PID_NAMESPACE
    except OSError:
        return False


def _task_namespace(proc: str, pid: int) -> int | None:
    """A running program's network namespace; None for a kernel thread or an exiting task
    (no program), and for a task that has gone."""
    try:
        os.readlink(f"{proc}/{pid}/exe")
        return os.stat(f"{proc}/{pid}/ns/net").st_ino
    except OSError:
        return None


class Placer:
    """Places each event of a read in its namespace, then follows it on the timeline, in order:
    an event placed is what the next events of its connection inherit.

    An event that cannot be placed yet waits for the next read, with every event after it (the
    order is kept), once: a connection caught between two reads is often gone by the time the
    first is looked up, and its close() comes in the second. A read that times out (0.5 s
    without events) lets what waits go on.
    """

    def __init__(self, places: Places) -> None:
        self.places = places
        self.unplaced = 0  # events the query wanted that no evidence could place
        self._waiting: list[tuple[Event, bool]] = []

    def keeps(self, event: Event) -> bool:
        return self.places.keeps(event.netns)

    def follow(
        self, events: Sequence[Event], wants: Sequence[bool], timeline: Timeline
    ) -> list[tuple[Transition, bool]]:
        """The events that waited, then these, placed and followed, each with whether the
        query wants it; those from the first that cannot be placed yet on wait for the next
        read."""
        self.places.start_read()
        final = len(self._waiting)  # these have waited once: placed now or never
        events = [*(event for event, _ in self._waiting), *events]
        wants = [*(want for _, want in self._waiting), *wants]
        self._waiting = []
        later = _later_in_process(events)
        followed: list[tuple[Transition, bool]] = []
        unbound: dict[Peer, list[int]] = {}  # connect()s placed nowhere, by what they named
        for i, event in enumerate(events):
            inode = self._place(events, i, later, wants[i], timeline)
            if wants[i] and not inode and i >= final:
                self._waiting = list(zip(events[i:], wants[i:], strict=True))
                break
            if inode is not None:
                event = event.placed(inode)
            if wants[i] and not inode:
                self.unplaced += 1
            if event.new_state is TcpState.SYN_SENT and not event.local_port:
                if not inode:
                    unbound.setdefault(peer_of(event), []).append(i)
            elif event.old_state is TcpState.SYN_SENT and inode and peer_of(event) in unbound:
                waiting = unbound.pop(peer_of(event))
                if len(waiting) == 1 and timeline.unbound_to(peer_of(event)) == 1:
                    self._place_connect(followed, waiting[0], inode, wants)
            followed.append((timeline.follow(event), wants[i]))
        return followed

    def _place_connect(
        self, followed: list[tuple[Transition, bool]], i: int, inode: int, wants: Sequence[bool]
    ) -> None:
        """A connect() whose task had gone before it was read (a short-lived client) takes the
        namespace of the socket it became, which has a port to look up by; only when it is the
        one connect() to that peer waiting, in this read and at all, so none is taken for
        another."""
        transition, want = followed[i]
        followed[i] = dataclasses.replace(transition, event=transition.event.placed(inode)), want
        self.unplaced -= want

    def _place(
        self, events: Sequence[Event], i: int, later: list[int], want: bool, timeline: Timeline
    ) -> int | None:
        """The namespace of ``events[i]``; NOWHERE when it was tried and could not be
        found, None when it was not worth trying (an event the query does not want)."""
        event, places = events[i], self.places
        inode = places.of_task(event)
        if inode is not None:
            return inode
        inherited = timeline.netns_of(event)
        if inherited:
            return inherited
        j = later[i]
        while j >= 0:
            inode = places.of_task(events[j])
            if inode is not None:
                return inode
            j = later[j]
        if not want or inherited == NOWHERE or not event.local_port:
            return inherited
        found = places.find(event.connection)
        if not found and places.refresh():  # maybe a namespace that was not there at start
            found = places.find(event.connection)
        return found[0] if len(found) == 1 else NOWHERE


def _later_in_process(events: Sequence[Event]) -> list[int]:
    """For each event, the index of the next event in process context of the same socket in
    this read (-1: none).

    A socket's life ends at CLOSE, and one from CLOSE (or a connection cloned from a listener)
    starts anew, so ends used again never lend evidence across. Nor do ends whose events in this
    read are not one socket's steps in turn: two namespaces using the same ends at once.
    """
    tangled = _tangled(events)
    following: dict[Connection, int] = {}
    later = [-1] * len(events)
    for i in range(len(events) - 1, -1, -1):
        event = events[i]
        key = event.connection
        if key in tangled:
            continue
        if event.new_state is TcpState.CLOSE:
            following.pop(key, None)  # what came after is another socket's
        later[i] = following.get(key, -1)
        if _starts(event):
            following.pop(key, None)  # what came before was another socket's
        elif event.pid is not None:
            following[key] = i
    return later


def _tangled(events: Sequence[Event]) -> set[Connection]:
    """The ends whose events in this read do not follow one another, state to state."""
    last: dict[Connection, TcpState] = {}
    tangled = set()
    for event in events:
        key = event.connection
        state = last.get(key)
        if state is not None and event.old_state is not state:
            if not (state is TcpState.CLOSE and _starts(event)):
                tangled.add(key)
        last[key] = event.new_state
    return tangled


def _starts(event: Event) -> bool:
    """Whether the event is a socket's first: from CLOSE, or a connection from its listener."""
    return event.old_state is TcpState.CLOSE or (
        event.old_state is TcpState.LISTEN and event.new_state is TcpState.SYN_RECV
    )
