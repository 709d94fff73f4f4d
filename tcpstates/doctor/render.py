"""Doctor's findings: severity, title, evidence, meaning and the next command to run."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from tcpstates.doctor.findings import Finding, Severity
from tcpstates.model.i18n import N_, _
from tcpstates.render.safe import safe

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

STYLES = {Severity.CRITICAL: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
WIDTH = 100
NONE_FOUND = N_("No findings: nothing piles up here.")
NEXT = N_("next:")


def render_findings_json(findings: Sequence[Finding], status: int, out: TextIO) -> None:
    """The findings and the status doctor exits with (the caller's: checks.exit_status)."""
    data = {"findings": [f.as_dict() for f in findings], "exit_status": status}
    out.write(json.dumps(data, indent=2) + "\n")


def findings_text(findings: Sequence[Finding], width: int = WIDTH) -> str:
    if not findings:
        return _(NONE_FOUND) + "\n"
    return "\n".join(_finding_text(f, width) for f in findings)


def _finding_text(finding: Finding, width: int) -> str:
    lines = [f"{finding.severity.name:<8} {safe(finding.title)}"]
    for item in finding.evidence:
        lines += textwrap.wrap(safe(item), width, initial_indent="  - ", subsequent_indent="    ")
    lines += textwrap.wrap(
        safe(finding.meaning), width, initial_indent="  ", subsequent_indent="  "
    )
    lines.append(f"  {_(NEXT)} {safe(finding.next_command)}")
    return "\n".join(lines) + "\n"


def findings_renderable(findings: Sequence[Finding]) -> RenderableType:
    """Each finding with hanging indents: a title that wraps stays right of its severity, an
    item that wraps stays right of its dash, so a narrow terminal still shows the shape."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    if not findings:
        return Text(_(NONE_FOUND), style="green")
    parts: list[RenderableType] = []
    for finding in findings:
        severity = Text(finding.severity.name, style=STYLES[finding.severity])
        parts.append(_hanging(severity, Text(safe(finding.title), style="bold"), 8))
        for item in finding.evidence:
            parts.append(Padding(_hanging(Text("-"), Text(safe(item)), 1), (0, 0, 0, 2)))
        parts.append(Padding(Text(safe(finding.meaning)), (0, 0, 0, 2)))
        command = Text(safe(finding.next_command), style="dim")
        parts.append(Padding(_hanging(Text(_(NEXT), style="dim"), command, 0), (0, 0, 1, 2)))
    return Group(*parts)


def _hanging(lead: Text, body: Text, width: int) -> RenderableType:
    """``lead``, then ``body`` wrapping in a column of its own beside it."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, min_width=width)
    grid.add_column()
    grid.add_row(lead, body)
    return grid
