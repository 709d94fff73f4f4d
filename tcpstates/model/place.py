"""Which network namespace(s) a command reads: the place, as the user named it.

One value, parsed once from --netns, --netns-pid and --all-netns; what it names is found by
``sources.netns`` when the command runs (a name or a pid means nothing until then).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThisHost:
    """The namespace tcpstates runs in (the default; under ``ip netns exec X``, X)."""


@dataclass(frozen=True, slots=True)
class NamedNetns:
    """--netns NAME: a namespace ``ip netns`` named, under /run/netns."""

    name: str


@dataclass(frozen=True, slots=True)
class NetnsOfPid:
    """--netns-pid PID: the namespace a process is in (a container's)."""

    pid: int


@dataclass(frozen=True, slots=True)
class AllNetns:
    """--all-netns: every namespace, each kept apart."""


Where = ThisHost | NamedNetns | NetnsOfPid | AllNetns
