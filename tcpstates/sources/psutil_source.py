"""Sockets through psutil, for systems without /proc (macOS, the BSDs, Windows).

psutil sees less than the kernel tables: no queues, no uid, no inode, no timers. Those fields
stay null rather than being guessed, except that a TIME_WAIT socket is always kernel-owned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tcpstates.model.errors import SourceError
from tcpstates.model.query import Query
from tcpstates.model.sockets import NO_DETAILS, Details, Socket
from tcpstates.model.states import WINDOWS_DELETE_TCB, TcpState
from tcpstates.sources.base import Reading, kernel_details_only, kernel_interfaces_only

# psutil's status strings that are not our netstat names: Solaris' IDLE and BOUND, Windows'
# DELETE_TCB (a connection being torn down; Windows' code 12, not Linux's NEW_SYN_RECV).
_STATUS: dict[str, TcpState] = {
    "IDLE": TcpState.CLOSE,
    "BOUND": TcpState.BOUND_INACTIVE,
    WINDOWS_DELETE_TCB[1]: TcpState.CLOSE,
}

_KINDS = {("tcp", 4): "tcp4", ("tcp", 6): "tcp6", ("udp", 4): "udp4", ("udp", 6): "udp6"}


def psutil_state(status: str, proto: str, connected: bool) -> TcpState:
    """Our state for psutil's status string; UDP has none ("NONE"), so say what ss says."""
    if proto == "udp":
        return TcpState.ESTABLISHED if connected else TcpState.CLOSE
    if status in TcpState.__members__:
        return TcpState[status]
    return _STATUS.get(status, TcpState.UNKNOWN)


class PsutilSource:
    name = "psutil"
    # psutil gives a connection's pid, not its socket's inode: a reader that matches owners
    # by inode afterwards (sources/namespaced.py) must ask for them in the read.
    OWNERS_WITHOUT_INODES = True
    why = "no /proc/net here, or asked for with --source psutil"

    def read(self, query: Query, owners: bool = False, details: Details = NO_DETAILS) -> Reading:
        kernel_details_only(self.name, details)
        kernel_interfaces_only(self.name, query)
        return Reading(self._sockets(query, owners))

    def _sockets(self, query: Query, owners: bool) -> Iterator[Socket]:
        import psutil

        names: dict[int, str] = {}
        for proto, family in _KINDS:
            if proto not in query.protos or family not in query.families:
                continue
            try:
                conns = psutil.net_connections(_KINDS[proto, family])
            except psutil.AccessDenied as e:
                raise SourceError("psutil: permission denied listing sockets") from e
            for conn in conns:
                sock = _socket(conn, proto, family, names, want_owner=owners)
                if query.wants_state(sock.state):
                    yield sock


def _socket(conn: Any, proto: str, family: int, names: dict[int, str], want_owner: bool) -> Socket:
    local_address, local_port = conn.laddr or ("0.0.0.0" if family == 4 else "::", 0)
    remote_address, remote_port = conn.raddr or ("0.0.0.0" if family == 4 else "::", 0)
    state = psutil_state(conn.status, proto, bool(conn.raddr))
    pid = conn.pid if want_owner else None
    return Socket(
        proto=proto,
        family=family,
        local_address=local_address,
        local_port=local_port,
        remote_address=remote_address,
        remote_port=remote_port,
        state=state,
        inode=0 if state is TcpState.TIME_WAIT else None,
        pid=pid,
        process=_name(pid, names) if pid is not None else None,
    )


def _name(pid: int, names: dict[int, str]) -> str:
    import psutil

    if pid not in names:
        try:
            names[pid] = psutil.Process(pid).name()
        except psutil.Error:
            names[pid] = "?"
    return names[pid]
