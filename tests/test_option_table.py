"""Every option of every command either changes the request the command runs or is refused.

The table is generated from click's own parameter lists (the root command's and each
subcommand's), not from a hand-picked list of pairs: a new option is tested the day it is added,
and one with no sample value below fails the test until it has one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from tcpstates.cli.root import cli, resolve
from tcpstates.model.errors import UsageError

DATA = Path(__file__).parent / "data"

# Each command, as its (shortest) spelling; a subcommand's options are typed before or after it.
COMMANDS: dict[str, list[str]] = {
    "listing": [],
    "summary": ["--summary"],
    "by": ["--by", "local-port"],
    "watch": ["--watch", "1"],
    "explain-state": ["--explain", "TIME_WAIT"],
    "explain-sockets": ["--explain", "127.0.0.1:80"],
    "explain-all": ["--explain"],
    "diagram": ["--diagram"],
    "scenario": ["--scenario", "close"],
    "save": ["--save", "/nonexistent/capture"],
    "openmetrics": ["-o", "openmetrics"],
    "doctor": ["doctor"],
    "trace": ["trace"],
    "cleanup": ["trace", "--cleanup"],
    "export": ["export"],
    "kill": ["kill"],
    "top": ["top"],
    "counters": ["counters"],
}
SUBCOMMANDS = {"doctor", "trace", "export", "kill", "counters", "top"}

# Values for parameters whose click type says nothing useful (STRING, or a callback's input).
STRINGS = {
    "states": "listen",
    "local": "127.0.0.1",
    "remote": "10.0.0.0/8",
    "process": "nginx",
    "explain": "CLOSE_WAIT",
    "captures": str(DATA / "proc-little"),
    "save": "/nonexistent/other",
    "netns": "tcpstates-option-table",
    "listen": ":9977",
    "textfile": "/nonexistent/tcpstates.prom",
    "watch": "3",
    "interval": "5",
    "duration": "2",
}
# Options that matter only beside another one: typed with it, and compared with it alone.
COMPANIONS = {"tcp": ["--udp"]}


def samples(param: click.Parameter) -> Iterator[list[str]]:
    """Each way to type ``param`` that differs from leaving it out."""
    assert isinstance(param, click.Option)
    flag = max(param.opts, key=len)
    if param.is_flag:
        yield [flag]
    elif param.name in STRINGS:
        yield [flag, STRINGS[param.name]]
    elif isinstance(param.type, click.Choice):
        for choice in param.type.choices:
            if choice != param.default:
                yield [flag, str(choice)]
    elif isinstance(param.type, click.IntRange):
        yield [flag, str(max(param.type.min or 0, 1) + 4)]
    else:
        pytest.fail(f"no sample value for {flag} ({param.type.name}): add one to STRINGS")


def options() -> Iterator[tuple[str, click.Parameter]]:
    """(where it is declared, parameter) for every option of every command."""
    seen = set()
    for owner, command in [("root", cli), *sorted(cli.commands.items())]:  # type: ignore[attr-defined]
        for param in command.params:
            if param.name in (None, "version") or not isinstance(param, click.Option):
                continue
            if (owner, param.name) not in seen:
                seen.add((owner, param.name))
                yield owner, param


def cases() -> Iterator[object]:
    for command, spelled in COMMANDS.items():
        for owner, param in options():
            if owner != "root" and spelled[:1] != [owner]:
                continue  # another subcommand's option: click itself says "No such option"
            for typed in samples(param):
                if param.name in chosen_by(spelled):
                    continue  # the option that chooses this command
                name = f"{command}:{' '.join(typed)}"
                yield pytest.param(command, owner, typed, id=name)


def chosen_by(spelled: list[str]) -> set[str | None]:
    """The parameters typed in ``spelled`` (the options that choose the command)."""
    return {p.name for _, p in options() if set(p.opts) & set(spelled)}


def declared_default(command: str, name: str | None) -> object:
    """The default a subcommand gives its own option ``name`` (trace's -o is plain)."""
    sub = cli.commands.get(COMMANDS[command][0]) if COMMANDS[command] else None  # type: ignore[attr-defined]
    params = {p.name: p for p in sub.params} if sub is not None else {}
    return params[name].default if name in params else None


def spell(command: str, owner: str, typed: list[str], companion: list[str]) -> list[list[str]]:
    """Every spelling of ``command`` with ``typed``: before and after a subcommand."""
    spelled = COMMANDS[command]
    if command not in SUBCOMMANDS and command != "cleanup":
        return [[*companion, *typed, *spelled]]
    sub, rest = spelled[0], spelled[1:]
    spellings = []
    if owner == "root" or owner == sub:
        if any(typed[0] in p.opts for p in cli.commands[sub].params):  # type: ignore[attr-defined]
            spellings.append([*companion, sub, *rest, *typed])
        if any(typed[0] in p.opts for p in cli.params):
            spellings.append([*companion, *typed, sub, *rest])
    return spellings


@pytest.mark.parametrize(("command", "owner", "typed"), list(cases()))
def test_every_option_applies_or_is_refused(command: str, owner: str, typed: list[str]) -> None:
    param_name = next(p.name for _, p in options() if typed[0] in p.opts)  # type: ignore[union-attr]
    companion = COMPANIONS.get(param_name or "", [])
    try:
        resolve([*companion, *COMMANDS[command]])
    except (UsageError, click.UsageError):
        companion = []  # the command refuses the companion itself: try the option alone
    for argv in spell(command, owner, typed, companion):
        try:
            request = resolve(argv)
        except (UsageError, click.UsageError) as e:
            message = e.format_message() if isinstance(e, click.UsageError) else str(e)
            assert "\n" not in message
            flags = [o for _, p in options() if p.name == param_name for o in p.opts]
            assert any(flag in message for flag in flags), (argv, message)
            continue
        try:
            baseline = resolve([*companion, *COMMANDS[command]])
        except (UsageError, click.UsageError):
            continue  # the command needs this option (--live needs --scenario's partner)
        implied = param_name in type(request).IMPLIED
        default = typed[-1] == declared_default(command, param_name)  # typed what it is anyway
        assert request != baseline or implied or default, f"{argv}: accepted and changed nothing"


def test_the_table_covers_every_option() -> None:
    # Each option applies to at least one command: an option nothing takes would be dead.
    from tcpstates.cli import requests
    from tcpstates.cli.table import applies

    kinds = [k for k in vars(requests).values() if isinstance(k, type)]
    kinds = [k for k in kinds if issubclass(k, requests.Request) and k is not requests.Request]
    names = {p.name for _, p in options()}
    taken = set().union(*(applies(k, names) | (k.IMPLIED & names) for k in kinds))
    assert names - taken <= {"explain", "diagram", "scenario"} - taken, names - taken
    assert names <= taken | {"explain", "diagram", "scenario"}
