"""What a finding is: its severity, title, evidence, meaning, next command and data, and the
few ways checks write their evidence. Every module of checks builds on this one, and
checks.py lists them all in its CHECKS."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tcpstates.model.i18n import _
from tcpstates.sources.kernel import KernelState


class Severity(enum.IntEnum):
    INFO = 0
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    title: str
    evidence: tuple[str, ...]
    meaning: str
    next_command: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.name.lower(),
            "title": self.title,
            "evidence": list(self.evidence),
            "meaning": self.meaning,
            "next": self.next_command,
            "data": self.data,
        }


def top_counts(counts: Counter[str], limit: int = 3) -> str:
    """The ``limit`` largest counts, ``name n`` each, and how many more there are."""
    shown = ", ".join(f"{name} {n}" for name, n in counts.most_common(limit))
    rest = len(counts) - limit
    return shown + (" " + _("and {n} more").format(n=rest) if rest > 0 else "")


def totals_line(kernel: KernelState, *names: str) -> str:
    """The counters' totals and since when they count: boot for the host's, a namespace's
    creation for its own (Scope.since)."""
    values = [f"{name.split('.', 1)[1]} {_total(kernel.counter(name))}" for name in names]
    return _("{since}: {counters}").format(since=kernel.scope.since(), counters=", ".join(values))


def _total(value: int | None) -> str:
    return "n/a" if value is None else str(value)
