"""What the user asked for, as one value: a predicate over sockets.

Sources read the cheap parts (``protos``, ``families``, ``states``) to skip work before a record
is built, and netlink hands them to the kernel; ``matches`` applies the rest.
"""

from __future__ import annotations

from functools import lru_cache

from tcpstates.model.record import Record
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    import ipaddress

    Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network:
    """An address or a CIDR block, as ``--local`` and ``--remote`` take them.

    >>> parse_network("10.0.0.0/8"), parse_network("::1")
    (IPv4Network('10.0.0.0/8'), IPv6Network('::1/128'))
    """
    import ipaddress  # 1 ms: loaded only by a query that names addresses

    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or CIDR block") from None


class End(Record):
    """What ``--local`` or ``--remote`` names: an address or block, and the interface it is
    on where ``%IF`` follows it (a link-local address's scope, as ``ip`` and ss write it)."""

    network: Network
    interface: str | None = None


def parse_end(text: str) -> End:
    """An address or CIDR block, then ``%IF`` for an interface, brackets allowed around both.

    >>> parse_end("fe80::1%eth0") == parse_end("[fe80::1]%eth0") == parse_end("[fe80::1%eth0]")
    True
    >>> parse_end("fe80::/64%eth0")
    End(network=IPv6Network('fe80::/64'), interface='eth0')
    >>> parse_end("10.0.0.1").interface is None
    True
    """
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]  # [fe80::1%eth0]
    address, percent, interface = text.partition("%")
    if percent and not interface:
        raise ValueError(f"{text!r}: no interface name after %")
    return End(parse_network(address), interface or None)


@lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    import ipaddress

    return ipaddress.ip_address(text)


def address_in(text: str, network: Network) -> bool:
    """Whether an address is in ``network``; a v4-mapped address also matches a v4 network.

    >>> address_in("::ffff:127.0.0.1", parse_network("127.0.0.0/8"))
    True
    """
    address = _address(text)
    if address.version == 6 and address.ipv4_mapped is not None:
        if network.version == 4:
            return address.ipv4_mapped in network
    return address.version == network.version and address in network


class Query(Record):
    """A filter over sockets. Empty sets and ``None`` mean "any"."""

    protos: frozenset[str] = frozenset({"tcp"})
    families: frozenset[int] = frozenset({4, 6})
    states: frozenset[TcpState] = frozenset()
    port: int | None = None
    sport: int | None = None
    dport: int | None = None
    local: Network | None = None
    remote: Network | None = None
    pid: int | None = None
    process: str | None = None
    # The interface of --local/--remote ADDR%IF, by name: names are per namespace, and a
    # socket's interface is named in its own (sources/netlink.py).
    interface: str | None = None

    @property
    def needs_owners(self) -> bool:
        return self.pid is not None or self.process is not None

    def wants_state(self, state: TcpState) -> bool:
        return not self.states or state in self.states

    def matches(self, sock: Socket) -> bool:
        """Everything except proto, family and state, which sources apply as they read."""
        return self._ports_match(sock) and self._addresses_match(sock) and self._owner_matches(sock)

    def _ports_match(self, sock: Socket) -> bool:
        if self.port is not None and self.port not in (sock.local_port, sock.remote_port):
            return False
        if self.sport is not None and sock.local_port != self.sport:
            return False
        return self.dport is None or sock.remote_port == self.dport

    def _addresses_match(self, sock: Socket) -> bool:
        if self.interface is not None and sock.interface != self.interface:
            return False
        if self.local is not None and not address_in(sock.local_address, self.local):
            return False
        return self.remote is None or address_in(sock.remote_address, self.remote)

    def _owner_matches(self, sock: Socket) -> bool:
        """--pid and --process: either matches any holder of the socket (a prefork worker's
        pid finds the listener its parent opened), both the same one."""
        holders = sock.holders
        if holders and len(holders) > 1:
            return any(self._holder_matches(h.pid, h.process) for h in holders)
        return self._holder_matches(sock.pid, sock.process)

    def _holder_matches(self, pid: int | None, process: str | None) -> bool:
        if self.pid is not None and pid != self.pid:
            return False
        if self.process is None:
            return True
        import fnmatch  # here, not above: fnmatch loads re, 2.5 ms every listing would pay

        return process is not None and fnmatch.fnmatchcase(process, self.process)

    @property
    def filters_rows(self) -> bool:
        """Whether ``matches`` can reject anything; when not, callers skip calling it."""
        return any(
            value is not None
            for value in (
                self.port,
                self.sport,
                self.dport,
                self.local,
                self.remote,
                self.pid,
                self.process,
                self.interface,
            )
        )
