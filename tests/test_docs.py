"""The man pages and --help say the same as the code: every option, every state, every metric.

The reference lives in the pages (man/); README is a short tour, held here only to its size,
its two set-up commands and the pages it names.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from tcpstates.cli import root
from tcpstates.manual.pages import PAGES
from tcpstates.model.errors import ExitStatus
from tcpstates.model.states import GROUPS, TcpState

ROOT = Path(__file__).parent.parent
MAN = ROOT / "man" / "tcpstates.1"
README_LIMIT = 16_000  # characters: a tour, not the reference


def man_text(page: str = "tcpstates.1") -> str:
    return (ROOT / "man" / page).read_text().replace("\\-", "-")


def option_names(command: click.Command = root.cli) -> list[str]:
    names = []
    for param in command.params:
        if isinstance(param, click.Option):
            names += param.opts + param.secondary_opts
    return names


SUBCOMMANDS = sorted(root.cli.commands.items())  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "command"), SUBCOMMANDS)
def test_every_subcommand_and_its_options_are_documented(cli, name, command):
    # A subcommand with a page of its own is documented there; the others in tcpstates.1.
    page = PAGES.get(name, "tcpstates.1")
    man = man_text(page)
    help_text = cli(name, "--help").stdout
    assert f"tcpstates {name}" in man and f"tcpstates {name}" in man_text()
    assert name in cli("--help").stdout
    for option in option_names(command):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", man), f"{option} not in {page}"
        assert option in help_text, f"{option} not in {name} --help"


def test_every_option_is_in_the_man_page_and_help(cli):
    man = man_text()
    help_text = cli("--help").stdout
    for name in option_names():
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", man), f"{name} not in man page"
        assert name in help_text, f"{name} not in --help"


def test_every_state_and_group_is_in_the_states_page():
    man = man_text(PAGES["states"])
    for state in TcpState:
        assert f".B {state.name}\n" in man, state.name
    for group in GROUPS:
        assert f".B {group}\n" in man


def _statuses_listed(block: str) -> list[int]:
    """The statuses a help epilog's list gives, one a line: `  3    doctor: ...`."""
    return [int(line.split()[0]) for line in block.strip().splitlines()]


def test_every_exit_status_is_in_the_man_page_and_help(cli):
    man = man_text()
    section = man.split(".SH EXIT STATUS\n")[1].split(".SH ")[0]
    assert [int(n) for n in re.findall(r"^\.B (\d+)$", section, flags=re.M)] == sorted(ExitStatus)
    help_text = cli("--help").stdout
    assert _statuses_listed(help_text.split("Exit status:\n")[1].split("\n\n")[0]) == sorted(
        ExitStatus
    )


def test_doctors_exit_statuses_are_in_its_help_and_man_section(cli):
    doctor = {ExitStatus.OK, ExitStatus.ERROR, ExitStatus.USAGE, ExitStatus.FINDINGS}
    help_text = cli("doctor", "--help").stdout
    block = help_text.split("Exit status, so that it can gate a script:\n")[1].split("\n\n")[0]
    assert _statuses_listed(block) == sorted(doctor)
    section = " ".join(man_text(PAGES["doctor"]).split())
    assert f"{int(ExitStatus.FINDINGS)} when one is" in section


def test_the_states_page_gives_the_manuals_descriptions():
    man = " ".join(man_text(PAGES["states"]).split())
    for state in TcpState:
        if state.info.from_manual and state is not TcpState.LISTEN:
            assert state.description in man, state.name


@pytest.mark.parametrize("page", sorted(PAGES.values()))
def test_each_page_renders_without_a_warning(page: str) -> None:
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff is not installed")
    result = subprocess.run(
        [groff, "-man", "-ww", "-z", str(ROOT / "man" / page)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("page", sorted(PAGES.values()))
def test_each_page_names_the_others_under_see_also(page: str) -> None:
    see_also = man_text(page).split(".SH SEE ALSO\n")[1]
    for other in PAGES.values():
        if other != page:
            name, _, section = other.rpartition(".")
            assert f".BR {name} ({section})" in see_also, other


def test_readme_is_a_short_tour_with_two_setup_commands_and_real_pages():
    readme = (ROOT / "README.md").read_text()
    assert len(readme) <= README_LIMIT, f"README has {len(readme)} characters"
    blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", readme, flags=re.S)
    setup = [b for b in blocks if "pip install" in b]
    assert len(setup) == 2, "README needs exactly two set-up commands"
    assert "tcpstates" in setup[0] and "pytest" in setup[1]
    named = set(re.findall(r"tcpstates help ([a-z]+)|man (tcpstates[a-z-]*)", readme))
    assert named, "README points to no manual page"
    for topic, page in named:
        assert topic in PAGES or page in {p.rpartition(".")[0] for p in PAGES.values()}


def test_every_metric_is_in_the_export_page(cli):
    done = cli("export", "--udp", "--by", "local-port", "--by", "process")
    assert done.returncode == 0, done.stderr
    metrics = set(re.findall(r"^# TYPE (\S+) ", done.stdout, flags=re.M))
    assert len(metrics) >= 6, done.stdout
    page = man_text(PAGES["export"])
    for metric in metrics:
        assert metric in page, f"{metric} not in {PAGES['export']}"


def test_ci_runs_the_readme_test_command_as_root_and_as_nobody():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().replace("\\\n", " ")  # continued lines joined
    assert "pytest -q" in readme
    runs = [" ".join(line.split()) for line in ci.splitlines() if ".venv/bin/pytest -q" in line]
    assert len(runs) == 2 and runs[0] == ".venv/bin/pytest -q", runs  # as root, as written
    assert "runuser -u nobody -- " in runs[1]  # then unprivileged


def test_every_page_is_installed_with_the_package():
    pyproject = (ROOT / "pyproject.toml").read_text()
    for page in PAGES.values():
        assert f'"man/{page}" = "share/man/man{page[-1]}/{page}"' in pyproject, page


def test_the_man_page_lists_what_each_command_takes(golden_update: bool) -> None:
    """The COMMANDS AND OPTIONS section is generated from the requests, so it cannot drift."""
    from tcpstates.cli import requests
    from tcpstates.cli.dispatch import option_flags
    from tcpstates.cli.table import reference

    kinds = [k for k in vars(requests).values() if isinstance(k, type)]
    kinds = [k for k in kinds if issubclass(k, requests.Request) and k is not requests.Request]
    flags = {}
    for command in [root.cli, *root.cli.commands.values()]:  # type: ignore[attr-defined]
        with command.make_context("tcpstates", [], resilient_parsing=True) as ctx:
            flags.update({k: v for k, v in option_flags(ctx).items() if k != "version"})
    section = reference(kinds, flags)
    text = MAN.read_text()
    start = text.index(".SH COMMANDS AND OPTIONS")
    end = text.index(".SH ", start + 1)
    if golden_update:
        MAN.write_text(text[:start] + section + text[end:])
        return
    assert text[start:end] == section, "run pytest tests/test_docs.py --update-golden"
