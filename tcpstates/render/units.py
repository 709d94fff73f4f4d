"""Times, sizes and rates written short for a table cell, as ss writes them where it does."""

from __future__ import annotations


def timer_left(ms: int) -> str:
    """A timer's time left as ss -o writes it: minutes, then seconds, then milliseconds, the
    smaller units dropped where the larger make them noise.

    >>> [timer_left(ms) for ms in (0, 5, 200, 1500, 12_345, 59_000, 7_140_000, 599_999)]
    ['0ms', '005ms', '200ms', '1.500ms', '12sec', '59sec', '119min', '9min59sec']
    """
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    text = ""
    if minutes:
        text, millis = f"{minutes}min", 0
        if minutes > 9:
            seconds = 0
    if seconds:
        if seconds > 9:
            millis = 0
        text += f"{seconds}{'.' if millis else 'sec'}"
    if millis:
        text += f"{millis:03d}ms"
    return text or "0ms"


def duration(ms: float) -> str:
    """A time in the largest unit that keeps it readable: ``850ms``, ``12s``, ``14min``,
    ``3h05``, ``2d04h``.

    >>> [duration(ms) for ms in (0.4, 850, 12_400, 840_000, 11_100_000, 187_200_000)]
    ['0ms', '850ms', '12s', '14min', '3h05', '2d04h']
    """
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = int(ms // 1000)
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


_PREFIXES = ("", "K", "M", "G", "T", "P")


def scaled(value: float, base: int = 1000) -> str:
    """A count with a decimal (or, with ``base`` 1024, binary) prefix and two or three
    significant digits.

    >>> scaled(0), scaled(999), scaled(131072, 1024), scaled(3939840, 1024), scaled(1.25e9)
    ('0', '999', '128K', '3.8M', '1.2G')
    """
    index = 0
    while value >= base and index < len(_PREFIXES) - 1:
        value /= base
        index += 1
    if index == 0:
        return f"{value:.0f}"
    return f"{value:.1f}{_PREFIXES[index]}" if value < 10 else f"{value:.0f}{_PREFIXES[index]}"


def rate(bits_per_second: int) -> str:
    """``1.2Gbps``: a rate as ss's human-readable rates."""
    return scaled(bits_per_second) + "bps"


def size(bytes_: int) -> str:
    """``128K``: bytes in binary units, as ss -m's buffer sizes read best."""
    return scaled(bytes_, 1024)
