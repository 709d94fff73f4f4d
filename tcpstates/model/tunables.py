"""The kernel settings that govern each state: what changing one does and what it does not.

A table only. The values on this host are read by ``sources.kernel.read_settings`` from /proc/sys
of the network namespace tcpstates runs in; a setting this kernel lacks is shown as n/a.
TIME_WAIT's length is no setting at all but a constant compiled into the kernel, and is shown
as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tcpstates.model.i18n import N_
from tcpstates.model.states import TcpState

S = TcpState


@dataclass(frozen=True, slots=True)
class Tunable:
    name: str  # a sysctl (net.ipv4.tcp_fin_timeout) or, with ``fixed``, a kernel constant
    does: str
    does_not: str
    unit: str = ""  # "s" for seconds
    meanings: dict[str, str] = field(default_factory=dict)  # value -> what it means
    fixed: str | None = None  # the value of a compiled-in constant


@dataclass(frozen=True, slots=True)
class Setting:
    """A tunable and its value here (None: this kernel has no such file, shown as n/a)."""

    tunable: Tunable
    value: str | None

    @property
    def constant(self) -> bool:
        return self.tunable.fixed is not None


_TUNABLES = (
    Tunable(
        "TCP_TIMEWAIT_LEN",
        N_(
            "How long a socket stays in TIME_WAIT: a constant compiled into the kernel"
            " (include/net/tcp.h)."
        ),
        N_(
            "Change with any sysctl (tcp_fin_timeout included, whatever many guides say); only"
            " a rebuilt kernel changes it."
        ),
        unit="s",
        fixed="60",
    ),
    Tunable(
        "net.ipv4.tcp_tw_reuse",
        N_(
            "Lets connect() take the port of a TIME_WAIT socket for a new outgoing connection"
            " to the same peer, when TCP timestamps show it is safe."
        ),
        N_(
            "Shorten TIME_WAIT, lower the count, or help a server: incoming connections never"
            " reuse a TIME_WAIT socket."
        ),
        meanings={"0": N_("off"), "1": N_("on"), "2": N_("loopback only")},
    ),
    Tunable(
        "net.ipv4.tcp_max_tw_buckets",
        N_(
            "The most TIME_WAIT sockets this host keeps; past it, a closing connection skips"
            " TIME_WAIT (counted in TcpExt.TCPTimeWaitOverflow)."
        ),
        N_(
            "Make anything safer: lowering it only removes TIME_WAIT's protection against"
            " late segments of an old connection."
        ),
    ),
    Tunable(
        "net.ipv4.ip_local_port_range",
        N_(
            "The ephemeral ports connect() picks from; each outgoing connection in TIME_WAIT"
            " keeps one towards its peer."
        ),
        N_("Limit incoming connections: a server's connections all share its listening port."),
    ),
    Tunable(
        "net.ipv4.tcp_fin_timeout",
        N_(
            "How long an orphaned FIN_WAIT2 socket (its application has closed it) waits for"
            " the peer's FIN before the kernel drops it."
        ),
        N_(
            "Apply to a socket its application still holds after shutdown(): that one waits"
            " for ever. Nor does it change TIME_WAIT."
        ),
        unit="s",
    ),
    Tunable(
        "net.ipv4.tcp_orphan_retries",
        N_(
            "How many times the kernel retransmits for a socket no process holds any more"
            " before giving up on it; 0 means the built-in 8."
        ),
        N_("Apply to sockets an application still holds: tcp_retries2 governs those."),
    ),
    Tunable(
        "net.ipv4.tcp_max_orphans",
        N_(
            "The most sockets closed by their applications but not yet finished; past it,"
            " new orphans are reset at once."
        ),
        N_("Count TIME_WAIT sockets: tcp_max_tw_buckets limits those."),
    ),
    Tunable(
        "net.ipv4.tcp_retries2",
        N_(
            "How many retransmissions of unacknowledged data before a connection is given up"
            " (15: about 15 minutes)."
        ),
        N_("Notice a peer that vanished while nothing was being sent: that is keepalive's job."),
    ),
    Tunable(
        "net.ipv4.tcp_keepalive_time",
        N_("Idle seconds before the first keepalive probe, on sockets that set SO_KEEPALIVE."),
        N_(
            "Apply to sockets without SO_KEEPALIVE (the default), or close a connection whose"
            " peer still answers."
        ),
        unit="s",
    ),
    Tunable(
        "net.ipv4.tcp_keepalive_intvl",
        N_("Seconds between keepalive probes that get no answer."),
        N_("Make the first probe come sooner: tcp_keepalive_time does."),
        unit="s",
    ),
    Tunable(
        "net.ipv4.tcp_keepalive_probes",
        N_("Unanswered keepalive probes before the connection is dropped."),
        N_("Apply to sockets without SO_KEEPALIVE."),
    ),
    Tunable(
        "net.ipv4.tcp_syn_retries",
        N_(
            "How many times connect() resends its SYN before it fails with ETIMEDOUT (6:"
            " about two minutes)."
        ),
        N_(
            "Apply when the peer answers with RST (refused at once), or shorten a timeout"
            " the application sets itself."
        ),
    ),
    Tunable(
        "net.ipv4.tcp_synack_retries",
        N_(
            "How many times a server resends SYN,ACK to a client that does not finish the"
            " handshake (5: about a minute)."
        ),
        N_("Protect against a flood of forged SYNs on its own: tcp_syncookies does."),
    ),
    Tunable(
        "net.ipv4.tcp_syncookies",
        N_(
            "Answers a SYN with a cookie instead of a queue entry when the listener's SYN queue"
            " is full (more half-open handshakes than its backlog), so a SYN flood cannot shut"
            " clients out; 2: every SYN."
        ),
        N_(
            "Speed up an application that does not accept() its connections: that is the"
            " accept queue (somaxconn)."
        ),
        meanings={"0": N_("off"), "1": N_("when the SYN queue overflows"), "2": N_("always")},
    ),
    Tunable(
        "net.ipv4.tcp_max_syn_backlog",
        N_(
            "Counts only with tcp_syncookies 0: once a listener's SYN queue is within a quarter"
            " of it, SYNs from peers not yet known to be alive are dropped."
        ),
        N_(
            "Bound the SYN queue: each listener's backlog does (listen()'s, capped by"
            " somaxconn; a backlog of 16 keeps 17 half-open handshakes)."
        ),
    ),
    Tunable(
        "net.core.somaxconn",
        N_(
            "Caps the backlog a program passes to listen(): the accept queue of completed"
            " connections (a listener's Send-Q)."
        ),
        N_(
            "Change sockets already listening (they keep the backlog of their listen()), or"
            " help a program that does not call accept()."
        ),
    ),
    Tunable(
        "net.ipv4.tcp_abort_on_overflow",
        N_(
            "When the accept queue is full: 1 resets new connections (clients fail at once),"
            " 0 drops the handshake's last ACK (clients retry)."
        ),
        N_("Make room in the queue: the program still has to accept() faster."),
        meanings={"0": N_("drop, clients retry"), "1": N_("reset")},
    ),
)
TUNABLES: dict[str, Tunable] = {t.name: t for t in _TUNABLES}

# Which settings govern each state, most important first. CLOSE_WAIT has none on purpose: no
# setting ends it, only the application's close().
GOVERNING: dict[TcpState, tuple[str, ...]] = {
    S.ESTABLISHED: (
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_retries2",
    ),
    S.SYN_SENT: ("net.ipv4.tcp_syn_retries", "net.ipv4.ip_local_port_range"),
    S.SYN_RECV: (
        "net.ipv4.tcp_synack_retries",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.tcp_max_syn_backlog",
    ),
    S.FIN_WAIT1: ("net.ipv4.tcp_orphan_retries", "net.ipv4.tcp_max_orphans"),
    S.FIN_WAIT2: ("net.ipv4.tcp_fin_timeout",),
    S.TIME_WAIT: (
        "TCP_TIMEWAIT_LEN",
        "net.ipv4.tcp_tw_reuse",
        "net.ipv4.tcp_max_tw_buckets",
        "net.ipv4.ip_local_port_range",
    ),
    S.CLOSE_WAIT: (),
    S.LAST_ACK: ("net.ipv4.tcp_orphan_retries", "net.ipv4.tcp_max_orphans"),
    S.LISTEN: (
        "net.core.somaxconn",
        "net.ipv4.tcp_max_syn_backlog",
        "net.ipv4.tcp_abort_on_overflow",
    ),
    S.CLOSING: ("net.ipv4.tcp_orphan_retries",),
}
GOVERNING[S.NEW_SYN_RECV] = GOVERNING[S.SYN_RECV]

# What the section says where no setting governs a state at all.
NONE_GOVERNS: dict[TcpState, str] = {
    S.CLOSE_WAIT: N_(
        "None: no kernel setting ends CLOSE_WAIT; only the application's close() does."
    ),
}
