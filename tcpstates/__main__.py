"""The program's entry (the console script and ``python -m tcpstates``).

A piped listing or summary, and --version, are answered by the light front end without loading
click (_fastpath/); everything else goes to the click command, and so does a shell asking for
completions, whatever argv says.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from typing import NoReturn

# cli/complete.py's COMPLETE_VAR, spelled here so that the fast path need not load the click
# layer to look (tests/test_completion.py holds the two together).
COMPLETE_VAR = "_TCPSTATES_COMPLETE"


def main() -> None:
    """Answer sys.argv; exits (SystemExit) with the status, as a click command does."""
    status = _fast_answer()
    if status is None:
        _click_answer()
    sys.exit(status)


def entry() -> NoReturn:
    """``main`` as the console script runs it: a fast answer ends the process at once.

    The answer is written and flushed by then; what the interpreter would still do is tear
    itself down (collect, clear every module), 3.5 ms of a 95 ms TIME_WAIT listing of
    100,000 sockets. No exit handler of ours is left to run: the fast path registers none.
    """
    status = _fast_answer()
    if status is None:
        _click_answer()  # which exits as a click command does
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass  # run_fast has said what failed; the status says it too
    os._exit(status)


def _click_answer() -> NoReturn:
    from tcpstates.cli.root import main as cli_main

    cli_main()


def _fast_answer() -> int | None:
    if os.environ.get(COMPLETE_VAR):
        return None
    from tcpstates._fastpath.run import run_fast

    return run_fast(sys.argv[1:])


if __name__ == "__main__":
    entry()
