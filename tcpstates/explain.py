"""Explanations of states: the manual's words, the state machine around it, what to do.

Built from ``states`` (names, descriptions) and ``lifecycle`` (transitions, sides) plus a live
count; this module adds only what an operator needs beyond them: why sockets pile up in a state
and what to check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tcpstates import lifecycle
from tcpstates.lifecycle import Side, Transition
from tcpstates.states import TcpState

S = TcpState

# state -> (what many sockets in it usually mean, what to check)
ADVICE: dict[TcpState, tuple[str, str]] = {
    S.ESTABLISHED: (
        "Open connections carrying data; normal. Far more than usual means clients or pools"
        " holding idle connections, or connections that are opened and never closed.",
        "Who holds them and to which peers: tcpstates -s established --port N; idle ones"
        " are reaped by application timeouts or TCP keepalive.",
    ),
    S.SYN_SENT: (
        "Outgoing connections that get no answer: the peer is down, a firewall drops SYNs"
        " silently, or the peer's accept queue is full.",
        "Whether the remote address and port answer at all; a DROP firewall rule keeps sockets"
        " here for about two minutes (net.ipv4.tcp_syn_retries), a REJECT rule ends it at once.",
    ),
    S.SYN_RECV: (
        "Handshakes this host answered that the client never completed: a SYN flood, a lossy"
        " path, or a listener whose accept queue is full so the final ACK is dropped.",
        "net.ipv4.tcp_syncookies should be 1; the LISTEN socket's Recv-Q against its Send-Q"
        " (accept queue against backlog); nstat -az TcpExtListenOverflows TcpExtListenDrops.",
    ),
    S.FIN_WAIT1: (
        "This end closed but its FIN is not acknowledged: the peer is gone, or the FIN waits"
        " behind unsent data because the peer stopped reading (zero window).",
        "Send-Q of these sockets (data queued ahead of the FIN) and whether the peers are alive;"
        " orphaned ones give up after net.ipv4.tcp_orphan_retries.",
    ),
    S.FIN_WAIT2: (
        "This end closed and the peer acknowledged, but the peer's application has not closed"
        " its end yet. Kernel-owned (orphaned) ones go away after net.ipv4.tcp_fin_timeout.",
        "Which remote endpoints they point to; a socket with an owner (PID) used shutdown() and"
        " waits for the peer without a time limit.",
    ),
    S.TIME_WAIT: (
        "Normal on the end that closes first: each socket lingers 60 s (fixed in Linux) so that"
        " late packets of the old connection cannot corrupt a new one. Thousands mean many"
        " short connections closed by this host; they only hurt when they use up the ephemeral"
        " ports towards one destination.",
        "Which end closes first, and whether connections can be reused (keep-alive, pools);"
        " net.ipv4.tcp_tw_reuse=1 lets outgoing connections reuse them safely;"
        " net.ipv4.ip_local_port_range sets the port budget. Shortening TIME_WAIT is not it.",
    ),
    S.CLOSE: (
        "Sockets that exist but are neither connected nor listening: created, bound, or just"
        " closed. For UDP this is simply an unconnected socket.",
        "Usually nothing; a TCP socket that stays here was bound or created and never used.",
    ),
    S.CLOSE_WAIT: (
        "The peer closed its end and the kernel acknowledged it, but the local application has"
        " not called close(). The kernel never times this state out, so a pile of CLOSE_WAIT is"
        " almost always a bug in the application: a leaked connection, a missing close() on an"
        " error path, or a stuck worker.",
        "The owning process: tcpstates -s close-wait (the PID column); how its code handles a"
        " peer that disconnects (a read returning 0 bytes). Restarting the process clears them;"
        " fixing the missing close() keeps them away.",
    ),
    S.LAST_ACK: (
        "Both ends closed; this end waits for the acknowledgement of its FIN. A pile means the"
        " peers vanished or the FIN is stuck behind unsent data.",
        "Send-Q of these sockets and whether the peers are reachable; they are retransmitted"
        " and then dropped.",
    ),
    S.LISTEN: (
        "Servers waiting for connections: one socket per listening address and port.",
        "Recv-Q is the accept queue now and Send-Q its limit (the backlog); Recv-Q at Send-Q"
        " means the application does not accept() fast enough (net.core.somaxconn caps it).",
    ),
    S.CLOSING: (
        "Both ends closed at the same time and this end's FIN is not yet acknowledged. Rare;"
        " many mean lost ACKs or a peer that stopped reading with data in flight.",
        "Send-Q of these sockets and the health of the peers.",
    ),
    S.NEW_SYN_RECV: (
        "The same as SYN_RECV: handshakes answered but not completed.",
        "The same as for SYN_RECV.",
    ),
    S.BOUND_INACTIVE: (
        "Sockets bound to a port without listening or connecting; each holds its port.",
        "Which process binds ports it never uses.",
    ),
    S.UNKNOWN: (
        "A state code this version of tcpstates does not know, from a newer kernel or a"
        " damaged capture.",
        "The raw line in /proc/net/tcp; please report it.",
    ),
}


@dataclass(frozen=True, slots=True)
class Explanation:
    state: TcpState
    sides: tuple[Side, ...]
    into: tuple[Transition, ...]
    out_of: tuple[Transition, ...]
    piles_up: str
    check: str
    count: int | None = None

    @property
    def names(self) -> str:
        return f"ss: {self.state.ss_name}, kernel: TCP_{self.state.name} = {self.state.value}" + (
            f", /proc/net/tcp: {self.state.value:02X}" if self.state is not S.UNKNOWN else ""
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.name,
            "ss_name": self.state.ss_name,
            "code": self.state.value,
            "phase": self.state.phase.value,
            "description": self.state.description,
            "description_source": "netstat(8)" if self.state.info.from_manual else "tcpstates",
            "sides": [side.value for side in self.sides],
            "from": [_transition_dict(t) for t in self.into],
            "to": [_transition_dict(t) for t in self.out_of],
            "piles_up": self.piles_up,
            "check": self.check,
            "count": self.count,
        }


def explain(state: TcpState, count: int | None = None) -> Explanation:
    piles_up, check = ADVICE[state]
    return Explanation(
        state=state,
        sides=lifecycle.sides(state),
        into=lifecycle.transitions_into(state),
        out_of=lifecycle.transitions_out_of(state),
        piles_up=piles_up,
        check=check,
        count=count,
    )


def _transition_dict(t: Transition) -> dict[str, Any]:
    return {
        "from": t.source.name,
        "to": t.target.name,
        "event": t.event,
        "side": t.side.name.lower(),
        "linux_only": t.linux_only,
    }
