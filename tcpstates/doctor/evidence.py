"""What doctor's checks are given: the evidence (one look or two) and the thresholds; what they
give is findings.py's. Apart from checks.py so that the checks in other modules of
doctor (queues.py, floods.py) and the list of them all (checks.CHECKS) import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from tcpstates.doctor.findings import Finding
from tcpstates.model.sockets import Socket
from tcpstates.sources.kernel import KernelState


@dataclass(frozen=True, slots=True)
class Thresholds:
    close_wait_warning: int = 10  # CLOSE_WAIT sockets one process may hold before we warn
    close_wait_critical: int = 1000
    ports_warning: float = 0.5  # share of the usable ephemeral ports towards one destination
    ports_critical: float = 0.9
    time_wait_info: int = 100  # TIME_WAIT towards one peer worth mentioning
    stuck_send_q: int = 1  # bytes queued behind a FIN worth mentioning
    # A Recv-Q or Send-Q at least this big at both looks, not lower at the second: data piling
    # up (a full queue is the socket's buffer, 100s of KiB; 16 KiB is well past a moment's).
    queue_bytes: int = 16384


@dataclass(frozen=True, slots=True)
class Look:
    """One earlier reading: the sockets (their owners not looked up) and the kernel's counters."""

    sockets: Sequence[Socket]
    kernel: KernelState


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the checks look at: the sockets and the kernel now and, on a live host, a first look
    ``seconds`` earlier, which tells what keeps happening (a counter's rate, a queue that stays
    full) from what happened once since boot. A capture is one moment: ``earlier`` is None."""

    sockets: Sequence[Socket]
    kernel: KernelState
    hidden_processes: int = 0
    owners_known: bool = True  # False when the source cannot name owners at all (a capture)
    earlier: Look | None = None
    seconds: float = 0.0  # between the two looks' readings of the counters

    def growth(self, name: str) -> int | None:
        """How much counter ``name`` grew between the looks; None with one look, or unknown."""
        if self.earlier is None:
            return None
        before, now = self.earlier.kernel.counter(name), self.kernel.counter(name)
        if before is None or now is None:
            return None
        return max(0, now - before)  # a counter never shrinks but by wrapping: say no growth

    def rate(self, name: str) -> float | None:
        """Counter ``name``'s growth per second between the looks."""
        grown = self.growth(name)
        return None if grown is None or self.seconds <= 0 else grown / self.seconds


Check = Callable[[Evidence, Thresholds], Iterable[Finding]]
