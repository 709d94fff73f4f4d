"""``tcpstates kill`` for a place: select, show, ask, destroy, report.

Nothing is destroyed without a filter, nor without --yes unless a person at a terminal said y
to the list shown; --dry-run shows the list and stops.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tcpstates.kill import logic
from tcpstates.kill.logic import Done, Selection
from tcpstates.model.errors import ExitStatus, UsageError
from tcpstates.model.i18n import N_, _, ngettext
from tcpstates.model.query import Query
from tcpstates.model.states import TcpState
from tcpstates.sources.destroy import Outcome

if TYPE_CHECKING:
    from tcpstates.model.place import Place
    from tcpstates.render.output import Output

NO_FILTER = N_(
    "kill needs a filter (-s STATE, a port, an address, --pid or --process): without one it"
    " would destroy every connection"
)
NO_TERMINAL = N_(
    "nothing destroyed: kill asks before destroying and there is no terminal to ask on;"
    " give --yes to destroy them, or --dry-run to list them only"
)
DECLINED = N_("nothing destroyed")
NOTHING = N_("no socket matched; nothing to destroy")
# Why the kernel refused, once for all the sockets it refused that way.
WHY = {
    Outcome.NOT_PERMITTED: N_(
        "the kernel refused {n}: destroying a socket needs CAP_NET_ADMIN in its network"
        " namespace (root), even for one's own sockets"
    ),
    Outcome.UNSUPPORTED: N_(
        "the kernel cannot destroy {n}: it was built without CONFIG_INET_DIAG_DESTROY, or it"
        " cannot destroy sockets of that kind"
    ),
    Outcome.FAILED: N_("the kernel failed to destroy {n}; the Result column says why"),
}
# The outcomes' words in reports, for translators (render.totals_line shows them).
OUTCOMES = (N_("destroyed"), N_("vanished"), N_("not permitted"), N_("unsupported"), N_("failed"))


def kill(
    query: Query,
    named: frozenset[TcpState],
    place: Place,
    out: Output,
    fmt: str | None,
    *,
    yes: bool,
    dry_run: bool,
) -> int:
    """Destroy the sockets ``query`` selects in ``place``; the exit status says how it went."""
    if not logic.has_filter(query):
        raise UsageError(_(NO_FILTER))
    fmt = out.resolve_format(fmt)
    selection, destroyer = logic.read(place, query, named)
    with destroyer:
        listed = [Done(target.socket) for target in selection.targets]
        if not listed or dry_run:
            _show(listed, selection, out, fmt, dry_run, ExitStatus.OK, query)
            _say_what_matched(selection, query, out)
            return ExitStatus.OK
        if not yes:
            if not (out.is_terminal and sys.stdin.isatty()):
                _show(listed, selection, out, fmt, dry_run, ExitStatus.USAGE, query)
                _say_what_matched(selection, query, out)
                raise UsageError(_(NO_TERMINAL))
            # The list to answer about; JSON keeps stdout for the one document that follows.
            _show(listed, selection, out, "plain" if fmt == "json" else fmt, dry_run, 0, query)
            _say_what_matched(selection, query, out)
            if not _confirmed(len(listed), out):
                out.say(_(DECLINED))
                return ExitStatus.ERROR
        done = logic.destroy(selection.targets, destroyer)
    status = logic.exit_status(done)
    _show(done, selection, out, fmt, dry_run, status, query)
    if yes:  # else said above the question
        _say_what_matched(selection, query, out)
    _say_why(done, out)
    return status


def _show(
    done: Sequence[Done],
    selection: Selection,
    out: Output,
    fmt: str,
    dry_run: bool,
    status: int,
    query: Query,
) -> None:
    from tcpstates.kill import render

    if fmt == "json":
        render.write_json(
            done, out.stdout, dry_run=dry_run, listeners_left=selection.listeners_left,
            status=status,
        )  # fmt: skip
        return
    from tcpstates.render.columns import Layout

    layout = Layout(proto=len(query.protos) > 1, owners=True)
    if fmt == "table":
        render.write_table(done, layout, out)
    else:
        render.write_report(done, layout, out.stdout)
    out.stdout.flush()  # before the question or the notes on stderr


def _confirmed(n: int, out: Output) -> bool:
    """Whether the person at the terminal answers y to destroying ``n`` sockets."""
    question = ngettext(
        "Destroy this socket? [y/N] ", "Destroy these {n} sockets? [y/N] ", n
    ).format(n=n)
    out.stderr.write(question)
    out.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes", _("y"), _("yes"))


def _say_what_matched(selection: Selection, query: Query, out: Output) -> None:
    """After the list, on stderr: what it leaves out (listeners, others' sockets), or that it
    is empty."""
    _say_unseen(selection, query, out)
    _say_left_alone(selection, out)
    if not selection.targets and not selection.listeners_left:
        out.say(_(NOTHING))


def _say_unseen(selection: Selection, query: Query, out: Output) -> None:
    """--pid and --process cannot match the sockets of processes this user may not look into."""
    n = selection.hidden_processes
    if n and query.needs_owners:
        out.say(
            ngettext(
                "the sockets of {n} process of another user cannot be attributed:"
                " --pid and --process do not select them",
                "the sockets of {n} processes of other users cannot be attributed:"
                " --pid and --process do not select them",
                n,
            ).format(n=n)
        )


def _say_left_alone(selection: Selection, out: Output) -> None:
    n = selection.listeners_left
    if n:
        out.say(
            ngettext(
                "{n} listening socket matches too and is left alone: name its state to destroy"
                " it (-s listen, or -l)",
                "{n} listening sockets match too and are left alone: name their state to"
                " destroy them (-s listen, or -l)",
                n,
            ).format(n=n)
        )


def _say_why(done: Sequence[Done], out: Output) -> None:
    counts = logic.tally(done)
    for outcome, why in WHY.items():
        if counts[outcome]:
            out.say(_(why).format(n=counts[outcome]))
