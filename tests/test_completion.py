"""Shell completion through the real entry point: what bash, zsh and fish run, in a process.

A shell loads the script ``_TCPSTATES_COMPLETE=<shell>_source tcpstates`` prints, and at each Tab
runs tcpstates again with ``<shell>_complete`` and COMP_WORDS/COMP_CWORD. Before completion was
wired to run(), both calls printed the socket table.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from tcpstates import __main__ as entry
from tcpstates.cli import complete
from tcpstates.cli.root import cli

# The console script, as a shell finds it on PATH (complete -p names the program).
BIN = Path(sys.executable).parent
SCRIPT_MARKS = {
    "bash": "complete -o nosort -F _tcpstates_completion tcpstates",
    "zsh": "compdef _tcpstates_completion tcpstates",
    "fish": "complete --no-files --command tcpstates",
}


def completing(instruction: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m tcpstates ARGS`` with the completion variable and ``env`` set."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COMP_")}
    environ |= {complete.COMPLETE_VAR: instruction, **env}
    return subprocess.run(
        [sys.executable, "-m", "tcpstates", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def bash_complete(line: str) -> list[str]:
    """The replies to Tab at the end of ``line``, as click's bash script receives them."""
    words = line.split(" ")
    done = completing("bash_complete", COMP_WORDS=line, COMP_CWORD=str(len(words) - 1))
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return [line for line in done.stdout.split("\n") if line]  # none is one empty line


@pytest.fixture
def listener() -> Iterator[int]:
    """A listening socket's port: a listing would show it; a script never does."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.mark.parametrize("shell", sorted(SCRIPT_MARKS))
def test_source_prints_the_script_not_sockets(shell: str, listener: int) -> None:
    done = completing(f"{shell}_source")
    assert (done.returncode, done.stderr) == (0, "")
    assert SCRIPT_MARKS[shell] in done.stdout
    assert str(listener) not in done.stdout


def test_completion_skips_the_fast_path(listener: int) -> None:
    # `--summary -o json` is what the fast path answers without click; with the variable set,
    # the answer is still the script.
    done = completing("bash_source", "--summary", "-o", "json")
    assert (done.returncode, done.stderr) == (0, "")
    assert SCRIPT_MARKS["bash"] in done.stdout and "ESTABLISHED" not in done.stdout


def test_main_spells_the_variable_as_complete_does() -> None:
    assert entry.COMPLETE_VAR == complete.COMPLETE_VAR


@pytest.mark.parametrize(
    ("line", "replies"),
    [
        ("tcpstates -s ti", ["plain,TIME_WAIT"]),
        ("tcpstates --state EST", ["plain,ESTABLISHED", "plain,ESTAB"]),  # ss's spelling too
        ("tcpstates -s fin-wait-", ["plain,FIN_WAIT1", "plain,FIN_WAIT2"]),
        ("tcpstates -s conn", ["plain,connected"]),  # a group
        ("tcpstates -s unc", ["plain,UNCONN"]),
        ("tcpstates trace -s close-w", ["plain,CLOSE_WAIT"]),
        ("tcpstates --explain clo", ["plain,CLOSE", "plain,CLOSE_WAIT", "plain,CLOSING"]),
        ("tcpstates --explain con", []),  # one state: --explain takes no group
        ("tcpstates -s nosuch", []),
    ],
)
def test_state_names_complete_in_any_case(line: str, replies: list[str]) -> None:
    assert bash_complete(line) == replies


def test_formats_and_other_choices_complete() -> None:
    fmt = next(p for p in cli.params if p.name == "fmt")
    assert isinstance(fmt.type, click.Choice)
    assert bash_complete("tcpstates -o ") == [f"plain,{name}" for name in fmt.type.choices]
    assert bash_complete("tcpstates doctor -o j") == ["plain,json"]
    assert bash_complete("tcpstates --lang I") == ["plain,id"]


def test_subcommands_complete() -> None:
    names = sorted(cli.commands)  # type: ignore[attr-defined]
    assert names and bash_complete("tcpstates ") == [f"plain,{name}" for name in names]
    assert bash_complete("tcpstates do") == ["plain,doctor"]


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("tcpstates --from ", "file,"),
        ("tcpstates doctor --from ", "file,"),
        ("tcpstates export --textfile ", "file,"),
        ("tcpstates --save ", "dir,"),
    ],
)
def test_paths_are_left_to_the_shell(line: str, reply: str) -> None:
    assert bash_complete(line) == [reply]


def test_netns_names_complete(netns: Any) -> None:
    name = netns("complete").name
    assert f"plain,{name}" in bash_complete("tcpstates --netns ")
    assert bash_complete(f"tcpstates --netns {name[:-1]}") == [f"plain,{name}"]
    subprocess.run(["ip", "netns", "delete", name], check=True)
    assert f"plain,{name}" not in bash_complete("tcpstates --netns ")


def test_fish_and_zsh_reply_formats() -> None:
    fish = completing("fish_complete", COMP_WORDS="tcpstates -s ti", COMP_CWORD="ti")
    assert (fish.returncode, fish.stdout) == (0, "plain,TIME_WAIT\n")
    zsh = completing("zsh_complete", COMP_WORDS="tcpstates -s ti", COMP_CWORD="2")
    assert (zsh.returncode, zsh.stdout) == (0, "plain\nTIME_WAIT\n_\n")


def in_shell(shell: str, script: str, home: Path) -> str:
    """``script`` run by ``shell`` with tcpstates on PATH, and an empty home: no rc file of the
    user's counts, and fish has somewhere to keep its history (nobody's home is /nonexistent)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(home)}
    for name in ("ZDOTDIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        env.pop(name, None)
    done = subprocess.run(
        [shell, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_loads_the_script_and_completes(tmp_path: Path) -> None:
    out = in_shell(
        "bash",
        'eval "$(_TCPSTATES_COMPLETE=bash_source tcpstates)"\n'
        "complete -p tcpstates\n"
        "COMP_WORDS=(tcpstates -s ti); COMP_CWORD=2; _tcpstates_completion tcpstates\n"
        'echo "${COMPREPLY[@]}"',
        tmp_path,
    )
    assert out == f"{SCRIPT_MARKS['bash']}\nTIME_WAIT\n"


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_loads_the_script_and_completes(tmp_path: Path) -> None:
    out = in_shell(
        "fish",
        "_TCPSTATES_COMPLETE=fish_source tcpstates | source\n"
        "complete --do-complete 'tcpstates -s ti'\n"
        "complete --do-complete 'tcpstates tr'",
        tmp_path,
    )
    assert [line.split("\t")[0] for line in out.splitlines()] == ["TIME_WAIT", "trace"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_loads_the_script(tmp_path: Path) -> None:
    out = in_shell(
        "zsh",
        "autoload -Uz compinit && compinit -u -D\n"
        'eval "$(_TCPSTATES_COMPLETE=zsh_source tcpstates)"\n'
        "print $_comps[tcpstates]",
        tmp_path,
    )
    assert out == "_tcpstates_completion\n"


@pytest.mark.parametrize(
    ("instruction", "env", "says"),
    [
        ("tcsh_source", {}, "give bash_source, zsh_source, fish_source"),
        ("bash_nonsense", {}, "give bash_source, zsh_source, fish_source"),
        ("bash_complete", {}, "COMP_WORDS and COMP_CWORD not set"),
        ("zsh_complete", {"COMP_WORDS": "tcpstates", "COMP_CWORD": "x"}, "not a word's index"),
    ],
)
def test_a_bad_request_is_one_line(instruction: str, env: dict[str, str], says: str) -> None:
    done = completing(instruction, **env)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1 and says in done.stderr, done.stderr


def test_every_text_option_completes_or_is_the_users_own() -> None:
    """A new option taking text must say what it completes to (or that nothing can)."""
    commands = [cli, *cli.commands.values()]  # type: ignore[attr-defined]
    text = {
        p.name
        for command in commands
        for p in command.params
        if isinstance(p, click.Option) and not p.is_flag and p.type is click.STRING
    }
    assert text == set(complete.COMPLETERS) | complete.FREE_TEXT
    assert not set(complete.COMPLETERS) & complete.FREE_TEXT


def test_the_man_page_says_how_to_enable_it() -> None:
    man = (Path(__file__).parent.parent / "man" / "tcpstates.1").read_text().replace("\\-", "-")
    section = man.split(".SH COMPLETION\n")[1].split(".SH ")[0]
    for shell in SCRIPT_MARKS:
        assert f"{complete.COMPLETE_VAR}={shell}_source tcpstates" in section
    assert "~/.config/fish/completions/tcpstates.fish" in section
