"""``doctor`` for a place: its sockets and its kernel's settings, diagnosed, worst first."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tcpstates.model.place import Place
from tcpstates.model.query import Query
from tcpstates.model.record import replace
from tcpstates.model.sockets import Details, Socket
from tcpstates.model.states import TcpState
from tcpstates.render.output import Output, say_source

if TYPE_CHECKING:
    from tcpstates.doctor.evidence import Look
    from tcpstates.doctor.findings import Finding
    from tcpstates.sources.base import Source

FORMATS = ("table", "plain", "json")

# What a capture of tables alone (no --save directory) cannot tell the checks.
NO_KERNEL = (
    "the capture holds socket tables only, so the checks that need the kernel's settings and"
    " counters were skipped (a directory written by --save brings them)"
)


ONE_LOOK = (
    "a capture is one moment, so the checks of what keeps happening (counters' rates, queues"
    " that stay full) were skipped"
)
TCP = Query(protos=frozenset({"tcp"}))


def doctor(place: Place, out: Output, fmt: str | None, verbose: bool, interval: float = 0.0) -> int:
    """Diagnose ``place``; the exit status says how bad the worst finding is.

    A live place is looked at twice, ``interval`` seconds apart (0: once): what grows or stays
    between the looks is happening now, where one look only tells what happened since boot.
    """
    from tcpstates.doctor.checks import Evidence, Look, diagnose, exit_status
    from tcpstates.sources.place import kernel_of, open_place

    source = open_place(place)
    say_source(out, source, verbose)
    earlier: Look | None = None
    started = time.monotonic()
    if place.live and interval > 0:
        # Without owners: the scan of /proc is what costs, and the second look has them.
        earlier = Look(list(source.read(TCP, owners=False).sockets), kernel_of(place)[0])
        started = time.monotonic()  # just after the first counters were read
        time.sleep(interval)
    reading = source.read(TCP, owners=place.live)
    sockets = with_ages(source, list(reading.sockets), earlier)
    kernel, known = kernel_of(place)
    seconds = time.monotonic() - started if earlier is not None else 0.0
    for problem in kernel.problems:  # a file left out; the findings still come
        out.say(problem)
    if not known:
        out.say(NO_KERNEL)
    elif not place.live:
        out.say(ONE_LOOK)
    evidence = Evidence(
        sockets, kernel, reading.hidden_processes, place.live, earlier, seconds
    )  # fmt: skip
    findings = [_here(finding, place) for finding in diagnose(evidence)]
    status = exit_status(findings)
    _show(findings, status, out, fmt or ("table" if out.rich else "plain"))
    return status


def with_ages(source: Source, sockets: list[Socket], earlier: Look | None = None) -> list[Socket]:
    """``sockets``, some with their tcp_info and memory where the source can read them: the
    CLOSE_WAIT ones (how long each has been held, model/ages.py), and those whose Send-Q was
    big at the ``earlier`` look and still is (whether the peer's window is closed or the data
    is retransmitted, and the send buffer it fills: doctor/queues.py). Those alone are read
    again, without owners: the owner scan is what costs, and the first reading had it."""

    from tcpstates.doctor.evidence import Thresholds
    from tcpstates.sources.base import identity, read_with_details

    least = Thresholds().queue_bytes
    full = {
        identity(s) for s in (earlier.sockets if earlier else ()) if (s.send_q or 0) >= least
    }  # fmt: skip

    def wanted(sock: Socket) -> bool:
        if sock.state is TcpState.CLOSE_WAIT:
            return True
        return (
            (sock.send_q or 0) >= least
            and sock.state is not TcpState.LISTEN
            and (identity(sock) in full)
        )

    states = frozenset(s.state for s in sockets if wanted(s))
    if not states:
        return sockets
    query = replace(TCP, states=states)
    again = read_with_details(source, query, False, Details(info=True, memory=True))
    read = {(s.netns, identity(s)): s for s in again.sockets}
    return [
        replace(sock, info=found.info, memory=found.memory)
        if wanted(sock) and (found := read.get((sock.netns, identity(sock)))) is not None
        else sock
        for sock in sockets
    ]


def _here(finding: Finding, place: Place) -> Finding:
    """The finding with its next command reading the same place: in a namespace, a suggestion
    to run ``tcpstates -s close-wait`` on the host would show the wrong sockets."""
    import dataclasses
    import shlex

    words = finding.next_command.split(" ")
    if not place.arguments or "tcpstates" not in words:
        return finding
    at = words.index("tcpstates") + 1
    words[at:at] = [shlex.quote(arg) for arg in place.arguments]
    return dataclasses.replace(finding, next_command=" ".join(words))


def _show(findings: Sequence[Finding], status: int, out: Output, fmt: str) -> None:
    from tcpstates.doctor import render

    if fmt == "json":
        render.render_findings_json(findings, status, out.stdout)
    elif fmt == "table":
        out.console().print(render.findings_renderable(findings))
    else:
        out.stdout.write(render.findings_text(findings))
