"""What the kernel's TCP counters that matter count, one line each, by the name nstat prints.

Names are nstat's: the group and the counter run together (``TcpExtListenOverflows`` is
/proc/net/netstat's ``TcpExt: ListenOverflows``). The lines follow the kernel's
Documentation/networking/snmp_counter.rst and the code that counts them (net/ipv4/tcp_*.c).
"""

from __future__ import annotations

from tcpstates.model.i18n import N_

MEANINGS: dict[str, str] = {
    "TcpActiveOpens": N_("connect() calls that sent a SYN (SYN_SENT entered)"),
    "TcpPassiveOpens": N_("handshakes a listener answered (SYN_RECV entered)"),
    "TcpAttemptFails": N_("connections reset or timed out while still in SYN_SENT or SYN_RECV"),
    "TcpEstabResets": N_("connections reset while in ESTABLISHED or CLOSE_WAIT"),
    "TcpCurrEstab": N_("connections in ESTABLISHED or CLOSE_WAIT now (a level, not a count)"),
    "TcpInSegs": N_("segments received, errors included"),
    "TcpOutSegs": N_("segments sent, retransmissions left out"),
    "TcpRetransSegs": N_("segments sent again: loss, or a peer or path too slow to ACK"),
    "TcpInErrs": N_("segments received with errors (a bad checksum, a bad header)"),
    "TcpInCsumErrors": N_("segments received with a bad checksum: a broken NIC, path or offload"),
    "TcpOutRsts": N_("RSTs sent: to closed ports, aborted connections, killed sockets"),
    "TcpExtListenOverflows": N_(
        "connections dropped because a listener's accept queue was full: the application"
        " calls accept() too slowly"
    ),
    "TcpExtListenDrops": N_(
        "SYNs and handshakes a listener dropped, for any reason (overflows included)"
    ),
    "TcpExtSyncookiesSent": N_(
        "SYN cookies sent: a SYN queue was full (a SYN flood, or a backlog too small)"
    ),
    "TcpExtSyncookiesRecv": N_("ACKs carrying a valid SYN cookie: handshakes that completed"),
    "TcpExtSyncookiesFailed": N_("ACKs whose SYN cookie did not check out"),
    "TcpExtTCPReqQFullDoCookies": N_("SYNs answered with a cookie because the SYN queue was full"),
    "TcpExtTCPReqQFullDrop": N_("SYNs dropped because the SYN queue was full and cookies are off"),
    "TcpExtTCPTimeWaitOverflow": N_(
        "closes that skipped TIME_WAIT because tcp_max_tw_buckets was reached"
    ),
    "TcpExtTW": N_("TIME_WAIT sockets that ended after their 60 s"),
    "TcpExtTWRecycled": N_("TIME_WAIT sockets whose port a new connection reused (tcp_tw_reuse)"),
    "TcpExtTCPAbortOnData": N_(
        "connections reset because data came after the application closed, or it closed with"
        " SO_LINGER 0"
    ),
    "TcpExtTCPAbortOnClose": N_(
        "connections reset because the application closed with data unread in its receive queue"
    ),
    "TcpExtTCPAbortOnMemory": N_(
        "connections reset because TCP ran out of memory (tcp_mem) or orphans (tcp_max_orphans)"
    ),
    "TcpExtTCPAbortOnTimeout": N_(
        "connections given up after too many retransmissions or keepalive probes went unanswered"
    ),
    "TcpExtTCPAbortOnLinger": N_(
        "closed connections reset instead of waiting in FIN_WAIT2 (TCP_LINGER2 below 0)"
    ),
    "TcpExtTCPAbortFailed": N_("RSTs that could not be sent (no memory)"),
    "TcpExtTCPSynRetrans": N_("SYNs and SYN-ACKs sent again: a peer or path that does not answer"),
    "TcpExtTCPTimeouts": N_("retransmission timer expiries: the slowest way TCP recovers a loss"),
    "TcpExtTCPLostRetransmit": N_("retransmissions that were lost again"),
    "TcpExtTCPFastRetrans": N_("segments sent again on duplicate ACKs or SACKs, before the timer"),
    "TcpExtTCPOFOQueue": N_("segments that arrived out of order and were queued"),
    "TcpExtTCPRcvQDrop": N_("segments dropped because a socket's receive buffer was full"),
    "TcpExtTCPBacklogDrop": N_(
        "segments dropped because a busy socket's backlog was full (the application holds its lock)"
    ),
    "TcpExtPruneCalled": N_("receive queues pruned to stay within their buffer"),
    "TcpExtRcvPruned": N_("segments dropped from a receive queue that could not be pruned enough"),
    "TcpExtOfoPruned": N_("out-of-order segments dropped to free memory"),
    "TcpExtTCPMemoryPressures": N_("times TCP entered memory pressure (tcp_mem's second value)"),
    "TcpExtTCPMemoryPressuresChrono": N_("milliseconds spent under memory pressure"),
    "TcpExtTCPZeroWindowDrop": N_("segments dropped because this end's window was zero"),
    "TcpExtTCPToZeroWindowAdv": N_("times this end advertised a zero window: it stopped reading"),
    "TcpExtTCPWantZeroWindowAdv": N_("times this end wanted to close its window: a slow reader"),
    "TcpExtTCPKeepAlive": N_("keepalive probes sent"),
    "TcpExtEmbryonicRsts": N_("RSTs received for connections still in SYN_RECV"),
    "TcpExtOutOfWindowIcmps": N_("ICMP errors dropped because they named data out of the window"),
    "TcpExtTCPOrphanQueued": N_("orphaned sockets kept while their data is sent"),
}

# Not counters: constants the kernel prints among them, shown only with -z or when named.
CONSTANTS = frozenset(
    {"IpForwarding", "IpDefaultTTL", "TcpRtoAlgorithm", "TcpRtoMin", "TcpRtoMax", "TcpMaxConn"}
)
# Levels, not counts: a difference over time means nothing (nstat keeps these and the constants
# out of its history for that reason). Shown as they are, never as a change or a rate.
GAUGES = CONSTANTS | {"TcpCurrEstab"}
