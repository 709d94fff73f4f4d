"""``--scenario NAME --live``: a scenario played with real sockets on loopback, and the states
the kernel reports at each step, read back from the socket table like any listing.

Loopback hands a segment over within the same system call, so most steps are over before
anything could look at them. The kernel can be made to wait at some of them, though: a FIN
queued behind data the peer's full receive window refuses stays unsent (FIN_WAIT1, LAST_ACK) for
as long as the peer does not read; a listener whose accept queue is full drops SYNs (SYN_SENT);
TCP_DEFER_ACCEPT keeps a handshake half-open until data arrives (SYN_RECV). Each scenario is
played as a few such *checkpoints*, each after a step of ``lifecycle.SCENARIOS``; the steps in
between are shown as over too fast to see. Everything runs on 127.0.0.1 (or ::1), on ports the
kernel picks, and needs no privilege.
"""

from __future__ import annotations

import fcntl
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tcpstates.model.errors import TcpstatesError
from tcpstates.model.i18n import N_
from tcpstates.model.lifecycle import SCENARIOS, Scenario
from tcpstates.model.query import Query
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState

S = TcpState
SMALL_BUFFER = 4096  # bytes; the kernel doubles it and keeps a minimum, still a few pages
SETTLE = 5.0  # seconds to wait for the kernel to reach a checkpoint (a SYN is resent after 1 s)
_SIOCOUTQNSD = 0x894B  # <linux/sockios.h>: bytes in the send queue not yet sent


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """After ``step`` steps of the scenario (0: before the first), what tcpstates did to get
    there, the states the scenario expects, and the states the kernel reported."""

    step: int
    action: str  # English, marked for the catalogue; shown through i18n._
    expected: tuple[TcpState, TcpState]
    seen: tuple[TcpState, TcpState]

    @property
    def agrees(self) -> bool:
        return self.expected == self.seen


@dataclass(slots=True)
class LiveRun:
    scenario: Scenario
    address: str
    ports: dict[str, int] = field(default_factory=dict)  # "a", "b": each end's local port
    checkpoints: list[Checkpoint] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return all(c.agrees for c in self.checkpoints)


Reader = Callable[[Query], list[Socket]]


class _Stage:
    """Two ends on loopback and a way to read their states back from the socket table."""

    def __init__(self, run: LiveRun, read: Reader) -> None:
        self.run = run
        self.read = read
        self.family = socket.AF_INET6 if ":" in run.address else socket.AF_INET
        self.held: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.a: socket.socket | None = None
        self.b: socket.socket | None = None

    def new(self, *, small: bool = True) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        self.held.append(sock)
        if small:
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, option, SMALL_BUFFER)
        return sock

    def listen(self, backlog: int) -> socket.socket:
        listener = self.new()
        listener.bind((self.run.address, 0))
        listener.listen(backlog)
        self.listener = listener
        self.run.ports["b"] = listener.getsockname()[1]
        return listener

    def connected_pair(self) -> None:
        """a connected to b, both with small buffers, the listener gone again."""
        listener = self.listen(1)
        a = self.new()
        a.settimeout(2)
        a.connect(listener.getsockname()[:2])
        b, _peer = listener.accept()
        self.held.append(b)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        self.drop(listener)
        self.listener = None
        self.a, self.b = a, b
        self.run.ports.update(a=a.getsockname()[1], b=b.getsockname()[1])

    def drop(self, sock: socket.socket, reset: bool = False) -> None:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.held.remove(sock)
        sock.close()

    def close(self) -> None:
        """Close what is still held; reset (no TIME_WAIT left behind) unless closed already."""
        for sock in reversed(list(self.held)):
            try:
                self.drop(sock, reset=True)
            except OSError:
                pass

    # -- reading back ------------------------------------------------------------------

    def states(self) -> tuple[TcpState, TcpState]:
        """a's and b's states as the socket table reports them; CLOSE for one not listed (a
        closed socket is not in the table)."""
        b_port = self.run.ports.get("b")
        a_port = self.run.ports.get("a")
        if b_port is None:
            return S.CLOSE, S.CLOSE
        rows = self.read(Query(protos=frozenset({"tcp"}), port=b_port))
        a = b = S.CLOSE
        listening = S.CLOSE
        for sock in rows:
            if a_port is not None and (sock.local_port, sock.remote_port) == (a_port, b_port):
                a = sock.state
            elif a_port is not None and (sock.local_port, sock.remote_port) == (b_port, a_port):
                b = sock.state
            elif sock.local_port == b_port and sock.remote_port == 0:
                listening = sock.state
        if b is S.CLOSE:
            b = listening  # b has no connection yet: the listener is what there is of it
        if b is S.NEW_SYN_RECV:
            b = S.SYN_RECV  # reported so by the kernel anyway; named as the scenario does
        return a, b

    def checkpoint(self, step: int, action: str) -> None:
        """Wait until the kernel shows the states expected after ``step`` (or SETTLE seconds
        pass), and record what it showed."""
        expected = _expected(self.run.scenario, step)
        deadline = time.monotonic() + SETTLE
        seen = self.states()
        while seen != expected and time.monotonic() < deadline:
            time.sleep(0.02)
            seen = self.states()
        self.run.checkpoints.append(Checkpoint(step, action, expected, seen))


def _expected(scenario: Scenario, step: int) -> tuple[TcpState, TcpState]:
    if step == 0:
        return scenario.a_start, scenario.b_start
    _step, a, b = scenario.timeline()[step - 1]
    return a, b


def fill(writer: socket.socket) -> None:
    """Write until the peer (which does not read) advertises a zero window and ``writer``'s own
    send buffer is full: from then on, a FIN queued on ``writer`` cannot leave."""
    writer.setblocking(False)
    chunk = b"\0" * 65536
    while True:
        try:
            writer.send(chunk)
            continue
        except BlockingIOError:
            pass
        _r, writable, _x = select.select([], [writer], [], 0.05)
        if not writable:  # unwritable for a while: the ACKs still on their way freed nothing
            break
    raw = fcntl.ioctl(writer.fileno(), _SIOCOUTQNSD, b"\0" * 4)
    if struct.unpack("i", raw)[0] <= 0:
        raise TcpstatesError("the peer's window did not fill; cannot hold a FIN back here")
    writer.setblocking(True)


def drain(reader: socket.socket) -> None:
    """Read until the peer's FIN (end of file)."""
    reader.settimeout(SETTLE)
    while reader.recv(65536):
        pass


# -- the scenarios --------------------------------------------------------------------------


def _a_closes_first(stage: _Stage) -> Iterator[None]:
    """The opening both close scenarios share: connected, then a's FIN held behind data."""
    stage.connected_pair()
    a = stage.a
    assert a is not None
    stage.checkpoint(0, N_("a connects to b's listener; b accepts"))
    yield
    fill(a)
    a.shutdown(socket.SHUT_WR)
    stage.checkpoint(
        1, N_("a fills b's receive window, then shuts down: its FIN waits behind the data")
    )
    yield


def _close(stage: _Stage) -> Iterator[None]:
    yield from _a_closes_first(stage)
    a, b = stage.a, stage.b
    assert a is not None and b is not None
    drain(b)
    stage.checkpoint(3, N_("b reads everything: a's FIN arrives, b acknowledges it"))
    yield
    fill(b)
    b.shutdown(socket.SHUT_WR)
    stage.checkpoint(
        4, N_("b fills a's receive window, then shuts down: its FIN waits behind the data")
    )
    yield
    drain(a)
    stage.checkpoint(
        6, N_("a reads everything: b's FIN arrives, a acknowledges it, b's socket is gone")
    )


def _simultaneous_close(stage: _Stage) -> Iterator[None]:
    yield from _a_closes_first(stage)
    a, b = stage.a, stage.b
    assert a is not None and b is not None
    fill(b)
    b.shutdown(socket.SHUT_WR)
    stage.checkpoint(
        2, N_("b fills a's receive window, then shuts down: its FIN waits behind the data")
    )
    yield
    drain(a)
    stage.checkpoint(
        4,
        N_(
            "a reads everything: b's FIN arrives while a's own FIN is still held back, and"
            " a's ACK of it reaches b"
        ),
    )
    yield
    drain(b)
    stage.checkpoint(6, N_("b reads everything: a's FIN arrives, and b's ACK of it reaches a"))


def _open(stage: _Stage) -> Iterator[None]:
    stage.checkpoint(0, N_("a and b each create a socket; neither is in the socket table yet"))
    yield
    listener = stage.listen(1)
    address = listener.getsockname()[:2]
    # Two connections that are not part of the story fill b's accept queue (a backlog of 1
    # holds two), so that a's SYN will go unanswered for a while.
    fillers = []
    for _i in range(2):
        filler = stage.new(small=False)
        filler.settimeout(2)
        filler.connect(address)
        fillers.append(filler)
    _wait_for_queue(stage, 2)
    stage.checkpoint(1, N_("b listens (its accept queue already full with two other clients)"))
    yield
    a = stage.new(small=False)
    a.setblocking(False)
    a.connect_ex(address)
    stage.a = a
    stage.run.ports["a"] = a.getsockname()[1]
    stage.checkpoint(2, N_("a connects: b's full accept queue drops its SYN, so a waits"))
    yield
    # Hold b's side half-open once the handshake completes: TCP_DEFER_ACCEPT ignores the bare
    # ACK that ends it, until data comes.
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 600)
    accepted, _peer = listener.accept()
    stage.held.append(accepted)
    stage.checkpoint(
        4,
        N_(
            "b accepts another client, making room: a's next SYN (1 s later) is answered, a"
            " sends the last ACK, and TCP_DEFER_ACCEPT makes b wait for data"
        ),
    )
    yield
    a.setblocking(True)
    a.send(b"\0")
    stage.checkpoint(5, N_("a sends its first byte, which completes b's side of the handshake"))


PLAYS: dict[str, Callable[[_Stage], Iterator[None]]] = {
    "open": _open,
    "close": _close,
    "simultaneous-close": _simultaneous_close,
}


def _wait_for_queue(stage: _Stage, length: int) -> None:
    port = stage.run.ports["b"]
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        rows = stage.read(Query(protos=frozenset({"tcp"}), port=port))
        if any(s.state is S.LISTEN and (s.recv_q or 0) >= length for s in rows):
            return
        time.sleep(0.02)


def loopback() -> str:
    """127.0.0.1, or ::1 where IPv4 loopback cannot be bound."""
    for address, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.bind((address, 0))
            return address
        except OSError:
            continue
    raise TcpstatesError("no loopback address (127.0.0.1 or ::1) can be bound here")


def rehearse(name: str, read: Reader, address: str | None = None) -> LiveRun:
    """Play scenario ``name`` on loopback; every checkpoint's expected and reported states."""
    run = LiveRun(SCENARIOS[name], address or loopback())
    stage = _Stage(run, read)
    try:
        for _checkpoint in PLAYS[name](stage):
            pass
    except OSError as e:
        raise TcpstatesError(f"--live: {e.strerror or e}") from None
    finally:
        stage.close()
    return run
