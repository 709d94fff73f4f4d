"""A zoo of real loopback sockets held in real TCP (and UDP) states, for tests.

    with Zoo() as zoo:                      # or Zoo(only={"CLOSING", "TIME_WAIT"})
        for e in zoo.expected: ...          # one Expected per socket the kernel should report
        zoo.ports                           # every local port the zoo uses, to filter on

A Zoo is a `Sockets` factory (listeners, connections, UDP sockets, held until closed) with
recipes on top; tests that need only a few plain sockets use the factory alone (the
`sockets` fixture).

Everything runs in this process, on 127.0.0.1 / ::1, with ephemeral ports, no root and no
firewall. The trick behind most recipes: a peer that never reads lets the writer fill the
receive window; once the window is zero, a FIN queued by shutdown(SHUT_WR) sits *behind*
unsent data and is never transmitted, which freezes the connection in a closing state for as
long as we like. shutdown() (not close()) keeps the sockets owned by this process.

`__enter__` returns only once `ss` shows every expected row (it raises, naming the missing
rows, after `timeout` seconds). Of `tcpstates` it imports only the window-filling recipe it
shares with `--scenario --live`.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple

from ss_reader import RowKey, row_key, ss_rows

from tcpstates.explain.scenario_live import fill
from tcpstates.model.errors import TcpstatesError

LOOP4 = "127.0.0.1"
LOOP6 = "::1"
ANY6 = "::"


# Small buffers make "fill the window" take a few kilobytes instead of megabytes. Linux
# doubles the value set and enforces a minimum, so these are requests, not exact sizes.
SMALL_BUF = 4096

# Address = what getsockname()/getpeername() return: (host, port) or (host, port, flow, scope).
Address = tuple[str, int] | tuple[str, int, int, int]


@dataclass(frozen=True)
class Expected:
    """One socket as the kernel should report it (field meanings match ss_reader.SsRow)."""

    proto: str  # "tcp" | "udp"
    family: int  # 4 | 6 (an AF_INET6 socket with a v4-mapped address is 6)
    local_address: str  # as the kernel holds it: "127.0.0.1", "::1", "::ffff:127.0.0.1", "::"
    local_port: int
    remote_address: str  # "0.0.0.0" / "::" where none
    remote_port: int  # 0 where none
    state: str  # netstat spelling; UDP uses "UNCONN" / "ESTABLISHED"
    owned: bool  # False for sockets with no file (inode 0): TIME_WAIT, SYN_RECV request
    #              socks, and connections still waiting in a listener's accept queue

    def key(self) -> RowKey:
        return row_key(self)

    def describe(self) -> str:
        owner = "" if self.owned else " (no owner)"
        return (
            f"{self.proto}{self.family} {self.state} {self.local_address}:{self.local_port}"
            f" -> {self.remote_address}:{self.remote_port}{owner}"
        )


class ZooError(RuntimeError):
    """The kernel did not end up showing what a recipe promised."""


class Sockets:
    """Loopback sockets made for a test, all held until ``close()`` (the ``sockets`` fixture
    closes them after the test). The building blocks of the zoo, and of any test that needs a
    listener, a connection or a free port.

        listener = sockets.listener(LOOP4)           # LISTEN on 127.0.0.1:ephemeral
        client, server = sockets.connect(listener)   # one connection to it, accepted
        client, server = sockets.pair(LOOP6)         # the same, with a listener of its own
    """

    def __init__(self) -> None:
        self._socks: list[socket.socket] = []

    def close(self) -> None:
        """Close every socket still held. TCP ones are reset (SO_LINGER 0) rather than closed
        gracefully, so nothing leaves TIME_WAIT or orphaned FIN_WAIT debris behind; only the
        sockets a test closed itself (a deliberate TIME_WAIT) outlive it, as the kernel decides."""
        for sock in reversed(self._socks):
            try:
                if sock.type == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:  # closed already by the test
                pass
            sock.close()
        self._socks.clear()

    def sock(self, family: int, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A new socket, kept referenced (and later closed) by the factory."""
        s = socket.socket(family, kind)
        self._socks.append(s)
        return s

    def drop(self, sock: socket.socket) -> None:
        """Close one socket now, gracefully (no SO_LINGER 0)."""
        self._socks.remove(sock)
        sock.close()

    def listener(
        self,
        host: str = LOOP4,
        *,
        port: int = 0,
        backlog: int = 16,
        v6only: bool | None = None,
        rcvbuf: int | None = None,
        sndbuf: int | None = None,
        reuseport: bool = False,
    ) -> socket.socket:
        """A listening socket on host:port (ephemeral by default). Buffer sizes are set before
        listen() so the accepted sockets inherit them and the window scale in the handshake
        matches them. On "::", v6only defaults to False (dual-stack) whatever
        net.ipv6.bindv6only says."""
        s = self.sock(_family_of(host))
        if v6only is None and host == ANY6:
            v6only = False
        if v6only is not None:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
        _set_bufs(s, rcvbuf, sndbuf)
        if reuseport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((host, port))
        s.listen(backlog)
        return s

    def udp(self, host: str = LOOP4, *, port: int = 0, reuseport: bool = False) -> socket.socket:
        """A UDP socket bound to host:port (ephemeral by default): UNCONN until connected."""
        s = self.sock(_family_of(host), socket.SOCK_DGRAM)
        if reuseport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((host, port))
        return s

    def connect(
        self,
        listener: socket.socket,
        host: str | None = None,
        *,
        rcvbuf: int | None = None,
        sndbuf: int | None = None,
    ) -> tuple[socket.socket, socket.socket]:
        """An ESTABLISHED (client, server) pair: a client connects to `listener` (at `host`,
        default the listener's own address) and the listener accepts it."""
        host = host or listener.getsockname()[0]
        client = self.sock(_family_of(host))
        _set_bufs(client, rcvbuf, sndbuf)
        client.settimeout(2)
        client.connect((host, listener.getsockname()[1]))
        listener.settimeout(2)
        server, _ = listener.accept()
        self._socks.append(server)
        for s in (client, server, listener):
            s.settimeout(None)
        return client, server

    def pair(
        self,
        host: str = LOOP4,
        *,
        listen_host: str | None = None,
        client_rcvbuf: int | None = None,
        client_sndbuf: int | None = None,
        server_rcvbuf: int | None = None,
        server_sndbuf: int | None = None,
    ) -> tuple[socket.socket, socket.socket]:
        """An ESTABLISHED (client, server) pair: the client connects to `host`, a listener of
        its own (on `listen_host`, default `host`) accepts once and is closed again."""
        lst = self.listener(listen_host or host, rcvbuf=server_rcvbuf, sndbuf=server_sndbuf)
        pair = self.connect(lst, host, rcvbuf=client_rcvbuf, sndbuf=client_sndbuf)
        self.drop(lst)
        return pair


def free_port(host: str = LOOP4) -> int:
    """A TCP port free on `host` a moment ago, for a command that must bind it itself."""
    with socket.socket(_family_of(host)) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class Zoo(Sockets):
    """Context manager building real sockets in known states; see the module docstring."""

    def __init__(self, only: Iterable[str] | None = None, timeout: float = 5.0) -> None:
        super().__init__()
        wanted = set(STATES) if only is None else set(only)
        unknown = wanted - set(STATES)
        if unknown:
            raise ValueError(f"Zoo cannot build {sorted(unknown)}; it knows {sorted(STATES)}")
        self.pid = os.getpid()  # owner of every socket with owned=True
        self.expected: list[Expected] = []
        self._recipes = [r for r in RECIPES if r.shows & wanted]
        self._timeout = timeout

    @property
    def ports(self) -> set[int]:
        """Every port at either end of a zoo socket (remote ports are zoo ports too)."""
        return {e.local_port for e in self.expected} | {
            e.remote_port for e in self.expected if e.remote_port
        }

    def of_state(self, state: str) -> list[Expected]:
        return [e for e in self.expected if e.state == state]

    def __enter__(self) -> Zoo:
        try:
            for recipe in self._recipes:
                recipe.build(self)
            self._wait_until_visible()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what the kernel should show -----------------------------------------------------

    def record(self, sock: socket.socket, state: str, *, remote: Address | None = None) -> Expected:
        """Record what `sock` (owned by us) should look like in `state`."""
        if remote is None:
            remote = _peer_or_wildcard(sock)
        proto = "tcp" if sock.type == socket.SOCK_STREAM else "udp"
        return self.record_ends(proto, sock.family, sock.getsockname(), remote, state, True)

    def record_ends(
        self,
        proto: str,
        family: int,
        local: Address,
        remote: Address,
        state: str,
        owned: bool,
    ) -> Expected:
        """Record a socket we hold no object for (accept queue, request sock, TIME_WAIT)."""
        e = Expected(
            proto=proto,
            family=6 if family == socket.AF_INET6 else 4,
            local_address=local[0],
            local_port=local[1],
            remote_address=remote[0],
            remote_port=remote[1],
            state=state,
            owned=owned,
        )
        self.expected.append(e)
        return e

    # -- waiting for the kernel ----------------------------------------------------------

    def _wait_until_visible(self) -> None:
        """Poll ss until every expected row is there: some transitions (the peer's ACK of a
        FIN, say) complete in softirq context just after our syscall has returned."""
        deadline = time.monotonic() + self._timeout
        while True:
            missing = self._missing()
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise ZooError(self._explain(missing))
            time.sleep(0.01)

    def _seen(self) -> list[RowKey]:
        protos = sorted({e.proto for e in self.expected})
        return [row.key() for proto in protos for row in ss_rows(proto, self.ports)]

    def _missing(self) -> list[Expected]:
        seen = set(self._seen())
        return [e for e in self.expected if e.key() not in seen]

    def _explain(self, missing: list[Expected]) -> str:
        lines = [f"after {self._timeout:g} s, ss does not show these zoo sockets:"]
        lines += [f"  {e.describe()}" for e in missing]
        lines.append("ss shows, for the zoo's ports:")
        lines += [f"  {key}" for key in sorted(self._seen())]
        return "\n".join(lines)


# -- helpers ----------------------------------------------------------------------------


def _family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _set_bufs(sock: socket.socket, rcvbuf: int | None, sndbuf: int | None) -> None:
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)


def _peer_or_wildcard(sock: socket.socket) -> Address:
    try:
        peer: Address = sock.getpeername()
        return peer
    except OSError:  # ENOTCONN: listeners and unconnected UDP report the wildcard
        return ("::" if sock.family == socket.AF_INET6 else "0.0.0.0", 0)


def _wait_readable(sock: socket.socket, what: str, timeout: float = 2.0) -> None:
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        raise ZooError(f"timed out after {timeout} s waiting for {what}")


def _wait_eof(sock: socket.socket, what: str) -> None:
    """Wait until the peer's FIN has arrived on `sock` (a socket with nothing else to read)."""
    _wait_readable(sock, what)
    data = sock.recv(1, socket.MSG_PEEK)
    if data:
        raise ZooError(f"expected EOF while waiting for {what}, got data")


def _fill_peer_window(writer: socket.socket) -> None:
    """Write until the peer (which never reads) advertises a zero window and our own send
    buffer is full. After this, anything queued on `writer` - a FIN included - cannot leave.
    The same recipe `--scenario --live` uses, so there is one to keep right."""
    try:
        fill(writer)
    except TcpstatesError as e:
        raise ZooError(str(e)) from None


# -- recipes: each builds some sockets and records what the kernel should show ------------


def _listen(zoo: Zoo) -> None:
    zoo.record(zoo.listener(LOOP4), "LISTEN")
    zoo.record(zoo.listener(LOOP6), "LISTEN")
    # Dual-stack (IPV6_V6ONLY=0) and IPv6-only listeners on [::]: the kernel holds the same
    # address for both, but ss prints the first as `*:port` and the second as `[::]:port`.
    zoo.record(zoo.listener(ANY6, v6only=False), "LISTEN")
    zoo.record(zoo.listener(ANY6, v6only=True), "LISTEN")


def _established(zoo: Zoo) -> None:
    for host in (LOOP4, LOOP6):
        client, server = zoo.pair(host)
        zoo.record(client, "ESTABLISHED")
        zoo.record(server, "ESTABLISHED")
    # An IPv4 client reaching a dual-stack listener: the accepted socket is AF_INET6 and
    # holds both ends as v4-mapped addresses (::ffff:127.0.0.1), while the client is plain v4.
    client, server = zoo.pair(LOOP4, listen_host=ANY6)
    zoo.record(client, "ESTABLISHED")
    zoo.record(server, "ESTABLISHED")


def _syn_sent(zoo: Zoo) -> None:
    # listen(0) lets exactly one connection wait in the accept queue; once that is taken (we
    # never accept), the listener drops further SYNs without answering (no RST), so the next
    # client keeps retransmitting its SYN and stays in SYN_SENT for about two minutes
    # (net.ipv4.tcp_syn_retries=6). Kernels before ~6.13 count the SYN queue of a listen(0)
    # socket as full already, and answer the filler with a syncookie (net.ipv4.tcp_syncookies
    # defaults to 1), which ends the same way.
    lst = zoo.listener(LOOP4, backlog=0)
    filler = zoo.sock(socket.AF_INET)
    filler.settimeout(2)
    filler.connect(lst.getsockname())
    # The client's connect() returns when it has sent its ACK; the listener is readable only
    # once that ACK has been processed and the child sits in the accept queue (queue full).
    _wait_readable(lst, "the filler connection to reach the accept queue")
    stuck = zoo.sock(socket.AF_INET)
    stuck.setblocking(False)
    err = stuck.connect_ex(lst.getsockname())
    if err not in (0, errno.EINPROGRESS):
        raise ZooError(f"non-blocking connect failed: {os.strerror(err)}")
    zoo.record(lst, "LISTEN")
    zoo.record(filler, "ESTABLISHED")
    # The server end of the filler is a full socket, but with no file until accept().
    zoo.record_ends(
        "tcp",
        socket.AF_INET,
        filler.getpeername(),
        filler.getsockname(),
        "ESTABLISHED",
        owned=False,
    )
    zoo.record(stuck, "SYN_SENT", remote=lst.getsockname())


def _syn_recv(zoo: Zoo) -> None:
    # With TCP_DEFER_ACCEPT the listener ignores the client's bare handshake ACK and waits for
    # data: the connection stays a request sock in SYN_RECV on the server (no file, so no
    # owner) while the client, having had its SYN answered, is ESTABLISHED. A long defer
    # period (600 s) keeps the request sock alive far longer than any test.
    lst = zoo.listener(LOOP4)
    lst.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 600)
    client = zoo.sock(socket.AF_INET)
    client.settimeout(2)
    client.connect(lst.getsockname())
    zoo.record(lst, "LISTEN")
    zoo.record(client, "ESTABLISHED")
    zoo.record_ends(
        "tcp", socket.AF_INET, lst.getsockname(), client.getsockname(), "SYN_RECV", owned=False
    )


def _fin_wait1(zoo: Zoo) -> None:
    # The server never reads, so the client fills its window; the FIN that shutdown(SHUT_WR)
    # queues behind the unsent data never leaves: client FIN_WAIT1, server ESTABLISHED.
    client, server = zoo.pair(LOOP4, server_rcvbuf=SMALL_BUF, client_sndbuf=SMALL_BUF)
    _fill_peer_window(client)
    client.shutdown(socket.SHUT_WR)
    zoo.record(client, "FIN_WAIT1")
    zoo.record(server, "ESTABLISHED")


def _fin_wait2(zoo: Zoo) -> None:
    # The client's FIN is sent and ACKed (FIN_WAIT2); the server has been told (CLOSE_WAIT)
    # but never closes its half. Owned sockets are exempt from tcp_fin_timeout.
    client, server = zoo.pair(LOOP4)
    client.shutdown(socket.SHUT_WR)
    _wait_eof(server, "the client's FIN")
    zoo.record(client, "FIN_WAIT2")
    zoo.record(server, "CLOSE_WAIT")


def _last_ack(zoo: Zoo) -> None:
    # A never reads and B fills A's window. A's FIN still flows (B's window is open):
    # A FIN_WAIT2, B CLOSE_WAIT. B's own FIN then queues behind its unsent data, so B
    # is in LAST_ACK, waiting for the ACK of a FIN that cannot leave.
    a, b = zoo.pair(LOOP4, client_rcvbuf=SMALL_BUF, server_sndbuf=SMALL_BUF)
    _fill_peer_window(b)
    a.shutdown(socket.SHUT_WR)
    # B must be in CLOSE_WAIT before it shuts down; were A's FIN still in flight, B would go
    # FIN_WAIT1 -> CLOSING instead.
    _wait_eof(b, "A's FIN")
    b.shutdown(socket.SHUT_WR)
    zoo.record(a, "FIN_WAIT2")
    zoo.record(b, "LAST_ACK")


def _closing(zoo: Zoo) -> None:
    # Simultaneous close with B's FIN stuck: B fills A's window and shuts down (FIN_WAIT1,
    # FIN queued). A then shuts down; A's FIN reaches B while B's FIN is unacknowledged, so B
    # moves FIN_WAIT1 -> CLOSING. B ACKs A's FIN, so A goes on to FIN_WAIT2.
    a, b = zoo.pair(LOOP4, client_rcvbuf=SMALL_BUF, server_sndbuf=SMALL_BUF)
    _fill_peer_window(b)
    b.shutdown(socket.SHUT_WR)
    a.shutdown(socket.SHUT_WR)
    _wait_eof(b, "A's FIN")
    zoo.record(a, "FIN_WAIT2")
    zoo.record(b, "CLOSING")


def _time_wait(zoo: Zoo) -> None:
    # The side that closes first ends in TIME_WAIT once the other side's FIN arrives. The
    # socket is then a kernel timewait sock (no file, inode 0) and lives 60 s after the zoo.
    client, server = zoo.pair(LOOP4)
    local, remote = client.getsockname(), client.getpeername()
    zoo.drop(client)
    _wait_eof(server, "the client's FIN")
    zoo.drop(server)
    zoo.record_ends("tcp", socket.AF_INET, local, remote, "TIME_WAIT", owned=False)


def _udp(zoo: Zoo) -> None:
    u4 = zoo.udp(LOOP4)
    u6 = zoo.udp(LOOP6)
    # connect() on UDP only fixes the peer (no packets); the kernel then calls it established.
    connected = zoo.sock(socket.AF_INET, socket.SOCK_DGRAM)
    connected.connect(u4.getsockname())
    zoo.record(u4, "UNCONN")
    zoo.record(u6, "UNCONN")
    zoo.record(connected, "ESTABLISHED")


class Recipe(NamedTuple):
    shows: frozenset[str]  # the states this recipe exists to produce (what `only` selects)
    build: Callable[[Zoo], None]


RECIPES: tuple[Recipe, ...] = (
    Recipe(frozenset({"LISTEN"}), _listen),
    Recipe(frozenset({"ESTABLISHED"}), _established),
    Recipe(frozenset({"SYN_SENT"}), _syn_sent),
    Recipe(frozenset({"SYN_RECV"}), _syn_recv),
    Recipe(frozenset({"FIN_WAIT1"}), _fin_wait1),
    Recipe(frozenset({"FIN_WAIT2", "CLOSE_WAIT"}), _fin_wait2),
    Recipe(frozenset({"LAST_ACK"}), _last_ack),
    Recipe(frozenset({"CLOSING"}), _closing),
    Recipe(frozenset({"TIME_WAIT"}), _time_wait),
    # UDP "ESTABLISHED" is a connected UDP socket; Zoo(only={"ESTABLISHED"}) builds both.
    Recipe(frozenset({"UNCONN", "ESTABLISHED"}), _udp),
)

# Every state a Zoo can be asked for. TCP CLOSE is missing on purpose: a TCP socket that is
# merely bound is not listed by /proc/net/tcp, nor by ss 6.1 (kernels >= 6.5 can dump such
# sockets over netlink, but only when asked for the new TCP_BOUND_INACTIVE pseudo-state).
STATES: frozenset[str] = frozenset().union(*(r.shows for r in RECIPES))
