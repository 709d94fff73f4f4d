"""From what was typed to a request, and the request run.

The root command picks its request by the mode options typed (``--save``, ``--scenario``,
``--diagram``, ``--explain``, ``--watch``, ``-o openmetrics``, ``--by``, ``--summary``, else the
listing); a subcommand is its own request and takes the options typed before it as if they had
been typed after. Either way the option table (cli/table.py) refuses what does not apply, so
no mode silently overrides another: ``--save DIR --summary`` is refused, not a save.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from tcpstates.cli import requests as rq
from tcpstates.cli.table import check_fields, check_request, field_names
from tcpstates.model.errors import ExitStatus, UsageError
from tcpstates.model.place import (
    AllNetns,
    Capture,
    NamedNetns,
    NetnsOfPid,
    Place,
    ThisNamespace,
    Where,
)
from tcpstates.model.query import End, Query
from tcpstates.model.record import replace
from tcpstates.model.states import TcpState

if TYPE_CHECKING:
    from tcpstates.render.output import Output

ROOT_TYPED = "tcpstates.root_typed"  # ctx.meta: the options typed before a subcommand
RESOLVE = "tcpstates.resolve"  # ctx.meta: build the request, do not run it (tests, completion)
REQUEST = "tcpstates.request"  # ctx.meta: where a resolved request is left
TYPED = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)


def typed_options(ctx: click.Context, params: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``ctx``'s command that were typed, not left at their defaults."""
    return {name: v for name, v in params.items() if ctx.get_parameter_source(name) in TYPED}


def option_flags(ctx: click.Context) -> dict[str, str]:
    """Parameter name -> how a message names it: its long option (``--no-owners``)."""
    flags: dict[str, str] = {}
    context: click.Context | None = ctx
    while context is not None:
        for param in context.command.params:
            if param.name and param.opts:
                flags.setdefault(param.name, max(param.opts, key=len))
        context = context.parent
    return flags


def root_request(ctx: click.Context, params: dict[str, Any]) -> type[rq.Request]:
    """The root command's request, chosen by the mode options typed."""
    typed = typed_options(ctx, params)
    if "save" in typed:
        return rq.SaveRequest
    if "scenario" in typed:
        return rq.ScenarioRequest
    if "diagram" in typed:
        return rq.DiagramRequest
    if "explain" in typed:
        return _explain_request(params["explain"])
    if "watch" in typed:
        return rq.WatchRequest
    if params.get("fmt") == "openmetrics":
        return rq.MetricsRequest
    if "by" in typed:
        return rq.GroupRequest
    if "summary" in typed:
        return rq.SummaryRequest
    return rq.ListRequest


def _explain_request(text: str) -> type[rq.Request]:
    from tcpstates.explain.run import parse_explain

    if not text:
        return rq.ExplainAllRequest
    if isinstance(parse_explain(text), TcpState):
        return rq.ExplainStateRequest
    return rq.ExplainSocketsRequest


def subcommand_options(
    ctx: click.Context, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A subcommand's values and typed options, with those typed before it merged in.

    The same option typed before and after with different values is refused: which one was
    meant cannot be known.
    """
    before: dict[str, Any] = ctx.meta.get(ROOT_TYPED, {})
    after = typed_options(ctx, params)
    flags = option_flags(ctx)
    own = {p.name: p for p in ctx.command.params if p.name}
    merged = dict(params)
    for name, value in before.items():
        param = own.get(name)
        if param is not None and param.multiple and not isinstance(value, (tuple, frozenset)):
            value = (value,)  # `--by process export`: export takes several
        if name in after and after[name] != value:
            raise UsageError(
                f"{flags.get(name, name)} is given before and after {ctx.info_name} with"
                " different values; give it once"
            )
        merged[name] = value
    return merged, {**before, **after}


def execute(ctx: click.Context, request_type: type[rq.Request], params: dict[str, Any]) -> int:
    """Check what was typed against ``request_type``, build the request, and run it."""
    if ctx.parent is not None:  # a subcommand
        params, typed = subcommand_options(ctx, params)
    else:
        typed = typed_options(ctx, params)
    flags = option_flags(ctx)
    _check_implied(request_type, typed)
    _check_habits(typed)
    check_fields(request_type, typed, flags)
    request = BUILDERS[request_type](params, typed)
    check_request(request, typed, flags)
    if ctx.meta.get(RESOLVE):
        ctx.meta[REQUEST] = request
        return ExitStatus.OK
    return run_request(request)


def _check_implied(request_type: type[rq.Request], typed: Mapping[str, Any]) -> None:
    """``--scenario`` implies ``--explain``, but tells its own story: it takes no STATE."""
    if request_type is rq.ScenarioRequest and typed.get("explain"):
        raise UsageError(
            f"--explain {typed['explain']} does not apply to --scenario: it tells its own story"
        )


def _check_habits(typed: Mapping[str, Any]) -> None:
    """netstat's and ss's flags that say what tcpstates does anyway must not contradict what
    else was typed: ss lets the last of -a and -l win, netstat lists every state with both;
    here neither is dropped."""
    narrowing = [flag for name, flag in (("listening", "-l"), ("states", "-s")) if name in typed]
    if "all_states" in typed and narrowing:
        raise UsageError(
            f"-a (every state) contradicts {' and '.join(narrowing)} (some states); give one"
        )
    if "processes" in typed and "no_owners" in typed:
        raise UsageError("-p (show processes) contradicts --no-owners; give one")
    if "numeric" in typed and "resolve" in typed:
        raise UsageError("-n (numeric) contradicts -r (names for addresses and ports); give one")


def run_request(request: rq.Request) -> int:
    from tcpstates.model import i18n
    from tcpstates.model.errors import silence_stdout
    from tcpstates.render.output import Output

    lang = getattr(request, "lang", None)
    if lang is not None:
        i18n.use(lang)
    out = Output.from_environment(
        getattr(request, "color", "auto"), getattr(request, "wide", False)
    )
    if request.pages() and out.is_terminal:  # paged() checks too; a pipe need not import it
        return _run_paged(request, out)
    if not request.RUNS_UNTIL_STOPPED:
        return request.run(out)
    from tcpstates.cli.signals import terminate_as_interrupt

    try:
        with terminate_as_interrupt():
            return request.run(out)
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM) is how a watch, a trace or an exporter ends: a success, not 130.
        # As run() does for an interrupt, nothing left buffered may block or print later.
        silence_stdout()
        return ExitStatus.OK


def _run_paged(request: rq.Request, out: Output) -> int:
    """The request's document through a pager; a pager quit early (q) leaves the status 0."""
    from tcpstates.render.pager import paged

    status: int = ExitStatus.OK
    with paged(out) as into:
        status = request.run(into)
    return status


# -- building the values -----------------------------------------------------------------


def query(p: Mapping[str, Any]) -> Query:
    protos = {name for name in ("tcp", "udp") if p.get(name)} or {"tcp"}
    states = set(p.get("states") or ())
    if p.get("listening"):
        states.add(TcpState.LISTEN)
        if "udp" in protos:
            states.add(TcpState.CLOSE)  # a UDP "listener" is a bound, unconnected socket
    families = {f for f, flag in ((4, p.get("ipv4")), (6, p.get("ipv6"))) if flag}
    local, remote = p.get("local"), p.get("remote")
    return Query(
        protos=frozenset(protos),
        families=frozenset(families or {4, 6}),
        states=frozenset(states),
        port=p.get("port"),
        sport=p.get("sport"),
        dport=p.get("dport"),
        local=local and local.network,
        remote=remote and remote.network,
        pid=p.get("pid"),
        process=p.get("process"),
        interface=_interface(local, remote),
    )


def _interface(local: End | None, remote: End | None) -> str | None:
    """The one interface --local and --remote name: a socket is on one."""
    named = {end.interface for end in (local, remote) if end and end.interface}
    if len(named) > 1:
        raise UsageError("--local and --remote name two interfaces; a socket is on one")
    return named.pop() if named else None


def check_interface(q: Query, where: Place, what: type[rq.Request]) -> None:
    """Refuse ADDR%IF where no interface can be told, or where IF is no interface.

    Only netlink reads a socket's interface: procfs, psutil, a capture (saved /proc text) and
    a trace's events never have one, so the filter would silently match nothing. The name is
    looked up in the namespace read (entered for --netns and --netns-pid where we may; one we
    may not enter fails the reading itself, with its own reason). --all-netns is not checked:
    each namespace has its own interfaces, and one without IF has no socket on it.
    """
    if q.interface is None:
        return
    spelled = f"%{q.interface}"
    if what is rq.TraceRequest:
        raise UsageError(f"{spelled}: a trace's events carry no interface; give the address alone")
    if isinstance(where.where, Capture):
        raise UsageError(f"{spelled}: a capture holds no interfaces; give the address alone")
    if where.reader in ("procfs", "psutil"):
        raise UsageError(
            f"{spelled}: the {where.reader} source cannot tell interfaces; netlink can"
        )
    if isinstance(where.where, AllNetns):
        return
    from tcpstates.sources.netns import has_interface

    target = None if isinstance(where.where, ThisNamespace) else where.where
    if has_interface(q.interface, target) is False:
        raise UsageError(
            f"{spelled}: no interface {q.interface!r} in the network namespace read (ip link)"
        )


def place(p: Mapping[str, Any], typed: Mapping[str, Any]) -> Place:
    named = [n for n in ("netns", "netns_pid", "all_netns", "captures") if n in typed]
    if len(named) > 1:
        flags = " and ".join(
            "--" + ("from" if n == "captures" else n.replace("_", "-")) for n in named
        )
        raise UsageError(f"{flags} name two places to read; give one")
    if "captures" in typed and "source" in typed:
        raise UsageError("--source does not apply to --from: a capture is read as text")
    where: Where = ThisNamespace()
    if p.get("captures"):
        where = Capture(tuple(p["captures"]))
    elif p.get("netns"):
        where = NamedNetns(p["netns"])
    elif p.get("netns_pid") is not None:
        where = NetnsOfPid(p["netns_pid"])
    elif p.get("all_netns"):
        where = AllNetns()
    return Place(where, p.get("source") or "auto")


def _common(
    p: Mapping[str, Any], typed: Mapping[str, Any], request_type: type[rq.Request]
) -> dict[str, Any]:
    """The values of the fields most requests share, for those ``request_type`` has."""
    q, where = query(p), place(p, typed)
    if "query" in field_names(request_type):
        check_interface(q, where, request_type)
    values = {
        "query": q,
        "place": where,
        "fmt": p.get("fmt"),
        "color": p.get("color") or "auto",
        "wide": bool(p.get("wide")),
        "lang": p.get("lang"),
        "verbose": bool(p.get("verbose")),
        "no_owners": bool(p.get("no_owners")),
        "extended": bool(p.get("extended")),
        "no_header": bool(p.get("no_header")),
        "cgroup": bool(p.get("cgroup")),
        "no_pager": bool(p.get("no_pager")),
        "info": bool(p.get("info")),
        "memory": bool(p.get("memory")),
        "timers": bool(p.get("timers")),
        "resolve": bool(p.get("resolve")),
    }
    names = field_names(request_type)
    return {k: v for k, v in values.items() if k in names}


def _explain_state(p: Mapping[str, Any], typed: Mapping[str, Any]) -> rq.Request:
    from tcpstates.explain.run import parse_explain

    state = parse_explain(p["explain"])
    assert isinstance(state, TcpState)
    return rq.ExplainStateRequest(explain=state, **_common(p, typed, rq.ExplainStateRequest))


def _explain_sockets(p: Mapping[str, Any], typed: Mapping[str, Any]) -> rq.Request:
    from tcpstates.explain.run import parse_explain

    target = parse_explain(p["explain"])
    assert not isinstance(target, TcpState)
    fields = _common(p, typed, rq.ExplainSocketsRequest)
    return rq.ExplainSocketsRequest(explain=(target, p["explain"]), **fields)


def _diagram(p: Mapping[str, Any], typed: Mapping[str, Any]) -> rq.Request:
    from tcpstates.explain.run import parse_explain

    state = None
    if p.get("explain"):
        target = parse_explain(p["explain"])
        if not isinstance(target, TcpState):
            raise UsageError(f"--diagram highlights a state, not an endpoint ({p['explain']})")
        state = target
    return rq.DiagramRequest(explain=state, **_common(p, typed, rq.DiagramRequest))


def _scenario(p: Mapping[str, Any], typed: Mapping[str, Any]) -> rq.Request:
    fields = _common(p, typed, rq.ScenarioRequest)
    return rq.ScenarioRequest(scenario=p["scenario"], live=bool(p.get("live")), **fields)


def _export(p: Mapping[str, Any], typed: Mapping[str, Any]) -> rq.Request:
    from tcpstates.export.run import parse_listen

    if p.get("listen") is not None and p.get("textfile") is not None:
        raise UsageError("--listen and --textfile cannot be combined; run one of each")
    if p.get("interval") is not None and p.get("textfile") is None:
        raise UsageError("--interval goes with --textfile; --listen reads at each scrape")
    if "max_series" in typed and not p.get("by"):
        raise UsageError("--max-series caps the --by metrics; give --by too")
    listen = None
    if p.get("listen") is not None:
        try:
            listen = parse_listen(p["listen"])
        except ValueError as e:
            raise UsageError(f"--listen: {e}") from None
    from tcpstates.export.metrics import BY

    # --by typed before the subcommand is the root's, which takes more breakdowns than these.
    for by in p.get("by") or ():
        if by not in BY:
            raise UsageError(
                f"--by {by} does not apply to export; it breaks down by {', '.join(BY)}"
            )
    selected = query(p)
    if p.get("udp"):  # export's -u counts UDP too, where a listing's -u alone is UDP only
        selected = replace(selected, protos=frozenset({"tcp", "udp"}))
    return rq.ExportRequest(
        query=selected,
        place=place(p, typed),
        by=tuple(dict.fromkeys(p.get("by") or ())),
        max_series=p.get("max_series") or 1000,
        listen=listen,
        textfile=p.get("textfile"),
        interval=p.get("interval"),
        verbose=bool(p.get("verbose")),
    )


def _trace(p: Mapping[str, Any], typed: Mapping[str, Any]) -> rq.Request:
    q, where = query(p), place(p, typed)
    check_interface(q, where, rq.TraceRequest)
    return rq.TraceRequest(
        query=q,
        place=where,
        fmt=p.get("fmt") or "plain",
        wide=bool(p.get("wide")),
        duration=p.get("duration"),
        count=p.get("count"),
    )


def _kill(p: Mapping[str, Any], typed: Mapping[str, Any]) -> rq.Request:
    from tcpstates.cli.options import NAMED_STATES

    fields = _common(p, typed, rq.KillRequest)
    states = fields["query"].states
    # -s's states named one by one, and -l's (query() adds UDP's UNCONN to it with -u).
    named = click.get_current_context().meta.get(NAMED_STATES, frozenset())
    if p.get("listening"):
        named |= {TcpState.LISTEN, TcpState.CLOSE} & states
    return rq.KillRequest(
        named=frozenset(named) & states,
        yes=bool(p.get("yes")),
        dry_run=bool(p.get("dry_run")),
        **fields,
    )


Builder = Callable[[Mapping[str, Any], Mapping[str, Any]], rq.Request]
BUILDERS: dict[type[rq.Request], Builder] = {
    rq.ListRequest: lambda p, t: rq.ListRequest(**_common(p, t, rq.ListRequest)),
    rq.SummaryRequest: lambda p, t: rq.SummaryRequest(**_common(p, t, rq.SummaryRequest)),
    rq.GroupRequest: lambda p, t: rq.GroupRequest(by=p["by"], **_common(p, t, rq.GroupRequest)),
    rq.WatchRequest: lambda p, t: rq.WatchRequest(
        watch=p["watch"], summary=bool(p.get("summary")), **_common(p, t, rq.WatchRequest)
    ),
    rq.ExplainAllRequest: lambda p, t: rq.ExplainAllRequest(**_common(p, t, rq.ExplainAllRequest)),
    rq.ExplainStateRequest: _explain_state,
    rq.ExplainSocketsRequest: _explain_sockets,
    rq.DiagramRequest: _diagram,
    rq.ScenarioRequest: _scenario,
    rq.SaveRequest: lambda p, t: rq.SaveRequest(
        save=p["save"], replace=bool(p.get("replace")), place=place(p, t)
    ),
    rq.MetricsRequest: lambda p, t: rq.MetricsRequest(
        by=p.get("by"), **_common(p, t, rq.MetricsRequest)
    ),
    rq.DoctorRequest: lambda p, t: rq.DoctorRequest(
        interval=p.get("interval", rq.LOOK_INTERVAL), **_common(p, t, rq.DoctorRequest)
    ),
    rq.TraceRequest: _trace,
    rq.KillRequest: _kill,
    rq.TopRequest: lambda p, t: rq.TopRequest(
        interval=p.get("interval") or rq.TOP_INTERVAL, **_common(p, t, rq.TopRequest)
    ),
    rq.CountersRequest: lambda p, t: rq.CountersRequest(
        patterns=tuple(p.get("patterns") or ()),
        interval=p.get("interval"),
        zeros=bool(p.get("zeros")),
        **_common(p, t, rq.CountersRequest),
    ),
    rq.CleanupRequest: lambda p, t: rq.CleanupRequest(),
    rq.ExportRequest: _export,
    rq.HelpRequest: lambda p, t: rq.HelpRequest(topic=p["topic"]),
}
