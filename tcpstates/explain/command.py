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

import click

from tcpstates.model.errors import ExitStatus, TcpstatesError
from tcpstates.model.query import Query
from tcpstates.model.states import GROUPS, TcpState, UnknownStateError, is_state_code, parse_state

if TYPE_CHECKING:
    from tcpstates.cli.root import Output
    from tcpstates.explain.sockets import Target

DIAGRAM_WIDTH = 100
TEXT_FORMATS = ("table", "plain", "json", "jsonl")


def explain_command(name: str, options: dict[str, Any], out: Output) -> int:
    fmt = out.resolve_format(options["fmt"])
    if options["live"] and not options["scenario"]:
        raise click.UsageError("--live plays a scenario: give --scenario NAME too")
    if options["scenario"]:
        if name:
            raise click.UsageError(f"--scenario tells its own story; it takes no STATE ({name})")
        if options["diagram"]:
            raise click.UsageError("--scenario and --diagram cannot be combined")
        return scenario_command(options["scenario"], options, fmt, out)
    if options["diagram"]:
        state = None
        if name:
            target = parse_explain(name)
            if not isinstance(target, TcpState):
                raise click.BadParameter(
                    f"--diagram highlights a state, not an endpoint ({name})",
                    param_hint="'--explain'",
                )
            state = target
        return diagram_command(state, options, fmt, out)
    if not name:
        return _explain_all(fmt, out)
    target = parse_explain(name)
    if not isinstance(target, TcpState):
        return _explain_sockets(target, name, fmt, options, out)
    return _explain_state(target, options, fmt, out)


def parse_explain(text: str) -> TcpState | Target:
    """A state (any vocabulary, or a code such as 06) or else an endpoint; BadParameter if
    neither."""
    from tcpstates.explain.sockets import parse_target

    try:
        return parse_state(text)
    except UnknownStateError as e:
        if is_state_code(text):
            raise click.BadParameter(
                f"{text!r} is not a TCP state code: the kernel's are 01 to 0D, as"
                " /proc/net/tcp prints them; for a port, write :PORT",
                param_hint="'--explain'",
            ) from None
        target = parse_target(text)
        if target is None:
            raise click.BadParameter(
                f"{e}; or a state code such as 06, an ADDRESS:PORT or a local PORT",
                param_hint="'--explain'",
            ) from None
        return target


def _explain_state(state: TcpState, options: dict[str, Any], fmt: str, out: Output) -> int:
    from tcpstates.explain import render_states as explanation
    from tcpstates.explain.states import explain
    from tcpstates.model import tunables

    expl = explain(state, count(state, options["source"]), tunables.settings(state))
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


def _explain_sockets(
    target: Target, name: str, fmt: str, options: dict[str, Any], out: Output
) -> int:
    from tcpstates.cli.root import _open_source
    from tcpstates.explain import render_sockets as render_accounts
    from tcpstates.explain.sockets import accounts

    query = Query(protos=frozenset({"tcp"}))
    found = accounts(_open_source(options, out).read(query, owners=True).sockets, target)
    if not found:
        raise TcpstatesError(f"no TCP socket has the end {name}")
    if fmt in ("json", "jsonl"):
        render_accounts.render_accounts_json(found, out.stdout)
    else:
        out.stdout.write(render_accounts.accounts_text(found))
    return ExitStatus.OK


def _explain_all(fmt: str, out: Output) -> int:
    from tcpstates.explain import render_states as explanation

    if fmt == "table":
        out.console().print(explanation.states_table())
    elif fmt in ("json", "jsonl"):
        import json

        from tcpstates.explain.states import explain

        data = [explain(state).as_dict() for state in TcpState]
        out.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        from tcpstates.render.text import write_rows

        write_rows(explanation.state_rows(), explanation.state_columns(), out.stdout)
    return ExitStatus.OK


def count(state: TcpState, source_name: str) -> int | None:
    """How many TCP sockets are in ``state`` now; None where the host cannot tell us."""
    from tcpstates.sources.place import open_source
    from tcpstates.summary.counts import summarize

    try:
        summary = summarize(open_source(source_name), Query(states=frozenset({state})))
    except TcpstatesError:
        return None
    return summary.total


def counts(source_name: str) -> dict[TcpState, int] | None:
    """Every TCP state's count from one summary (netlink counts in the kernel's data)."""
    from tcpstates.sources.place import open_source
    from tcpstates.summary.counts import summarize

    try:
        summary = summarize(
            open_source(source_name), Query(protos=frozenset({"tcp"}), states=GROUPS["all"])
        )
    except TcpstatesError:
        return None
    return {parse_state(name): n for name, n in summary.counts.get("tcp", {}).items()}


def _check_format(fmt: str, what: str) -> None:
    if fmt not in TEXT_FORMATS:
        raise click.UsageError(f"{what} is text or JSON: -o {', '.join(TEXT_FORMATS)}")


def _ascii_only(out: Output) -> bool:
    """Whether the output cannot carry box-drawing characters (an ASCII locale, say)."""
    encoding = getattr(out.stdout, "encoding", None) or "utf-8"
    try:
        "─│┌┼▶═║╔━┃".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return True
    return False


def diagram_command(state: TcpState | None, options: dict[str, Any], fmt: str, out: Output) -> int:
    from tcpstates.explain import render_diagram as render

    _check_format(fmt, "--diagram")
    live = counts(options["source"])
    if fmt in ("json", "jsonl"):
        render.render_diagram_json(live, state, out.stdout, 2 if fmt == "json" else None)
        return ExitStatus.OK
    if fmt == "table":
        console = out.console()
        if console.width < DIAGRAM_WIDTH:
            out.stderr.write(
                f"tcpstates: the diagram needs {DIAGRAM_WIDTH} columns and this terminal has"
                f" {console.width}; printing it anyway (widen the terminal, or pipe it)\n"
            )
        console.print(render.diagram_renderable(live, state, DIAGRAM_WIDTH), crop=False)
        return ExitStatus.OK
    out.stdout.write(render.diagram_text(live, state, DIAGRAM_WIDTH, _ascii_only(out)))
    return ExitStatus.OK


def scenario_command(name: str, options: dict[str, Any], fmt: str, out: Output) -> int:
    from tcpstates.explain import render_scenario as render
    from tcpstates.model.lifecycle import SCENARIOS

    _check_format(fmt, "--scenario")
    scenario = SCENARIOS[name]
    run = None
    if options["live"]:
        if options["captures"] or options["netns"] or options["netns_pid"] or options["all_netns"]:
            raise click.UsageError("--live plays on this host's loopback; drop --from and --netns")
        run = _rehearse(name, options["source"])
    if fmt in ("json", "jsonl"):
        render.render_scenario_json(scenario, run, out.stdout, 2 if fmt == "json" else None)
    elif fmt == "table":
        console = out.console()
        console.print(render.scenario_renderable(scenario, run, min(console.width, 100)))
    else:
        out.stdout.write(render.scenario_text(scenario, run, 100, _ascii_only(out)))
    return ExitStatus.OK if run is None or run.agrees else ExitStatus.MISMATCH


def _rehearse(name: str, source_name: str) -> Any:
    from tcpstates.explain.scenario_live import rehearse
    from tcpstates.sources.base import select
    from tcpstates.sources.place import open_source

    source = open_source(source_name)

    def read(query: Query) -> list[Any]:
        return list(select(source.read(query, owners=False), query))

    return rehearse(name, read)
