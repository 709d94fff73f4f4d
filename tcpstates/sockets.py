"""The socket record: one row of what a source read from the kernel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tcpstates.states import TcpState, state_name

# JSON, JSON Lines and CSV use these names in this order; they are a contract (DESIGN.md).
FIELDS: tuple[str, ...] = (
    "proto",
    "family",
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "state",
    "recv_q",
    "send_q",
    "uid",
    "inode",
    "pid",
    "process",
    "timer",
    "timer_ms",
    "retransmits",
)


@dataclass(frozen=True, slots=True)
class Socket:
    """One socket as the kernel reports it, with its owner where one could be seen.

    ``inode`` 0 means no file descriptor refers to the socket: the kernel alone holds it
    (TIME_WAIT, an orphaned FIN_WAIT2, a connection not yet accepted). ``None`` means the source
    could not tell. ``send_q`` of a LISTEN socket is its backlog limit where the source knows it.
    """

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

    @property
    def state_name(self) -> str:
        return state_name(self.state, self.proto)

    @property
    def kernel_owned(self) -> bool:
        """True when no process holds the socket, so "no owner" is the whole truth."""
        return self.inode == 0

    def as_dict(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in FIELDS}
        row["state"] = self.state_name
        return row
