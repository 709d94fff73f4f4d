"""Read `ss` (iproute2) output into rows that compare directly with `zoo.Expected`.

`ss` is the independent witness in our tests: it asks the kernel over netlink (sock_diag),
while tcpstates reads netlink itself or /proc; both are compared with ss, row by row.

Spellings printed by iproute2 6.1 on Linux 6.18 (checked on this machine, `ss -tanH`/`-uanH`):

    LISTEN 0 128          127.0.0.1:46799            0.0.0.0:*      IPv4 listener
    LISTEN 0 128              [::1]:51661               [::]:*      IPv6 listener (v6only)
    LISTEN 0 128                  *:39029                  *:*      dual-stack [::] listener
    LISTEN 0 128               [::]:43079               [::]:*      [::] listener, IPV6_V6ONLY=1
    ESTAB  0 0   [::ffff:127.0.0.1]:39029 [::ffff:127.0.0.1]:35874  v4-mapped accepted socket
    UNCONN 0 0         127.0.0.1%lo:51759            0.0.0.0:*      UDP, SO_BINDTODEVICE=lo

A bare `*` address is what modern ss prints for an IPv6 wildcard that also accepts IPv4
(not v6only); old ss (before ~4.17) printed `*` for the IPv4 wildcard too, so we decide the
family of a `*` from the other address of the line when that one is concrete.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

# (proto, family, local_address, local_port, remote_address, remote_port, state):
# the part of a row that both `ss` and the zoo know, used to match one against the other.
RowKey = tuple[str, int, str, int, str, int, str]


def row_key(row: Any) -> RowKey:
    """The comparable part of anything with the record's field names (SsRow, Expected)."""
    return (
        row.proto,
        row.family,
        row.local_address,
        row.local_port,
        row.remote_address,
        row.remote_port,
        row.state,
    )


# ss's state names -> netstat's. UNCONN is ss's word for TCP_CLOSE (state 7); netstat calls
# that CLOSE for TCP, while for UDP "UNCONN" is the usual name for a bound, unconnected socket.
_SS_TO_NETSTAT = {
    "ESTAB": "ESTABLISHED",
    "SYN-SENT": "SYN_SENT",
    "SYN-RECV": "SYN_RECV",
    "FIN-WAIT-1": "FIN_WAIT1",
    "FIN-WAIT-2": "FIN_WAIT2",
    "TIME-WAIT": "TIME_WAIT",
    "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK",
    "LISTEN": "LISTEN",
    "CLOSING": "CLOSING",
}

_SS_FLAGS = {"tcp": "-tanH", "udp": "-uanH"}


@dataclass(frozen=True)
class SsRow:
    """One line of `ss -tanH` / `ss -uanH`, normalised to the zoo's vocabulary."""

    proto: str  # "tcp" | "udp"
    family: int  # 4 | 6
    local_address: str
    local_port: int
    remote_address: str
    remote_port: int
    state: str  # netstat spelling, see _SS_TO_NETSTAT
    recv_q: int
    send_q: int

    def key(self) -> RowKey:
        return row_key(self)


def ss_path() -> str:
    """Absolute path of `ss`, looking in the sbin directories too (often not on a user's PATH)."""
    path = shutil.which("ss") or shutil.which("ss", path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise FileNotFoundError(
            "`ss` not found on PATH or in /usr/sbin, /sbin: install iproute2 (e.g. apt-get "
            "install iproute2) to run the tests that compare against ss"
        )
    return path


def ss_rows(proto: str, ports: set[int] | None = None, netns: str | None = None) -> list[SsRow]:
    """All sockets of `proto` ("tcp" or "udp") that ss reports, in any state.

    With `netns`, ss runs inside that named network namespace (`ip netns exec`).

    With `ports`, keep only rows whose local or remote port is in it. Ports alone do not
    identify a socket (another process may talk to a remote port with the same number), so
    callers should match on the full `key()`, not on the count of rows.
    """
    flags = _SS_FLAGS.get(proto)
    if flags is None:
        raise ValueError(f"proto must be 'tcp' or 'udp', not {proto!r}")
    prefix = ["ip", "netns", "exec", netns] if netns else []
    out = subprocess.run(
        [*prefix, ss_path(), flags], check=True, capture_output=True, text=True, timeout=10
    ).stdout
    rows = [parse_line(proto, line) for line in out.splitlines() if line.strip()]
    if ports is None:
        return rows
    return [r for r in rows if r.local_port in ports or r.remote_port in ports]


def parse_line(proto: str, line: str) -> SsRow:
    """Parse one header-less line: `State Recv-Q Send-Q Local:Port Peer:Port`."""
    fields = line.split()
    if len(fields) < 5:
        raise ValueError(f"unexpected ss line (want 5 columns): {line!r}")
    state, recv_q, send_q, local, remote = fields[:5]
    local_host, local_port = _split_endpoint(local)
    remote_host, remote_port = _split_endpoint(remote)
    local_address = _unwild(local_host, other=remote_host)
    return SsRow(
        proto=proto,
        family=6 if ":" in local_address else 4,
        local_address=local_address,
        local_port=local_port,
        remote_address=_unwild(remote_host, other=local_host),
        remote_port=remote_port,
        state=_state_name(proto, state),
        recv_q=int(recv_q),
        send_q=int(send_q),
    )


def _state_name(proto: str, ss_state: str) -> str:
    if ss_state == "UNCONN":
        return "CLOSE" if proto == "tcp" else "UNCONN"
    # Unknown names (a newer ss may add some) pass through rather than break every test.
    return _SS_TO_NETSTAT.get(ss_state, ss_state)


def _split_endpoint(text: str) -> tuple[str, int]:
    """'[::1]:80' -> ('::1', 80); '127.0.0.1%lo:53' -> ('127.0.0.1', 53); '0.0.0.0:*' -> port 0.

    The port is after the last colon (IPv6 addresses are bracketed, so that is safe). ss puts
    `%ifname` after the address (and after the closing bracket) for sockets bound to a device.
    """
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError(f"unexpected ss endpoint (no port): {text!r}")
    host = host.split("%", 1)[0]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, 0 if port == "*" else int(port)


def _unwild(host: str, other: str) -> str:
    """Replace ss's `*` by the wildcard address of the right family, judged from `other`."""
    if host != "*":
        return host
    if other == "*" or ":" in other:
        return "::"
    return "0.0.0.0"
