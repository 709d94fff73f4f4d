"""Destroying one socket through sock_diag (SOCK_DESTROY), as ``ss -K`` does.

The request is an inet_diag_req_v2 whose socket id is the one a dump sent for that socket: its
ports, addresses, interface and cookie, byte for byte. The kernel looks the socket up by its
ends, then compares the cookie it gave it (sock_diag_check_cookie): a connection that closed
and whose four ends a new one took since the dump has another cookie, and is left alone
(ENOENT). What the kernel then does (tcp_abort, udp_abort): the socket's error becomes
ECONNABORTED, which the application gets on its next call; a TCP connection in ESTABLISHED,
CLOSE_WAIT, FIN_WAIT1, FIN_WAIT2 or SYN_RECV sends the peer a RST; a listener stops listening;
a TIME_WAIT or a pending connection (a request socket) is dropped.

Its answers (an NLMSG_ERROR with 0 for success, NLM_F_ACK asks for it):
  EPERM       the caller lacks CAP_NET_ADMIN in the user namespace owning the socket's network
              namespace (sock_diag_destroy): a user may not destroy even its own sockets
  EOPNOTSUPP  a kernel built without CONFIG_INET_DIAG_DESTROY, or a socket it cannot destroy
  ENOENT      no such socket any more (ESTALE on kernels before 4.x said a changed cookie)
"""

from __future__ import annotations

import enum
import errno
import os
import struct
from dataclasses import dataclass

from tcpstates.sources import inet_diag as diag

SOCK_DESTROY = 21
NLM_F_ACK = 0x4
# nlmsghdr, then inet_diag_req_v2 up to its socket id, which follows as the dump sent it.
_DESTROY = struct.Struct("=IHHIIBBBBI")
SOCKID_SIZE = 48  # inet_diag_sockid: ports, addresses, interface, cookie
# Where a record's family and socket id sit (inet_diag_msg: family, state, timer, retrans, id).
_FAMILY_AND_SOCKID = struct.Struct(f"={diag.HEADER.size}xB3x{SOCKID_SIZE}s")
RECORD_SOCKIDS = struct.Struct(
    f"={diag.HEADER.size}xB3x{SOCKID_SIZE}s{diag.RECORD.size - _FAMILY_AND_SOCKID.size}x"
)
_COOKIE = struct.Struct("=Q")
_COOKIE_OFFSET = SOCKID_SIZE - _COOKIE.size
_ALL_STATES = 0xFFFFFFFF  # the lookup of one socket ignores them; say "any"


@dataclass(frozen=True, slots=True)
class Handle:
    """What names one socket to the kernel: its family and protocol, and its inet_diag_sockid
    as a dump sent it (ports, addresses, interface, and the cookie the kernel gave it)."""

    family: int  # AF_INET, AF_INET6
    protocol: int  # IPPROTO_TCP, IPPROTO_UDP
    sockid: bytes

    @property
    def cookie(self) -> int:
        (cookie,) = _COOKIE.unpack_from(self.sockid, _COOKIE_OFFSET)
        return int(cookie)

    def with_cookie(self, cookie: int) -> Handle:
        """The same ends with another cookie: a socket that is not (or no longer) there."""
        sockid = self.sockid[:_COOKIE_OFFSET] + _COOKIE.pack(cookie)
        return Handle(self.family, self.protocol, sockid)


class Outcome(enum.Enum):
    """What the kernel said to one SOCK_DESTROY; the values are what reports and JSON show."""

    DESTROYED = "destroyed"
    VANISHED = "vanished"  # ENOENT: closed meanwhile, or its ends are another socket's now
    NOT_PERMITTED = "not permitted"  # EPERM: needs CAP_NET_ADMIN
    UNSUPPORTED = "unsupported"  # EOPNOTSUPP
    FAILED = "failed"  # anything else the kernel answered

    @property
    def gone(self) -> bool:
        """Whether the socket is no more: destroyed now, or already gone."""
        return self in (Outcome.DESTROYED, Outcome.VANISHED)


_OUTCOMES = {
    0: Outcome.DESTROYED,
    errno.ENOENT: Outcome.VANISHED,
    errno.ESTALE: Outcome.VANISHED,
    errno.EPERM: Outcome.NOT_PERMITTED,
    errno.EACCES: Outcome.NOT_PERMITTED,
    errno.EOPNOTSUPP: Outcome.UNSUPPORTED,
}


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    error: int = 0  # the errno the kernel answered; 0 for destroyed

    @property
    def reason(self) -> str:
        """The kernel's answer in words, ``Operation not permitted (EPERM)``; empty when done."""
        if not self.error:
            return ""
        return f"{os.strerror(self.error)} ({errno.errorcode.get(self.error, str(self.error))})"


class Destroyer:
    """A sock_diag socket kept open to destroy sockets one at a time.

    It acts on the network namespace it was opened in, wherever it is used from afterwards:
    open it inside the namespace whose sockets it destroys (``netns.entered``).
    """

    def __init__(self) -> None:
        self._sock = diag.open_diag_socket()  # SourceError where netlink is refused
        self._sock.settimeout(2.0)  # the kernel answers at once; never hang on it
        self._seq = 0

    def destroy(self, handle: Handle) -> Result:
        self._seq = self._seq % 0xFFFFFFFF + 1
        request = _DESTROY.pack(
            _DESTROY.size + len(handle.sockid), SOCK_DESTROY, diag.NLM_F_REQUEST | NLM_F_ACK,
            self._seq, 0, handle.family, handle.protocol, 0, 0, _ALL_STATES,
        ) + handle.sockid  # fmt: skip
        try:
            self._sock.send(request)
            code = self._answer()
        except OSError as e:  # the netlink socket itself failed (a timeout): say so per socket
            code = e.errno or errno.EIO
        return Result(_OUTCOMES.get(code, Outcome.FAILED), code)

    def _answer(self) -> int:
        """The errno of the kernel's answer to the last request (0: done); a late answer to an
        earlier one is passed over."""
        for _ in range(8):
            reply = self._sock.recv(8192)
            if len(reply) < diag.HEADER.size + 4:
                continue
            _length, kind, _flags, seq, _pid = diag.HEADER.unpack_from(reply)
            if seq == self._seq and kind == diag.NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", reply, diag.HEADER.size)
                return -int(code)
        return errno.EIO

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Destroyer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
