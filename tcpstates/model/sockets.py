"""The socket record: one row of what a source read from the kernel, and how its ends read."""

from __future__ import annotations

import enum
import functools

from tcpstates.model.i18n import N_, _
from tcpstates.model.record import Record, bulk_constructor, fields
from tcpstates.model.states import TcpState, state_name

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from tcpstates.model.details import Memory, TcpInfo


class Socket(Record):
    """One socket as the kernel reports it, with its owner where one could be seen.

    ``inode`` 0 means no file descriptor refers to the socket: the kernel alone holds it
    (TIME_WAIT, an orphaned FIN_WAIT2, a connection not yet accepted). ``None`` means the source
    could not tell. ``send_q`` of a LISTEN socket is its backlog limit where the source knows it.
    """

    # The record: JSON, JSON Lines and CSV use these names in this order, a contract (DESIGN.md),
    # and the sources pass them to new_socket by position. netns, last, is written only for
    # sockets of a named namespace.
    proto: str
    family: int
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    state: TcpState
    recv_q: int | None = None
    send_q: int | None = None
    uid: int | None = None
    inode: int | None = None
    pid: int | None = None
    process: str | None = None
    timer: str | None = None
    timer_ms: int | None = None
    retransmits: int | None = None
    # The interface a link-local end is scoped to or the socket is bound to (SO_BINDTODEVICE).
    interface: str | None = None
    v6only: bool | None = None  # an IPv6 socket's IPV6_V6ONLY; None: IPv4, or not known
    netns: int | None = None  # the network namespace's inode, when several may be listed
    # Details read only when asked for (Details); None where not asked or not known.
    holders: tuple[Holder, ...] | None = None  # every process and fd that holds it
    cgroup: str | None = None  # the owner's cgroup path (--cgroup)
    info: TcpInfo | None = None  # tcp_info (-i)
    memory: Memory | None = None  # socket memory (-m)

    @property
    def state_name(self) -> str:
        return state_name(self.state, self.proto)

    @property
    def kernel_owned(self) -> bool:
        """True when no process holds the socket, so "no owner" is the whole truth."""
        return self.inode == 0

    def as_dict(self) -> dict[str, Any]:
        """The record in FIELDS order, the state by its name, ``netns`` last only for sockets
        read from an explicitly named namespace.

        Spelled out, not a loop over FIELDS: this runs per row, and a loop costs twice the
        time (tests/test_sockets.py holds the two to one order).
        """
        return {
            "proto": self.proto,
            "family": self.family,
            "local_address": self.local_address,
            "local_port": self.local_port,
            "remote_address": self.remote_address,
            "remote_port": self.remote_port,
            "state": self.state_name,
            "recv_q": self.recv_q,
            "send_q": self.send_q,
            "uid": self.uid,
            "inode": self.inode,
            "pid": self.pid,
            "process": self.process,
            "timer": self.timer,
            "timer_ms": self.timer_ms,
            "retransmits": self.retransmits,
            "interface": self.interface,
            "v6only": self.v6only,
            **({} if self.netns is None else {NETNS: self.netns}),
        }


class Holder(Record):
    """One process holding a socket through one of its file descriptors."""

    pid: int
    process: str | None
    fd: int


class Details(Record):
    """What a reading asks the kernel for beyond the record, and what the record then carries.

    Each costs something per socket (a bigger netlink reply, a /proc read per owner), so
    each is read only when asked for.
    """

    info: bool = False  # -i: tcp_info and the congestion control (netlink only)
    memory: bool = False  # -m: socket memory (netlink only)
    timers: bool = False  # --timers: the timer column (every source that has timers)
    cgroup: bool = False  # --cgroup: the owner's cgroup
    # Every process and fd that holds each socket, not only the lowest pid (owners in JSON);
    # sharers: only for the sockets several hold (the table's +N). Either makes the owner
    # scan read every process instead of stopping once each socket has its owner.
    holders: bool = False
    sharers: bool = False

    @property
    def from_kernel(self) -> bool:
        """Whether only netlink sock_diag can give what is asked for."""
        return self.info or self.memory


NO_DETAILS = Details()
NETNS = "netns"  # the field that follows the record's for sockets of a named namespace
# The record's fields, in order; what follows them (netns, the details) only when asked for.
_ALL_FIELDS = fields(Socket)
FIELDS: tuple[str, ...] = _ALL_FIELDS[: _ALL_FIELDS.index(NETNS)]

# Made by the 100,000, by position (model/record.py says why).
new_socket: Callable[..., Socket] = bulk_constructor(Socket)
# One a socket a process holds when every holder is asked for: 100,000 of them too.
new_holder: Callable[[int, str | None, int], Holder] = bulk_constructor(Holder)


def endpoint(
    address: str, port: int, interface: str | None = None, dual_stack: bool = False
) -> str:
    """``address:port`` as ss writes it: IPv6 in brackets, no port as ``*``; with an interface
    or dual-stack, as ``scoped_prefix`` says.

    >>> endpoint("::1", 22), endpoint("0.0.0.0", 0), endpoint("::", 22, dual_stack=True)
    ('[::1]:22', '0.0.0.0:*', '*:22')
    """
    if interface is None and not dual_stack:
        prefix = address_prefix(address)
    else:
        prefix = scoped_prefix(address, interface, dual_stack)
    return prefix + (str(port) if port else "*")


def local_end(sock: Socket) -> str:
    """A socket's local end as ss writes it: its interface after the address, ``*`` for the
    ``::`` of a socket that takes IPv4 too."""
    return endpoint(sock.local_address, sock.local_port, sock.interface, sock.v6only is False)


def remote_end(sock: Socket) -> str:
    """A socket's peer as ss writes it (an interface is written on the local end only)."""
    return endpoint(sock.remote_address, sock.remote_port, None, sock.v6only is False)


def address_prefix(address: str) -> str:
    """What comes before the port: ``address:``, or ``[address]:`` for IPv6."""
    return f"[{address}]:" if ":" in address else f"{address}:"


def scoped_prefix(address: str, interface: str | None, dual_stack: bool) -> str:
    """``address_prefix`` as ss writes it for a socket with an interface or a dual-stack one:
    ``%interface`` after the address (a link-local end's scope, or SO_BINDTODEVICE), and
    ``*`` for the ``::`` of a socket that takes IPv4 too (IPV6_V6ONLY off).

    >>> scoped_prefix("fe80::1", "eth0", False), scoped_prefix("::", "lo", True)
    ('[fe80::1]%eth0:', '*%lo:')
    >>> scoped_prefix("0.0.0.0", "lo", False), scoped_prefix("::", None, True)
    ('0.0.0.0%lo:', '*:')
    """
    if dual_stack and address == "::":
        text = "*"
    else:
        text = f"[{address}]" if ":" in address else address
    return f"{text}%{interface}:" if interface is not None else f"{text}:"


class OwnerKind(enum.Enum):
    """Who holds a socket, as far as can be seen."""

    PROCESS = "process"  # a process we could see: its pid, and its name where it could be read
    KERNEL = "kernel"  # no process: no file refers to it (TIME_WAIT, orphans, not yet accepted)
    UNSEEN = "unseen"  # maybe a process we may not look into, or the source cannot tell


class OwnerSpelling(Record):
    """How an owner that is no seen process is written, in each place an owner is written."""

    cell: str  # the Process column of a listing or a trace, and a --by process group
    label: str  # the process label of a metric
    prose: str  # in a sentence; a message id, translated where it is shown


OWNER_SPELLINGS: dict[OwnerKind, OwnerSpelling] = {
    OwnerKind.KERNEL: OwnerSpelling(
        "(kernel)", "(kernel)", N_("the kernel alone (no process holds it)")
    ),
    OwnerKind.UNSEEN: OwnerSpelling("-", "(unknown)", N_("an unknown process")),
}
NAMELESS = "?"  # a process whose name could not be read (it exited while we looked)


class Owner(Record):
    """A socket's owner as data: what ``--by process`` groups by, and what each spelling of an
    owner is made from. Made by ``owner``, ``owner_of`` and ``_made`` only: ``text`` and
    ``label`` follow from the other three."""

    kind: OwnerKind
    pid: int | None
    process: str | None
    # Its spellings that need no language, made once: an Owner stands for many sockets.
    text: str  # ``nginx (812)``, ``(kernel)``
    label: str  # as a metric label: ``nginx``

    def prose(self) -> str:
        """In a sentence, in the language in use: ``nginx (pid 812)``, ``an unknown process``."""
        if self.kind is OwnerKind.PROCESS:
            return f"{self.process or NAMELESS} (pid {self.pid})"
        return _(OWNER_SPELLINGS[self.kind].prose)


def owner(pid: int | None, process: str | None, inode: int | None = None) -> Owner:
    """The owner of a socket held by ``pid`` (None: not seen) whose inode is ``inode`` (0: no
    file refers to it; None: not known)."""
    if pid is not None:
        return _seen(pid, process)
    return KERNEL_OWNER if inode == 0 else UNSEEN_OWNER


@functools.lru_cache(maxsize=4096)
def _seen(pid: int, process: str | None) -> Owner:
    # 100,000 sockets have a few hundred owners: one Owner each, not one per socket (grouping
    # or counting by process would otherwise spend most of its time making them).
    return _made(OwnerKind.PROCESS, pid, process)


def owner_of(sock: Socket) -> Owner:
    if sock.pid is not None:  # owner()'s rule, spelled out: this runs per socket
        return _seen(sock.pid, sock.process)
    return KERNEL_OWNER if sock.inode == 0 else UNSEEN_OWNER


def _made(kind: OwnerKind, pid: int | None = None, process: str | None = None) -> Owner:
    if kind is OwnerKind.PROCESS:
        text = f"{process or NAMELESS} ({pid})"
        # The name alone: a pid in a label would make a new series at each restart.
        label = process if process is not None else OWNER_SPELLINGS[OwnerKind.UNSEEN].label
    else:
        text, label = OWNER_SPELLINGS[kind].cell, OWNER_SPELLINGS[kind].label
    return Owner(kind, pid, process, text, label)


KERNEL_OWNER = _made(OwnerKind.KERNEL)
UNSEEN_OWNER = _made(OwnerKind.UNSEEN)
