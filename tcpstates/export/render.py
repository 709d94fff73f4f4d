"""Metric families as OpenMetrics text (application/openmetrics-text 1.0.0), standard library only.

Every exposition tcpstates makes comes from here: ``-o openmetrics``, ``export --textfile`` and
both formats ``export --listen`` serves, so a label value is escaped the same way in all of them
(``escape``). Gauges and untyped samples are written, and those read the same in Prometheus's
older text format, which is what node_exporter's textfile collector parses: there ``# EOF`` and
``# UNIT`` are plain comments, an OpenMetrics ``unknown`` is ``untyped``, and over HTTP that
format is served without the OpenMetrics-only lines.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from typing import TextIO

from tcpstates.export.metrics import Labels, MetricFamily, MetricType
from tcpstates.render.safe import safe

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class Format(enum.Enum):
    """The two expositions a scraper may ask for, by their Content-Type."""

    OPENMETRICS = CONTENT_TYPE
    TEXT = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus's own, the default


def render_openmetrics(families: Iterable[MetricFamily], out: TextIO) -> None:
    """Write the exposition of ``families`` to ``out``, ending with ``# EOF``."""
    out.write(exposition(families))


def exposition(families: Iterable[MetricFamily], fmt: Format = Format.OPENMETRICS) -> str:
    """The text of ``families``; Prometheus's text format differs only in leaving out the
    OpenMetrics-only lines (``# UNIT``, ``# EOF``).

    >>> from tcpstates.export.metrics import MetricType, Sample
    >>> up = MetricFamily("up_seconds", "Up.", MetricType.GAUGE, (Sample((), 1),), "seconds")
    >>> print(exposition([up], Format.TEXT), end="")
    # HELP up_seconds Up.
    # TYPE up_seconds gauge
    up_seconds 1
    """
    openmetrics = fmt is Format.OPENMETRICS
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {escape(family.help)}")
        lines.append(f"# TYPE {family.name} {_type(family, openmetrics)}")
        if family.unit and openmetrics:
            lines.append(f"# UNIT {family.name} {family.unit}")
        lines.extend(
            f"{family.name}{_labels(sample.labels)} {number(sample.value)}"
            for sample in family.samples
        )
    if openmetrics:
        lines.append("# EOF")
    lines.append("")
    return "\n".join(lines)


def _type(family: MetricFamily, openmetrics: bool) -> str:
    """OpenMetrics' name for a type; Prometheus's text format says untyped for unknown."""
    if family.type is MetricType.UNKNOWN and not openmetrics:
        return "untyped"
    return family.type.value


def escape(text: str) -> str:
    r"""A label value or help text, safe for a terminal, with backslash and quote escaped.

    THE function for a label value's text, in every exposition. Control, format and bidi
    characters (a process may name itself with an escape sequence) are spelled out as
    ``\xNN`` text first (``safe``), so the exposition never carries them raw: people read it
    with curl in a terminal too. A line feed is one of them, so the format's own ``\n`` escape
    is never needed; backslash and quote are the format's to escape.

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
