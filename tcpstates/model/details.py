"""What the kernel knows about one socket beyond its ends and state: tcp_info and memory.

The field names are the JSON record's (a contract, like the record's own): each carries its
unit (``rtt_ms``, ``delivery_rate_bps``, ``rcvbuf_bytes``), so nobody has to guess whether a
time is in micro- or milliseconds. The values are already in those units; ``None`` where this
kernel does not report the field (an older tcp_info is shorter) or reports "none" (an
ssthresh never set, a pacing rate with no limit).
"""

from __future__ import annotations

import operator

from tcpstates.model.record import Record, fields

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from typing import Any


class TcpInfo(Record):
    """tcp_info (include/uapi/linux/tcp.h) and the congestion control, as ss -ti reports them."""

    congestion: str | None = None  # INET_DIAG_CONG: cubic, bbr, reno ...
    rtt_ms: float | None = None  # smoothed round-trip time
    rttvar_ms: float | None = None
    min_rtt_ms: float | None = None
    rto_ms: float | None = None  # the retransmission timeout now
    ato_ms: float | None = None  # the delayed-ACK timeout
    mss_bytes: int | None = None
    pmtu_bytes: int | None = None
    rcv_mss_bytes: int | None = None
    advmss_bytes: int | None = None
    cwnd_segs: int | None = None
    ssthresh_segs: int | None = None  # None until a loss has set it
    snd_wscale: int | None = None
    rcv_wscale: int | None = None
    retrans_now: int | None = None  # tcpi_retransmits: timeouts in a row for the unacked data
    retrans_segs: int | None = None  # segments retransmitted and not yet acknowledged
    retrans_total: int | None = None  # segments retransmitted over the connection's life
    lost_segs: int | None = None
    unacked_segs: int | None = None
    sacked_segs: int | None = None
    reordering: int | None = None
    bytes_sent: int | None = None
    bytes_retrans: int | None = None
    bytes_acked: int | None = None
    bytes_received: int | None = None
    notsent_bytes: int | None = None
    segs_out: int | None = None
    segs_in: int | None = None
    data_segs_out: int | None = None
    data_segs_in: int | None = None
    delivered_segs: int | None = None
    send_rate_bps: int | None = None  # what cwnd allows per rtt: cwnd * mss * 8 / rtt, as ss
    pacing_rate_bps: int | None = None  # None: no pacing limit
    delivery_rate_bps: int | None = None
    app_limited: bool | None = None  # the last delivery rate was limited by the application
    last_data_sent_ms: int | None = None  # how long ago data was last sent
    last_data_recv_ms: int | None = None  # ... received: a CLOSE_WAIT's time since the FIN
    last_ack_recv_ms: int | None = None
    busy_ms: int | None = None  # time spent sending with data in flight
    rwnd_limited_ms: int | None = None  # ... of it held back by the peer's receive window
    sndbuf_limited_ms: int | None = None  # ... of it held back by our send buffer
    rcv_space_bytes: int | None = None
    rcv_ssthresh_bytes: int | None = None
    snd_wnd_bytes: int | None = None  # the peer's advertised window
    rcv_wnd_bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        # attrgetter fetches the 45 values in C: a third of a getattr loop's time, per socket.
        return dict(zip(INFO_FIELDS, _info_values(self), strict=True))


class Memory(Record):
    """INET_DIAG_SKMEMINFO (SK_MEMINFO_*, include/uapi/linux/sock_diag.h), as ss -m's skmem."""

    rmem_alloc_bytes: int  # r: received data held, not yet read by the application
    rcvbuf_bytes: int  # rb: the receive buffer's limit
    wmem_alloc_bytes: int  # t: sent data the kernel still holds (in the qdisc, the driver)
    sndbuf_bytes: int  # tb: the send buffer's limit
    fwd_alloc_bytes: int  # f: memory reserved ahead and not used yet
    wmem_queued_bytes: int  # w: data queued to send, sent or not
    optmem_bytes: int  # o: options, filters and other per-socket memory
    backlog_bytes: int  # bl: packets that arrived while the socket was locked
    drops: int  # d: packets dropped before they reached the socket (full buffer, filter)

    def as_dict(self) -> dict[str, Any]:
        return dict(zip(MEMORY_FIELDS, _memory_values(self), strict=True))


INFO_FIELDS: tuple[str, ...] = fields(TcpInfo)
MEMORY_FIELDS: tuple[str, ...] = fields(Memory)
_info_values = operator.attrgetter(*INFO_FIELDS)
_memory_values = operator.attrgetter(*MEMORY_FIELDS)
# ss -m's letters for the same values, in its order.
SKMEM_LETTERS = ("r", "rb", "t", "tb", "f", "w", "o", "bl", "d")
