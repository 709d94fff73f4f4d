"""The program's entry (the console script and ``python -m tcpstates``).

A JSON summary and a piped listing are answered by the fast paths without loading click
(_fastpath/); everything else goes to the click command, and so does a shell asking for
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
        from tcpstates._fastpath import summary

        status = summary.run_fast(sys.argv[1:])
        if status is None:  # loaded only now: a summary needs none of what a listing loads
            from tcpstates._fastpath import listing

            status = listing.run_fast(sys.argv[1:])
    if status is None:
        from tcpstates.cli.root import main as cli_main

        cli_main()
    sys.exit(status)


if __name__ == "__main__":
    main()
