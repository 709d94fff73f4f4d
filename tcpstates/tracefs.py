"""A private tracefs instance with the ``sock:inet_sock_set_state`` tracepoint enabled.

No BPF and no compiler: the kernel formats each event as a line of text in the instance's
``trace_pipe``. A private instance (``instances/tcpstates-PID``) keeps our events, filter and
clock apart from anyone else's tracing; it is removed on exit, and ``remove_stale`` removes
those a killed run left behind (their pid no longer exists).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from tcpstates.errors import ExitStatus, TcpstatesError

MOUNT_POINTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
EVENT = "events/sock/inet_sock_set_state"
PREFIX = "tcpstates-"
_LOST = re.compile(r"CPU:(\d+) \[LOST (\d+) EVENTS\]")
_READ_SIZE = 64 * 1024
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
    """What the trace pipe gave: event lines, and how many events the kernel dropped."""

    lines: list[str]
    lost: int = 0


class Instance:
    """The private tracing instance: created with the event on, removed by ``close``."""

    def __init__(self, root: str, kernel_filter: str) -> None:
        self.path = f"{root}/instances/{PREFIX}{os.getpid()}"
        if not os.path.isdir(f"{root}/{EVENT}"):
            raise TracingError(
                f"this kernel has no sock:inet_sock_set_state tracepoint ({root}/{EVENT});"
                " use 'tcpstates --watch' instead"
            )
        try:
            os.mkdir(self.path)
        except FileExistsError:
            pass
        except PermissionError:
            raise TracingError(NEEDS_ROOT) from None
        except OSError as e:
            raise TracingError(f"cannot create a tracing instance: {e.strerror}") from None
        self._pipe: int | None = None
        self._partial = ""
        try:
            self._write("trace_clock", "mono")  # timestamps on CLOCK_MONOTONIC: wall time follows
            self._write(f"{EVENT}/filter", kernel_filter)
            self._write(f"{EVENT}/enable", "1")
            self._pipe = os.open(f"{self.path}/trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        except BaseException:
            self.close()
            raise

    def _write(self, name: str, value: str) -> None:
        try:
            with open(f"{self.path}/{name}", "w") as f:
                f.write(value + "\n")
        except OSError as e:
            raise TracingError(f"cannot set {name} of the tracing instance: {e.strerror}") from None

    def read(self, timeout: float) -> Lines:
        """The complete lines that arrive within ``timeout`` seconds (at least one read)."""
        assert self._pipe is not None
        ready, _, _ = select.select([self._pipe], [], [], max(timeout, 0))
        if not ready:
            return Lines([])
        try:
            chunk = os.read(self._pipe, _READ_SIZE)
        except BlockingIOError:
            return Lines([])
        text = self._partial + chunk.decode("utf-8", "backslashreplace")
        *complete, self._partial = text.split("\n")
        result = Lines([])
        for line in complete:
            lost = _LOST.search(line)
            if lost:
                result.lost += int(lost.group(2))
            elif line.strip():
                result.lines.append(line)
        return result

    def overruns(self) -> int:
        """Events the ring buffer overwrote because we read too slowly, over all CPUs."""
        total = 0
        with contextlib.suppress(OSError):
            for cpu in os.listdir(f"{self.path}/per_cpu"):
                with open(f"{self.path}/per_cpu/{cpu}/stats") as f:
                    for line in f:
                        if line.startswith("overrun:"):
                            total += int(line.split()[1])
        return total

    def close(self) -> None:
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None
        remove(self.path)

    def __enter__(self) -> Instance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remove(path: str) -> bool:
    """Disable the event and remove one instance; True if it is gone."""
    with contextlib.suppress(OSError):
        with open(f"{path}/{EVENT}/enable", "w") as f:
            f.write("0\n")
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError as e:
        return e.errno == errno.ENOENT
    return True


def stale_instances(root: str) -> Iterator[str]:
    """Instances left by tcpstates runs whose process is gone (SIGKILL, a crash)."""
    instances = f"{root}/instances"
    for name in sorted(os.listdir(instances)):
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX) :]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            yield f"{instances}/{name}"


def remove_stale(root: str) -> list[str]:
    """Remove every stale instance; the names of those removed."""
    return [os.path.basename(path) for path in stale_instances(root) if remove(path)]
