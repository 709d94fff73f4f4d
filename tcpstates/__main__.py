"""The program's entry (the console script and ``python -m tcpstates``).

A JSON summary is answered by the fast path without loading click (fastpath.py); everything
else goes to the click command.
"""

import sys


def main() -> None:
    from tcpstates._fastpath.summary import run_fast

    status = run_fast(sys.argv[1:])
    if status is None:
        from tcpstates.cli.root import main as cli_main

        cli_main()
    sys.exit(status)


if __name__ == "__main__":
    main()
