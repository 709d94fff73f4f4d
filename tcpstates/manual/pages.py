"""Where the manual pages are, and how to show one.

pip installs the pages into the environment's ``share/man``, which ``man`` only searches when
the environment's ``bin`` is on PATH; a venv run as ``.venv/bin/tcpstates`` is not. So the page
is found here and handed to ``man -l FILE``, which formats it and pages it as man always does.
Without man (a slim container), groff or nroff formats it; without those, the page's own text
is printed with the roff requests taken out, so the words are always there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import TextIO

from tcpstates.manual.topics import PAGES, TOPICS
from tcpstates.model.errors import TcpstatesError, UsageError


def page_path(topic: str) -> Path:
    """The page for ``topic``: installed with the package, else the checkout's ``man/``."""
    if topic not in PAGES:
        raise UsageError(f"no help topic {topic!r}; the topics: {', '.join(TOPICS)}")
    name = PAGES[topic]
    section = name.rpartition(".")[2]
    for base in _places():
        for path in (base / "share" / "man" / f"man{section}" / name, base / "man" / name):
            if path.is_file():
                return path
    raise TcpstatesError(f"the manual page {name} is not installed (looked in {sys.prefix})")


def _places() -> list[Path]:
    checkout = Path(__file__).resolve().parent.parent.parent  # an editable install, a checkout
    return [Path(sysconfig.get_path("data")), Path(sys.prefix), checkout]


def man_program() -> str | None:
    """The man program that shows a page, with its own pager; None: the page is text, which
    the command line pages itself on a terminal."""
    return shutil.which("man")


def show(topic: str, out: TextIO) -> int:
    """Show the page: through man (and so its pager) when there is one, else as text."""
    path = page_path(topic)
    out.flush()
    if man := man_program():
        return subprocess.run([man, "-l", str(path)], check=False).returncode
    out.write(formatted(path))
    return 0


def formatted(path: Path) -> str:
    """The page as plain text: groff's or nroff's rendering, else its words without markup."""
    for argv in (
        ["groff", "-t", "-man", "-Tutf8", "-P-cbou"],  # -t: tbl, for the pages' tables
        ["nroff", "-t", "-man", "-Tutf8"],
    ):
        if shutil.which(argv[0]):
            done = subprocess.run(
                [*argv, str(path)], capture_output=True, text=True, check=False, env=_env()
            )
            if done.returncode == 0 and done.stdout:
                return _no_overstrike(done.stdout)
    return stripped(path.read_text(encoding="utf-8"))


def _env() -> dict[str, str]:
    columns = shutil.get_terminal_size().columns
    return {**os.environ, "MANWIDTH": str(columns), "GROFF_NO_SGR": "1"}


def _no_overstrike(text: str) -> str:
    """nroff's bold and underline are a character, a backspace and the character again."""
    return re.sub(r".\x08", "", text)


_FONT = re.compile(r"\\f[BIRP]|\\f\(..|\\&|\\e")


def stripped(source: str) -> str:
    """A roff page's words: requests dropped, section names kept, escapes undone.

    >>> print(stripped(".SH NAME\\n.B \\\\-\\\\-port\\n.TP\\n\\\\fBx\\\\fR y"), end="")
    NAME
    --port
    x y

    A tbl table's rows are kept, their cells two blanks apart:

    >>> print(stripped(".TS\\ntab(|);\\nl l.\\nFlag|Means\\n_\\n\\\\-t|TCP\\n.TE"), end="")
    Flag  Means
    -t  TCP
    """
    lines = []
    # In a tbl table: None outside, False in its format lines, True in its rows.
    table: bool | None = None
    for line in source.splitlines():
        if line.startswith(('.\\"', "'")):
            continue
        if table is not None and not line.startswith(".TE"):
            if table and line != "_":
                lines.append("  ".join(line.split("|")))
            table = table or line.endswith(".")  # the format's last line ends in a dot
            continue
        if line.startswith("."):
            table = False if line.startswith(".TS") else None
            request, _, rest = line.partition(" ")
            if request in (".SH", ".SS"):
                lines.append(rest.strip('"'))
            elif request in (".B", ".I", ".BR", ".IR", ".RB", ".RI", ".BI", ".IB") and rest:
                lines.append(rest.replace('"', ""))
            continue
        lines.append(line)
    text = "\n".join(lines) + "\n"
    return _FONT.sub(lambda m: "\\" if m.group() == "\\e" else "", text).replace("\\-", "-")
