"""The light front end's answer: the plan handed to the click command's own library functions."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself costs 2 ms to load; mypy reads this name as typing's
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from tcpstates._fastpath.parse import Plan
    from tcpstates.render.output import Output

VERSION = (["-V"], ["--version"])


def run_fast(argv: Sequence[str]) -> int | None:
    """The exit status, or None when the click command must answer ``argv`` instead."""
    if list(argv) in VERSION:  # click's own words, without loading click and the commands
        from tcpstates import __version__

        return written(lambda: sys.stdout.write(f"tcpstates, version {__version__}\n"))
    from tcpstates._fastpath.parse import parse

    plan = parse(argv)
    if plan is None:
        return None
    from tcpstates.model.errors import TcpstatesError
    from tcpstates.render.output import Output

    out = Output.from_environment()
    try:
        return written(lambda: _paged(plan, out) if out.is_terminal else _answer(plan, out))
    except TcpstatesError:
        return None  # nothing written yet (a reading fails before rows are); click says it


def _paged(plan: Plan, out: Output) -> None:
    """On a terminal, the answer through the pager, as the click command pages a document
    (what would not be paged, --no-pager, is not a plan: click answers it)."""
    from tcpstates.render.pager import paged

    with paged(out) as into:
        _answer(plan, into)


def _answer(plan: Plan, out: Output) -> None:
    from tcpstates.model.place import Place

    if plan.summary:
        from tcpstates.summary.run import summary

        summary(plan.query, Place(), out, plan.fmt, False)
        return
    from tcpstates.listing.run import list_sockets

    owners, header = not plan.no_owners, not plan.no_header
    list_sockets(
        plan.query, Place(), out, plan.fmt, owners, False,
        extended="extended" in plan.flags, header=header, details=plan.details(),
    )  # fmt: skip


def written(write: Callable[[], object]) -> int:
    """The exit status of ``write`` to stdout, flushed, as the click command's would be: 0, or
    quiet on a closed pipe and Ctrl-C, or one line for an output that fails."""
    try:
        write()
        sys.stdout.flush()
    except BrokenPipeError:
        return _quiet_exit("BROKEN_PIPE")
    except KeyboardInterrupt:
        return _quiet_exit("INTERRUPTED")
    except OSError as e:
        from tcpstates.model.errors import output_failed

        return output_failed(e)
    return 0


def _quiet_exit(status: str) -> int:
    from tcpstates.model.errors import ExitStatus, silence_stdout

    silence_stdout()
    return int(ExitStatus[status])
