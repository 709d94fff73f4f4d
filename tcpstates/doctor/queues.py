"""Findings about data piling up in sockets' queues: who is not reading.

A Recv-Q is data the kernel received and the socket's process has not read; a Send-Q is data
the process wrote that the peer has not acknowledged. Either is normal for a moment. What
doctor's two looks tell is whether it *stays*: a Recv-Q at least ``queue_bytes`` at both looks
and not lower at the second is a process that does not read; a Send-Q that stays so is a peer
that does not read (its window is closed: the kernel probes it on the persist timer) or a
network that loses the data (the retransmission timer, retransmits). With one look (a capture,
``--interval 0``) a queue cannot be said to stay, and these checks say nothing.

When the other end of a connection is on this host, its socket is in the same reading, the
ends swapped: then the process that is not reading is named, not just its address.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tcpstates.doctor.evidence import Evidence, Thresholds
from tcpstates.doctor.findings import Finding, Severity
from tcpstates.model.i18n import _, ngettext
from tcpstates.model.sockets import Owner, Socket, local_end, owner_of, remote_end
from tcpstates.model.states import TcpState
from tcpstates.render.units import size
from tcpstates.sources.base import identity

S = TcpState
SHOWN = 3  # sockets listed in a finding's evidence; the rest are counted
PEERS = 5  # peers with a finding each; the rest share one
# A closing socket still sends what was written before close(); its FIN waits behind it.
CLOSING = (S.FIN_WAIT1, S.LAST_ACK, S.CLOSING)


@dataclass(frozen=True, slots=True)
class Stuck:
    """One socket whose queue stayed: its value at each look."""

    sock: Socket
    queued: int
    before: int


def _plain(address: str) -> str:
    """An IPv4 address as an IPv4 socket and a dual-stack one both spell it, to pair ends."""
    return address.removeprefix("::ffff:")


def _ends(sock: Socket) -> tuple[str, int, str, int]:
    return (_plain(sock.local_address), sock.local_port,
            _plain(sock.remote_address), sock.remote_port)  # fmt: skip


class Peers:
    """The sockets of one reading by their ends, to find a connection's other end on this
    host: the socket whose local end is this one's remote end, and the other way round."""

    def __init__(self, sockets: Iterable[Socket]) -> None:
        self._by_ends = {_ends(s): s for s in sockets if s.remote_port and s.proto == "tcp"}

    def of(self, sock: Socket) -> Socket | None:
        local, lport, remote, rport = _ends(sock)
        return self._by_ends.get((remote, rport, local, lport))


def _stayed(ev: Evidence, least: int, queue: str, states: Sequence[TcpState]) -> list[Stuck]:
    """The sockets in ``states`` whose ``queue`` (recv_q or send_q) was at least ``least`` at
    both looks and is not lower at the second, largest first; none with one look."""
    if ev.earlier is None:
        return []
    before: dict[Hashable, int] = {}
    for sock in ev.earlier.sockets:
        value = getattr(sock, queue)
        if sock.state in states and value is not None and value >= least:
            before[identity(sock)] = value
    stuck = []
    for sock in ev.sockets:
        value = getattr(sock, queue)
        if sock.state not in states or value is None or value < least:
            continue
        was = before.get(identity(sock))
        if was is not None and value >= was:
            stuck.append(Stuck(sock, value, was))
    return sorted(stuck, key=lambda s: -s.queued)


def _earlier(ev: Evidence, stuck: Stuck) -> str:
    return _("{before} at the first look, {seconds} s earlier").format(
        before=stuck.before, seconds=f"{ev.seconds:.1f}"
    )


def _more(n: int) -> tuple[str, ...]:
    return (_("and {n} more").format(n=n),) if n > 0 else ()


def _unread(ev: Evidence, th: Thresholds) -> list[Stuck]:
    """The receive queues that stayed, of connections a process holds. One no process has
    accept()ed yet (inode 0) is its listener's to take: the accept queue's check speaks of
    that, not of a process that stopped reading."""
    stayed = _stayed(ev, th.queue_bytes, "recv_q", (S.ESTABLISHED,))
    return [s for s in stayed if not s.sock.kernel_owned]


def not_reading(ev: Evidence, th: Thresholds) -> Iterator[Finding]:
    """A process whose receive queues stay full: it is not reading (its peers' Send-Q, where
    they are on this host, is the same data waiting)."""
    stuck = _unread(ev, th)
    if not stuck:
        return
    peers = Peers(ev.sockets)  # a dict of every connection: made only when something stays
    held: dict[Owner, list[Stuck]] = defaultdict(list)
    for one in stuck:
        held[owner_of(one.sock)].append(one)
    for who, socks in sorted(held.items(), key=lambda kv: -sum(s.queued for s in kv[1])):
        total = sum(s.queued for s in socks)
        senders = [p for s in socks if (p := peers.of(s.sock)) is not None]
        name = who.prose()
        lines = [
            _("Recv-Q {queued} on {local} from {remote} ({earlier})").format(
                queued=s.queued,
                local=local_end(s.sock),
                remote=remote_end(s.sock),
                earlier=_earlier(ev, s),
            )
            for s in socks[:SHOWN]
        ]
        lines += _more(len(socks) - SHOWN)
        lines += _owner_lines(
            senders, "send_q", _("the sender is on this host: {who}, its Send-Q {queued}")
        )
        yield Finding(
            Severity.WARNING,
            ngettext(
                "{who} is not reading: {size}B wait in {n} receive queue",
                "{who} is not reading: {size}B wait in {n} receive queues",
                len(socks),
            ).format(who=name, size=size(total), n=len(socks)),
            tuple(lines),
            _(
                "The kernel received this data and {who} has not read it: it sits in the"
                " socket's receive buffer, and did not drain between two looks. When the buffer"
                " is full the receive window closes and the sender stalls. The process is"
                " blocked elsewhere, too busy, or no longer reads these connections."
            ).format(who=name),
            f"tcpstates -s established --pid {who.pid} -i -m"
            if who.pid is not None
            else "tcpstates -s established -i -m",
            {
                "pid": who.pid,
                "process": who.process,
                "count": len(socks),
                "recv_q": total,
                "sockets": [_record(s) for s in socks[:20]],
                "senders": [_holder(p) for p in senders[:20]],
            },
        )


def _owner_lines(socks: Iterable[Socket], queue: str, line: str) -> list[str]:
    """An evidence line for each owner of ``socks``, the SHOWN with the most bytes in their
    ``queue`` first: ``line`` with its {who} and {queued} filled in."""
    totals: Counter[Owner] = Counter()
    for sock in socks:
        totals[owner_of(sock)] += getattr(sock, queue) or 0
    return [line.format(who=who.prose(), queued=n) for who, n in totals.most_common(SHOWN)]


def _record(stuck: Stuck) -> dict[str, Any]:
    sock = stuck.sock
    return {
        "local": local_end(sock),
        "remote": remote_end(sock),
        "queued": stuck.queued,
        "before": stuck.before,
    }


def _holder(sock: Socket) -> dict[str, Any]:
    return {
        "pid": sock.pid,
        "process": sock.process,
        "local": local_end(sock),
        "recv_q": sock.recv_q,
        "send_q": sock.send_q,
    }


def _cause(sock: Socket) -> str | None:
    """Why a Send-Q stays: "window" (the peer advertises no room: it does not read), "network"
    (the data is retransmitted: lost on the way, or the peer is gone), or None.

    tcp_info's snd_wnd is the peer's own word. The persist timer is only a hint, taken where
    tcp_info cannot be read: the kernel also runs it when segments could not leave this host
    (a link down here), with the peer's window wide open.
    """
    info = sock.info
    if info is not None and info.snd_wnd_bytes is not None:
        if info.snd_wnd_bytes == 0:
            return "window"
    elif sock.timer == "persist":
        return "window"
    if (info is not None and (info.retrans_now or info.lost_segs)) or (
        sock.timer == "on" and sock.retransmits
    ):
        return "network"
    return None


def peer_not_reading(ev: Evidence, th: Thresholds) -> Iterator[Finding]:
    """Send-Qs that stay full, by the peer they go to: a peer that does not read, or a network
    that loses the data. A peer on this host already named by not_reading is not repeated."""
    sending = _stayed(ev, th.queue_bytes, "send_q", (S.ESTABLISHED, S.CLOSE_WAIT))
    if not sending:
        return
    receiving = {identity(s.sock) for s in _unread(ev, th)}
    peers = Peers(ev.sockets)
    towards: dict[tuple[str, Owner | None], list[tuple[Stuck, Socket | None]]] = defaultdict(list)
    for one in sending:
        peer = peers.of(one.sock)
        if peer is not None and identity(peer) in receiving:
            continue  # the same data, in the reader's Recv-Q: not_reading names the reader
        key = (one.sock.remote_address, owner_of(peer) if peer is not None else None)
        towards[key].append((one, peer))
    ranked = sorted(towards.items(), key=lambda kv: -sum(s.queued for s, _p in kv[1]))
    for (address, peer_owner), group in ranked[:PEERS]:
        yield _send_finding(ev, address, peer_owner, group)
    if rest := ranked[PEERS:]:
        yield _more_peers(rest)


def _more_peers(
    rest: list[tuple[tuple[str, Owner | None], list[tuple[Stuck, Socket | None]]]],
) -> Finding:
    """The peers past the first PEERS, in one finding: a list, not a page of findings."""
    queued: Counter[str] = Counter()
    for (address, _owner), group in rest:
        queued[address] += sum(s.queued for s, _p in group)
    total = sum(queued.values())
    return Finding(
        Severity.WARNING,
        ngettext(
            "Send-Q does not drain towards {n} more peer ({size}B)",
            "Send-Q does not drain towards {n} more peers ({size}B)",
            len(rest),
        ).format(n=len(rest), size=size(total)),
        (_("bytes queued by peer: {peers}").format(peers=_top(queued)),),
        _("As for the peers above: data this host wrote did not drain between two looks."),
        "tcpstates -s established -i -m",
        {"peers": dict(queued.most_common(20)), "count": len(rest), "send_q": total},
    )


def _send_finding(
    ev: Evidence,
    address: str,
    peer_owner: Owner | None,
    group: list[tuple[Stuck, Socket | None]],
) -> Finding:
    total = sum(s.queued for s, _p in group)
    causes = Counter(_cause(s.sock) for s, _p in group)
    cause = causes.most_common(1)[0][0]
    peer = (
        _("{who} on this host").format(who=peer_owner.prose())
        if peer_owner is not None
        else address
    )
    title = {
        "window": _("The peer {peer} is not reading: {size}B stay in Send-Q"),
        "network": _(
            "Send-Q does not drain towards {peer} ({size}B): the data is being retransmitted"
        ),
        None: _("Send-Q does not drain towards {peer} ({size}B)"),
    }[cause].format(peer=peer, size=size(total))
    lines = [_send_line(ev, s) for s, _p in group[:SHOWN]]
    lines += _more(len(group) - SHOWN)
    if causes["window"]:
        lines.append(
            _("the peer's receive window is closed on {n} of them").format(n=causes["window"])
        )
    if causes["network"]:
        lines.append(
            _("retransmitting on {n} of them: the data or its ACKs are lost").format(
                n=causes["network"]
            )
        )
    meaning = {
        "window": _(
            "The peer advertises no room in its receive buffer: its application does not read"
            " what this host sends, so the data waits here and the writer blocks. Look at the"
            " peer's process, not the network."
        ),
        "network": _(
            "The data leaves but is not acknowledged: the kernel retransmits it. Packets are"
            " lost on the way (a firewall, a full link, a path MTU problem) or the peer is gone;"
            " the connection fails after net.ipv4.tcp_retries2 timeouts."
        ),
        None: _(
            "Data this host wrote waits to be sent or acknowledged and did not drain between"
            " two looks: the peer reads slowly or the path is slow."
        ),
    }[cause]
    first, _peer = group[0]
    return Finding(
        Severity.WARNING,
        title,
        tuple(lines),
        meaning,
        f"tcpstates -i -m --remote {first.sock.remote_address}",
        {
            "peer": address,
            "peer_pid": peer_owner.pid if peer_owner is not None else None,
            "peer_process": peer_owner.process if peer_owner is not None else None,
            "cause": cause,
            "count": len(group),
            "send_q": total,
            "sockets": [
                {
                    **_record(s),
                    "pid": s.sock.pid,
                    "process": s.sock.process,
                    "cause": _cause(s.sock),
                }
                for s, _p in group[:20]
            ],
        },
    )


def _send_line(ev: Evidence, stuck: Stuck) -> str:
    sock = stuck.sock
    buffer = sock.memory.sndbuf_bytes if sock.memory is not None else None
    of = (
        _(" of a {size}B send buffer").format(size=size(buffer)) if buffer is not None else ""
    )  # fmt: skip
    return _("{who}: Send-Q {queued}{of} on {local} to {remote} ({earlier})").format(
        who=owner_of(sock).prose(),
        queued=stuck.queued,
        of=of,
        local=local_end(sock),
        remote=remote_end(sock),
        earlier=_earlier(ev, stuck),
    )


def closing_stuck(ev: Evidence, th: Thresholds) -> Iterator[Finding]:
    """Closing sockets whose FIN waits behind unsent data; where the peer is on this host, the
    process that holds it and does not read. One look tells this: a closed socket's data has
    nowhere else to go."""
    stuck = [s for s in ev.sockets if s.state in CLOSING and (s.send_q or 0) >= th.stuck_send_q]
    if not stuck:
        return
    peers = Peers(ev.sockets)
    local = [p for s in stuck if (p := peers.of(s)) is not None]
    hosts = Counter(s.remote_address for s in stuck)
    lines = [
        _("FIN_WAIT1/LAST_ACK/CLOSING with Send-Q > 0: {n}").format(n=len(stuck)),
        _("peer hosts: {hosts}").format(hosts=_top(hosts)),
        _("bytes queued: {n}").format(n=sum(s.send_q or 0 for s in stuck)),
    ]
    lines += _owner_lines(
        local,
        "recv_q",
        _("the peer is on this host: {who} holds it and has not read {queued} bytes"),
    )
    yield Finding(
        Severity.WARNING,
        ngettext(
            "{n} closing socket stuck behind unsent data",
            "{n} closing sockets stuck behind unsent data",
            len(stuck),
        ).format(n=len(stuck)),
        tuple(lines),
        _(
            "The FIN waits behind data the peer does not read (its window is closed): the"
            " peer is gone or stuck. The kernel retransmits and finally drops them"
            " (net.ipv4.tcp_orphan_retries for closed ones)."
        ),
        "tcpstates -s fin-wait-1 -s last-ack",
        {"count": len(stuck), "peers": dict(hosts), "local_peers": [_holder(p) for p in local]},
    )


def _top(counts: Counter[str], limit: int = 3) -> str:
    shown = ", ".join(f"{name} {n}" for name, n in counts.most_common(limit))
    rest = len(counts) - limit
    return shown + (" " + _("and {n} more").format(n=rest) if rest > 0 else "")


CHECKS = (not_reading, peer_not_reading, closing_stuck)
