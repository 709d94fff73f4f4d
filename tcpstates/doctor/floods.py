"""Floods at a listener: handshakes that pile up in its SYN queue, connections that overflow
its accept queue, each named by the listener and measured by the kernel's counters read twice.

What the kernel does with a SYN (tcp_conn_request, net/ipv4/tcp_input.c, Linux 4.4 and later):

- A listener's SYN queue is full when it holds more request sockets (SYN_RECV) than the
  listener's backlog, sk_max_ack_backlog: listen()'s backlog capped by net.core.somaxconn, which
  is the LISTEN socket's Send-Q. So a backlog of 16 keeps 17 half-open handshakes.
- A SYN to a full queue is answered with a SYN cookie when net.ipv4.tcp_syncookies is 1
  (TcpExt.TCPReqQFullDoCookies, TcpExt.SyncookiesSent) and dropped when it is 0
  (TcpExt.TCPReqQFullDrop, TcpExt.ListenDrops). At 2 every SYN gets a cookie and none is queued.
- net.ipv4.tcp_max_syn_backlog matters only with syncookies off: once a listener's queue is
  within a quarter of it, SYNs from peers the host has no proof are alive are dropped.
- A SYN to a listener whose accept queue is full is dropped, cookies or not
  (TcpExt.ListenOverflows, TcpExt.ListenDrops).

The counters are the namespace's, not a listener's: the evidence says so. Read once (a capture,
or --interval 0) they tell what happened since they started counting; read twice they tell
what happens now, and only that decides a finding's severity.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tcpstates.doctor.findings import Finding, Severity, top_counts, totals_line
from tcpstates.explain.states import ADVICE
from tcpstates.model.i18n import _, ngettext
from tcpstates.model.sockets import Socket, local_end, owner_of
from tcpstates.model.states import TcpState

if TYPE_CHECKING:
    from tcpstates.doctor.evidence import Evidence, Thresholds

S = TcpState
REQUESTS = frozenset({S.SYN_RECV, S.NEW_SYN_RECV})
COOKIES = "TcpExt.SyncookiesSent"
QUEUE_FULL_COOKIES = "TcpExt.TCPReqQFullDoCookies"
QUEUE_FULL_DROPS = "TcpExt.TCPReqQFullDrop"
OVERFLOWS = "TcpExt.ListenOverflows"
DROPS = "TcpExt.ListenDrops"
# What a listener's queues do to SYNs, in the order the evidence lists them.
FLOOD_COUNTERS = (COOKIES, QUEUE_FULL_COOKIES, QUEUE_FULL_DROPS, OVERFLOWS, DROPS)
ACCEPT_COUNTERS = (OVERFLOWS, DROPS)
TOP_NETWORKS = 3

_ANY4, _ANY6, _MAPPED_ANY = "0.0.0.0", "::", "::ffff:0.0.0.0"


@dataclass(frozen=True, slots=True)
class SynQueue:
    """The request sockets of one listening endpoint. Several listeners on one endpoint
    (SO_REUSEPORT) each have a queue of their own, and the kernel spreads SYNs among them."""

    listeners: tuple[Socket, ...]
    requests: tuple[Socket, ...]

    @property
    def listener(self) -> Socket:
        return self.listeners[0]

    @property
    def backlog(self) -> int:
        return sum(s.send_q or 0 for s in self.listeners)

    def limit(self, syncookies: int | None, max_syn_backlog: int | None) -> int:
        """How many request sockets the queue holds before SYNs get cookies or are dropped:
        the backlog (full past it); with syncookies off, also three quarters of
        tcp_max_syn_backlog, past which SYNs of unproven peers are dropped."""
        if syncookies == 0 and max_syn_backlog:
            return min(self.backlog, max_syn_backlog - (max_syn_backlog >> 2))
        return self.backlog


def syn_queues(sockets: Iterable[Socket]) -> list[SynQueue]:
    """Each listening endpoint with the request sockets addressed to it, most requests first.

    A request socket belongs to the most specific listener that takes its local address and
    port, as the kernel's lookup picks it: one bound to that address, else one bound to its
    family's wildcard, else (an IPv4 client, whose request may read ``::ffff:a.b.c.d``) a ``::``
    listener that takes IPv4 too (IPV6_V6ONLY off, or not known).
    """
    listening: dict[tuple[str, int], list[Socket]] = defaultdict(list)
    requests: list[Socket] = []
    for sock in sockets:
        if sock.proto != "tcp":
            continue
        if sock.state is S.LISTEN:
            listening[sock.local_address, sock.local_port].append(sock)
        elif sock.state in REQUESTS:
            requests.append(sock)
    queued: dict[tuple[str, int], list[Socket]] = defaultdict(list)
    for request in requests:
        for address in _listening_addresses(request.local_address):
            found = listening.get((address, request.local_port))
            if address == _ANY6 and _is_v4(request.local_address):
                found = [s for s in found or () if s.v6only is not True]
            if found:
                queued[address, request.local_port].append(request)
                break
    queues = [SynQueue(tuple(listening[key]), tuple(reqs)) for key, reqs in queued.items()]
    return sorted(queues, key=lambda q: -len(q.requests))


def _listening_addresses(address: str) -> tuple[str, ...]:
    """Where a listener taking ``address`` may be bound, most specific first."""
    if ":" not in address:
        return address, _ANY4, _ANY6
    if _v4_mapped(address):
        return address, address[7:], _MAPPED_ANY, _ANY4, _ANY6
    return address, _ANY6


def _is_v4(address: str) -> bool:
    return ":" not in address or _v4_mapped(address)


def _v4_mapped(address: str) -> bool:
    """``::ffff:a.b.c.d``: an IPv4 client of a dual-stack socket."""
    return address.lower().startswith("::ffff:") and "." in address


def network_of(address: str) -> str:
    """The /24 (IPv4, IPv4-mapped too) or /64 (IPv6) an address is in: spoofed sources spread
    over many, a few real clients behind one NAT or in one office share one. An address that
    does not parse (a damaged capture) stands for itself.

    >>> network_of("10.78.3.9"), network_of("::ffff:10.78.3.9"), network_of("2001:db8::1")
    ('10.78.3.0/24', '10.78.3.0/24', '2001:db8::/64')
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network((ip, prefix), strict=False))


@dataclass(frozen=True, slots=True)
class Spread:
    """Where handshakes come from: how many addresses, and how many in each network."""

    addresses: int
    networks: Counter[str]

    @classmethod
    def of(cls, requests: Sequence[Socket]) -> Spread:
        networks = Counter(network_of(s.remote_address) for s in requests)
        return cls(len({s.remote_address for s in requests}), networks)

    def as_dict(self) -> dict[str, object]:
        top = dict(self.networks.most_common(TOP_NETWORKS))
        return {"addresses": self.addresses, "networks": len(self.networks), "top_networks": top}


def per_second(rate: float) -> str:
    """A rate as the evidence writes it: ``566/s``, ``0.4/s``."""
    return f"{rate:.0f}/s" if rate >= 10 or rate == int(rate) else f"{rate:.1f}/s"


def rates(ev: Evidence, names: Sequence[str]) -> dict[str, float | None]:
    """Each counter's rate between the looks, by its name without the group (nstat's own
    names less their ``TcpExt`` prefix); None with one look or where the kernel has no such
    counter."""
    return {name.split(".", 1)[1]: ev.rate(name) for name in names}


def counters_line(ev: Evidence, names: Sequence[str]) -> str:
    """The counters as rates over the time between the looks; with one look, their totals and
    since when they count (the namespace's, or since boot)."""
    if ev.earlier is None or ev.seconds <= 0:
        return totals_line(ev.kernel, *names)
    shown = ", ".join(
        f"{name} {'n/a' if rate is None else per_second(rate)}"
        for name, rate in rates(ev, names).items()
    )
    return _("now, over {seconds:.1f} s: {counters}").format(seconds=ev.seconds, counters=shown)


# --- the accept queue ---------------------------------------------------------------------------


def listen_overflow(ev: Evidence, th: Thresholds) -> Iterable[Finding]:
    """Listeners whose accept queue is full now (critical), and overflows counted between the
    looks that no full queue explains (critical too: connections are being dropped now)."""
    full = [
        s
        for s in ev.sockets
        if s.state is S.LISTEN and s.send_q and s.recv_q is not None and s.recv_q >= s.send_q
    ]
    for sock in full:
        who = owner_of(sock).prose()
        yield Finding(
            Severity.CRITICAL,
            _("Accept queue full on {endpoint}").format(endpoint=local_end(sock)),
            (
                _(
                    "Recv-Q {recv_q} (connections waiting for accept()) >= Send-Q {send_q}"
                    " (the backlog)"
                ).format(recv_q=sock.recv_q, send_q=sock.send_q),
                counters_line(ev, ACCEPT_COUNTERS),
            ),
            _(
                "{who} does not accept() connections as fast as they arrive; new handshakes"
                " are dropped and clients retry or time out."
            ).format(who=who)
            + " "
            + _(ADVICE[S.LISTEN][1]),
            f"tcpstates -l --sport {sock.local_port}",
            {
                "local_port": sock.local_port,
                "recv_q": sock.recv_q,
                "backlog": sock.send_q,
                "rates": rates(ev, ACCEPT_COUNTERS),
            },
        )
    yield from _overflows_counted(ev, bool(full))


def _overflows_counted(ev: Evidence, explained: bool) -> Iterable[Finding]:
    grown = ev.growth(OVERFLOWS)
    if grown is None:  # one look: what the counter says since it started counting
        total = ev.kernel.counter(OVERFLOWS) or 0
        if total:
            yield Finding(
                Severity.INFO,
                ngettext(
                    "Listen queues have overflowed {n} time {since}",
                    "Listen queues have overflowed {n} times {since}",
                    total,
                ).format(n=total, since=ev.kernel.scope.since()),
                (totals_line(ev.kernel, *ACCEPT_COUNTERS),),
                _(
                    "Some listener was once too slow to accept(). Two looks apart (doctor"
                    " --interval) tell whether it is still happening."
                ),
                "tcpstates counters --interval 5 TcpExtListenOverflows TcpExtListenDrops",
                {"ListenOverflows": total},
            )
        return
    if not grown or explained:  # not now, or a full accept queue above says it already
        return
    rate = grown / ev.seconds if ev.seconds > 0 else float(grown)
    yield Finding(
        Severity.CRITICAL,
        _("Accept queues overflow now: {rate}").format(rate=per_second(rate)),
        (
            ngettext(
                "{n} connection dropped at a full accept queue in {seconds:.1f} s",
                "{n} connections dropped at a full accept queue in {seconds:.1f} s",
                grown,
            ).format(n=grown, seconds=ev.seconds),
            counters_line(ev, ACCEPT_COUNTERS),
        ),
        _(
            "A listener's accept queue filled between the two looks, though none is full at"
            " the second: bursts of connections outrun the application's accept()."
        )
        + " "
        + _(ADVICE[S.LISTEN][1]),
        "tcpstates -l",
        {"ListenOverflows": grown, "rates": rates(ev, ACCEPT_COUNTERS)},
    )


# --- the SYN queue ------------------------------------------------------------------------------


def syn_flood(ev: Evidence, th: Thresholds) -> Iterable[Finding]:
    """Each listener whose SYN queue is full, and SYN cookies or drops counted between the
    looks at no full queue (a flood that just stopped, or tcp_syncookies 2)."""
    syncookies = ev.kernel.setting_int("net.ipv4.tcp_syncookies")
    max_syn_backlog = ev.kernel.setting_int("net.ipv4.tcp_max_syn_backlog")
    full = [
        q
        for q in syn_queues(ev.sockets)
        if q.backlog and len(q.requests) > q.limit(syncookies, max_syn_backlog)
    ]
    for queue in full:
        yield _full_queue(ev, queue, syncookies, max_syn_backlog)
    if not full:
        yield from _cookies_counted(ev, syncookies)


def _full_queue(
    ev: Evidence, queue: SynQueue, syncookies: int | None, max_syn_backlog: int | None
) -> Finding:
    sock, n, backlog = queue.listener, len(queue.requests), queue.backlog
    who = owner_of(sock).prose()
    where = local_end(sock)
    limit = queue.limit(syncookies, max_syn_backlog)
    dropping = syncookies == 0 or bool(ev.rate(QUEUE_FULL_DROPS))
    overflowing = sock.recv_q is not None and sock.recv_q >= backlog > 0
    sources = Spread.of(queue.requests)
    evidence = [
        ngettext(
            "{n} half-open handshake (SYN_RECV) at the listener of {who}, backlog {backlog}"
            " (its Send-Q): the queue is full past {limit}",
            "{n} half-open handshakes (SYN_RECV) at the listener of {who}, backlog {backlog}"
            " (its Send-Q): the queue is full past {limit}",
            n,
        ).format(n=n, who=who, backlog=backlog, limit=limit),
        _("source addresses: {addresses}; networks (/24, /64): {networks}; most: {top}").format(
            addresses=sources.addresses,
            networks=len(sources.networks),
            top=top_counts(sources.networks, TOP_NETWORKS),
        ),
        _("{counters} (every listener's)").format(counters=counters_line(ev, FLOOD_COUNTERS)),
        _("tcp_syncookies {cookies}, tcp_max_syn_backlog {max}, somaxconn {somaxconn}").format(
            cookies=_value(syncookies),
            max=_value(max_syn_backlog),
            somaxconn=_value(ev.kernel.setting_int("net.core.somaxconn")),
        ),
    ]
    if len(queue.listeners) > 1:
        evidence.append(
            _("{n} listeners share {endpoint} (SO_REUSEPORT); their backlogs add up").format(
                n=len(queue.listeners), endpoint=where
            )
        )
    if syncookies == 0:
        answer = _(
            "The kernel drops further SYNs (tcp_syncookies is off): new clients cannot connect."
        )
    elif dropping:
        answer = _("The kernel dropped SYNs between the two looks: new clients cannot connect.")
    else:
        answer = _(
            "The kernel answers further SYNs with SYN cookies, so real clients still connect"
            " (without window scaling and SACK when they send no timestamps)."
        )
    if overflowing:
        answer += " " + _(
            "Its accept queue is full too (Recv-Q {recv_q}): SYNs are dropped, cookies or not."
        ).format(recv_q=sock.recv_q)
    return Finding(
        Severity.CRITICAL if dropping or overflowing else Severity.WARNING,
        ngettext(
            "SYN queue full on {endpoint}: {n} half-open handshake, backlog {backlog}",
            "SYN queue full on {endpoint}: {n} half-open handshakes, backlog {backlog}",
            n,
        ).format(endpoint=where, n=n, backlog=backlog),
        tuple(evidence),
        _(
            "More handshakes arrive than the backlog holds and their clients do not complete"
            " them: spoofed SYNs when the sources are many and scattered, a lossy path or"
            " stalled clients when they are few."
        )
        + " "
        + answer
        + " "
        + _(
            "Keep net.ipv4.tcp_syncookies=1; raise the listen() backlog of {who} with"
            " net.core.somaxconn so that bursts fit; make it accept() faster if its accept"
            " queue fills; filter a flood's sources upstream."
        ).format(who=who),
        f"tcpstates -s syn-recv --sport {sock.local_port}",
        {
            "listener": where,
            "local_address": sock.local_address,
            "local_port": sock.local_port,
            "pid": sock.pid,
            "process": sock.process,
            "listeners": len(queue.listeners),
            "syn_recv": n,
            "backlog": backlog,
            "limit": limit,
            "accept_queue": sock.recv_q,
            "sources": sources.as_dict(),
            "seconds": round(ev.seconds, 3) if ev.earlier is not None else None,
            "rates": rates(ev, FLOOD_COUNTERS),
            "tcp_syncookies": syncookies,
            "tcp_max_syn_backlog": max_syn_backlog,
        },
    )


def _cookies_counted(ev: Evidence, syncookies: int | None) -> Iterable[Finding]:
    """SYN cookies sent, or SYNs dropped at a full queue, between the looks while no queue is
    full at the second look: the flood has just stopped, or every SYN gets a cookie (2)."""
    cookies, dropped = ev.growth(COOKIES) or 0, ev.growth(QUEUE_FULL_DROPS) or 0
    if (not cookies and not dropped) or ev.seconds <= 0:
        return
    if dropped:
        severity = Severity.CRITICAL
        title = _("SYNs dropped at a full SYN queue now: {rate}")
        rate = dropped / ev.seconds
    else:
        # At 2 every handshake gets a cookie: routine, but the rate is the rate of SYNs.
        severity = Severity.INFO if syncookies == 2 else Severity.WARNING
        title = _("SYN cookies sent now: {rate}")
        rate = cookies / ev.seconds
    busiest = syn_queues(ev.sockets)[:1]
    where = (
        _("the most half-open handshakes now: {n} at {endpoint}").format(
            n=len(busiest[0].requests), endpoint=local_end(busiest[0].listener)
        )
        if busiest
        else _("no listener with half-open handshakes at the second look")
    )
    yield Finding(
        severity,
        title.format(rate=per_second(rate)),
        (counters_line(ev, FLOOD_COUNTERS), where),
        (
            _("tcp_syncookies is 2: every SYN is answered with a cookie, none is queued.")
            if syncookies == 2
            else _(
                "A listener's SYN queue was full between the two looks, though none is at the"
                " second: a burst or a flood that has just stopped. Look again to see whether"
                " it comes back."
            )
        ),
        "tcpstates -s syn-recv",
        {"rates": rates(ev, FLOOD_COUNTERS), "tcp_syncookies": syncookies},
    )


def _value(setting: int | None) -> str:
    return "n/a" if setting is None else str(setting)
