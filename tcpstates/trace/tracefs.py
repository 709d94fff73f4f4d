"""A private tracefs instance with the ``sock:inet_sock_set_state`` tracepoint enabled.

No BPF and no compiler: the kernel formats each event as a line of text in the instance's
``trace_pipe``. A private instance keeps our events, filter, clock and options apart from
anyone else's tracing, including other tcpstates traces, run from any PID namespace.

Who owns an instance, and when one is stale, rests on what the kernel enforces, not on pids
(a pid means nothing across PID namespaces, and two traces in two of them may both be pid 1):
* A trace makes its instance with ``mkdir`` under a name no one else has ever used
  (``tcpstates-PID-TOKEN``, TOKEN 64 random bits) and never adopts one that exists.
* Straight after ``mkdir``, before writing anything into it, it opens the instance's
  ``trace_pipe`` and holds it open until it ends. The kernel refuses to remove an instance while
  any of its files is open (``rmdir`` fails with EBUSY; checked on Linux 6.18).
* So an instance that ``rmdir`` can remove is one no live trace holds: its trace was killed
  (SIGKILL, a crash) or it is not ours. Cleanup is ``rmdir`` alone, and never writes into an
  instance: writing ``enable=0`` into a live one would blind it.
* The one moment a live trace does not yet hold its instance is between its ``mkdir`` and its
  ``open``. A cleanup that removes it then (each trace cleans up as it starts, so traces started
  together do) makes that ``open`` fail (ENOENT or ENODEV) before the trace has written
  anything; the trace then makes another instance under another name.
* Once, in CI, with traces in several PID namespaces starting together, an instance was gone
  by its first write although its pipe was open. Whatever did it, nothing had been written
  yet, so the trace makes another instance then too, a few times at most.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import os
import re
import secrets
import select
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from tcpstates.model.errors import ExitStatus, TcpstatesError

MOUNT_POINTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
EVENT = "events/sock/inet_sock_set_state"
PREFIX = "tcpstates-"
_LOST = re.compile(r"CPU:(\d+) \[LOST (\d+) EVENTS\]")
# A read of trace_pipe gives at most a page or two (8 KiB, some 30 events); a batch drains up to
# this much, so that a flood of events costs one /proc scan per thousands of events, not per 30.
_BATCH = 1024 * 1024
# What opening a file of an instance gives when it was removed meanwhile: ENOENT once it is
# gone, ENODEV while the kernel is taking it down (both seen on 6.18, traces starting together).
_REMOVED = (errno.ENOENT, errno.ENODEV)
_ATTEMPTS = 8  # names tried before giving up; a clash of 64 random bits is not expected at all
# A new instance starts with the top instance's options, which anyone with root may have
# changed; these would change the shape of our lines (stack traces after each event, a tgid
# column, raw or binary output), so the instance sets each one itself. Missing ones are skipped.
OPTIONS = {
    "context-info": "1",
    "irq-info": "1",
    "record-tgid": "0",
    "latency-format": "0",
    "verbose": "0",
    "raw": "0",
    "hex": "0",
    "bin": "0",
    "fields": "0",
    "annotate": "0",
    "stacktrace": "0",
    "userstacktrace": "0",
    "markers": "0",
}
NEEDS_ROOT = (
    "tracing needs root (tracefs is root-only); without root, 'tcpstates --watch'"
    " shows state changes between snapshots"
)


class TracingError(TcpstatesError):
    """Tracing cannot start here; the message says what is missing and what to run instead."""

    status = ExitStatus.ERROR


def tracefs_root(mount: bool = True) -> str:
    """Where tracefs is mounted, mounting it at /sys/kernel/tracing if it is not (root only)."""
    for root in MOUNT_POINTS:
        if os.path.isdir(f"{root}/instances"):
            return root
    if os.geteuid() != 0:
        raise TracingError(NEEDS_ROOT)
    if mount:
        done = subprocess.run(
            ["mount", "-t", "tracefs", "nodev", MOUNT_POINTS[0]],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0 and os.path.isdir(f"{MOUNT_POINTS[0]}/instances"):
            return MOUNT_POINTS[0]
    raise TracingError(
        "tracefs is not available (no /sys/kernel/tracing, and mounting it failed);"
        " use 'tcpstates --watch' instead"
    )


@dataclass(slots=True)
class Lines:
    """What the trace pipe gave: its lines (blank ones too), and how many events were dropped."""

    lines: list[str]
    lost: int = 0


class _Vanished(Exception):
    """Our instance went away before it was set up."""


class Instance:
    """A tracing instance of our own: created with the event on, removed by ``close``."""

    def __init__(self, root: str, kernel_filter: str) -> None:
        if not os.path.isdir(f"{root}/{EVENT}"):
            raise TracingError(
                f"this kernel has no sock:inet_sock_set_state tracepoint ({root}/{EVENT});"
                " use 'tcpstates --watch' instead"
            )
        self._pipe: int | None = None
        self._text = codecs.getincrementaldecoder("utf-8")("backslashreplace")
        self._partial = ""
        for _ in range(_ATTEMPTS):
            self.path, self._pipe = _create(f"{root}/instances")
            try:
                self._set_up(kernel_filter)
                return
            except _Vanished:
                # Gone while it was set up, though its pipe was open (seen under traces that
                # start together, each cleaning up): nothing of it is left; make another.
                self.close()
            except BaseException:
                self.close()
                raise
        raise TracingError(f"our tracing instances in {root}/instances kept vanishing")

    def _set_up(self, kernel_filter: str) -> None:
        for option, value in OPTIONS.items():
            if os.path.exists(f"{self.path}/options/{option}"):
                self._write(f"options/{option}", value)
        self._write("trace_clock", "mono")  # timestamps on CLOCK_MONOTONIC: wall time follows
        self._write(f"{EVENT}/filter", kernel_filter)
        self._write(f"{EVENT}/enable", "1")

    def _write(self, name: str, value: str) -> None:
        try:
            with open(f"{self.path}/{name}", "w") as f:
                f.write(value + "\n")
        except OSError as e:
            if e.errno in _REMOVED and not os.path.isdir(self.path):
                raise _Vanished from None
            raise TracingError(f"cannot set {name} of the tracing instance: {e.strerror}") from None

    def read(self, timeout: float) -> Lines:
        """The complete lines that arrive within ``timeout`` seconds (at least one read).

        Blank lines are kept: a process name may hold newlines, and its pieces are the
        parser's to join. Lines are split at ``\\n`` alone, as the kernel ends them.
        """
        if self._pipe is None:
            raise TracingError("the tracing instance is closed")
        try:
            ready, _, _ = select.select([self._pipe], [], [], max(timeout, 0))
            chunks = _drain(self._pipe) if ready else []
        except OSError as e:
            raise TracingError(f"cannot read {self.path}/trace_pipe: {e.strerror}") from None
        text = self._partial + self._text.decode(b"".join(chunks))
        *complete, self._partial = text.split("\n")
        result = Lines([])
        for line in complete:
            lost = _LOST.fullmatch(line)
            if lost:
                result.lost += int(lost.group(2))
            else:
                result.lines.append(line)
        return result

    def overruns(self) -> int:
        """Events the ring buffer overwrote because we read too slowly, over all CPUs."""
        total = 0
        with contextlib.suppress(OSError, ValueError, IndexError):
            for cpu in os.listdir(f"{self.path}/per_cpu"):
                with open(f"{self.path}/per_cpu/{cpu}/stats") as f:
                    for line in f:
                        if line.startswith("overrun:"):
                            total += int(line.split()[1])
        return total

    def close(self) -> None:
        """Disable the event, let go of the pipe and remove the instance (ours: we made it)."""
        if self._pipe is None:
            return
        with contextlib.suppress(OSError):  # in case something keeps the instance alive
            with open(f"{self.path}/{EVENT}/enable", "w") as f:
                f.write("0\n")
        os.close(self._pipe)
        self._pipe = None
        remove(self.path)

    def __enter__(self) -> Instance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drain(pipe: int) -> list[bytes]:
    """What the pipe holds now, up to ``_BATCH`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while size < _BATCH:
        try:
            chunk = os.read(pipe, _BATCH - size)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return chunks


def _create(instances: str) -> tuple[str, int]:
    """A new instance under a fresh name, and its trace_pipe, opened before anything else."""
    for _ in range(_ATTEMPTS):
        path = f"{instances}/{PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        try:
            os.mkdir(path)
        except FileExistsError:
            continue  # someone else's: never adopted
        except PermissionError:
            raise TracingError(NEEDS_ROOT) from None
        except OSError as e:
            raise TracingError(f"cannot create a tracing instance: {e.strerror}") from None
        try:
            return path, os.open(f"{path}/trace_pipe", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            remove(path)
            if e.errno not in _REMOVED:
                raise TracingError(f"cannot open {path}/trace_pipe: {e.strerror}") from None
            # A cleanup removed it before we held it; nothing was written into it.
    raise TracingError(f"could not create a tracing instance of our own in {instances}")


def remove(path: str) -> bool:
    """Remove one instance if no one holds it; True if it is gone.

    Never writes into it: an instance in use refuses removal (EBUSY) and stays as it was.
    """
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def our_instances(root: str) -> Iterator[str]:
    """The instances tcpstates runs made, live or not (any version: ``tcpstates-…``)."""
    instances = f"{root}/instances"
    try:
        names = sorted(os.listdir(instances))
    except OSError as e:
        raise TracingError(f"cannot list {instances}: {e.strerror}") from None
    for name in names:
        if name.startswith(PREFIX):
            yield f"{instances}/{name}"


def remove_stale(root: str) -> list[str]:
    """Remove every instance of ours that no live trace holds; the names of those removed."""
    return [os.path.basename(path) for path in our_instances(root) if remove(path)]
