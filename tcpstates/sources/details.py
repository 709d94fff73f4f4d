"""The attributes sock_diag sends when asked (tcp_info, congestion control, memory), decoded
into the record's details in the units their names carry.

tcp_info grows with kernels: a shorter one than this layout leaves the fields it lacks None,
as ss leaves them out; one longer is read as far as this layout goes.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Mapping

from tcpstates.model.details import Memory, TcpInfo
from tcpstates.model.record import bulk_constructor
from tcpstates.sources import inet_diag as diag

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from tcpstates.model.sockets import Details, Socket
    from tcpstates.sources.cgroups import CgroupPaths

# struct tcp_info (include/uapi/linux/tcp.h) up to tcpi_rcv_wnd, in order; "_" marks what is
# not reported. Byte 6 holds the two window scales, byte 7 the app-limited bit.
_LAYOUT = (
    ("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"),
    ("backoff", "B"), ("options", "B"), ("wscale", "B"), ("flags", "B"),
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"),
    ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"),
    ("snd_ssthresh", "I"), ("snd_cwnd", "I"), ("advmss", "I"), ("reordering", "I"),
    ("rcv_rtt", "I"), ("rcv_space", "I"), ("total_retrans", "I"),
    ("pacing_rate", "Q"), ("max_pacing_rate", "Q"), ("bytes_acked", "Q"),
    ("bytes_received", "Q"), ("segs_out", "I"), ("segs_in", "I"),
    ("notsent_bytes", "I"), ("min_rtt", "I"), ("data_segs_in", "I"), ("data_segs_out", "I"),
    ("delivery_rate", "Q"), ("busy_time", "Q"), ("rwnd_limited", "Q"),
    ("sndbuf_limited", "Q"), ("delivered", "I"), ("delivered_ce", "I"),
    ("bytes_sent", "Q"), ("bytes_retrans", "Q"), ("dsack_dups", "I"), ("reord_seen", "I"),
    ("rcv_ooopack", "I"), ("snd_wnd", "I"), ("rcv_wnd", "I"),
)  # fmt: skip
_TCP_INFO = struct.Struct("=" + "".join(kind for _, kind in _LAYOUT))
_NAMES = tuple(name for name, _ in _LAYOUT)
# Where each field ends: a tcp_info shorter than that lacks it.
_ENDS = {
    name: struct.calcsize("=" + "".join(kind for _, kind in _LAYOUT[: i + 1]))
    for i, (name, _) in enumerate(_LAYOUT)
}
_NONE32, _NONE64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
_INFINITE_SSTHRESH = 0x7FFFFFFF  # TCP_INFINITE_SSTHRESH: no loss has set it yet
_LISTEN = bytes([10])  # tcpi_state of a listener
_MEMINFO_VARS = 9  # SK_MEMINFO_RMEM_ALLOC ... SK_MEMINFO_DROPS


def tcp_info(attributes: Mapping[int, bytes]) -> TcpInfo | None:
    """The record's tcp_info, None where the kernel sent none (timewait and request sockets
    have none)."""
    raw = attributes.get(diag.INET_DIAG_INFO)
    if raw is None:
        return None
    if raw[:1] == _LISTEN:
        # A listener's tcp_info stops after its queues (tcp_get_info), which its record's
        # Recv-Q and Send-Q already hold: the rest would be zeros that look like facts.
        return TcpInfo(congestion=congestion(attributes))
    if len(raw) >= _TCP_INFO.size:
        return _whole(_TCP_INFO.unpack_from(raw), congestion(attributes))
    size = len(raw)
    padded = raw.ljust(_TCP_INFO.size, b"\0")
    t: dict[str, int | None] = dict(zip(_NAMES, _TCP_INFO.unpack(padded), strict=True))
    for name, end in _ENDS.items():
        if end > size:
            t[name] = None
    return _decoded(t, congestion(attributes))


def congestion(attributes: Mapping[int, bytes]) -> str | None:
    raw = attributes.get(diag.INET_DIAG_CONG)
    if raw is None:
        return None
    return raw.split(b"\0", 1)[0].decode("ascii", "backslashreplace")


_new_info = bulk_constructor(TcpInfo)


def _whole(t: tuple[int, ...], cong: str | None) -> TcpInfo:
    """``_decoded`` for a tcp_info that has every field of _LAYOUT, as this kernel's does:
    by position, into a twin (model/record.bulk_constructor). Reading tcp_info for 100,000
    sockets this costs about a fifth of ``_decoded``'s dict and keywords (tests/test_details.py
    holds the two to one answer)."""
    (_, _, retransmits, _, _, _, wscale, flags, rto, ato, snd_mss, rcv_mss, unacked, sacked,
     lost, retrans, _, last_data_sent, _, last_data_recv, last_ack_recv, pmtu, rcv_ssthresh,
     rtt, rttvar, snd_ssthresh, cwnd, advmss, reordering, _, rcv_space, total_retrans,
     pacing_rate, _, bytes_acked, bytes_received, segs_out, segs_in, notsent_bytes, min_rtt,
     data_segs_in, data_segs_out, delivery_rate, busy_time, rwnd_limited, sndbuf_limited,
     delivered, _, bytes_sent, bytes_retrans, _, _, _, snd_wnd, rcv_wnd) = t  # fmt: skip
    return _new_info(
        cong, rtt / 1000, rttvar / 1000, None if min_rtt == _NONE32 else min_rtt / 1000,
        rto / 1000, ato / 1000, snd_mss, pmtu, rcv_mss, advmss, cwnd,
        None if snd_ssthresh == _INFINITE_SSTHRESH else snd_ssthresh,
        wscale & 0x0F, wscale >> 4, retransmits, retrans, total_retrans, lost, unacked, sacked,
        reordering, bytes_sent, bytes_retrans, bytes_acked, bytes_received, notsent_bytes,
        segs_out, segs_in, data_segs_out, data_segs_in, delivered,
        round(cwnd * snd_mss * 8_000_000 / rtt) if rtt and snd_mss and cwnd else None,
        None if pacing_rate == _NONE64 else pacing_rate * 8,
        None if delivery_rate == _NONE64 else delivery_rate * 8,
        bool(flags & 1), last_data_sent, last_data_recv, last_ack_recv, busy_time // 1000,
        rwnd_limited // 1000, sndbuf_limited // 1000, rcv_space, rcv_ssthresh, snd_wnd, rcv_wnd,
    )  # fmt: skip


def _decoded(t: dict[str, int | None], cong: str | None) -> TcpInfo:
    """tcp_info's raw fields in the units TcpInfo's names carry (times in µs become ms)."""
    wscale, flags = t["wscale"] or 0, t["flags"] or 0
    rtt_us, mss, cwnd = t["rtt"], t["snd_mss"], t["snd_cwnd"]
    send_rate = None
    if rtt_us and mss and cwnd:
        send_rate = round(cwnd * mss * 8_000_000 / rtt_us)
    return TcpInfo(
        congestion=cong,
        rtt_ms=_ms(rtt_us),
        rttvar_ms=_ms(t["rttvar"]),
        min_rtt_ms=None if t["min_rtt"] == _NONE32 else _ms(t["min_rtt"]),
        rto_ms=_ms(t["rto"]),
        ato_ms=_ms(t["ato"]),
        mss_bytes=mss,
        pmtu_bytes=t["pmtu"],
        rcv_mss_bytes=t["rcv_mss"],
        advmss_bytes=t["advmss"],
        cwnd_segs=cwnd,
        ssthresh_segs=None if t["snd_ssthresh"] == _INFINITE_SSTHRESH else t["snd_ssthresh"],
        snd_wscale=wscale & 0x0F,
        rcv_wscale=wscale >> 4,
        retrans_now=t["retransmits"],
        retrans_segs=t["retrans"],
        retrans_total=t["total_retrans"],
        lost_segs=t["lost"],
        unacked_segs=t["unacked"],
        sacked_segs=t["sacked"],
        reordering=t["reordering"],
        bytes_sent=t["bytes_sent"],
        bytes_retrans=t["bytes_retrans"],
        bytes_acked=t["bytes_acked"],
        bytes_received=t["bytes_received"],
        notsent_bytes=t["notsent_bytes"],
        segs_out=t["segs_out"],
        segs_in=t["segs_in"],
        data_segs_out=t["data_segs_out"],
        data_segs_in=t["data_segs_in"],
        delivered_segs=t["delivered"],
        send_rate_bps=send_rate,
        pacing_rate_bps=_bps(t["pacing_rate"]),
        delivery_rate_bps=_bps(t["delivery_rate"]),
        app_limited=bool(flags & 1),
        last_data_sent_ms=t["last_data_sent"],
        last_data_recv_ms=t["last_data_recv"],
        last_ack_recv_ms=t["last_ack_recv"],
        busy_ms=_whole_ms(t["busy_time"]),
        rwnd_limited_ms=_whole_ms(t["rwnd_limited"]),
        sndbuf_limited_ms=_whole_ms(t["sndbuf_limited"]),
        rcv_space_bytes=t["rcv_space"],
        rcv_ssthresh_bytes=t["rcv_ssthresh"],
        snd_wnd_bytes=t["snd_wnd"],
        rcv_wnd_bytes=t["rcv_wnd"],
    )


def _ms(microseconds: int | None) -> float | None:
    return None if microseconds is None else microseconds / 1000


def _whole_ms(microseconds: int | None) -> int | None:
    return None if microseconds is None else microseconds // 1000


def _bps(bytes_per_second: int | None) -> int | None:
    """A rate in bytes a second as bits a second; None for none or "no limit" (~0)."""
    if bytes_per_second is None or bytes_per_second == _NONE64:
        return None
    return bytes_per_second * 8


def memory(attributes: Mapping[int, bytes]) -> Memory | None:
    """INET_DIAG_SKMEMINFO's nine counters; None where the kernel sent none."""
    raw = attributes.get(diag.INET_DIAG_SKMEMINFO)
    if raw is None:
        return None
    counts = struct.unpack(f"={len(raw) // 4}I", raw[: len(raw) // 4 * 4])
    return Memory(*(counts + (0,) * _MEMINFO_VARS)[:_MEMINFO_VARS])


def v6only(attributes: Mapping[int, bytes]) -> bool | None:
    """An IPv6 listener's or unconnected socket's IPV6_V6ONLY; None where not sent."""
    raw = attributes.get(diag.INET_DIAG_SKV6ONLY)
    return None if not raw else bool(raw[0])


def cgroup_id(attributes: Mapping[int, bytes]) -> int | None:
    """INET_DIAG_CGROUP_ID: the id of the cgroup v2 the socket was made in; None where not sent
    (kernels before 5.7, timewait and request sockets)."""
    raw = attributes.get(diag.INET_DIAG_CGROUP_ID)
    return None if raw is None or len(raw) < 8 else int.from_bytes(raw[:8], sys.byteorder)


def complete(
    sock: Socket, found: dict[int, bytes], details: Details, cgroups: CgroupPaths | None
) -> None:
    """What ``found`` (a record's attributes) adds to ``sock``, as ``details`` asks: its
    cgroup, tcp_info, memory and IPV6_V6ONLY."""
    # Made a moment ago for this reading alone: completed in place (see namespaced._fill).
    if cgroups is not None:
        found_id = cgroup_id(found)
        if found_id is not None:
            object.__setattr__(sock, "cgroup", cgroups.path(found_id))
    if details.info:
        object.__setattr__(sock, "info", tcp_info(found))
    if details.memory:
        object.__setattr__(sock, "memory", memory(found))
    v6only_off = v6only(found)
    if v6only_off is not None:
        object.__setattr__(sock, "v6only", v6only_off)
