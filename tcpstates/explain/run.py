"""``--explain`` and what goes with it: one state, every state, sockets by their ends, the state
diagram (``--diagram``) and the seed's scenarios (``--scenario``, ``--live``).

What ``--explain`` is given, in this order:
  1. a state in any vocabulary (netstat, ss, kernel, psutil, node_exporter, RFC 9293, Windows)
     or a state code as /proc/net/tcp prints it: two hex digits starting with 0 (``06``, ``0A``)
     or ``0x6``;
  2. else an endpoint: ``ADDRESS:PORT``, ``[V6]:PORT``, or a local port as ``PORT``, ``:PORT``
     or ``*:PORT``. So ``--explain 22`` is port 22, ``--explain 06`` is TIME_WAIT and
     ``--explain :6`` is port 6.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcpstates.model.errors import ExitStatus, TcpstatesError, UsageError
from tcpstates.model.query import Query
from tcpstates.model.sockets import Details
from tcpstates.model.states import GROUPS, TcpState, UnknownStateError, is_state_code, parse_state
from tcpstates.render.output import Output

if TYPE_CHECKING:
    from tcpstates.explain.sockets import Target
    from tcpstates.model.place import Place

DIAGRAM_WIDTH = 100
TEXT_FORMATS = ("table", "plain", "json", "jsonl")


def parse_explain(text: str) -> TcpState | Target:
    """A state (any vocabulary, or a code such as 06) or else an endpoint; UsageError if
    neither."""
    from tcpstates.explain.sockets import parse_target

    try:
        return parse_state(text)
    except UnknownStateError as e:
        if is_state_code(text):
            raise UsageError(
                f"--explain: {text!r} is not a TCP state code: the kernel's are 01 to 0D, as"
                " /proc/net/tcp prints them; for a port, write :PORT"
            ) from None
        target = parse_target(text)
        if target is None:
            raise UsageError(
                f"--explain: {e}; or a state code such as 06, an ADDRESS:PORT or a local PORT"
            ) from None
        return target


def explain_state(state: TcpState, place: Place, out: Output, fmt: str | None) -> int:
    from tcpstates.explain import render_states as explanation
    from tcpstates.explain.states import explain
    from tcpstates.sources.place import settings_of

    fmt = out.resolve_format(fmt)
    expl = explain(state, count(state, place), settings_of(place, state))
    if fmt in ("json", "jsonl"):
        import json

        data = expl.as_dict()
        out.stdout.write(json.dumps(data, indent=2 if fmt == "json" else None) + "\n")
    elif fmt == "table":
        console = out.console()
        console.print(explanation.explanation_renderable(expl, min(console.width, 100)))
    else:
        out.stdout.write(explanation.explanation_text(expl))
    return ExitStatus.OK


def explain_sockets(
    target: Target, name: str, place: Place, out: Output, fmt: str | None, verbose: bool
) -> int:
    from tcpstates.explain import render_sockets as render_accounts
    from tcpstates.explain.sockets import accounts
    from tcpstates.render.output import say_source
    from tcpstates.sources.base import read_with_details
    from tcpstates.sources.place import open_place

    fmt = out.resolve_format(fmt)
    # The port narrows the reading (the kernel filters), the target then picks the sockets.
    if target.address is None:
        query = Query(protos=frozenset({"tcp"}), sport=target.port)
    else:
        query = Query(protos=frozenset({"tcp"}), port=target.port)
    source = open_place(place)
    say_source(out, source, verbose)
    # tcp_info where the source has it (how long a CLOSE_WAIT socket has been held), and
    # every holder.
    reading = read_with_details(source, query, True, Details(info=True, holders=True))
    found = accounts(reading.sockets, target)
    if not found:
        raise TcpstatesError(f"no TCP socket has the end {name}")
    if fmt in ("json", "jsonl"):
        render_accounts.render_accounts_json(found, out.stdout)
    else:
        import shlex

        width = (out.fit_width() or 100) if fmt == "table" else 100
        lister = shlex.join(["tcpstates", *place.arguments, "--port", str(target.port)])
        labels = getattr(source, "labels", None)
        out.stdout.write(render_accounts.accounts_text(found, width, labels, lister))
    return ExitStatus.OK


def explain_all(out: Output, fmt: str | None) -> int:
    from tcpstates.explain import render_states as explanation

    fmt = out.resolve_format(fmt)
    if fmt == "table":
        console = out.console()
        console.print(explanation.states_table(out.fit_width() or console.width))
    elif fmt in ("json", "jsonl"):
        import json

        from tcpstates.explain.states import explain

        data = [explain(state).as_dict() for state in TcpState]
        out.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        from tcpstates.render.text import write_rows

        write_rows(explanation.state_rows(), explanation.state_columns(), out.stdout)
    return ExitStatus.OK


def count(state: TcpState, place: Place) -> int | None:
    """How many TCP sockets of ``place`` are in ``state`` now.

    None where this host cannot tell (no source works here); a place the user named (a
    namespace, a capture) that cannot be read is an error, never a count of somewhere else.
    """
    from tcpstates.sources.place import open_place
    from tcpstates.summary.counts import summarize

    try:
        return summarize(open_place(place), Query(states=frozenset({state}))).total
    except TcpstatesError:
        if place.named:
            raise
        return None


def counts(place: Place) -> dict[TcpState, int] | None:
    """Every TCP state's count from one summary (netlink counts in the kernel's data); None
    where this host cannot tell, as for ``count``."""
    from tcpstates.sources.place import open_place
    from tcpstates.summary.counts import summarize

    query = Query(protos=frozenset({"tcp"}), states=GROUPS["all"])
    try:
        summary = summarize(open_place(place), query)
    except TcpstatesError:
        if place.named:
            raise
        return None
    return dict(summary.counts.get("tcp", {}))


def _ascii_only(out: Output) -> bool:
    """Whether the output cannot carry box-drawing characters (an ASCII locale, say)."""
    encoding = getattr(out.stdout, "encoding", None) or "utf-8"
    try:
        "─│┌┼▶═║╔━┃".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return True
    return False


def diagram(state: TcpState | None, place: Place, out: Output, fmt: str | None) -> int:
    from tcpstates.explain import render_diagram as render

    fmt = out.resolve_format(fmt)
    live = counts(place)
    if fmt in ("json", "jsonl"):
        render.render_diagram_json(live, state, out.stdout, 2 if fmt == "json" else None)
        return ExitStatus.OK
    if fmt == "table":
        # Drawn for the terminal's width: wide boxes from 96 columns, compact ones from 78,
        # and below that the counts alone (render_diagram.py); never cropped.
        console = out.console()
        width = min(out.fit_width() or console.width, DIAGRAM_WIDTH)
        console.print(render.diagram_renderable(live, state, width), crop=False)
        return ExitStatus.OK
    out.stdout.write(render.diagram_text(live, state, DIAGRAM_WIDTH, _ascii_only(out)))
    return ExitStatus.OK


def scenario(name: str, live: str | None, out: Output, fmt: str | None) -> int:
    """Tell scenario ``name``; with ``live`` (a reader: auto, netlink, ...), play it on loopback."""
    from tcpstates.explain import render_scenario as render
    from tcpstates.model.lifecycle import SCENARIOS

    fmt = out.resolve_format(fmt)
    story = SCENARIOS[name]
    run = None
    if live is not None:
        run = _rehearse(name, live)
    if fmt in ("json", "jsonl"):
        render.render_scenario_json(story, run, out.stdout, 2 if fmt == "json" else None)
    elif fmt == "table":
        console = out.console()
        console.print(render.scenario_renderable(story, run, min(console.width, 100)))
    else:
        out.stdout.write(render.scenario_text(story, run, 100, _ascii_only(out)))
    return ExitStatus.OK if run is None or run.agrees else ExitStatus.MISMATCH


def _rehearse(name: str, source_name: str) -> Any:
    from tcpstates.explain.scenario_live import rehearse
    from tcpstates.sources.base import select
    from tcpstates.sources.place import open_source

    source = open_source(source_name)

    def read(query: Query) -> list[Any]:
        return list(select(source.read(query, owners=False), query))

    return rehearse(name, read)
