"""The command line: options -> Query -> source -> renderer. No parsing or formatting here."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import click

from tcpstates import __version__
from tcpstates.cli.options import (
    SCENARIO_NAMES,
    endpoint_filters,
    families,
    interval_option,
    lang_option,
    netns_options,
    source_option,
    states_option,
    where_of,
)
from tcpstates.doctor.command import doctor
from tcpstates.export.command import export
from tcpstates.model import i18n
from tcpstates.model.errors import ExitStatus, TcpstatesError, output_failed, silence_stdout
from tcpstates.model.query import Query
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState, valid_names
from tcpstates.render.safe import safe
from tcpstates.trace.command import trace

if TYPE_CHECKING:
    from tcpstates.render.columns import Layout
    from tcpstates.sources.base import Source
    from tcpstates.sources.namespaced import NamespacedSource
    from tcpstates.sources.netns import Namespace

FORMATS = ("table", "plain", "json", "jsonl", "csv", "openmetrics")
TABLE_ROW_LIMIT = 2000  # past this a Rich table costs seconds; plain text stays instant

EPILOG = f"""\b
States (-s, --explain), in any case, with - or _:
  {", ".join(valid_names()[:7])},
  {", ".join(valid_names()[7:14])},
  ss's spellings (ESTAB, SYN-RECV, FIN-WAIT-2, UNCONN, listening), every
  other tool's (TCP_TIME_WAIT, CONN_TIME_WAIT, time_wait, SYN-RECEIVED,
  TimeWait), the code as /proc/net/tcp prints it (06, 0A),
  and groups: all, connected, synchronized, bucket, big.

\b
Examples:
  tcpstates                       every TCP socket, its state and owner
  tcpstates -s time-wait          only TIME_WAIT
  tcpstates -s close-wait -o json
  tcpstates -l                    listeners
  tcpstates --port 443 --process nginx
  tcpstates --explain CLOSE_WAIT  what a state means and what to check
  tcpstates --explain 06 --diagram  the state machine, TIME_WAIT highlighted
  tcpstates --scenario close --live  a close played on loopback, step by step
  tcpstates --watch --port 443    redraw every 2 s, marking what changed
  tcpstates trace --port 443      each state change as it happens (root)
  tcpstates --summary --by process  who holds sockets in which states
  tcpstates doctor                what piles up, why, and what to run next
  tcpstates export --listen :9977 Prometheus metrics on 127.0.0.1:9977

See man tcpstates for the full story."""


@dataclass(frozen=True, slots=True)
class Output:
    """Where output goes and what it looks like; injected so tests can pin it."""

    stdout: TextIO
    stderr: TextIO
    is_terminal: bool
    color: str  # auto | always | never
    width: int | None = None

    @classmethod
    def from_environment(cls, color: str) -> Output:
        return cls(sys.stdout, sys.stderr, sys.stdout.isatty(), color)

    def resolve_format(self, requested: str | None) -> str:
        if requested:
            return requested
        return "table" if self.is_terminal or self.color == "always" else "plain"

    def console(self) -> Any:
        from rich.console import Console

        force = {"always": True, "never": False}.get(self.color)
        return Console(
            file=self.stdout,
            force_terminal=force,
            no_color=self.color == "never" or None,
            width=self.width or (None if self.is_terminal else 4096),
            highlight=False,
        )


# What --watch can draw; -o csv has no way to say "this row changed" and is refused.
WATCH_FORMATS = "--watch shows a table on a terminal and JSON Lines otherwise"


@click.group(
    invoke_without_command=True,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "-s",
    "--state",
    "states",
    multiple=True,
    callback=states_option,
    metavar="STATE",
    help="Only sockets in STATE; repeat for several (their union).",
)
@click.option(
    "-l", "--listening", is_flag=True, help="Only listening sockets (LISTEN; UNCONN for UDP)."
)
@click.option("-t", "--tcp", is_flag=True, help="TCP sockets (the default).")
@click.option("-u", "--udp", is_flag=True, help="UDP sockets; with -t, both.")
@endpoint_filters
@click.option("--pid", type=click.IntRange(min=0), help="Only sockets owned by process PID.")
@click.option(
    "--process", metavar="NAME", help="Only sockets owned by a process named NAME (glob)."
)
@click.option(
    "-o",
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="Output format. Default: table on a terminal, plain otherwise.",
)
@click.option("--summary", is_flag=True, help="Count sockets per state instead of listing them.")
@click.option(
    "--by",
    type=click.Choice(["process", "local-port", "remote", "state-group"]),
    help="With --summary (implied): counts per state for each process, local port, remote"
    " host or part of a connection's life, largest first.",
)
@click.option(
    "--watch",
    type=float,
    is_flag=False,
    flag_value=2.0,
    callback=interval_option,
    metavar="[SECONDS]",
    help="Read again every SECONDS (default 2, at most 86400) and mark what changed: redrawn in"
    " place on a terminal, one JSON object a line otherwise. Ctrl-C or SIGTERM stops (exit 0).",
)
@click.option("--no-owners", is_flag=True, help="Do not look up owning processes (faster).")
@source_option
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour output; NO_COLOR in the environment means never.",
)
@click.option(
    "--explain",
    metavar="[STATE]",
    is_flag=False,
    flag_value="",
    help="Explain STATE (any tool's name for it, or its code as /proc/net/tcp prints it: 06):"
    " meaning, lifecycle, settings, what to check; no STATE: all states; ADDRESS:PORT, a"
    " local PORT or :PORT: each matching socket in its connection's terms.",
)
@click.option(
    "--diagram",
    is_flag=True,
    help="With --explain (implied): draw the TCP state machine with each state's live count,"
    " STATE and its transitions highlighted.",
)
@click.option(
    "--scenario",
    type=click.Choice(SCENARIO_NAMES),
    help="With --explain (implied): walk through a connection's opening or closing, step by"
    " step, a on the left and b on the right.",
)
@click.option(
    "--live",
    is_flag=True,
    help="With --scenario: play it with real sockets on loopback and show the states the"
    " kernel reports beside the expected ones (exit 1 if they differ).",
)
@lang_option
@click.option(
    "--from",
    "captures",
    multiple=True,
    metavar="PATH",
    help="Read captured /proc/net/tcp, tcp6, udp, udp6 text instead of this host: a directory,"
    " files (tables may be concatenated), or - for standard input; repeatable.",
)
@click.option(
    "--save",
    metavar="DIR",
    help="Save this host's socket tables and the kernel settings doctor reads to DIR (new or"
    " empty; made private to you), all or nothing, for --from later, and exit.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="With --save: replace the capture DIR holds already, in one step.",
)
@netns_options(
    "Read the sockets of",
    "Read every network namespace found through /proc/*/ns/net and /run/netns, with a"
    " Netns column; one that goes away meanwhile is left out (-v says so).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Say which source was used and why, and which namespaces were left out.",
)
@click.version_option(__version__, "-V", "--version", prog_name="tcpstates")
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> int:
    """List sockets and their TCP states, filter them, and explain what each state means.

    With no options: every TCP socket (IPv4 and IPv6) in every state, with its owner.
    """
    i18n.use(options["lang"])
    if ctx.invoked_subcommand is not None:
        return ExitStatus.OK
    out = Output.from_environment(options["color"])
    if options["save"]:
        return save_command(options, out)
    if options["replace"]:
        raise click.UsageError("--replace goes with --save DIR")
    explaining = options["diagram"] or options["scenario"] or options["live"]
    if options["explain"] is not None or explaining:
        if options["watch"] is not None:
            raise click.UsageError("--watch and --explain cannot be combined")
        from tcpstates.explain.command import explain_command

        return explain_command(options["explain"] or "", options, out)
    if options["watch"] is not None:
        return watch_command(build_query(options), options, out)
    if options["fmt"] == "openmetrics":
        return metrics_command(build_query(options), options, out)
    if options["by"]:
        if options["watch"] is not None:
            raise click.UsageError("--by and --watch cannot be combined")
        return grouped_command(build_query(options), options, out)
    if options["summary"]:
        return summary_command(build_query(options), options, out)
    return list_command(build_query(options), options, out)


cli.add_command(trace)
cli.add_command(doctor)
cli.add_command(export)


def build_query(options: dict[str, Any]) -> Query:
    protos = {name for name in ("tcp", "udp") if options[name]} or {"tcp"}
    states = set(options["states"])
    if options["listening"]:
        states.add(TcpState.LISTEN)
        if "udp" in protos:
            states.add(TcpState.CLOSE)  # a UDP "listener" is a bound, unconnected socket
    return Query(
        protos=frozenset(protos),
        families=families(options),
        states=frozenset(states),
        port=options["port"],
        sport=options["sport"],
        dport=options["dport"],
        local=options["local"],
        remote=options["remote"],
        pid=options["pid"],
        process=options["process"],
    )


def list_command(query: Query, options: dict[str, Any], out: Output) -> int:
    from tcpstates.sources.base import select

    source = _open_source(options, out)
    owners = not options["no_owners"]
    reading = source.read(query, owners=owners or query.needs_owners)
    render(select(reading, query), _layout(query, owners, source), out, options["fmt"])
    Skips(options["verbose"], out.stderr.write).report(source)
    if reading.hidden_processes and owners:
        out.stderr.write(
            f"tcpstates: the sockets of {reading.hidden_processes} processes of other users"
            " cannot be attributed; their owner shows as -\n"
        )
    return ExitStatus.OK


def _open_source(options: dict[str, Any], out: Output) -> Source:
    from tcpstates.sources.place import open_source

    source: Source
    namespaced = _namespaced_source(options)
    if options["captures"]:
        if namespaced is not None:
            raise click.UsageError("--from reads a capture; it cannot be combined with --netns")
        from tcpstates.sources.capture import CaptureSource

        source = CaptureSource(options["captures"])
    else:
        source = namespaced or open_source(options["source"])
    if options["verbose"]:
        out.stderr.write(f"tcpstates: reading sockets with {source.name}: {safe(source.why)}\n")
    return source


def save_command(options: dict[str, Any], out: Output) -> int:
    from tcpstates.sources.netns import current, entered
    from tcpstates.sources.save import save_capture

    if options["all_netns"]:
        raise click.UsageError("--save captures one namespace; give --netns or --netns-pid")
    namespace = _chosen_namespace(options) or current()
    with entered(namespace):  # /proc/self/net is the namespace's once inside
        written = save_capture(options["save"], replace=options["replace"])
    out.stderr.write(f"tcpstates: saved {written} files to {safe(options['save'])}\n")
    return ExitStatus.OK


def _summaries_per_namespace(
    source: NamespacedSource, query: Query, fmt: str, out: Output, verbose: bool
) -> int:
    """--summary --all-netns: one summary per namespace, keyed by its label."""
    from tcpstates.summary import render as render_summary
    from tcpstates.summary.counts import summarize

    summaries = {}
    skips = Skips(verbose, out.stderr.write)
    each = source.one_by_one()
    skips.report(source)  # what the search passed over
    for one in each:
        summary = summarize(one, query)
        skips.report(one)
        if one.namespaces:  # not left out: it was there to be read
            summaries[one.namespaces[0].label] = summary
    if fmt in ("json", "jsonl"):
        data = {label: summary.as_dict() for label, summary in summaries.items()}
        import json

        out.stdout.write(json.dumps(data, indent=2) + "\n")
        return ExitStatus.OK
    for i, (label, summary) in enumerate(summaries.items()):
        if fmt == "table":
            out.console().print(f"netns {safe(label)}", style="bold", markup=False, highlight=False)
            out.console().print(render_summary.summary_table(summary))
        else:
            out.stdout.write(("\n" if i else "") + f"netns {safe(label)}\n")
            render_summary.render_summary_plain(summary, out.stdout)
    return ExitStatus.OK


def _chosen_namespace(options: dict[str, Any]) -> Namespace | None:
    """The namespace --netns or --netns-pid names; None for this one, or for --all-netns."""
    from tcpstates.model.place import NamedNetns, NetnsOfPid
    from tcpstates.sources import netns

    where = where_of(options)
    return netns.named(where) if isinstance(where, NamedNetns | NetnsOfPid) else None


def _namespaced_source(options: dict[str, Any]) -> NamespacedSource | None:
    """A source reading inside the namespaces asked for; None for this namespace alone.

    --all-netns looks for namespaces again at every read and leaves out the ones that went
    away meanwhile; a namespace asked for by name or pid is found once, and its going is an error.
    """
    from tcpstates.sources import netns
    from tcpstates.sources.namespaced import NamespacedSource
    from tcpstates.sources.place import open_source

    def inner() -> Source:
        return open_source(options["source"])

    namespace = _chosen_namespace(options)
    if namespace is not None:
        why = f"sockets read inside {namespace.label}"
        found = netns.Found((namespace,))
        return NamespacedSource(lambda: found, inner, skip_unavailable=False, why=why)
    if options.get("all_netns"):
        why = "sockets read inside each namespace found, found again at each read"
        return NamespacedSource(netns.all_namespaces, inner, skip_unavailable=True, why=why)
    return None


class Skips:
    """Namespaces a read left out, on stderr: each with -v, else only the count of those that
    need root (the others went away meanwhile, which is no news). One left out read after read
    (a watch's frames) is said once, when it first is."""

    def __init__(self, verbose: bool, write: Callable[[str], object]) -> None:
        self.verbose = verbose
        self.write = write
        self.said: set[object] = set()  # a watch's last frame's: said once while they last

    def report(self, source: object) -> None:
        """What ``source``'s last read left out, if it reads namespaces."""
        from tcpstates.sources.netns import Why

        skipped = getattr(source, "skipped", ())
        new = [skip for skip in skipped if skip not in self.said]
        self.said = set(skipped)
        if self.verbose:
            for skip in new:
                self.write(f"tcpstates: left out {safe(skip.what)}: {skip.why.value}\n")
            return
        refused = sum(skip.why is Why.REFUSED for skip in new)
        if refused:
            one = refused == 1
            self.write(
                f"tcpstates: {refused} network {'namespace' if one else 'namespaces'} cannot be"
                f" entered without root (CAP_SYS_ADMIN); {'its' if one else 'their'} sockets are"
                " not listed\n"
            )


def _layout(query: Query, owners: bool, source: Source) -> Layout:
    from tcpstates.render.columns import Layout

    # The source's own dict: a watch's namespaces change from frame to frame.
    labels = getattr(source, "labels", None)
    return Layout(proto=len(query.protos) > 1, owners=owners, netns_labels=labels)


def summary_command(query: Query, options: dict[str, Any], out: Output) -> int:
    from tcpstates.summary import render as render_summary
    from tcpstates.summary.counts import summarize

    source = _open_source(options, out)
    fmt = out.resolve_format(options["fmt"])
    if options["all_netns"]:
        from tcpstates.sources.namespaced import NamespacedSource

        assert isinstance(source, NamespacedSource)  # --from with --all-netns was refused
        return _summaries_per_namespace(source, query, fmt, out, options["verbose"])
    summary = summarize(source, query)
    if fmt == "table":
        out.console().print(render_summary.summary_table(summary))
    elif fmt in ("json", "jsonl"):
        render_summary.render_summary_json(summary, out.stdout)
    else:
        render_summary.render_summary_plain(summary, out.stdout)
    Skips(options["verbose"], out.stderr.write).report(source)
    return ExitStatus.OK


def metrics_command(query: Query, options: dict[str, Any], out: Output) -> int:
    """-o openmetrics: the counts as Prometheus reads them, as `tcpstates export` serves them."""
    from tcpstates.export.command import write_openmetrics

    if options["watch"] is not None:
        raise click.UsageError("-o openmetrics prints once; for a feed use tcpstates export")
    by = (options["by"],) if options["by"] else ()
    source = _open_source(options, out)
    write_openmetrics(source, query, out.stdout, by=by)
    Skips(options["verbose"], out.stderr.write).report(source)
    return ExitStatus.OK


def grouped_command(query: Query, options: dict[str, Any], out: Output) -> int:
    """Counts per state per group: a table with bars on a terminal, JSON (or -o plain) otherwise."""
    from tcpstates.sources.base import select
    from tcpstates.summary import render_groups
    from tcpstates.summary.groups import group_sockets

    by = options["by"]
    owners = by == "process" or query.needs_owners
    source = _open_source(options, out)
    reading = source.read(query, owners=owners)
    groups = group_sockets(select(reading, query), by)
    Skips(options["verbose"], out.stderr.write).report(source)
    fmt = options["fmt"] or ("table" if out.is_terminal else "json")
    if fmt == "table":
        out.console().print(render_groups.groups_table(groups, by))
    elif fmt in ("json", "jsonl"):
        render_groups.render_groups_json(groups, by, out.stdout)
    elif fmt == "csv":
        raise click.UsageError("--by gives a table, JSON or plain text; -o csv is not supported")
    else:
        render_groups.render_groups_plain(groups, by, out.stdout)
    return ExitStatus.OK


def watch_command(query: Query, options: dict[str, Any], out: Output) -> int:
    """Redraw on a terminal (``-o table``, the default there); JSON Lines anywhere else.

    Ctrl-C or SIGTERM ends it, with status 0: that is how a watch ends.
    """
    from tcpstates.cli.signals import terminate_as_interrupt
    from tcpstates.sources.base import select
    from tcpstates.watch import render as render_watch
    from tcpstates.watch.frames import frames

    fmt = options["fmt"]
    if fmt == "csv":
        raise click.UsageError(f"{WATCH_FORMATS}; -o csv is not supported")
    live = out.is_terminal and fmt in (None, "table")
    source = _open_source(options, out)
    listing = not options["summary"]
    owners = listing and not options["no_owners"]  # counts show no owners: skip the /proc scan
    # While the view is live, Rich stands in for sys.stderr and prints above the view; the
    # terminal itself (out.stderr) would tear it.
    skips = Skips(
        options["verbose"], (lambda text: sys.stderr.write(text)) if live else out.stderr.write
    )

    def read() -> Iterable[Socket]:
        reading = source.read(query, owners=owners or query.needs_owners)
        skips.report(source)
        return select(reading, query)

    stream = frames(read, options["watch"], query=query)
    try:
        with terminate_as_interrupt():
            if live:
                layout = _layout(query, owners, source)
                render_watch.show_live(
                    stream, out.console(), layout, interval=options["watch"], listing=listing
                )
            else:
                render_watch.write_jsonl(stream, out.stdout, changes=listing)
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM) is how a watch ends: a success, not 130. Live has put the cursor back
        # by now; as run() does for an interrupt, nothing left buffered may block or print later.
        silence_stdout()
    return ExitStatus.OK


def render(sockets: Iterable[Socket], layout: Layout, out: Output, fmt: str | None) -> None:
    fmt = out.resolve_format(fmt)
    if fmt == "table":
        rows = list(sockets)
        if len(rows) <= TABLE_ROW_LIMIT:
            from tcpstates.render.table import build_table, fit_width

            console = out.console()
            table = build_table(rows, layout)
            console.width = fit_width(console, table)
            console.print(table)
            return
        sockets, fmt = rows, "plain"
    if fmt == "plain":
        from tcpstates.render.text import render_plain

        render_plain(sockets, out.stdout, layout)
        return
    from tcpstates.model.sockets import FIELDS
    from tcpstates.render import formats

    if fmt == "csv":
        fields = FIELDS + ("netns",) * (layout.netns_labels is not None)
        formats.render_csv(sockets, out.stdout, fields)
        return
    {"json": formats.render_json, "jsonl": formats.render_jsonl}[fmt](sockets, out.stdout)


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and turn every user-facing failure into one line and an exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with cli.make_context("tcpstates", args) as ctx:
            status = cli.invoke(ctx)
        sys.stdout.flush()
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.UsageError as e:
        return _fail(e.format_message(), ExitStatus.USAGE)
    except TcpstatesError as e:
        return _fail(str(e), e.status)
    except (KeyboardInterrupt, click.Abort):
        silence_stdout()  # what is still buffered must not block or print at exit
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:
        silence_stdout()
        return ExitStatus.BROKEN_PIPE
    except OSError as e:  # what reads fails as a TcpstatesError: this is a write to stdout
        return output_failed(e)
    return int(status or 0)


def _fail(message: str, status: ExitStatus) -> int:
    # Messages quote names others chose: a namespace, a path, a capture's line.
    sys.stderr.write(f"tcpstates: {safe(message)}\n")
    return status
