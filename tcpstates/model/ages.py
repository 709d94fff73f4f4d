"""How long a socket has been where it is, or has left there, from what the kernel reports.

The kernel keeps no "entered this state at" time. What it keeps answers the question for the
states where the answer matters:

* CLOSE_WAIT: the peer's FIN is the last thing the peer sends, so the time since anything last
  came from it (tcp_info's last_data_recv and last_ack_recv, the smaller) is about how long
  the application has held the socket since the peer left. Needs tcp_info (-i, netlink).
* TIME_WAIT, and a FIN_WAIT2 no process holds: the kernel runs a timewait timer and frees the
  socket when it expires, so its time left is the timer's (every source that has timers).
"""

from __future__ import annotations

from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState

_FREED_BY_TIMER = frozenset({TcpState.TIME_WAIT, TcpState.FIN_WAIT2})


def held_since_peer_closed_ms(sock: Socket) -> int | None:
    """A CLOSE_WAIT socket's time since its peer last sent anything (its FIN, as a rule);
    None for another state or without tcp_info."""
    if sock.state is not TcpState.CLOSE_WAIT or sock.info is None:
        return None
    info = sock.info
    ages = [age for age in (info.last_data_recv_ms, info.last_ack_recv_ms) if age is not None]
    return min(ages) if ages else None


def left_ms(sock: Socket) -> int | None:
    """The time left before the kernel frees a TIME_WAIT socket or an orphaned FIN_WAIT2 one
    (its timewait timer); None where no such timer runs (a FIN_WAIT2 a process still holds
    waits for the peer as long as the process keeps it)."""
    if sock.state in _FREED_BY_TIMER and sock.timer == "timewait":
        return sock.timer_ms
    return None
