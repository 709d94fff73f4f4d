"""``trace``: stream a place's TCP state transitions from the kernel's tracepoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tcpstates.model.errors import ExitStatus
from tcpstates.model.query import Query
from tcpstates.render.output import Output

if TYPE_CHECKING:
    from tcpstates.model.place import Place
    from tcpstates.trace.places import Placer


def trace(
    query: Query,
    place: Place,
    out: Output,
    fmt: str,
    duration: float | None,
    count: int | None,
) -> int:
    """Stream ``place``'s transitions until ``duration`` or ``count``, or until interrupted."""
    from tcpstates.trace import tracefs
    from tcpstates.trace.events import kernel_filter
    from tcpstates.trace.places import Placer, open_places

    root = tracefs.tracefs_root()
    tracefs.remove_stale(root)
    placer = Placer(open_places(place.where))  # first: a namespace not there leaves nothing
    try:
        instance = tracefs.Instance(root, kernel_filter(query))
        return _stream(instance, query, place, placer, Stop(duration, count), out, fmt)
    finally:
        placer.places.close()


def cleanup(out: Output) -> int:
    """Remove the tracing instances no running trace holds (left by killed runs)."""
    from tcpstates.render.safe import safe
    from tcpstates.trace import tracefs

    root = tracefs.tracefs_root()
    removed = tracefs.remove_stale(root)
    for name in removed:  # only root makes instances, but a name is still anyone's text
        out.stdout.write(f"removed {root}/instances/{safe(name)}\n")
    if not removed:
        out.stdout.write("no stale tracing instances\n")
    return ExitStatus.OK


@dataclass(frozen=True, slots=True)
class Stop:
    """When a trace ends by itself: after ``duration`` seconds or ``count`` transitions."""

    duration: float | None = None
    count: int | None = None


def _stream(
    instance: Any,
    query: Query,
    place: Place,
    placer: Placer,
    stop: Stop,
    out: Output,
    fmt: str,
) -> int:
    from tcpstates.trace.events import Owners, Skipped, follow
    from tcpstates.trace.render import SkipNotice, TraceWriter

    notice = SkipNotice(out.stderr)
    labels = placer.places.labels if place.several else None
    owners = Owners(inode_of=placer.places.inode_of)
    try:
        with instance:
            writer = TraceWriter(out.stdout, fmt, labels, out.fit_width)
            events = follow(
                instance, query, stop.duration, stop.count, owners=owners, placer=placer
            )
            for item in events:
                if isinstance(item, Skipped):
                    notice.add(item.lines)
                    continue
                writer.write(item)
                writer.flush()
            overruns = instance.overruns()
    finally:
        notice.close()  # Ctrl-C too: what was skipped is said before leaving
        if placer.unplaced:
            out.say(
                f"left out {placer.unplaced} transitions that could not be placed in a network"
                " namespace (the socket had gone before it was looked up, or its ends were in"
                " use in two namespaces)"
            )
    if overruns:
        out.say(f"the kernel overwrote {overruns} events we read too late")
    return ExitStatus.OK
