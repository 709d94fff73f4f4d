"""Names for a listing's numbers, asked for with -r: services from /etc/services, hosts by
reverse DNS. Never read unless asked: a listing is numeric, and its records always are.

Port names come from the services file, parsed once, as ss does it: the first name given for a
port and protocol, and none for a port in this host's ephemeral range
(/proc/sys/net/ipv4/ip_local_port_range), where a services file's entries only mislabel
clients' ports. Host names come from the resolver of this process (its /etc/hosts and DNS, also
for --netns: a namespace has no resolver of its own to ask), many lookups at once and within a
time budget: an address whose answer is late stays numeric, and the caller says how many did.
"""

from __future__ import annotations

import functools
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

SERVICES = "/etc/services"
PORT_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
EPHEMERAL = (32768, 60999)  # the kernel's default range, when PORT_RANGE cannot be read
# Addresses no resolver names: the any-address a listener is bound to.
UNNAMED = frozenset({"0.0.0.0", "::", ""})
MAPPED = "::ffff:"  # how inet_ntop begins a v4-mapped IPv6 address

Lookup = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Budget:
    """How long reverse DNS may hold a listing up."""

    total: float = 1.0  # seconds for all the lookups of one reading
    each: float = 0.25  # a lookup not answered in this long gives its place to the next
    parallel: int = 16  # lookups under way at once


def parse_services(text: str) -> dict[tuple[str, int], str]:
    """(protocol, port) -> its name: the first line that names it, as getservbyport answers.

    >>> parse_services("ssh 22/tcp # SSH\\nhttp 80/tcp www\\nwww 80/tcp\\nbad x/tcp\\n#x 9/udp")
    {('tcp', 22): 'ssh', ('tcp', 80): 'http'}
    """
    names: dict[tuple[str, int], str] = {}
    for line in text.splitlines():
        fields = line.partition("#")[0].split()
        if len(fields) < 2:
            continue
        port, _, proto = fields[1].partition("/")
        if port.isdigit() and 0 < int(port) < 65536:
            names.setdefault((proto.lower(), int(port)), fields[0])
    return names


@functools.cache
def port_names(path: str = SERVICES, port_range: str = PORT_RANGE) -> Mapping[tuple[str, int], str]:
    """The port names a listing shows, read once: none in the ephemeral range, none at all
    when the file cannot be read (a listing is still a listing without them)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            names = parse_services(f.read())
    except OSError:
        return {}
    low, high = ephemeral_range(port_range)
    return {key: name for key, name in names.items() if not low <= key[1] <= high}


def ephemeral_range(path: str = PORT_RANGE) -> tuple[int, int]:
    try:
        with open(path, encoding="ascii") as f:
            low, high = map(int, f.read().split())
    except (OSError, ValueError):
        return EPHEMERAL
    return low, high


def reverse_lookup(address: str) -> str | None:
    """The name the resolver gives ``address`` (/etc/hosts, then DNS), or None. A v4-mapped
    address is the IPv4 host's (as ss names it): /etc/hosts has no line for ::ffff:a.b.c.d."""
    if address.startswith(MAPPED) and "." in address:
        address = address[len(MAPPED) :]
    try:
        return socket.gethostbyaddr(address)[0] or None
    except (OSError, UnicodeError):  # herror, gaierror: no name; a name not in UTF-8
        return None


class HostNames:
    """Reverse DNS for the addresses of a reading, a few lookups at once, within a budget.

    Answers are kept (a --watch asks once per address), and so are lookups under way when the
    budget ran out: a late answer is shown from the next reading on, and the address is not
    asked again meanwhile. A lookup cannot be cancelled, so each runs in a daemon thread of its
    own that the program does not wait for at exit; at most ``parallel`` run in time, and one
    slower than ``budget.each`` is left to finish on its own while another starts.
    """

    def __init__(self, lookup: Lookup = reverse_lookup, budget: Budget = Budget()) -> None:
        self.lookup = lookup
        self.budget = budget
        self.names: dict[str, str] = {}  # address -> its name: what a listing shows
        self._answered: set[str] = set()  # with a name or without one
        self._asked: set[str] = set()
        self._answers: queue.SimpleQueue[tuple[str, str | None]] = queue.SimpleQueue()

    def resolve(self, addresses: Iterable[str]) -> int:
        """Look up every address not asked before; how many of ``addresses`` (distinct) are
        left numeric because no answer came in time."""
        wanted = set(addresses) - UNNAMED
        todo = deque(sorted(wanted - self._asked))
        running: dict[str, float] = {}  # address -> when its lookup started
        deadline = time.monotonic() + self.budget.total
        while (todo or running) and time.monotonic() < deadline:
            while todo and len(running) < self.budget.parallel:
                running[self._ask(todo.popleft())] = time.monotonic()
            self._wait(min(deadline, min(running.values()) + self.budget.each))
            now = time.monotonic()
            for address in [a for a, t in running.items() if a in self._answered]:
                del running[address]
            for address in [a for a, t in running.items() if now - t >= self.budget.each]:
                del running[address]  # its place goes to the next; its answer may still come
        self._take_answers()
        return len(wanted - self._answered)

    def _ask(self, address: str) -> str:
        self._asked.add(address)
        threading.Thread(target=self._look_up, args=(address,), daemon=True).start()
        return address

    def _look_up(self, address: str) -> None:
        name = None
        try:
            name = self.lookup(address)
        finally:  # answered, if only with no name: it is not waited for again
            self._answers.put((address, name))

    def _wait(self, until: float) -> None:
        """Take the answers that come before ``until``: at least one, or none by then."""
        try:
            self._record(*self._answers.get(timeout=max(0.0, until - time.monotonic())))
        except queue.Empty:
            return
        self._take_answers()

    def _take_answers(self) -> None:
        while True:
            try:
                self._record(*self._answers.get_nowait())
            except queue.Empty:
                return

    def _record(self, address: str, name: str | None) -> None:
        self._answered.add(address)
        if name:
            self.names[address] = name


@dataclass(frozen=True, slots=True)
class Resolving:
    """Where -r's names come from; a test gives its own services file or lookup."""

    services: str = SERVICES
    port_range: str = PORT_RANGE
    lookup: Lookup = reverse_lookup
    budget: Budget = Budget()

    def ports(self) -> Mapping[tuple[str, int], str]:
        return port_names(self.services, self.port_range)

    def hosts(self) -> HostNames:
        return HostNames(self.lookup, self.budget)
