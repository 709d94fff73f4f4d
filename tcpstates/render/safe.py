"""Make text that other people chose (process names, capture files) safe to print.

A process may call itself ``\\x1b]8;;http://evil\\x07`` or ``[bold red]root``; neither may act on
the terminal. Control, format (bidi overrides such as U+202E) and unassigned characters are
shown as Python-style escapes; Rich markup is never parsed because renderers build
``rich.text.Text`` directly.
"""

from __future__ import annotations


def safe(text: str) -> str:
    r"""Escape every non-printable character.

    >>> safe("nginx"), safe("a\x1b[2Jb"), safe("x\u202ey"), safe("\x9b1m")
    ('nginx', 'a\\x1b[2Jb', 'x\\u202ey', '\\x9b1m')
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
