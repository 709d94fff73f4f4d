"""Where output goes and how it looks: the terminal's streams, colour and width, as one value.

Injected into every command, so that tests (and a future pager) can pin it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from tcpstates.model.record import Record
from tcpstates.render.safe import safe

TYPE_CHECKING = False  # see model/record.py
if TYPE_CHECKING:
    from typing import Any, TextIO

DEFAULT_WIDTH = 80  # a terminal that does not say its size: Rich assumes the same


class Output(Record):
    stdout: TextIO
    stderr: TextIO
    is_terminal: bool
    color: str = "auto"  # auto | always | never
    # The terminal's columns, pinned: by a test, or by whoever swaps stdout for a pipe to a
    # pager (it reads fit_width() first). None: measured afresh at each fit_width().
    width: int | None = None
    wide: bool = False  # -W: a table as wide as its content, nothing hidden or cut

    @classmethod
    def from_environment(cls, color: str = "auto", wide: bool = False) -> Output:
        return cls(sys.stdout, sys.stderr, sys.stdout.isatty(), color, wide=wide)

    def fit_width(self) -> int | None:
        """How many columns a table for a person must fit, read now: a --watch asks at each
        frame, so that a resized terminal is fitted from the next one.

        None means do not fit: output that is not drawn for a person (a pipe gets every
        column, whole), -W, or --color always into a pipe with no COLUMNS to say a width.
        COLUMNS, when it holds a number, wins over the terminal's size, as Rich has it.
        """
        if self.wide or not self.rich:
            return None
        if self.width is not None:
            return self.width
        columns = os.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            return int(columns)
        if not self.is_terminal:
            return None
        try:
            return os.get_terminal_size(self.stdout.fileno()).columns or DEFAULT_WIDTH
        except (OSError, ValueError, AttributeError):  # no descriptor, or not a terminal's
            return DEFAULT_WIDTH

    @property
    def rich(self) -> bool:
        """Whether a format left to the command is drawn for a person (a table)."""
        return self.is_terminal or self.color == "always"

    def resolve_format(self, requested: str | None) -> str:
        if requested:
            return requested
        return "table" if self.rich else "plain"

    def console(self) -> Any:
        from rich.console import Console

        force = {"always": True, "never": False}.get(self.color)
        return Console(
            file=self.stdout,
            force_terminal=force,
            no_color=self.color == "never" or None,
            width=self.width or (None if self.is_terminal else 4096),
            highlight=False,
        )

    def say(self, message: str) -> None:
        """One line on stderr; ``message`` may quote names others chose, so it is escaped."""
        self.stderr.write(f"tcpstates: {safe(message)}\n")


class Skips:
    """Namespaces a read left out, on stderr: each with -v, else only the count of those that
    need root (the others went away meanwhile, which is no news). One left out read after read
    (a watch's frames) is said once, when it first is."""

    def __init__(self, verbose: bool, write: Callable[[str], object]) -> None:
        self.verbose = verbose
        self.write = write
        self.said: set[object] = set()  # a watch's last frame's: said once while they last

    def report(self, source: object) -> None:
        """What ``source``'s last read left out, if it reads namespaces."""
        skipped = getattr(source, "skipped", ())
        new = [skip for skip in skipped if skip not in self.said]
        self.said = set(skipped)
        if self.verbose:
            for skip in new:
                self.write(f"tcpstates: left out {safe(skip.what)}: {skip.why.value}\n")
            return
        refused = sum(skip.why.name == "REFUSED" for skip in new)
        if refused:
            one = refused == 1
            self.write(
                f"tcpstates: {refused} network {'namespace' if one else 'namespaces'} cannot be"
                f" entered without root (CAP_SYS_ADMIN); {'its' if one else 'their'} sockets are"
                " not listed\n"
            )


def say_source(out: Output, source: object, verbose: bool) -> None:
    """-v: which source reads the sockets, and why it was chosen."""
    if verbose:
        name, why = getattr(source, "name", "?"), getattr(source, "why", "")
        out.stderr.write(f"tcpstates: reading sockets with {name}: {safe(why)}\n")
