"""The kernel's TCP counters and settings that explain piles of sockets, read from /proc.

Counters come from /proc/net/netstat and /proc/net/snmp (the files nstat and netstat -s read):
header and value lines in pairs, ``TcpExt: ListenOverflows ...`` then ``TcpExt: 12 ...``.
Settings come from /proc/sys. Both are per network namespace, like the sockets, and ``proc`` is a
parameter so that a capture of them from another host can be read the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

SETTINGS = (
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.core.somaxconn",
)
COUNTER_FILES = ("net/netstat", "net/snmp")


@dataclass(frozen=True, slots=True)
class KernelState:
    """Counters as ``Group.Name`` -> value (``TcpExt.ListenOverflows``); settings by sysctl name."""

    counters: dict[str, int]
    settings: dict[str, str]

    def counter(self, name: str) -> int | None:
        return self.counters.get(name)

    def setting_int(self, name: str) -> int | None:
        try:
            return int(self.settings[name].split()[0])
        except (KeyError, ValueError, IndexError):
            return None

    @property
    def port_range(self) -> tuple[int, int] | None:
        """The ephemeral ports connect() picks from (ip_local_port_range), inclusive."""
        try:
            low, high = (int(p) for p in self.settings["net.ipv4.ip_local_port_range"].split())
        except (KeyError, ValueError):
            return None
        return low, high

    @property
    def reserved_ports(self) -> frozenset[int]:
        """ip_local_reserved_ports: "1000,2000-2010" style ranges connect() never picks."""
        ports: set[int] = set()
        for part in self.settings.get("net.ipv4.ip_local_reserved_ports", "").split(","):
            low, _, high = part.strip().partition("-")
            if low.isdigit():
                ports.update(range(int(low), int(high or low) + 1))
        return frozenset(ports)

    @property
    def usable_ephemeral_ports(self) -> int | None:
        span = self.port_range
        if span is None:
            return None
        low, high = span
        reserved = sum(1 for port in self.reserved_ports if low <= port <= high)
        return max(0, high - low + 1 - reserved)


def read_kernel(proc: str = "/proc") -> KernelState:
    """What this namespace's kernel says; missing files simply leave their entries out."""
    counters: dict[str, int] = {}
    for name in COUNTER_FILES:
        counters.update(_counters(f"{proc}/{name}"))
    settings = {}
    for name in SETTINGS:
        value = read_sysctl(name, proc)
        if value is not None:
            settings[name] = value
    return KernelState(counters, settings)


def read_sysctl(name: str, proc: str = "/proc") -> str | None:
    """A sysctl's value (``net.ipv4.tcp_fin_timeout``) with its blanks collapsed, from
    ``proc/sys``; None where the file is missing or unreadable (an older kernel, IPv6 off)."""
    value = _read(f"{proc}/sys/{name.replace('.', '/')}")
    return None if value is None else " ".join(value.split())


def _counters(path: str) -> dict[str, int]:
    text = _read(path)
    if text is None:
        return {}
    result: dict[str, int] = {}
    lines = text.splitlines()
    for header, values in zip(lines[0::2], lines[1::2], strict=False):
        group, _, names = header.partition(":")
        value_group, _, numbers = values.partition(":")
        if group != value_group:
            continue  # not a header/value pair: skip rather than misattribute numbers
        for name, number in zip(names.split(), numbers.split(), strict=False):
            try:
                result[f"{group}.{name}"] = int(number)
            except ValueError:
                continue
    return result


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None
