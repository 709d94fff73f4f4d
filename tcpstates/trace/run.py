"""``trace``: stream a place's TCP state transitions from the kernel's tracepoint."""

from __future__ import annotations

from typing import Any

from tcpstates.model.errors import ExitStatus
from tcpstates.model.query import Query
from tcpstates.render.output import Output


def trace(query: Query, out: Output, fmt: str, duration: float | None, count: int | None) -> int:
    """Stream transitions until ``duration`` or ``count``, or until interrupted."""
    from tcpstates.trace import tracefs
    from tcpstates.trace.events import kernel_filter

    root = tracefs.tracefs_root()
    tracefs.remove_stale(root)
    return _stream(tracefs.Instance(root, kernel_filter(query)), query, out, fmt, duration, count)


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


def _stream(
    instance: Any, query: Query, out: Output, fmt: str, duration: float | None, count: int | None
) -> int:
    from tcpstates.trace.events import Owners, Skipped, follow
    from tcpstates.trace.render import SkipNotice, TraceWriter

    notice = SkipNotice(out.stderr)
    try:
        with instance:
            writer = TraceWriter(out.stdout, fmt)
            for item in follow(instance, query, duration, count, owners=Owners()):
                if isinstance(item, Skipped):
                    notice.add(item.lines)
                    continue
                writer.write(item)
                writer.flush()
            overruns = instance.overruns()
    finally:
        notice.close()  # Ctrl-C too: what was skipped is said before leaving
    if overruns:
        out.say(f"the kernel overwrote {overruns} events we read too late")
    return ExitStatus.OK
