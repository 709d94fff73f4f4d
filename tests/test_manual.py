"""``tcpstates help [TOPIC]``: every page shown, with man, with groff alone, and with neither."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
from conftest import TCPSTATES, Cli
from terminal import needs_tmux, terminal

from tcpstates.manual.pages import PAGES, page_path, stripped

NAMES = {
    "tcpstates": "tcpstates - list sockets",
    "doctor": "tcpstates-doctor - diagnose",
    "kill": "tcpstates-kill - destroy the sockets",
    "top": "tcpstates-top - an interactive view",
    "counters": "tcpstates-counters - the kernel",
    "trace": "tcpstates-trace - stream",
    "export": "tcpstates-export - socket counts",
    "states": "tcpstates-states - the TCP states",
}


def without(tmp_path: Path, *programs: str) -> dict[str, str]:
    """An environment whose PATH holds what ours does but ``programs`` (man, groff, ...)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for directory in reversed(os.environ["PATH"].split(os.pathsep)):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = bin_dir / entry.name
            if entry.name not in programs and not link.is_symlink():
                link.symlink_to(entry.path)
    return {**os.environ, "PATH": str(bin_dir), "MANPAGER": "cat", "PAGER": "cat"}


def test_the_topics_are_the_pages_in_man() -> None:
    on_disk = sorted(path.name for path in (Path(__file__).parent.parent / "man").iterdir())
    assert sorted(PAGES.values()) == on_disk
    assert sorted(NAMES) == sorted(PAGES)


@pytest.mark.parametrize("topic", sorted(PAGES))
@pytest.mark.parametrize(
    ("used", "missing"),
    [("man", ()), ("groff", ("man",)), (None, ("man", "groff", "nroff"))],
    ids=["man", "groff", "neither"],
)
def test_each_page_is_shown_with_man_groff_or_neither(
    cli: Cli, tmp_path: Path, topic: str, used: str | None, missing: tuple[str, ...]
) -> None:
    if used and not shutil.which(used):
        pytest.skip(f"needs {used}")
    done = cli.process("help", topic, env=without(tmp_path, *missing))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    text = " ".join(done.stdout.replace("\u2010", "-").split())  # joined as man fills lines
    assert NAMES[topic] in text
    assert "\x08" not in done.stdout and "\x1b" not in done.stdout  # no overstrike, no SGR
    assert ".TP" not in done.stdout and "\\fB" not in done.stdout


def test_no_topic_is_the_main_page(cli: Cli, tmp_path: Path) -> None:
    done = cli.process("help", env=without(tmp_path))
    assert NAMES["tcpstates"] in " ".join(done.stdout.split())


def test_an_unknown_topic_is_one_line_naming_the_topics(cli: Cli) -> None:
    done = cli("help", "nosuch")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert all(topic in done.stderr for topic in PAGES)


def test_options_of_other_commands_are_refused_before_and_after_help(cli: Cli) -> None:
    for args in (("--port", "1", "help"), ("help", "--port", "1"), ("-o", "json", "help")):
        done = cli(*args)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (args, done.stderr)


def test_the_installed_page_is_preferred_to_the_checkout() -> None:
    # pip puts the pages under the environment's share/man; found there, not by MANPATH.
    installed = Path(sys.prefix) / "share" / "man" / "man1" / "tcpstates-doctor.1"
    if not installed.is_file():
        pytest.skip("tcpstates is not installed in this environment (a bare checkout)")
    assert page_path("doctor") == installed


def test_the_stripped_text_keeps_the_words_and_drops_the_markup() -> None:
    source = Path(__file__).parent.parent.joinpath("man", "tcpstates-doctor.1").read_text()
    text = stripped(source)
    assert "DESCRIPTION" in text and "tcpstates doctor" in text and "--format" in text
    assert not [line for line in text.splitlines() if line.startswith(".")]
    assert "\\f" not in text and "\\-" not in text


@needs_tmux
def test_on_a_terminal_the_page_goes_through_mans_pager(tmp_path: Path) -> None:
    record = tmp_path / "paged"
    pager = tmp_path / "pager"
    pager.write_text(f"#!/bin/sh\ncat > {record}\n")
    pager.chmod(pager.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    tmp_path.chmod(0o777)  # nobody's run writes the record here too
    with terminal([*TCPSTATES, "help", "trace"], 80, 24, MANPAGER=str(pager)) as term:
        term.wait_for("EXIT=0")
    assert "tcpstates-trace" in record.read_text().replace("\u2010", "-")


@needs_tmux
def test_without_man_a_page_on_a_terminal_goes_through_the_pager(tmp_path: Path) -> None:
    recorder = tmp_path / "pager"
    recorder.write_text(f"#!/bin/sh\ncat > {tmp_path}/paged\n")
    recorder.chmod(0o755)
    path = without(tmp_path, "man")["PATH"]
    with terminal([*TCPSTATES, "help", "doctor"], 80, 24, PATH=path, PAGER=str(recorder)) as t:
        assert "EXIT=0" in t.wait_for("EXIT=")
    paged = (tmp_path / "paged").read_text()
    assert NAMES["doctor"] in " ".join(paged.replace("\u2010", "-").split())


def test_doctests() -> None:
    import doctest

    from tcpstates.manual import pages

    assert doctest.testmod(pages).failed == 0


def test_without_groff_the_flags_table_keeps_its_rows(cli: Cli, tmp_path: Path) -> None:
    done = cli.process("help", env=without(tmp_path, "man", "groff", "nroff"))
    assert "-s  statistics, a summary  a state: -s time-wait" in done.stdout
    assert "tab(|)" not in done.stdout and "|" not in done.stdout.split("NETSTAT AND SS")[1][:900]
