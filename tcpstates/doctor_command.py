"""``tcpstates doctor``: read the sockets and the kernel's counters, print findings, worst first."""

from __future__ import annotations

import sys
from typing import Any

import click

EPILOG = """\b
Exit status: 0 when no finding is above warning, 1 when one is critical
(so it can gate a script), 2 for a bad option.

\b
Examples:
  tcpstates doctor
  tcpstates doctor -o json | jq '.findings[] | select(.severity != "info")'"""


@click.command(epilog=EPILOG)
@click.option(
    "-o",
    "--format",
    "fmt",
    type=click.Choice(["table", "plain", "json"]),
    help="Output format. Default: table on a terminal, plain otherwise.",
)
@click.option(
    "--source",
    type=click.Choice(["auto", "netlink", "procfs", "psutil"]),
    default="auto",
    show_default=True,
    help="Where to read sockets from.",
)
def doctor(fmt: str | None, source: str) -> int:
    """Say why sockets pile up in a state, who holds them, and what to do."""
    from tcpstates.doctor import Evidence, diagnose, exit_status
    from tcpstates.kernel import read_kernel
    from tcpstates.query import Query
    from tcpstates.sources import open_source

    query = Query(protos=frozenset({"tcp"}))
    reading = open_source(source).read(query, owners=True)
    sockets = list(reading.sockets)
    evidence = Evidence(sockets, read_kernel("/proc"), reading.hidden_processes)
    findings = diagnose(evidence)
    _show(findings, fmt or ("table" if sys.stdout.isatty() else "plain"))
    return exit_status(findings)


def _show(findings: Any, fmt: str) -> None:
    from tcpstates.render import findings as render

    if fmt == "json":
        render.render_findings_json(findings, sys.stdout)
    elif fmt == "table":
        from rich.console import Console

        Console(highlight=False).print(render.findings_renderable(findings))
    else:
        sys.stdout.write(render.findings_text(findings))
