"""The kernel's TCP counters and settings that explain piles of sockets, read from /proc.

Counters come from /proc/net/netstat and /proc/net/snmp (the files nstat and netstat -s read):
header and value lines in pairs, ``TcpExt: ListenOverflows ...`` then ``TcpExt: 12 ...``.
Settings come from /proc/sys. Both are per network namespace, like the sockets, and ``proc`` is a
parameter so that a capture of them from another host can be read the same way.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

from tcpstates.model.errors import TcpstatesError
from tcpstates.model.i18n import _
from tcpstates.model.states import TcpState
from tcpstates.model.tunables import GOVERNING, TUNABLES, Setting

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
MAX_FILE = 1 << 20  # net/netstat is 3 KiB, a setting a line
MAX_PORT = 65535
_PORT_RANGE = re.compile(r"(\d{1,5})(?:-(\d{1,5}))?")

# How a file is read: its bytes, or None where there is no such file. A capture's files come
# through the capture opener (sources.capture.read_small_capture_file), which refuses a FIFO or
# a device with a TcpstatesError; this host's come from /proc as they are.
Reader = Callable[[str], bytes | None]


_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n"


def read_proc_file(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_FILE)
    except OSError:
        return None


class Scope(enum.Enum):
    """Whose counters these are, which says since when they count: a network namespace has its
    own, zero when it was made, so "since boot" is true only of the host's."""

    HOST = "host"  # the initial namespace: since boot
    NAMESPACE = "namespace"  # one named by --netns or --netns-pid: since it was made
    UNSURE = "unsure"  # the one we run in, on a kernel that does not tell the host's apart
    CAPTURE = "capture"  # another host's, up to the moment it was saved

    def since(self) -> str:
        """How a line says what the counters have counted: "since boot", or not."""
        if self is Scope.HOST:
            return _("since boot")
        if self is Scope.NAMESPACE:
            return _("since the network namespace was created")
        if self is Scope.CAPTURE:
            return _("up to the capture (since its boot or its namespace's creation)")
        return _("since boot, or since this network namespace was created")


# The initial network namespace's inode number, fixed on recent kernels (PROC_NET_INIT_INO); on
# older ones it is allocated like any other, and a namespace cannot tell whether it is the host's.
NET_INIT_INODE = 0xEFFFFFF9


def own_scope(proc: str = "/proc") -> Scope:
    """The scope of the namespace this process runs in."""
    import os

    try:
        inode = os.stat(f"{proc}/self/ns/net").st_ino
    except OSError:
        return Scope.UNSURE
    return Scope.HOST if inode == NET_INIT_INODE else Scope.UNSURE


@dataclass(frozen=True, slots=True)
class KernelState:
    """Counters as ``Group.Name`` -> value (``TcpExt.ListenOverflows``); settings by sysctl name."""

    counters: dict[str, int]
    settings: dict[str, str]
    problems: tuple[str, ...] = ()  # a file left out, and why: one line each, for stderr
    scope: Scope = Scope.UNSURE  # whose counters: what they count since (Scope.since)

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
        if not 0 <= low <= high <= MAX_PORT:  # not a range the kernel would take
            return None
        return low, high

    @property
    def reserved_ports(self) -> frozenset[int]:
        """ip_local_reserved_ports: "1000,2000-2010" style ranges connect() never picks."""
        ports: set[int] = set()
        for part in self.settings.get("net.ipv4.ip_local_reserved_ports", "").split(","):
            # A capture's file may say anything: "0-4000000000" would be a set of four billion
            # ports, and int() of 5,000 digits raises. Only what the kernel could hold counts.
            found = _PORT_RANGE.fullmatch(part.strip())
            if found:
                low, high = int(found[1]), int(found[2] or found[1])
                ports.update(range(low, min(high, MAX_PORT) + 1))
        return frozenset(ports)

    @property
    def usable_ephemeral_ports(self) -> int | None:
        span = self.port_range
        if span is None:
            return None
        low, high = span
        reserved = sum(1 for port in self.reserved_ports if low <= port <= high)
        return max(0, high - low + 1 - reserved)


def read_kernel(proc: str = "/proc", read: Reader = read_proc_file) -> KernelState:
    """What this namespace's kernel says (or a capture's files, through ``read``); a missing file
    leaves its entries out, and so does one that is not text, with a line in ``problems``."""
    problems: list[str] = []
    counters: dict[str, int] = {}
    for name in COUNTER_FILES:
        counters.update(_counters(_text(f"{proc}/{name}", read, problems)))
    settings = {}
    for name in SETTINGS:
        value = read_sysctl(name, proc, read, problems)
        if value is not None:
            settings[name] = value
    return KernelState(counters, settings, tuple(problems))


def read_sysctl(
    name: str,
    proc: str = "/proc",
    read: Reader = read_proc_file,
    problems: list[str] | None = None,
) -> str | None:
    """A sysctl's value (``net.ipv4.tcp_fin_timeout``) with its blanks collapsed, from
    ``proc/sys``; None where the file is missing, unreadable or not text (an older kernel)."""
    path = f"{proc}/sys/{name.replace('.', '/')}"
    value = _text(path, read, [] if problems is None else problems)
    return None if value is None else " ".join(value.split())


def read_settings(
    state: TcpState, proc: str = "/proc", read: Reader = read_proc_file
) -> list[Setting]:
    """The settings that govern ``state`` (model.tunables), with their values read from
    ``proc``/sys now; a constant compiled into the kernel has its value already."""
    result = []
    for name in GOVERNING.get(state, ()):
        tunable = TUNABLES[name]
        value = tunable.fixed if tunable.fixed is not None else read_sysctl(name, proc, read)
        result.append(Setting(tunable, value))
    return result


def _text(path: str, read: Reader, problems: list[str]) -> str | None:
    """The file as text. The kernel writes these files in printable ASCII (numbers and names),
    so any other byte, non-UTF-8 or an escape alike, means a damaged or doctored capture."""
    try:
        data = read(path)
    except TcpstatesError as e:
        problems.append(f"{e}; left out")
        return None
    if data is None:
        return None
    stray = data.translate(None, _TEXT_BYTES)
    if stray:
        offset = data.index(stray[:1])
        problems.append(f"{path}: not text (byte 0x{stray[0]:02x} at offset {offset}); left out")
        return None
    return data.decode("ascii")


def _counters(text: str | None) -> dict[str, int]:
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
            # What the kernel prints (%lu, %ld: Tcp.MaxConn is -1), not all int() takes
            # (1_000, +5, 5,000 digits).
            digits = number.removeprefix("-")
            if digits.isdigit() and len(digits) <= 20:
                result[f"{group}.{name}"] = int(number)
    return result
