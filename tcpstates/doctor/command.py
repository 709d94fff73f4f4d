"""``tcpstates doctor``: read the sockets and the kernel's counters, print findings, worst first."""

from __future__ import annotations

import sys
from typing import Any

import click

from tcpstates.cli.options import lang_option, source_option

EPILOG = """\b
Exit status, so that it can gate a script:
  0  nothing critical (warnings and info leave it at 0)
  1  the sockets, or a capture, could not be read
  2  a bad option
  3  a finding is critical

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
@source_option
@click.option(
    "--from",
    "captures",
    multiple=True,
    metavar="PATH",
    help="Diagnose a capture (see tcpstates --from); a directory written by --save brings the"
    " kernel settings too.",
)
@lang_option
def doctor(fmt: str | None, source: str, captures: tuple[str, ...], lang: str | None) -> int:
    """Say why sockets pile up in a state, who holds them, and what to do."""
    from tcpstates.doctor.checks import diagnose, exit_status
    from tcpstates.model import i18n

    if lang is not None:
        i18n.use(lang)
    from tcpstates.model.query import Query
    from tcpstates.render.safe import safe

    query = Query(protos=frozenset({"tcp"}))
    evidence = _evidence(query, source, captures)
    for problem in evidence.kernel.problems:  # a file left out; the findings still come
        sys.stderr.write(f"tcpstates: {safe(problem)}\n")
    findings = diagnose(evidence)
    _show(findings, fmt or ("table" if sys.stdout.isatty() else "plain"))
    return exit_status(findings)


def _evidence(query: Any, source: str, captures: tuple[str, ...]) -> Any:
    import os

    from tcpstates.doctor.checks import Evidence
    from tcpstates.sources.capture import CaptureSource, read_small_capture_file
    from tcpstates.sources.kernel import KernelState, read_kernel
    from tcpstates.sources.place import open_source

    if not captures:
        reading = open_source(source).read(query, owners=True)
        return Evidence(list(reading.sockets), read_kernel("/proc"), reading.hidden_processes)
    sockets = list(CaptureSource(captures).read(query).sockets)
    # Settings and counters come with a directory that --save wrote; plain tables have none.
    directories = [path for path in captures if os.path.isdir(path)]
    kernel = KernelState({}, {})
    if directories:
        kernel = read_kernel(directories[0], read=read_small_capture_file)
    return Evidence(sockets, kernel, owners_known=False)


def _show(findings: Any, fmt: str) -> None:
    from tcpstates.doctor import render

    if fmt == "json":
        render.render_findings_json(findings, sys.stdout)
    elif fmt == "table":
        from rich.console import Console

        Console(highlight=False).print(render.findings_renderable(findings))
    else:
        sys.stdout.write(render.findings_text(findings))
