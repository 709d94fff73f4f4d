"""sources/inet_diag.py's read-ahead, held to reading in turn on a real dump of several reads.

Listeners of our own on 127.77.0.1, which the kernel alone picks out (a program on the
address), give a dump that is the same from one run to the next whoever else has sockets on
this host: it runs as any user. Every way the reading thread can end is played: the dump's
end, a read that only looks like the end, an end the thread does not see, an error, and a
caller that stops midway; each must leave the same records, no thread and no socket.
"""

from __future__ import annotations

import _thread
import contextlib
import errno
import os
import socket
import time
from collections.abc import Iterator

import pytest

from tcpstates.model.query import Query, parse_network
from tcpstates.sources import inet_diag as diag
from tcpstates.sources import netlink

LISTENERS = 800  # about 3 reads of records; stays under a default limit of 1024 descriptors
LISTEN = 1 << 10


@pytest.fixture(scope="module")
def listeners() -> Iterator[list[socket.socket]]:
    """IPv4 listeners on 127.77.0.1 and IPv6 ones on ::ffff:127.77.0.1, made in turn, so that
    the kernel's walk meets both families in every read."""
    made = []
    try:
        for i in range(LISTENERS):
            s = socket.socket(socket.AF_INET6 if i % 2 else socket.AF_INET)
            made.append(s)
            s.bind(("::ffff:127.77.0.1" if i % 2 else "127.77.0.1", 0))
            s.listen()
        yield made
    finally:
        for s in made:
            s.close()


class InTurn:
    """The plain version of diag._ReadAhead: each read made when the caller asks for it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def next(self, consumed: bytearray) -> tuple[bytearray, int]:
        return consumed, self.sock.recv_into(consumed)

    def stop(self) -> None:
        self.sock.close()


PROGRAM = netlink._program(Query(local=parse_network("127.77.0.1")))  # v4-mapped ends too


def records() -> tuple[list[bytes], int]:
    """Our listeners' records as one dump gives them, and how many reads it took."""
    found, reads = [], 0
    for buffer, offsets in diag.batches(socket.IPPROTO_TCP, socket.AF_UNSPEC, LISTEN, PROGRAM):
        reads += 1
        # From inet_diag_msg on: the header's port id is the netlink socket's, not the record's.
        found += [bytes(buffer[o + diag.HEADER.size : o + diag.RECORD.size]) for o in offsets]
    return found, reads


def in_turn(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    with monkeypatch.context() as patch:
        patch.setattr(diag, "_ReadAhead", InTurn)
        return records()[0]


def sockets_open() -> int:
    return sum(link.startswith("socket:") for link in fd_links())


def fd_links() -> list[str]:
    """What each of our descriptors names. One may close while this looks (that is what the
    tests wait for): it is gone, not an error."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return links


def settled(threads: int, sockets: int) -> None:
    """Wait (3 s at most) for the reading thread to end and its socket to close."""
    deadline = time.monotonic() + 3
    while (_thread._count(), sockets_open()) != (threads, sockets):
        assert time.monotonic() < deadline, (_thread._count(), sockets_open())
        time.sleep(0.01)


@pytest.fixture
def before(listeners: list[socket.socket]) -> tuple[int, int]:
    return _thread._count(), sockets_open()


def test_reading_ahead_gives_what_reading_in_turn_gives(
    before: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    started = []
    real = diag._ReadAhead

    def counted(sock: socket.socket) -> diag._ReadAhead:
        started.append(sock)
        return real(sock)

    monkeypatch.setattr(diag, "_ReadAhead", counted)
    ahead, reads = records()
    assert reads >= 3 and started  # the dump took several reads, and the thread read them
    assert len(ahead) == LISTENERS
    assert ahead == in_turn(monkeypatch)
    settled(*before)


def test_a_read_that_only_looks_like_the_end_is_not_the_end(
    before: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(diag, "_looks_done", lambda buffer, size: True)
    assert records()[0] == in_turn(monkeypatch)
    settled(*before)


def test_an_end_the_thread_misses_still_ends_it(
    before: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(diag, "_looks_done", lambda buffer, size: False)
    monkeypatch.setattr(diag._ReadAhead, "_WAKE", 0.05)
    assert records()[0] == in_turn(monkeypatch)
    settled(*before)  # it woke, saw it was told to stop, and closed the socket


def test_an_error_in_the_reading_thread_reaches_the_caller(
    before: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(buffer: bytearray, size: int) -> bool:
        raise OSError(errno.ENOBUFS, os.strerror(errno.ENOBUFS))

    monkeypatch.setattr(diag, "_looks_done", fails)
    with pytest.raises(OSError, match="No buffer space"):
        records()
    settled(*before)


def test_a_caller_that_stops_midway_leaves_no_thread_and_no_socket(
    before: tuple[int, int],
) -> None:
    dump = diag.batches(socket.IPPROTO_TCP, socket.AF_UNSPEC, LISTEN, PROGRAM)
    next(dump)
    dump.close()
    settled(*before)


def test_a_dump_in_parts_comes_read_by_read_with_ipv6_last(listeners: list[socket.socket]) -> None:
    # What a streamed listing reads: the same records as dump_packed, in its order.
    buffer, offsets = next(diag.batches(socket.IPPROTO_TCP, socket.AF_UNSPEC, LISTEN, PROGRAM))
    assert {buffer[o + diag.FAMILY_OFFSET] for o in offsets} == {2, 10}  # both, from the start
    parts = list(diag.packed_reads(socket.IPPROTO_TCP, socket.AF_UNSPEC, LISTEN, PROGRAM))
    families = [f for part in parts for f in part[diag.FAMILY_OFFSET :: diag.RECORD.size]]
    assert len(parts) >= 3 and families == [2] * (LISTENERS // 2) + [10] * (LISTENERS // 2)
    apart = b"".join(
        diag.dump_packed(socket.IPPROTO_TCP, family, LISTEN, PROGRAM)
        for family in (socket.AF_INET, socket.AF_INET6)
    )
    assert sorted(without_headers(b"".join(parts))) == sorted(without_headers(apart))


def without_headers(packed: bytes) -> list[bytes]:
    """Each record from inet_diag_msg on (the header's port id is the netlink socket's)."""
    size, header = diag.RECORD.size, diag.HEADER.size
    return [packed[at + header : at + size] for at in range(0, len(packed), size)]
