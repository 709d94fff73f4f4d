"""The HTTP side of ``export --listen``: /metrics from one thread that no client can exhaust.

A scraper connects, sends one GET and reads one answer; that is all this server does. Every
connection lives in one selector loop, never a thread of its own, and the loop keeps to a few
limits, so that clients who connect and then say nothing (or a byte a second) cost a bounded
number of descriptors and no CPU, and a real scrape still gets through:

- ``TIMEOUT``: from being accepted a connection has that long to send its whole request head,
  however slowly the bytes trickle in, and then as long again to take the answer; else it is
  closed.
- ``MAX_CONNECTIONS`` open at once; one more closes the oldest (the nearest its timeout anyway)
  rather than the newcomer, so a flood of idle connections cannot lock a scraper out, whose
  request comes with its connection and is answered at once.
- Out of descriptors (EMFILE) while accepting: the cap is lowered to leave ``SPARE_FDS`` for
  reading the sockets, the oldest connections are closed to fit, and that is said once on
  stderr; with nothing of its own to close, the server stops accepting for ``ACCEPT_PAUSE``
  instead of spinning on a listener that stays readable.
- A request head is at most ``MAX_HEAD`` bytes.

The standard library's wsgiref server used before gave each connection a thread and no
timeout: 800 idle connections held 800 threads, and under a 1024-descriptor limit accept()
failed in a loop, burning CPU and printing a traceback each time.
"""

from __future__ import annotations

import errno
import selectors
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from tcpstates.export.metrics import MetricFamily, named
from tcpstates.export.render import Format, exposition
from tcpstates.model.errors import TcpstatesError
from tcpstates.render.safe import safe

TIMEOUT = 5.0  # seconds; a scraper sends its request with the connection and reads at once
MAX_CONNECTIONS = 64  # far more than scrapers at once; far less than a 1024-descriptor limit
SPARE_FDS = 8  # a scrape's own reads: a netlink socket, /proc directories one at a time
ACCEPT_BATCH = 16  # accepts between two looks at the open connections' requests
ACCEPT_PAUSE = 1.0  # seconds without accepting when out of descriptors with none to give back
MAX_HEAD = 8192  # bytes of request line and headers; a scraper's take a few hundred
BACKLOG = 512  # connections the kernel queues while a scrape is being read
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
PLAIN = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    params: dict[str, list[str]]  # the query string's fields, each with all its values
    headers: dict[str, str]  # by lower-case name


@dataclass(frozen=True, slots=True)
class Response:
    status: str
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[Request], Response]
BAD_REQUEST = Response("400 Bad Request", PLAIN, b"not an HTTP request\n")
TOO_LARGE = Response("431 Request Header Fields Too Large", PLAIN, b"request head too large\n")


def say(message: str) -> None:
    """One line on stderr, as the exporter's other messages are."""
    sys.stderr.write(f"tcpstates: {safe(message)}\n")
    sys.stderr.flush()


# -- HTTP, as little as a scraper needs ----------------------------------------------------


def parse_request(head: bytes) -> Request | None:
    r"""The request line and headers in ``head`` (up to the blank line); None if malformed.

    >>> r = parse_request(b"GET /metrics?name[]=up&name[]=x HTTP/1.1\r\nAccept: text/plain\r\n")
    >>> r.method, r.path, r.params, r.headers
    ('GET', '/metrics', {'name[]': ['up', 'x']}, {'accept': 'text/plain'})
    >>> parse_request(b"GET /metrics\r\n"), parse_request(b"\xff\xfe"), parse_request(b"")
    (None, None, None)
    >>> parse_request(b"GET //[x/ HTTP/1.1"), parse_request(b"GET / HTTP/1.1\r\nno colon")
    (None, None)
    """
    text = head.decode("latin-1").replace("\r\n", "\n").rstrip("\n")  # latin-1: any byte
    lines = text.split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return None
    method, target, _ = parts
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            return None
        headers[name.strip().lower()] = value.strip()
    try:
        url = urlsplit(target)
    except ValueError:  # "//[x": a bracketed host that is not one; any client may send it
        return None
    return Request(method, url.path, parse_qs(url.query), headers)


def head_end(data: bytes | bytearray) -> int | None:
    r"""Where the request head in ``data`` ends (the blank line), if it has arrived.

    >>> head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), head_end(b"GET / HTTP/1.0\n\n")
    (23, 14)
    >>> head_end(b"GET / HTTP/1.1\r\nHost: x\r\n") is None
    True
    """
    found = [at for at in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if at >= 0]
    return min(found) if found else None


def encode(response: Response, head_only: bool = False) -> bytes:
    """The response as bytes; every connection is closed after one answer."""
    lines = [
        f"HTTP/1.1 {response.status}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


def negotiate(accept: str) -> Format:
    """OpenMetrics when the scraper lists it in Accept (as prometheus_client decides), else
    Prometheus's text format.

    >>> negotiate("application/openmetrics-text;version=1.0.0,text/plain;q=0.5").name
    'OPENMETRICS'
    >>> negotiate("text/plain;version=0.0.4;q=0.5,*/*;q=0.1").name, negotiate("").name
    ('TEXT', 'TEXT')
    """
    for kind in accept.split(","):
        if kind.split(";")[0].strip() == "application/openmetrics-text":
            return Format.OPENMETRICS
    return Format.TEXT


def metrics_handler(read: Callable[[], tuple[MetricFamily, ...]]) -> Handler:
    """/metrics: the families ``read`` returns, in the format asked for, filtered by
    ``name[]`` as Prometheus's federation and prometheus_client do."""

    def handle(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            allow = (("Allow", "GET, HEAD"),)
            return Response("405 Method Not Allowed", PLAIN, b"GET /metrics\n", allow)
        if request.path != "/metrics":
            return Response("404 Not Found", PLAIN, b"the metrics are at /metrics\n")
        fmt = negotiate(request.headers.get("accept", ""))
        families = named(read(), request.params.get("name[]", ()))
        return Response("200 OK", fmt.value, exposition(families, fmt).encode())

    return handle


# -- the loop ------------------------------------------------------------------------------


def listen(address: tuple[str, int]) -> socket.socket:
    """A non-blocking listening socket on ``address`` (host, port); OSError if it cannot be."""
    host, port = address
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart at once
        listener.bind(sockaddr)
        listener.listen(BACKLOG)
        listener.setblocking(False)
    except OSError:
        listener.close()
        raise
    return listener


@dataclass(eq=False)  # by identity: a closed connection's descriptor may be reused at once
class _Connection:
    sock: socket.socket
    deadline: float
    inbox: bytearray = field(default_factory=bytearray)
    # None while the request is read; then what is left of the answer to send; then empty
    # while the client, answered, has yet to close.
    outbox: memoryview | None = None


class MetricsServer:
    """Serves ``handle``'s answers on ``listener`` from the calling thread (see the module)."""

    def __init__(
        self, listener: socket.socket, handle: Handler, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._listener = listener
        self._handle = handle
        self._clock = clock
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ)
        # Oldest first. Every deadline is some moment plus TIMEOUT and a connection moves to
        # the end when its deadline is renewed, so the first is always the nearest deadline.
        self._open: dict[_Connection, None] = {}
        self._cap = MAX_CONNECTIONS
        self._paused_until: float | None = None
        self._said: set[str] = set()

    def run(self) -> None:
        """Serve until interrupted."""
        while True:
            self.step()

    def step(self, most: float | None = None) -> None:
        """Wait for something to do (at most ``most`` seconds, if given), and do it."""
        wait = self._wait()
        if most is not None:
            wait = most if wait is None else min(wait, most)
        for key, _ in self._selector.select(wait):
            if key.data is None:
                self._accept()
            elif key.data in self._open:  # not closed by an accept earlier in this batch
                self._guarded(key.data)
        self._expire()

    @property
    def connections(self) -> int:
        """How many connections are open."""
        return len(self._open)

    def close(self) -> None:
        for conn in list(self._open):
            self._close(conn)
        self._selector.close()
        self._listener.close()

    def _wait(self) -> float | None:
        moments = [next(iter(self._open)).deadline] if self._open else []
        if self._paused_until is not None:
            moments.append(self._paused_until)
        return max(0.0, min(moments) - self._clock()) if moments else None

    # -- accepting

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except ConnectionError:
                continue  # the client gave up before it was accepted
            except OSError as e:
                self._accept_failed(e)
                return
            self._admit(sock)

    def _admit(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._trim(self._cap - 1)
        conn = _Connection(sock, self._clock() + TIMEOUT)
        self._open[conn] = None
        self._selector.register(sock, selectors.EVENT_READ, conn)
        self._guarded(conn)  # a scraper's request usually came with its connection

    def _accept_failed(self, error: OSError) -> None:
        code = errno.errorcode.get(error.errno or 0, str(error.errno))
        if error.errno in OUT_OF_DESCRIPTORS and self._open:
            # accept() takes a descriptor before it looks for a connection, so this may come
            # with none waiting: lower the cap once, leaving spare descriptors for a scrape.
            self._cap = max(1, len(self._open) - SPARE_FDS)
            self._say_once(
                "cap",
                f"out of file descriptors accepting a connection ({code}): serving at most"
                f" {self._cap} at once from now on",
            )
            if self._trim(self._cap):
                return
        self._say_once(
            f"pause {code}",
            f"cannot accept connections ({error.strerror}); each time, accepting pauses"
            f" {ACCEPT_PAUSE:g} s",
        )
        if self._paused_until is None:
            self._selector.unregister(self._listener)
        self._paused_until = self._clock() + ACCEPT_PAUSE

    def _resume(self) -> None:
        if self._paused_until is not None and self._clock() >= self._paused_until:
            self._selector.register(self._listener, selectors.EVENT_READ)
            self._paused_until = None

    def _say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            say(message)

    # -- one connection

    def _guarded(self, conn: _Connection) -> None:
        """Serve ``conn``; a fault of ours that one client's bytes reach ends that connection,
        said once, never the exporter (which every other scraper depends on)."""
        try:
            if conn.outbox is None:
                self._read(conn)
            elif conn.outbox:
                self._write(conn)
            else:
                self._drain(conn)
        except Exception as e:
            self._say_once(f"fault {type(e).__name__}", f"closed a connection: {e!r}")
            self._close(conn)

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(MAX_HEAD + 1 - len(conn.inbox))
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # gone, or reset
            self._close(conn)
            return
        conn.inbox += data
        end = head_end(conn.inbox)
        if end is None:
            if len(conn.inbox) > MAX_HEAD:
                self._answer(conn, TOO_LARGE)
            return
        request = parse_request(bytes(conn.inbox[:end]))
        if request is None:
            self._answer(conn, BAD_REQUEST)
        else:
            self._answer(conn, self._respond(request), head_only=request.method == "HEAD")

    def _respond(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except Exception as e:  # one failed scrape must not end the exporter; say it in a line
            reason = str(e) if isinstance(e, TcpstatesError) else f"{type(e).__name__}: {e}"
            say(reason)
            return Response("500 Internal Server Error", PLAIN, f"{safe(reason)}\n".encode())

    def _answer(self, conn: _Connection, response: Response, head_only: bool = False) -> None:
        conn.outbox = memoryview(encode(response, head_only))
        conn.deadline = self._clock() + TIMEOUT
        del self._open[conn]
        self._open[conn] = None  # to the end: its deadline is now the latest
        self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
        self._write(conn)

    def _write(self, conn: _Connection) -> None:
        assert conn.outbox is not None
        try:
            sent = conn.sock.send(conn.outbox, socket.MSG_NOSIGNAL)
        except BlockingIOError:
            return
        except OSError:
            sent = len(conn.outbox)  # the client has gone: nothing more to send
        conn.outbox = conn.outbox[sent:]
        if not conn.outbox:
            self._finish(conn)

    def _finish(self, conn: _Connection) -> None:
        """The answer is sent: end our side, then read and drop whatever the client still
        sends until it closes (or its deadline comes). Closing with bytes unread would send a
        reset, which can destroy the answer before the client has read it."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        self._selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _drain(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(MAX_HEAD)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)

    def _close(self, conn: _Connection) -> None:
        if conn in self._open:  # an eviction and a timeout may both come for it
            del self._open[conn]
            self._selector.unregister(conn.sock)
            conn.sock.close()

    def _trim(self, keep: int) -> int:
        """Close the oldest connections until at most ``keep`` remain; how many were closed."""
        closing = max(0, len(self._open) - keep)
        for _ in range(closing):
            self._close(next(iter(self._open)))
        return closing

    def _expire(self) -> None:
        now = self._clock()
        while self._open and next(iter(self._open)).deadline <= now:
            self._close(next(iter(self._open)))
        self._resume()
