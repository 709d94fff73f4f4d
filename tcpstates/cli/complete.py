"""Shell completion for bash, zsh and fish: click's scripts and protocol, and the values click
cannot know by itself: state names, namespace names, and which options take paths.

To enable it (man tcpstates, COMPLETION), a shell runs tcpstates with ``_TCPSTATES_COMPLETE``
set: ``bash_source`` (or ``zsh_source``, ``fish_source``) prints the script to load, and the
script then asks ``bash_complete`` and the like for the words at the cursor. ``run()`` hands such
a call here before anything else, so no socket is read and nothing else is printed.

The completers are attached by parameter name when completing and only then: every command's
option of that name completes alike (``trace -s`` as ``-s``, ``doctor --from`` as ``--from``),
and the options' parsing and checks stay exactly as declared. Choices (``-o``, ``--by``,
``--lang``, ...) and subcommands complete through click already.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from tcpstates.model.errors import ExitStatus
from tcpstates.render.safe import safe

if TYPE_CHECKING:  # click loads it for completion only; every run imports this module
    from click.shell_completion import CompletionItem

# Fixed, not derived from the program's name as click would: `python -m tcpstates` and the
# console script then answer to one variable. __main__.py spells it again (see there).
COMPLETE_VAR = "_TCPSTATES_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
ACTIONS = ("source", "complete")
# What a shell's script passes when it asks for completions; without them click fails with a
# KeyError or ValueError traceback.
COMPLETE_ENV = ("COMP_WORDS", "COMP_CWORD")

Completer = Callable[[click.Context, click.Parameter, str], "list[CompletionItem] | list[str]"]


def complete(cli: click.Command, instruction: str) -> int:
    """Answer ``_TCPSTATES_COMPLETE=instruction``: print a shell's script, or its completions."""
    shell, _, action = instruction.partition("_")
    problem = _problem(shell, action)
    if problem:
        sys.stderr.write(f"tcpstates: {COMPLETE_VAR}={safe(instruction)}: {problem}\n")
        return ExitStatus.USAGE
    from click.shell_completion import shell_complete

    attach(cli)
    return shell_complete(cli, {}, "tcpstates", COMPLETE_VAR, instruction)


def _problem(shell: str, action: str) -> str | None:
    if shell not in SHELLS or action not in ACTIONS:
        return "give " + ", ".join(f"{name}_source" for name in SHELLS)
    missing = [name for name in COMPLETE_ENV if name not in os.environ]
    if action == "complete" and missing:
        return f"{' and '.join(missing)} not set; the {shell} script sets them"
    if action == "complete" and shell != "fish" and not os.environ["COMP_CWORD"].isdigit():
        return "COMP_CWORD is not a word's index"  # fish passes the word itself
    return None


# A completer may answer plain words; click makes them CompletionItems.
def state_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """-s: the states and groups it reads, matched in any case, - or _ alike."""
    from tcpstates.model.states import names_starting

    return names_starting(incomplete)


def one_state(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """--explain: one state; an ADDRESS:PORT is the user's own."""
    from tcpstates.model.states import names_starting

    return names_starting(incomplete, groups=False)


def netns_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """--netns: the names under /run/netns. A name the shell's protocol cannot carry (a control
    character ends a reply's line) is left out; --netns still takes it typed."""
    from tcpstates.sources.netns import listed_names

    return [n for n in listed_names() if n.startswith(incomplete) and n.isprintable()]


def files(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """A path to read or write: the shell completes it as it does for any command."""
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="file")]


def directories(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    return [CompletionItem(incomplete, type="dir")]


# Parameter name -> what completes its value, in every command that has it.
COMPLETERS: dict[str, Completer] = {
    "states": state_names,  # -s/--state, trace -s
    "explain": one_state,
    "netns": netns_names,
    "captures": files,  # --from, doctor --from: a file, a directory or -
    "save": directories,
    "textfile": files,  # export --textfile
}
# Text options whose values are the user's own, with nothing to offer: addresses, networks, a
# process name's glob. tests/test_completion.py holds every text option to one of the two.
FREE_TEXT = frozenset({"local", "remote", "process", "listen"})


def attach(command: click.Command) -> None:
    """Give ``command``'s options, and its subcommands', the completers named in COMPLETERS."""
    for param in command.params:
        completer = COMPLETERS.get(param.name or "")
        if completer is not None:
            # What click's ``shell_complete=`` argument sets; attached here, in the one table.
            param._custom_shell_complete = completer
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            attach(sub)
