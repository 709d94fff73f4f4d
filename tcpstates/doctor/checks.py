"""Findings about piles of sockets: what is wrong, the evidence, what it means, what to run next.

Each check is a function from the sockets and the kernel's counters and settings to findings; it
reads no files itself, so the same checks run on a live host and on a capture. Severity:
critical (act now; ``tcpstates doctor`` exits 3, FINDINGS), warning (look soon), info (worth
knowing).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

# Finding and Severity live in findings.py, which floods.py builds on too; named here as well,
# for what imports them from checks.
from tcpstates.doctor.findings import Finding as Finding
from tcpstates.doctor.findings import Severity as Severity
from tcpstates.doctor.findings import top_counts as _top
from tcpstates.doctor.floods import counters_line, listen_overflow, syn_flood
from tcpstates.explain.states import ADVICE
from tcpstates.model.ages import held_since_peer_closed_ms
from tcpstates.model.errors import ExitStatus
from tcpstates.model.i18n import _, ngettext
from tcpstates.model.sockets import Socket, endpoint, owner
from tcpstates.model.states import TcpState
from tcpstates.render.units import duration
from tcpstates.sources.kernel import KernelState

S = TcpState


@dataclass(frozen=True, slots=True)
class Thresholds:
    close_wait_warning: int = 10  # CLOSE_WAIT sockets one process may hold before we warn
    close_wait_critical: int = 1000
    ports_warning: float = 0.5  # share of the usable ephemeral ports towards one destination
    ports_critical: float = 0.9
    time_wait_info: int = 100  # TIME_WAIT towards one peer worth mentioning
    stuck_send_q: int = 1  # bytes queued behind a FIN worth mentioning


@dataclass(frozen=True, slots=True)
class Look:
    """One earlier reading: the sockets (their owners not looked up) and the kernel's counters."""

    sockets: Sequence[Socket]
    kernel: KernelState


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the checks look at: the sockets and the kernel now and, on a live host, a first look
    ``seconds`` earlier, which tells what keeps happening (a counter's rate, a queue that stays
    full) from what happened once since boot. A capture is one moment: ``earlier`` is None."""

    sockets: Sequence[Socket]
    kernel: KernelState
    hidden_processes: int = 0
    owners_known: bool = True  # False when the source cannot name owners at all (a capture)
    earlier: Look | None = None
    seconds: float = 0.0  # between the two looks' readings of the counters

    def growth(self, name: str) -> int | None:
        """How much counter ``name`` grew between the looks; None with one look, or unknown."""
        if self.earlier is None:
            return None
        before, now = self.earlier.kernel.counter(name), self.kernel.counter(name)
        if before is None or now is None:
            return None
        return max(0, now - before)  # a counter never shrinks but by wrapping: say no growth

    def rate(self, name: str) -> float | None:
        """Counter ``name``'s growth per second between the looks."""
        grown = self.growth(name)
        return None if grown is None or self.seconds <= 0 else grown / self.seconds


Check = Callable[[Evidence, Thresholds], Iterable[Finding]]


def diagnose(evidence: Evidence, thresholds: Thresholds = Thresholds()) -> list[Finding]:
    """Every finding, worst first (stable within a severity)."""
    findings = [finding for check in CHECKS for finding in check(evidence, thresholds)]
    return sorted(findings, key=lambda f: -f.severity)


def exit_status(findings: Iterable[Finding]) -> ExitStatus:
    """FINDINGS when something is critical, else OK: a gate for scripts.

    Only what needs acting on now opens the gate. A warning ("look soon": ten CLOSE_WAIT in one
    process) is routine on a busy host, and a gate that opens on routine gets ignored, or breaks
    every `doctor && deploy`; a script that wants warnings reads their severity from -o json.
    """
    critical = any(f.severity > Severity.WARNING for f in findings)
    return ExitStatus.FINDINGS if critical else ExitStatus.OK


def close_wait_held(ev: Evidence, th: Thresholds) -> Iterator_[Finding]:
    held: dict[tuple[int | None, str | None], list[Socket]] = defaultdict(list)
    for sock in ev.sockets:
        if sock.state is S.CLOSE_WAIT:
            held[sock.pid, sock.process].append(sock)
    for (pid, process), socks in sorted(held.items(), key=lambda kv: -len(kv[1])):
        n = len(socks)
        severity = (
            Severity.CRITICAL
            if n >= th.close_wait_critical
            else Severity.WARNING
            if n >= th.close_wait_warning
            else Severity.INFO
        )
        who = owner(pid, process).prose()  # sockets of unseen owners are one group, inode or not
        peers = Counter(s.remote_address for s in socks)  # hosts: ports differ per connection
        ages = sorted(a for a in map(held_since_peer_closed_ms, socks) if a is not None)
        yield Finding(
            severity,
            ngettext(
                "{n} CLOSE_WAIT socket held by {who}", "{n} CLOSE_WAIT sockets held by {who}", n
            ).format(n=n, who=who),
            (
                ngettext(
                    "{n} socket whose peer closed, not closed by {who}",
                    "{n} sockets whose peers closed, not closed by {who}",
                    n,
                ).format(n=n, who=who),
                _("peer hosts: {hosts}").format(hosts=_top(peers)),
                *_held_for(ages),
            ),
            _(
                "The peer closed and the kernel acknowledged; the application has not called"
                " close(). The kernel never times CLOSE_WAIT out, so this is almost always a leak"
                " in the application: a missing close() when a read returns 0 bytes."
            ),
            f"tcpstates -s close-wait --pid {pid}"
            if pid is not None
            else "tcpstates -s close-wait",
            {
                "pid": pid,
                "process": process,
                "count": n,
                "peers": dict(peers),
                "oldest_ms": ages[-1] if ages else None,
            },  # fmt: skip
        )


def _held_for(held: list[int]) -> tuple[str, ...]:
    """How long the sockets have been held since their peers closed (sorted ages, in ms)."""
    if not held:
        return ()
    oldest = duration(held[-1])
    if len(held) == 1:
        return (_("held for {age} since the peer closed").format(age=oldest),)
    line = _("held for up to {oldest} since the peers closed (the newest {newest})")
    return (line.format(oldest=oldest, newest=duration(held[0])),)


def port_pressure(ev: Evidence, th: Thresholds) -> Iterator_[Finding]:
    usable = ev.kernel.usable_ephemeral_ports
    span = ev.kernel.port_range
    if not usable or span is None:
        return
    low, high = span
    per_destination: Counter[tuple[str, str, int]] = Counter()
    states: dict[tuple[str, str, int], Counter[str]] = defaultdict(Counter)
    for sock in ev.sockets:
        if sock.proto != "tcp" or sock.state is S.LISTEN or not sock.remote_port:
            continue
        if low <= sock.local_port <= high:
            key = (sock.local_address, sock.remote_address, sock.remote_port)
            per_destination[key] += 1
            states[key][sock.state_name] += 1
    for key, n in per_destination.most_common():
        share = n / usable
        if share < th.ports_warning:
            break
        local, remote, port = key
        severity = Severity.CRITICAL if share >= th.ports_critical else Severity.WARNING
        destination = endpoint(remote, port)
        yield Finding(
            severity,
            _("Ephemeral ports towards {destination}: {n} of {usable} used ({share})").format(
                destination=destination, n=n, usable=usable, share=f"{share:.0%}"
            ),
            (
                ngettext(
                    "{n} socket from {local} to {destination} uses ports {low}-{high}",
                    "{n} sockets from {local} to {destination} use ports {low}-{high}",
                    n,
                ).format(n=n, local=local, destination=destination, low=low, high=high),
                _("by state: {states}").format(states=_top(states[key])),
                _(
                    "usable ports: {usable} (ip_local_port_range {low} {high}, minus reserved)"
                ).format(usable=usable, low=low, high=high),
            ),
            _(
                "Each connection to one destination needs its own local port, and a closed one"
                " keeps it for 60 s in TIME_WAIT. When the range runs out, connect() fails with"
                " EADDRNOTAVAIL. Reusing connections (keep-alive, pools) helps most; more remote"
                " addresses or a wider ip_local_port_range add room; net.ipv4.tcp_tw_reuse=1 lets"
                " outgoing connections reuse TIME_WAIT ports safely."
            ),
            f"tcpstates --remote {remote} --dport {port} --summary",
            {"local": local, "remote": remote, "remote_port": port, "count": n, "usable": usable},
        )


def kernel_owned(ev: Evidence, th: Thresholds) -> Iterator_[Finding]:
    orphans = Counter(
        s.state_name for s in ev.sockets if s.kernel_owned and s.state in (S.FIN_WAIT2, S.TIME_WAIT)
    )
    if orphans:
        yield Finding(
            Severity.INFO,
            ngettext(
                "{n} socket held by the kernel alone ({states})",
                "{n} sockets held by the kernel alone ({states})",
                sum(orphans.values()),
            ).format(n=sum(orphans.values()), states=_top(orphans)),
            (_("no process holds these (inode 0): their applications closed them already"),),
            _(
                "Not missing owners: after close() the kernel finishes the connection by itself."
                " TIME_WAIT lasts 60 s; an orphaned FIN_WAIT2 lasts net.ipv4.tcp_fin_timeout"
                " ({seconds} s here)."
            ).format(seconds=ev.kernel.settings.get("net.ipv4.tcp_fin_timeout", "?")),
            "tcpstates -s time-wait -s fin-wait-2 --summary",
            {"counts": dict(orphans)},
        )
    stuck = [
        s
        for s in ev.sockets
        if s.state in (S.FIN_WAIT1, S.LAST_ACK, S.CLOSING) and (s.send_q or 0) >= th.stuck_send_q
    ]
    if stuck:
        peers = Counter(s.remote_address for s in stuck)
        yield Finding(
            Severity.WARNING,
            ngettext(
                "{n} closing socket stuck behind unsent data",
                "{n} closing sockets stuck behind unsent data",
                len(stuck),
            ).format(n=len(stuck)),
            (
                _("FIN_WAIT1/LAST_ACK/CLOSING with Send-Q > 0: {n}").format(n=len(stuck)),
                _("peer hosts: {hosts}").format(hosts=_top(peers)),
                _("bytes queued: {n}").format(n=sum(s.send_q or 0 for s in stuck)),
            ),
            _(
                "The FIN waits behind data the peer does not read (its window is closed): the"
                " peer is gone or stuck. The kernel retransmits and finally drops them"
                " (net.ipv4.tcp_orphan_retries for closed ones)."
            ),
            "tcpstates -s fin-wait-1 -s last-ack",
            {"count": len(stuck), "peers": dict(peers)},
        )


def time_wait_volume(ev: Evidence, th: Thresholds) -> Iterator_[Finding]:
    per_peer = Counter(
        endpoint(s.remote_address, s.remote_port) for s in ev.sockets if s.state is S.TIME_WAIT
    )
    total = sum(per_peer.values())
    buckets = ev.kernel.setting_int("net.ipv4.tcp_max_tw_buckets")
    # Overflows since boot say nothing of now; grown between the looks, they happen now.
    overflow = ev.growth("TcpExt.TCPTimeWaitOverflow") or 0
    if buckets and (total >= 0.8 * buckets or overflow):
        yield Finding(
            Severity.WARNING,
            (
                _("TIME_WAIT over its limit now: {n} of tcp_max_tw_buckets {buckets}")
                if overflow
                else _("TIME_WAIT near its limit: {n} of tcp_max_tw_buckets {buckets}")
            ).format(n=total, buckets=buckets),
            (counters_line(ev, ("TcpExt.TCPTimeWaitOverflow",)),),
            _(
                "Past the limit the kernel skips TIME_WAIT for new closes, losing its protection"
                " against late segments."
            )
            + " "
            + _(ADVICE[S.TIME_WAIT][1]),
            "tcpstates -s time-wait --summary",
            {"time_wait": total, "tcp_max_tw_buckets": buckets, "overflows": overflow},
        )
    for peer, n in per_peer.most_common(5):
        if n < th.time_wait_info:
            break
        yield Finding(
            Severity.INFO,
            _("{n} TIME_WAIT towards {peer}: this host closes first").format(n=n, peer=peer),
            (
                ngettext(
                    "{n} socket in TIME_WAIT with peer {peer}",
                    "{n} sockets in TIME_WAIT with peer {peer}",
                    n,
                ).format(n=n, peer=peer),
            ),
            _(
                "The end that closes first keeps TIME_WAIT for 60 s; here that is this host."
                " Normal for clients of short requests; reuse connections to avoid the churn."
            ),
            f"tcpstates -s time-wait --remote {peer.rsplit(':', 1)[0].strip('[]')}",
            {"peer": peer, "count": n},
        )


def visibility(ev: Evidence, th: Thresholds) -> Iterator_[Finding]:
    unowned = sum(1 for s in ev.sockets if not s.kernel_owned and s.pid is None)
    if not unowned:
        return
    if not ev.owners_known:
        why = _("the source does not say which process holds a socket")
    elif ev.hidden_processes:
        why = _(
            "{n} processes of other users cannot be looked into"
            " (not root, or /proc mounted with hidepid)"
        ).format(n=ev.hidden_processes)
    else:
        why = _("their processes exited, or hold them from another PID namespace")
    yield Finding(
        Severity.INFO,
        ngettext(
            "{n} socket without a known owner", "{n} sockets without a known owner", unowned
        ).format(n=unowned),
        (why,),
        _("Owners come from /proc/PID/fd; what cannot be read there shows as '-'."),
        "sudo tcpstates" if ev.hidden_processes else "tcpstates -v",
        {"count": unowned, "hidden_processes": ev.hidden_processes},
    )


Iterator_ = Iterable  # checks are generators; the alias keeps their signatures short

CHECKS: tuple[Check, ...] = (
    close_wait_held,
    port_pressure,
    listen_overflow,
    syn_flood,
    kernel_owned,
    time_wait_volume,
    visibility,
)
