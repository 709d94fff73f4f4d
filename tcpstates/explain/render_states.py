"""Explanations as text: one state in sections, or every state in a table."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from tcpstates.explain.states import Explanation, name_clashes
from tcpstates.model.i18n import N_, _, language, ngettext
from tcpstates.model.lifecycle import Transition
from tcpstates.model.states import WINDOWS_DELETE_TCB, TcpState, names
from tcpstates.model.tunables import NONE_GOVERNS
from tcpstates.render.columns import Column

if TYPE_CHECKING:
    from rich.console import RenderableType

Section = tuple[str, list[str]]

STATE_COLUMNS = (
    Column(N_("State"), "left"),
    Column("ss", "left"),
    Column(N_("Code"), "right"),
    Column(N_("Phase"), "left"),
    Column(N_("Description"), "left"),
)
TRANSLATION = Column(N_("Translation"), "left")
TABLE_TITLE = N_("TCP states (descriptions from netstat(8))")

# The headings of one state's sections.
WHO = N_("Who is in it")
HOW = N_("How a socket gets here")
NEXT = N_("Where it goes next")
MANY = N_("When many sockets are here")
CHECK = N_("What to check")
KILLING = N_("Killing them")
SETTINGS = N_("Settings that govern it, as this host has them")
NOW = N_("On this host now")
NAMES = N_("Every name for it")
TRANSLATED = N_("translation")  # labels the manual's words in the language in use


def state_columns() -> tuple[Column, ...]:
    """The all-states table's columns in the language in use; in a language other than
    English the manual's words stay and a column with their translation follows."""
    columns = tuple(
        Column(_(c.header) if c.header != "ss" else "ss", c.align) for c in STATE_COLUMNS
    )
    if language() != "en":
        columns += (Column(_(TRANSLATION.header), "left"),)
    return columns


def sections(expl: Explanation, width: int) -> list[Section]:
    """The explanation as (heading, lines) pairs, each paragraph wrapped to ``width``, in the
    language in use."""
    state = expl.state
    result: list[Section] = [(f"{state.name} ({expl.names})", _description(state, width))]
    if expl.sides:
        result.append((_(WHO), [_(side.value) for side in expl.sides]))
    if expl.into:
        result.append((_(HOW), _transitions(expl.into)))
    if expl.out_of:
        result.append((_(NEXT), _transitions(expl.out_of)))
    result.append((_(MANY), _wrap(_(expl.piles_up), width)))
    result.append((_(CHECK), _wrap(_(expl.check), width)))
    if expl.killing:
        result.append((_(KILLING), _wrap(_(expl.killing), width)))
    if expl.settings is not None:
        result.append((_(SETTINGS), _settings(expl, width)))
    if expl.count is not None:
        line = ngettext(
            "{count} TCP socket in {state}", "{count} TCP sockets in {state}", expl.count
        ).format(count=expl.count, state=state.name)
        result.append((_(NOW), [line]))
    result.append((_(NAMES), _names(state, width)))
    return result


def _description(state: TcpState, width: int) -> list[str]:
    """The manual's words, verbatim; in another language, the translation beneath them."""
    if not state.info.from_manual:
        return _wrap(f"tcpstates: {_(state.description)}", width)
    lines = _wrap(f"netstat(8): {state.description}", width)
    if language() != "en":
        lines += _wrap(f"{_(TRANSLATED)}: {_(state.description)}", width)
    return lines


def _names(state: TcpState, width: int) -> list[str]:
    n = names(state)
    none = _("none")
    kernel = none
    if n.kernel is not None:
        kernel = _("{name} = {code}; {hex} in /proc/net/tcp").format(
            name=n.kernel, code=n.code, hex=n.proc_hex
        )
    windows = none
    if n.windows is not None:
        windows = f"{n.windows}, {n.windows_mib} = {n.windows_code}"
    if state is TcpState.CLOSE:
        windows += "; " + _("{name} = {code} is shown as CLOSE").format(
            name=WINDOWS_DELETE_TCB[0], code=WINDOWS_DELETE_TCB[2]
        )
    rows = [
        ("netstat", n.netstat),
        ("ss", n.ss),
        ("kernel", kernel),
        ("psutil", n.psutil or none),
        ("node_exporter", n.node_exporter or none),
        ("RFC 9293", n.rfc9293 or none),
        ("Windows", windows),
    ]
    label = max(len(name) for name, _value in rows)
    lines = [f"{name:<{label}}  {value}" for name, value in rows]
    clashes = name_clashes(state)
    if clashes:
        lines += _wrap(clashes, width)
    return lines


def _settings(expl: Explanation, width: int) -> list[str]:
    assert expl.settings is not None
    if not expl.settings:
        note = NONE_GOVERNS.get(expl.state, N_("None that tcpstates knows of."))
        return _wrap(_(note), width)
    lines: list[str] = []
    does, does_not = _("does:"), _("does not:")
    for setting in expl.settings:
        tunable = setting.tunable
        if setting.value is None:
            value = "n/a"
        else:
            value = setting.value + (f" {tunable.unit}" if tunable.unit else "")
        if setting.constant:
            value += " (" + _("fixed") + ")"
        elif setting.value in tunable.meanings:
            value += f" ({_(tunable.meanings[setting.value])})"
        lines.append(f"{tunable.name} = {value}")
        for label, text in ((does, tunable.does), (does_not, tunable.does_not)):
            lines += textwrap.wrap(
                f"{label} {_(text)}",
                width=max(width - 2, 20),
                initial_indent="  ",
                subsequent_indent="    ",
            )
    return lines


def explanation_text(expl: Explanation, width: int = 80) -> str:
    blocks = []
    for i, (heading, lines) in enumerate(fitted_sections(expl, width)):
        body = "\n".join(lines)
        blocks.append(f"{heading}\n{body}" if i else f"{heading}\n\n{body}")
    return "\n\n".join(blocks) + "\n"


def fitted_sections(expl: Explanation, width: int) -> list[tuple[str, list[str]]]:
    """The sections with their lines indented, and whatever is still wider than ``width`` (a
    heading, a list of names) broken at spaces, never inside a word: a state name or a code
    stays whole."""
    fitted = []
    for heading, lines in sections(expl, width - 2):
        body = [part for line in lines for part in _fit("  " + line, width, indent=4)]
        fitted.append(("\n".join(_fit(heading, width, indent=2)), body))
    return fitted


def _fit(line: str, width: int, indent: int) -> list[str]:
    lead = len(line) - len(line.lstrip())
    return break_at_spaces(line, width, " " * max(indent, lead))


def break_at_spaces(text: str, width: int, hang: str) -> list[str]:
    """``text`` in lines of ``width``, the later ones indented by ``hang``, broken at spaces
    only: a state name, an address or a code too long for the line goes past the edge whole
    rather than in two."""
    if len(text) <= width:
        return [text]
    return textwrap.wrap(
        text, width, subsequent_indent=hang, break_long_words=False, break_on_hyphens=False
    ) or [text]


def explanation_renderable(expl: Explanation, width: int) -> RenderableType:
    from rich.text import Text

    from tcpstates.render.styles import state_style

    text = Text()
    for i, (heading, lines) in enumerate(fitted_sections(expl, width)):
        style = f"bold {state_style(expl.state)}" if i == 0 else "bold"
        text.append(("\n" if i else "") + heading + "\n", style=style)
        text.append("".join(line + "\n" for line in lines))
    return text


def state_rows() -> list[tuple[str, ...]]:
    translated = language() != "en"
    return [
        (s.name, s.ss_name, str(s.value), _(s.phase.value), s.description)
        + ((_(s.description),) if translated else ())
        for s in sorted(TcpState, key=_order)
    ]


TABLE_WIDTH = 72  # below this the description column is too narrow to read: a list instead


def states_table(width: int = 100) -> RenderableType:
    """Every state in a table; on a terminal narrower than TABLE_WIDTH, as a list with each
    description under its state, so that no name or word is broken."""
    from rich.table import Table
    from rich.text import Text

    from tcpstates.render.styles import state_style

    if width < TABLE_WIDTH:
        return _states_list(width)
    table = Table(title=_(TABLE_TITLE), show_lines=False)
    rows = state_rows()
    for i, column in enumerate(state_columns()):
        # The names and the code are never cut or broken; the prose columns wrap instead.
        whole = i < 3
        least = max(len(column.header), *(len(row[i]) for row in rows)) if whole else None
        table.add_column(column.header, justify=column.align, no_wrap=whole, min_width=least)
    for state, row in zip(sorted(TcpState, key=_order), rows, strict=True):
        cells = [Text(cell) for cell in row]
        cells[0].stylize(state_style(state))
        table.add_row(*cells)
    return table


def _states_list(width: int) -> RenderableType:
    from rich.text import Text

    from tcpstates.render.styles import state_style

    text = Text()
    text.append(_(TABLE_TITLE) + "\n\n", style="bold")
    for state, row in zip(sorted(TcpState, key=_order), state_rows(), strict=True):
        name, ss_name, code, phase, *descriptions = row
        text.append(name, style=f"bold {state_style(state)}")
        text.append(f"  ss {ss_name}, {code}, {phase}\n")
        for line in _wrap(descriptions[-1], width - 2):
            text.append(f"  {line}\n")
    return text


def _order(state: TcpState) -> tuple[bool, int]:
    return state is TcpState.UNKNOWN, state.value


def _transitions(transitions: tuple[Transition, ...]) -> list[str]:
    width = max(len(t.source.name) for t in transitions)
    to_width = max(len(t.target.name) for t in transitions)
    return [
        f"{t.source.name:<{width}} -> {t.target.name:<{to_width}}  {_(t.event)}"
        + ("  (Linux)" if t.linux_only else "")
        for t in transitions
    ]


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width=max(width, 20))
