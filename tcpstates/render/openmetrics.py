"""Metric families as OpenMetrics text (application/openmetrics-text 1.0.0), standard library only.

``-o openmetrics`` and ``export --textfile`` use this, so neither needs prometheus_client. Only
gauges are written, and those read the same in Prometheus's older text format, which is what
node_exporter's textfile collector parses: there ``# EOF`` and ``# UNIT`` are plain comments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TextIO

from tcpstates.metrics import Labels, MetricFamily
from tcpstates.render.safe import safe

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def render_openmetrics(families: Iterable[MetricFamily], out: TextIO) -> None:
    """Write the exposition of ``families`` to ``out``, ending with ``# EOF``."""
    out.write(exposition(families))


def exposition(families: Iterable[MetricFamily]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {escape(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type.value}")
        if family.unit:
            lines.append(f"# UNIT {family.name} {family.unit}")
        lines.extend(
            f"{family.name}{_labels(sample.labels)} {number(sample.value)}"
            for sample in family.samples
        )
    lines.append("# EOF\n")
    return "\n".join(lines)


def escape(text: str) -> str:
    r"""A label value or help text, safe for a terminal, with backslash and quote escaped.

    Control, format and bidi characters (a process may name itself with an escape sequence)
    are spelled out as ``\xNN`` text first, so the exposition never carries them raw: people
    read it with curl in a terminal too.

    >>> print(escape('a\\b "c"'), escape("bell\x07"))
    a\\b \"c\" bell\\x07
    """
    text = safe(text)
    if "\\" not in text and '"' not in text:
        return text
    return text.replace("\\", "\\\\").replace('"', '\\"')


def number(value: float) -> str:
    """Integers without a decimal point; floats in Python's shortest round-tripping form.

    >>> number(3), number(0.25), number(float("inf")), number(float("nan"))
    ('3', '0.25', '+Inf', 'NaN')
    """
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{escape(value)}"' for name, value in labels) + "}"
