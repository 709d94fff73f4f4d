"""A real terminal for tests: the program runs in a tmux pane and the test reads the screen.

Piped output says nothing about what a person sees, so screen tests run the real program in
tmux, on a private server (``-L``) with no configuration (``-f /dev/null``), and read what
tmux drew with ``capture-pane``.

The pane's shell is ``/bin/sh`` whatever the caller's ``$SHELL``: without one, tmux falls
back to the passwd entry, and nobody's is ``/usr/sbin/nologin``, which ends the pane the
moment it opens (what CI saw as ``capture-pane`` failing).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pytest

needs_tmux = pytest.mark.skipif(not shutil.which("tmux"), reason="needs tmux, a real terminal")


class Terminal:
    """One tmux server with one window; ``screen()`` is what it shows now."""

    def __init__(self, name: str) -> None:
        self.tmux = ["tmux", "-L", name, "-f", "/dev/null"]

    def _run(self, *args: str) -> str:
        done = subprocess.run(
            [*self.tmux, *args], capture_output=True, text=True, check=True, timeout=20
        )
        return done.stdout

    def start(self, argv: Sequence[str], width: int, height: int, env: dict[str, str]) -> None:
        script = shlex.join(argv) + "; echo EXIT=$?; exec sleep 120"
        size = ("-x", str(width), "-y", str(height))
        subprocess.run(
            [*self.tmux, "new-session", "-d", *size, "-s", "w", script],
            check=True,
            env=env,
            timeout=20,
        )

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-t", "w")

    def lines(self) -> list[str]:
        return self.screen().rstrip("\n").split("\n")

    def joined_lines(self) -> list[str]:
        """The screen's lines as the program wrote them: a line the terminal wrapped is joined
        again (``capture-pane -J``), so one wider than the pane shows as wider."""
        screen = self._run("capture-pane", "-p", "-J", "-t", "w")
        return [line.rstrip() for line in screen.rstrip("\n").split("\n")]

    def display(self, fmt: str) -> str:
        return self._run("display", "-p", "-t", "w", fmt).strip()

    def resize(self, width: int, height: int) -> None:
        self._run("resize-window", "-t", "w", "-x", str(width), "-y", str(height))

    def keys(self, *keys: str) -> None:
        self._run("send-keys", "-t", "w", *keys)

    def wait_for(self, text: str, timeout: float = 20) -> str:
        """The screen once it shows ``text``; fails with the screen after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while text not in (shown := self.screen()):
            assert time.monotonic() < deadline, f"{text!r} never shown:\n{shown}"
            time.sleep(0.1)
        return shown

    def wait_until(self, done: Callable[[str], bool], timeout: float = 20) -> str:
        """The screen once ``done(screen)`` holds; fails with the screen after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not done(shown := self.screen()):
            assert time.monotonic() < deadline, f"never done:\n{shown}"
            time.sleep(0.1)
        return shown

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], check=False, capture_output=True, timeout=20)


def terminal_env(**extra: str) -> dict[str, str]:
    """The caller's environment made a terminal's: no COLUMNS/LINES to override the pane's
    size, no NO_COLOR, a known TERM and a shell that runs commands."""
    dropped = ("COLUMNS", "LINES", "NO_COLOR", "TMUX", "PAGER", "TCPSTATES_PAGER")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return env | {"TERM": "xterm-256color", "SHELL": "/bin/sh"} | extra


@contextmanager
def terminal(
    argv: Sequence[str], width: int = 80, height: int = 24, **env: str
) -> Iterator[Terminal]:
    """``argv`` running in a ``width`` × ``height`` tmux pane; the server is killed after."""
    term = Terminal(f"tcpstates-{os.getpid()}-{time.monotonic_ns()}")
    try:
        term.start(argv, width, height, terminal_env(**env))
        yield term
    finally:
        term.close()


def table_lines(screen: list[str]) -> list[str]:
    """The lines the table wrote, above the shell's ``EXIT=`` line, after checking it is 0.

    Not ours to fit: what is said on stderr, one line for scripts (as nobody, that other
    users' processes cannot be attributed); it reaches the terminal beside the table.
    """
    end = next(i for i, line in enumerate(screen) if line.startswith("EXIT="))
    assert screen[end] == "EXIT=0"
    return [line for line in screen[:end] if not line.startswith("tcpstates: ")]
