"""Findings about piles of sockets: what is wrong, the evidence, what it means, what to run next.

Each check is a function from the sockets and the kernel's counters and settings to findings; it
reads no files itself, so the same checks run on a live host and on a capture. Severity:
critical (act now; ``tcpstates doctor`` exits 3, FINDINGS), warning (look soon), info (worth
knowing).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from tcpstates.doctor import queues
from tcpstates.doctor.evidence import Check, Evidence, Look, Thresholds
from tcpstates.doctor.findings import Finding, Severity
from tcpstates.doctor.findings import top_counts as _top
from tcpstates.doctor.floods import counters_line, listen_overflow, syn_flood
from tcpstates.explain.states import ADVICE, KILLING
from tcpstates.model.ages import held_since_peer_closed_ms
from tcpstates.model.errors import ExitStatus
from tcpstates.model.i18n import _, ngettext
from tcpstates.model.sockets import Socket, endpoint, owner
from tcpstates.model.states import TcpState
from tcpstates.render.units import duration

S = TcpState
# What the checks are given and give, defined in evidence.py and findings.py; importers of
# checks find them here.
__all__ = ["CHECKS", "Check", "Evidence", "Finding", "Look", "Severity", "Thresholds"]
__all__ += ["diagnose", "exit_status"]


DEFAULTS = Thresholds()


def diagnose(evidence: Evidence, thresholds: Thresholds = DEFAULTS) -> list[Finding]:
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
    listening = {s.local_port for s in ev.sockets if s.state is S.LISTEN}
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
        served, dialed = _services(socks, listening)
        yield Finding(
            severity,
            ngettext(
                "{n} CLOSE_WAIT socket held by {who}", "{n} CLOSE_WAIT sockets held by {who}", n
            ).format(n=n, who=who),
            (
                _where(served, dialed, ages),
                ngettext(
                    "{n} socket whose peer closed, not closed by {who}",
                    "{n} sockets whose peers closed, not closed by {who}",
                    n,
                ).format(n=n, who=who),
                _("peer hosts: {hosts}").format(hosts=_top(peers)),
            ),
            _(
                "The peer closed and the kernel acknowledged; the application has not called"
                " close(). The kernel never times CLOSE_WAIT out, so this is almost always a leak"
                " in the application: a missing close() when a read returns 0 bytes."
            )
            + " "
            + _(KILLING),
            _close_wait_next(pid, ev.owners_known),
            {
                "pid": pid,
                "process": process,
                "count": n,
                "peers": dict(peers),
                "ports": dict(served),
                "remote_ports": dict(dialed),
                "oldest_ms": ages[-1] if ages else None,
            },  # fmt: skip
        )


def _close_wait_next(pid: int | None, live: bool) -> str:
    """What to run on a CLOSE_WAIT pile: on a live host, the kill that would clear it, as a dry
    run that lists them (their owners, their peers) and destroys nothing; a capture's sockets
    can only be listed."""
    owned = f" --pid {pid}" if pid is not None else ""
    if live:
        return f"tcpstates kill -s close-wait{owned} --dry-run"
    return f"tcpstates -s close-wait{owned}"


def _services(socks: list[Socket], listening: set[int]) -> tuple[Counter[int], Counter[int]]:
    """The ports of the service ``socks`` belong to: the local port where something listens on
    it (this host serves there), else the remote one (this host is the client)."""
    served = Counter(s.local_port for s in socks if s.local_port in listening)
    dialed = Counter(s.remote_port for s in socks if s.local_port not in listening)
    return served, dialed


def _where(served: Counter[int], dialed: Counter[int], held: list[int]) -> str:
    """Which service the sockets belong to and how long they have been held since their peers
    closed (sorted ages, in ms): the first line of a CLOSE_WAIT finding."""
    ports = Counter({str(port): n for port, n in served.items()})
    remote = Counter({str(port): n for port, n in dialed.items()})
    parts = []
    if ports:
        spelled = _top(ports) if len(ports) > 1 else next(iter(ports))
        parts.append(
            ngettext("on port {ports}", "on ports {ports}", len(ports)).format(ports=spelled)
        )
    if remote:
        spelled = _top(remote) if len(remote) > 1 else next(iter(remote))
        parts.append(
            ngettext("to port {ports}", "to ports {ports}", len(remote)).format(ports=spelled)
        )
    if held:
        oldest = duration(held[-1])
        parts.append(
            _("held for {age} since the peer closed").format(age=oldest)
            if len(held) == 1
            else _("held for up to {oldest} since the peers closed (the newest {newest})").format(
                oldest=oldest, newest=duration(held[0])
            )
        )
    return ", ".join(parts)


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
    *queues.CHECKS,
    time_wait_volume,
    visibility,
)
