"""The program's entry (the console script and ``python -m tcpstates``).

A piped listing or summary, and --version, are answered by the light front end without loading
click (_fastpath/); everything else goes to the click command, and so does a shell asking for
completions, whatever argv says.
"""

import os
import sys

# cli/complete.py's COMPLETE_VAR, spelled here so that the fast path need not load the click
# layer to look (tests/test_completion.py holds the two together).
COMPLETE_VAR = "_TCPSTATES_COMPLETE"


def main() -> None:
    status = None
    if not os.environ.get(COMPLETE_VAR):
        from tcpstates._fastpath.run import run_fast

        status = run_fast(sys.argv[1:])
    if status is None:
        from tcpstates.cli.root import main as cli_main

        cli_main()
    sys.exit(status)


if __name__ == "__main__":
    main()
