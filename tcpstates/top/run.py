"""``tcpstates top``: open the place, and hand its readings to the screen (top/app.py).

Textual is an optional extra: without it, one line says how to get it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from tcpstates.model.errors import ExitStatus, SourceError, UsageError
from tcpstates.model.i18n import N_, _, ngettext
from tcpstates.model.place import Place
from tcpstates.model.query import Query
from tcpstates.model.record import replace
from tcpstates.model.sockets import Details, Socket
from tcpstates.render.output import Output

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from tcpstates.doctor.findings import Finding
    from tcpstates.top.app import TopApp

MISSING = N_("tcpstates top needs Textual, an optional extra: pip install 'tcpstates[top]'")
NOT_A_TERMINAL = N_("top draws a terminal, and stdout is not one; use --watch -o jsonl")


def top(query: Query, place: Place, out: Output, interval: float, owners: bool) -> int:
    """Run the screen until q or Ctrl-C; 1 with one line when a reading fails."""
    try:
        import textual  # noqa: F401  (the extra, or one line that says how to get it)
    except ImportError:
        raise SourceError(_(MISSING)) from None
    if not out.is_terminal:
        raise UsageError(_(NOT_A_TERMINAL))
    from tcpstates.sources.owners import ScanHelper

    app = screen(query, place, interval, owners)
    with ScanHelper():  # forked before Textual's threads: the owner scan keeps two cores
        app.run()
    if app.failure is not None:
        out.stderr.write(f"tcpstates top: {app.failure}\n")
        return ExitStatus.ERROR
    return ExitStatus.OK


def screen(query: Query, place: Place, interval: float, owners: bool) -> TopApp:
    """The screen for ``place``, not yet running (tests run it under Textual's pilot)."""
    from tcpstates.listing.run import layout
    from tcpstates.sources.base import select
    from tcpstates.sources.place import open_place
    from tcpstates.top.app import TopApp

    source = open_place(place)
    details = Details(sharers=owners)  # "nginx +3": how many more hold a shared socket

    def read() -> Iterable[Socket]:
        return select(source.read(query, owners or query.needs_owners, details), query)

    def detailed(sock: Socket) -> Socket | None:
        """``sock`` read again with its tcp_info and every holder, for its story; None when
        it is gone. The kernel picks it out by its ports."""
        from tcpstates.sources.base import read_with_details
        from tcpstates.watch.frames import socket_key

        ports = {"sport": sock.local_port, "dport": sock.remote_port or None}
        one = replace(query, states=frozenset({sock.state}), **ports)
        story = Details(info=True, holders=True, cgroup=True)
        reading = read_with_details(source, one, True, story)
        key = socket_key(sock)
        found = next((s for s in select(reading, one) if socket_key(s) == key), None)
        if found is None or found.cgroup is not None:
            return found
        from tcpstates.sources.cgroups import completed

        return next(completed([found]))  # the owner's, where the source gives none

    def findings(sockets: Iterable[Socket]) -> list[Finding]:
        """doctor's findings on a frame's TCP sockets and this place's kernel, one look."""
        from tcpstates.doctor.checks import Evidence, diagnose
        from tcpstates.sources.place import kernel_of

        tcp = [sock for sock in sockets if sock.proto == "tcp"]
        return diagnose(Evidence(tcp, kernel_of(place)[0], owners_known=owners))

    view = layout(query, owners, source, details=details)
    app = TopApp(read, query, view, interval, where(place), destroyer(place, query))
    app.detailed, app.findings = detailed, findings
    return app


def where(place: Place) -> str:
    """The place as the status line names it: the options that name it, or this host."""
    return " ".join(place.arguments) or _("this host")


def destroyer(place: Place, base: Query) -> Callable[[list[Socket]], str] | None:
    """What destroys chosen sockets, as ``tcpstates kill`` does (root, a live place in one
    namespace); None where it cannot."""
    if os.geteuid() != 0 or not place.live or place.several:
        return None

    def destroy(chosen: list[Socket]) -> str:
        from tcpstates.kill.logic import destroy, read
        from tcpstates.kill.render import totals_line
        from tcpstates.watch.frames import socket_key

        # Read again with handles, and destroy only what was chosen and is still there: the
        # states chosen are named, so a listener chosen on screen is a listener meant.
        named = frozenset(sock.state for sock in chosen)
        selection, kernel = read(place, replace(base, states=named), named)
        # By the ends alone: the place is one namespace, which top's readings of a named one
        # label with its inode and kill's reading, made inside it, does not.
        keys = {socket_key(sock)[1:] for sock in chosen}
        targets = [t for t in selection.targets if socket_key(t.socket)[1:] in keys]
        with kernel:
            done = destroy(targets, kernel)
        vanished = len(chosen) - len(done)
        if not done:
            return _("none of them was there any more")
        gone = ngettext("{n} gone before", "{n} gone before", vanished).format(n=vanished)
        return totals_line(done) + (f"; {gone}" if vanished > 0 else "")

    return destroy
