"""A pager for output longer than the screen, as git has one.

On a terminal, a command that prints a document (a listing, counts, an explanation, findings)
writes it into ``$TCPSTATES_PAGER``, else ``$PAGER``, else ``less``, with ``LESS=FRX`` when
LESS is unset: ``F`` quits at once when the text fits one screen, so short output looks as if
no pager ran; ``R`` passes colours through; ``X`` leaves the text on the screen after. An
empty value or ``cat`` means no pager, and so does ``--no-pager``; a pipe or a file never
gets one. A pager program that cannot be found is said in one line and the output goes to
the terminal directly, as git does.

The document is drawn for the terminal, not for the pipe it goes through: its width and
colours are the terminal's, read before stdout is swapped.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import shlex
import subprocess
from collections.abc import Iterator, Mapping

from tcpstates.model.record import replace
from tcpstates.render.output import Output

DEFAULT = "less"
DEFAULT_LESS = "FRX"
NONE = ("", "cat")  # values that mean: no pager


def pager_argv(environ: Mapping[str, str]) -> list[str] | None:
    """The pager to run, from TCPSTATES_PAGER, else PAGER, else less; None for none.

    >>> pager_argv({"PAGER": "most -s"}), pager_argv({"TCPSTATES_PAGER": "", "PAGER": "less"})
    (['most', '-s'], None)
    >>> pager_argv({})
    ['less']
    """
    for name in ("TCPSTATES_PAGER", "PAGER"):
        if name in environ:
            value = environ[name].strip()
            return None if value in NONE else shlex.split(value)
    return [DEFAULT]


@contextlib.contextmanager
def paged(out: Output, environ: Mapping[str, str] | None = None) -> Iterator[Output]:
    """``out``, or an Output writing into a pager that shows it on ``out``'s terminal.

    The pager is waited for before this returns, also on Ctrl-C (less handles that key
    itself); one quit early (``q``) is not an error: what was left to write is dropped.
    """
    environ = os.environ if environ is None else environ
    argv = pager_argv(environ) if out.is_terminal else None
    if argv is None:
        yield out
        return
    width = out.width or _columns(out)
    env = {**environ, "LESS": environ.get("LESS", DEFAULT_LESS), "LV": environ.get("LV", "-c")}
    out.stdout.flush()
    try:
        pager = subprocess.Popen(argv, stdin=subprocess.PIPE, env=env)
    except OSError as e:  # not found, or not executable: as if there were none
        why = "not found" if isinstance(e, FileNotFoundError) else f"cannot run ({e.strerror})"
        out.say(f"pager {argv[0]!r} {why}; writing to the terminal")
        yield out
        return
    assert pager.stdin is not None
    stream = io.TextIOWrapper(pager.stdin, encoding=_encoding(out), errors="replace")
    color = "always" if out.color == "auto" else out.color
    try:
        yield replace(out, stdout=stream, width=width, color=color)
        stream.flush()
    except BrokenPipeError:  # the pager was quit: the rest is unread
        pass
    except SystemExit:  # what Rich raises for a broken pipe, SystemExit(1), is the same quit
        if not _reader_gone(pager.stdin.fileno()):
            raise
    finally:
        with contextlib.suppress(BrokenPipeError, OSError):
            stream.close()
        _wait(pager)


def _columns(out: Output) -> int | None:
    """The terminal's width as a table fits it (COLUMNS first), also under -W, which only
    stops the fitting: prose and diagrams still wrap to the terminal."""
    return replace(out, wide=False).fit_width()


def _reader_gone(fd: int) -> bool:
    """Whether the pipe's reader has closed it: poll says POLLERR on the writing end."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _encoding(out: Output) -> str:
    return getattr(out.stdout, "encoding", None) or "utf-8"


def _wait(pager: subprocess.Popen[bytes]) -> None:
    """Wait for the pager to end: Ctrl-C goes to it too, and it decides."""
    while True:
        try:
            pager.wait()
            return
        except KeyboardInterrupt:
            continue
