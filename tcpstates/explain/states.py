"""Explanations of states: the manual's words, the state machine around it, what to do.

Built from ``states`` (names, descriptions) and ``lifecycle`` (transitions, sides) plus a live
count; this module adds only what an operator needs beyond them: why sockets pile up in a state
and what to check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tcpstates.model import lifecycle
from tcpstates.model.i18n import N_, _, language
from tcpstates.model.lifecycle import Side, Transition
from tcpstates.model.states import WINDOWS_DELETE_TCB, Names, TcpState, names, windows_state
from tcpstates.model.tunables import NONE_GOVERNS, Setting

S = TcpState

# state -> (what many sockets in it usually mean, what to check)
ADVICE: dict[TcpState, tuple[str, str]] = {
    S.ESTABLISHED: (
        N_(
            "Open connections carrying data; normal. Far more than usual means clients or pools"
            " holding idle connections, or connections that are opened and never closed."
        ),
        N_(
            "Who holds them and to which peers: tcpstates -s established --port N; idle ones"
            " are reaped by application timeouts or TCP keepalive."
        ),
    ),
    S.SYN_SENT: (
        N_(
            "Outgoing connections that get no answer: the peer is down, a firewall drops SYNs"
            " silently, or the peer's accept queue is full."
        ),
        N_(
            "Whether the remote address and port answer at all; a DROP firewall rule keeps sockets"
            " here for about two minutes (net.ipv4.tcp_syn_retries), a REJECT rule ends it at once."
        ),
    ),
    S.SYN_RECV: (
        N_(
            "Handshakes this host answered that the client never completed: a SYN flood, a lossy"
            " path, or a listener whose accept queue is full so the final ACK is dropped. A"
            " listener keeps at most its backlog + 1 of them (listen()'s backlog capped by"
            " somaxconn: its Send-Q), whatever tcp_max_syn_backlog says; further SYNs get a SYN"
            " cookie, which takes no place in the queue (tcp_syncookies 1), or are dropped (0)."
        ),
        N_(
            "Which listener they wait at, from how many sources, and whether cookies are sent"
            " or SYNs dropped now: tcpstates doctor. net.ipv4.tcp_syncookies should be 1; a"
            " burst of real clients needs a larger listen() backlog and somaxconn; how fast"
            " the kernel counts them: tcpstates counters --interval 5 'TcpExtSyncookies*'"
            " TcpExtTCPReqQFullDrop TcpExtListenOverflows."
        ),
    ),
    S.FIN_WAIT1: (
        N_(
            "This end closed but its FIN is not acknowledged: the peer is gone, or the FIN waits"
            " behind unsent data because the peer stopped reading (zero window)."
        ),
        N_(
            "Send-Q of these sockets (data queued ahead of the FIN) and whether the peers are"
            " alive; orphaned ones give up after net.ipv4.tcp_orphan_retries."
        ),
    ),
    S.FIN_WAIT2: (
        N_(
            "This end closed and the peer acknowledged, but the peer's application has not closed"
            " its end yet. Kernel-owned (orphaned) ones go away after net.ipv4.tcp_fin_timeout."
        ),
        N_(
            "Which remote endpoints they point to; a socket with an owner (PID) used shutdown() and"
            " waits for the peer without a time limit."
        ),
    ),
    S.TIME_WAIT: (
        N_(
            "Normal on the end that closes first: each socket lingers 60 s (fixed in Linux) so that"
            " late packets of the old connection cannot corrupt a new one. Thousands mean many"
            " short connections closed by this host; they only hurt when they use up the ephemeral"
            " ports towards one destination."
        ),
        N_(
            "Which end closes first, and whether connections can be reused (keep-alive, pools);"
            " net.ipv4.tcp_tw_reuse=1 lets outgoing connections reuse them safely;"
            " net.ipv4.ip_local_port_range sets the port budget. Shortening TIME_WAIT is not it."
        ),
    ),
    S.CLOSE: (
        N_(
            "Sockets that exist but are neither connected nor listening: created, bound, or just"
            " closed. For UDP this is simply an unconnected socket."
        ),
        N_("Usually nothing; a TCP socket that stays here was bound or created and never used."),
    ),
    S.CLOSE_WAIT: (
        N_(
            "The peer closed its end and the kernel acknowledged it, but the local application has"
            " not called close(). The kernel never times this state out, so a pile of CLOSE_WAIT is"
            " almost always a bug in the application: a leaked connection, a missing close() on an"
            " error path, or a stuck worker."
        ),
        N_(
            "The owning process: tcpstates -s close-wait (the PID column); how its code handles a"
            " peer that disconnects (a read returning 0 bytes). Restarting the process clears them;"
            " fixing the missing close() keeps them away."
        ),
    ),
    S.LAST_ACK: (
        N_(
            "Both ends closed; this end waits for the acknowledgement of its FIN. A pile means the"
            " peers vanished or the FIN is stuck behind unsent data."
        ),
        N_(
            "Send-Q of these sockets and whether the peers are reachable; they are retransmitted"
            " and then dropped."
        ),
    ),
    S.LISTEN: (
        N_("Servers waiting for connections: one socket per listening address and port."),
        N_(
            "Recv-Q is the accept queue now and Send-Q its limit (the backlog); Recv-Q at Send-Q"
            " means the application does not accept() fast enough (net.core.somaxconn caps it)."
        ),
    ),
    S.CLOSING: (
        N_(
            "Both ends closed at the same time and this end's FIN is not yet acknowledged. Rare;"
            " many mean lost ACKs or a peer that stopped reading with data in flight."
        ),
        N_("Send-Q of these sockets and the health of the peers."),
    ),
    S.NEW_SYN_RECV: (
        N_("The same as SYN_RECV: handshakes answered but not completed."),
        N_("The same as for SYN_RECV."),
    ),
    S.BOUND_INACTIVE: (
        N_("Sockets bound to a port without listening or connecting; each holds its port."),
        N_("Which process binds ports it never uses."),
    ),
    S.UNKNOWN: (
        N_(
            "A state code this version of tcpstates does not know, from a newer kernel or a"
            " damaged capture."
        ),
        N_("The raw line in /proc/net/tcp; please report it."),
    ),
}


# What destroying a socket does to each end and what it does not cure, written once: --explain
# CLOSE_WAIT says it, doctor's CLOSE_WAIT finding says it, and tcpstates-kill(1) says it in
# the same words (tests/test_kill.py holds the three together).
KILLING = N_(
    "tcpstates kill destroys them at once, as ss -K does: the application gets an error,"
    " ECONNABORTED, on its next call on the socket (a read that would return end of file still"
    " does first), and the peer gets a RST. That clears the pile, not its cause: fixing the code"
    " that does not close is the real cure."
)
# The states whose explanation says what killing does: where killing is what people reach for.
KILL_ADVICE: dict[TcpState, str] = {S.CLOSE_WAIT: KILLING}


@dataclass(frozen=True, slots=True)
class Explanation:
    """What there is to say about one state. Text is kept in English, as in the source;
    renderers and ``as_dict`` show it in the language in use (``i18n``)."""

    state: TcpState
    sides: tuple[Side, ...]
    into: tuple[Transition, ...]
    out_of: tuple[Transition, ...]
    piles_up: str
    check: str
    count: int | None = None
    settings: tuple[Setting, ...] | None = None  # None: not read (no "settings" section)
    killing: str | None = None  # what tcpstates kill does to such sockets, where it is asked

    @property
    def names(self) -> str:
        return f"ss: {self.state.ss_name}, kernel: TCP_{self.state.name} = {self.state.value}" + (
            f", /proc/net/tcp: {self.state.value:02X}" if self.state is not S.UNKNOWN else ""
        )

    @property
    def vocabulary(self) -> Names:
        return names(self.state)

    def as_dict(self) -> dict[str, Any]:
        state = self.state
        data: dict[str, Any] = {
            "state": state.name,
            "ss_name": state.ss_name,
            "code": state.value,
            "phase": state.phase.value,
            "description": state.description,
            "description_source": "netstat(8)" if state.info.from_manual else "tcpstates",
        }
        if language() != "en":
            data["description_translated"] = _(state.description)
        data.update(
            {
                "names": names_dict(state),
                "names_note": name_clashes(state),
                "sides": [_(side.value) for side in self.sides],
                "from": [_transition_dict(t) for t in self.into],
                "to": [_transition_dict(t) for t in self.out_of],
                "piles_up": _(self.piles_up),
                "check": _(self.check),
                "killing": _(self.killing) if self.killing else None,
                "count": self.count,
            }
        )
        if self.settings is not None:
            data["settings"] = [_setting_dict(s) for s in self.settings]
            data["settings_note"] = _(NONE_GOVERNS[state]) if state in NONE_GOVERNS else None
        return data


def explain(
    state: TcpState, count: int | None = None, settings: Sequence[Setting] | None = None
) -> Explanation:
    piles_up, check = ADVICE[state]
    return Explanation(
        state=state,
        sides=lifecycle.sides(state),
        into=lifecycle.transitions_into(state),
        out_of=lifecycle.transitions_out_of(state),
        piles_up=piles_up,
        check=check,
        count=count,
        settings=None if settings is None else tuple(settings),
        killing=KILL_ADVICE.get(state),
    )


def names_dict(state: TcpState) -> dict[str, Any]:
    """Every vocabulary's name for ``state`` (null where one has none), as JSON gives it."""
    n = names(state)
    return {
        "netstat": n.netstat,
        "ss": n.ss,
        "kernel": n.kernel,
        "code": n.code,
        "proc_net_tcp": n.proc_hex,
        "psutil": n.psutil,
        "node_exporter": n.node_exporter,
        "rfc9293": n.rfc9293,
        "windows": n.windows,
        "windows_mib": n.windows_mib,
        "windows_code": n.windows_code,
    }


def name_clashes(state: TcpState) -> str | None:
    """A warning where the same number names different states on Linux and Windows, or None.

    Windows numbers its states 1 (Closed) to 12 (DeleteTcb), Linux 1 (ESTABLISHED) to 13, so
    a bare number from a log or an API means nothing without the system it came from.
    """
    n = names(state)
    clashes = []
    if n.windows_code is not None:
        linux = TcpState(n.windows_code)
        if linux is not state and linux is not S.UNKNOWN:
            clashes.append(
                _("Windows' {number} is {other} on Linux").format(
                    number=n.windows_code, other=linux.name
                )
            )
    if n.code is not None:
        windows = windows_state(n.code)
        if windows == WINDOWS_DELETE_TCB[0]:
            clashes.append(
                _("Linux's {number} is {other} on Windows, a connection being deleted").format(
                    number=n.code, other=windows
                )
            )
        elif windows is not None and windows != n.windows:
            clashes.append(
                _("Linux's {number} is {other} on Windows").format(number=n.code, other=windows)
            )
    if not clashes:
        return None
    return _("The numbers differ between systems: {clashes}.").format(clashes="; ".join(clashes))


def _transition_dict(t: Transition) -> dict[str, Any]:
    return {
        "from": t.source.name,
        "to": t.target.name,
        "event": _(t.event),
        "side": t.side.name.lower(),
        "linux_only": t.linux_only,
        "sends": t.sends,
    }


def _setting_dict(setting: Setting) -> dict[str, Any]:
    tunable = setting.tunable
    return {
        "name": tunable.name,
        "value": setting.value,
        "unit": tunable.unit or None,
        "constant": setting.constant,
        "meaning": _(tunable.meanings[setting.value])
        if setting.value in tunable.meanings
        else None,
        "does": _(tunable.does),
        "does_not": _(tunable.does_not),
    }
