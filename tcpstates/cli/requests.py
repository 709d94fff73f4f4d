"""One request per command: what the command line asked for, as typed values.

A request's fields ARE that command's options: ``cli/table.py`` derives from them which options
each command takes, and refuses every other one that was typed (exit 2, one line naming both).
So an option cannot be accepted and then ignored: to honour one, a command must have a field
for it, and to have a field is to pass it on. ``run`` hands the values to the feature's library
function; nothing below this module sees click or a dict of options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from tcpstates.model.errors import ExitStatus
from tcpstates.model.place import Capture, Place
from tcpstates.model.query import Query
from tcpstates.model.sockets import Details
from tcpstates.model.states import TcpState

if TYPE_CHECKING:
    from tcpstates.explain.sockets import Target
    from tcpstates.render.output import Output
    from tcpstates.sources.names import Resolving

HUMAN = ("table", "plain")
TEXT = ("table", "plain", "json", "jsonl")
# netstat's and ss's habits that tcpstates does anyway (-a every state, -n numeric): accepted
# where sockets are listed or counted, and changing nothing (-tanp, -an, -tulpn work).
HABITS = frozenset({"all_states", "numeric"})
LOOK_INTERVAL = 0.5  # seconds between doctor's two looks (doctor/run.py); 0: one look
TOP_INTERVAL = 2.0  # seconds between top's readings, as --watch's default


@dataclass(frozen=True, slots=True)
class Request:
    NAME: ClassVar[str]  # how a refusal names the command: "--summary", "doctor"
    FORMATS: ClassVar[tuple[str, ...]] = ()  # the -o values it writes
    # Options that have a field here but still cannot apply, and why (one line).
    REFUSED: ClassVar[dict[str, str]] = {}
    RUNS_UNTIL_STOPPED: ClassVar[bool] = False  # Ctrl-C or SIGTERM is its normal end (exit 0)
    # Options the command implies: typing them is allowed and changes nothing (--by implies
    # --summary, --scenario implies --explain).
    IMPLIED: ClassVar[frozenset[str]] = frozenset()
    FITTED: ClassVar[str] = "table"  # the -o that -W and the terminal's width apply to

    def refused(self) -> dict[str, str]:
        """REFUSED, for requests where it depends on another option's value."""
        return self.REFUSED

    def pages(self) -> bool:
        """Whether its output goes through a pager on a terminal (render/pager.py): a document
        does, unless --no-pager; what streams or runs until stopped never does."""
        return not getattr(self, "no_pager", True)

    def run(self, out: Output) -> int:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class ListRequest(Request):
    NAME = "a listing"
    FORMATS = ("table", "plain", "json", "jsonl", "csv")
    IMPLIED = HABITS | {"processes"}  # -p: owners are shown unless --no-owners
    query: Query = Query()
    place: Place = Place()
    fmt: str | None = None
    color: str = "auto"
    wide: bool = False
    verbose: bool = False
    no_owners: bool = False
    extended: bool = False
    no_header: bool = False
    cgroup: bool = False
    no_pager: bool = False
    info: bool = False
    memory: bool = False
    timers: bool = False
    resolve: bool = False

    def refused(self) -> dict[str, str]:
        refusals = kernel_details_refused(self.place)
        if isinstance(self.place.where, Capture):
            refusals["cgroup"] = "a capture holds no cgroups"
        if self.fmt not in ("json", "jsonl", "csv"):
            return refusals
        record = "a CSV row" if self.fmt == "csv" else "a record"
        refusals["extended"] = f"{record} carries uid and inode always"
        refusals["timers"] = f"{record} carries timer, timer_ms and retransmits always"
        refusals["resolve"] = f"{record} keeps addresses and ports numeric"
        if self.fmt != "csv":
            refusals["no_header"] = f"{self.fmt} has no header"
        return refusals

    @property
    def details(self) -> Details:
        return Details(self.info, self.memory, self.timers, self.cgroup)

    def run(self, out: Output) -> int:
        from tcpstates.listing.run import list_sockets

        owners = not self.no_owners
        list_sockets(
            self.query, self.place, out, self.fmt, owners, self.verbose,
            extended=self.extended, header=not self.no_header, details=self.details,
            resolving=_resolving(self.resolve),
        )  # fmt: skip
        return ExitStatus.OK


def kernel_details_refused(place: Place) -> dict[str, str]:
    """-i and -m where the place's source cannot read them: only netlink sock_diag can."""
    if isinstance(place.where, Capture):
        why = "a capture holds /proc/net tables, which have no tcp_info or socket memory"
    elif place.reader in ("procfs", "psutil"):
        why = f"only netlink sock_diag reports it, not --source {place.reader}"
    else:
        return {}
    return {"info": why, "memory": why}


def _resolving(resolve: bool) -> Resolving | None:
    """-r's names from this host's services file and resolver; None: numbers (and then the
    resolver's module is not even loaded: every listing passes here)."""
    if not resolve:
        return None
    from tcpstates.sources.names import Resolving

    return Resolving()


@dataclass(frozen=True, slots=True)
class SummaryRequest(Request):
    NAME = "--summary"
    FORMATS = TEXT
    IMPLIED = HABITS
    summary: bool = True
    query: Query = Query()
    place: Place = Place()
    fmt: str | None = None
    color: str = "auto"
    lang: str | None = None
    verbose: bool = False
    no_pager: bool = False

    def run(self, out: Output) -> int:
        from tcpstates.summary.run import summary

        summary(self.query, self.place, out, self.fmt, self.verbose)
        return ExitStatus.OK


@dataclass(frozen=True, slots=True)
class GroupRequest(Request):
    NAME = "--by"
    FORMATS = TEXT
    IMPLIED = HABITS | {"summary"}
    by: str = "process"
    query: Query = Query()
    place: Place = Place()
    fmt: str | None = None
    color: str = "auto"
    lang: str | None = None
    verbose: bool = False
    no_pager: bool = False

    def run(self, out: Output) -> int:
        from tcpstates.summary.run import grouped

        grouped(self.query, self.place, self.by, out, self.fmt, self.verbose)
        return ExitStatus.OK


@dataclass(frozen=True, slots=True)
class WatchRequest(Request):
    NAME = "--watch"
    FORMATS = ("table", "jsonl")
    RUNS_UNTIL_STOPPED = True
    IMPLIED = HABITS | {"processes"}
    watch: float = 2.0
    summary: bool = False  # count per state instead of listing the sockets
    query: Query = Query()
    place: Place = Place()
    fmt: str | None = None
    color: str = "auto"
    wide: bool = False
    verbose: bool = False
    no_owners: bool = False
    resolve: bool = False

    # A capture is one moment: watched, it would show the same sockets at every frame.
    REFUSED = {"captures": "a capture never changes; read it once, without --watch"}

    def refused(self) -> dict[str, str]:
        refusals = dict(self.REFUSED)
        if self.summary:
            return refusals | {
                "no_owners": "counts show no owners",
                "wide": "counts have no socket table to fit",
                "all_netns": "its counts would add up several namespaces; give --netns",
                "resolve": "counts show no addresses",
            }
        if self.fmt == "jsonl":
            refusals["resolve"] = "a record keeps addresses and ports numeric"
        return refusals

    def run(self, out: Output) -> int:
        from tcpstates.watch.run import watch

        owners = not self.no_owners
        watch(
            self.query, self.place, out, self.fmt, self.watch, self.summary, owners, self.verbose,
            _resolving(self.resolve),
        )  # fmt: skip
        return ExitStatus.OK


@dataclass(frozen=True, slots=True)
class ExplainAllRequest(Request):
    NAME = "--explain"
    FORMATS = TEXT
    explain: str = ""
    fmt: str | None = None
    color: str = "auto"
    lang: str | None = None
    no_pager: bool = False

    def run(self, out: Output) -> int:
        from tcpstates.explain.run import explain_all

        return explain_all(out, self.fmt)


@dataclass(frozen=True, slots=True)
class ExplainStateRequest(Request):
    NAME = "--explain STATE"
    FORMATS = TEXT
    REFUSED = {"all_netns": "it counts one place; give --netns"}
    explain: TcpState = TcpState.ESTABLISHED
    place: Place = Place()
    fmt: str | None = None
    color: str = "auto"
    lang: str | None = None
    no_pager: bool = False

    def run(self, out: Output) -> int:
        from tcpstates.explain.run import explain_state

        return explain_state(self.explain, self.place, out, self.fmt)


@dataclass(frozen=True, slots=True)
class ExplainSocketsRequest(Request):
    NAME = "--explain ADDRESS:PORT"
    FORMATS = TEXT
    explain: tuple[Target, str] | None = None  # what to look for, and how it was typed
    place: Place = Place()
    fmt: str | None = None
    lang: str | None = None
    verbose: bool = False
    no_pager: bool = False

    def run(self, out: Output) -> int:
        from tcpstates.explain.run import explain_sockets

        assert self.explain is not None
        target, name = self.explain
        return explain_sockets(target, name, self.place, out, self.fmt, self.verbose)


@dataclass(frozen=True, slots=True)
class DiagramRequest(Request):
    NAME = "--diagram"
    FORMATS = TEXT
    IMPLIED = frozenset({"explain"})  # without a STATE; with one, the state to highlight
    REFUSED = {"all_netns": "it counts one place; give --netns"}
    diagram: bool = True
    explain: TcpState | None = None  # the state to highlight
    place: Place = Place()
    fmt: str | None = None
    color: str = "auto"
    lang: str | None = None
    no_pager: bool = False

    def run(self, out: Output) -> int:
        from tcpstates.explain.run import diagram

        return diagram(self.explain, self.place, out, self.fmt)


@dataclass(frozen=True, slots=True)
class ScenarioRequest(Request):
    NAME = "--scenario"
    FORMATS = TEXT
    IMPLIED = frozenset({"explain"})  # without a STATE: it tells its own story
    REFUSED = dict.fromkeys(
        ("netns", "netns_pid", "all_netns", "captures"), "--live plays on this host's loopback"
    )
    scenario: str = "open"
    live: bool = False
    place: Place = Place()  # --live reads with place.reader
    fmt: str | None = None
    color: str = "auto"
    lang: str | None = None
    no_pager: bool = False

    def refused(self) -> dict[str, str]:
        if self.live:
            return {**self.REFUSED, "no_pager": "--live plays as it goes; nothing is paged"}
        return {**self.REFUSED, "source": "it reads sockets only with --live"}

    def pages(self) -> bool:
        return not (self.no_pager or self.live)

    def run(self, out: Output) -> int:
        from tcpstates.explain.run import scenario

        reader = self.place.reader if self.live else None
        return scenario(self.scenario, reader, out, self.fmt)


@dataclass(frozen=True, slots=True)
class SaveRequest(Request):
    NAME = "--save"
    REFUSED = {
        "all_netns": "a capture is one namespace's; give --netns or --netns-pid",
        "captures": "it saves a live kernel's tables",
        "source": "it copies /proc/net's tables as they are",
    }
    save: str = ""
    replace: bool = False
    place: Place = Place()

    def run(self, out: Output) -> int:
        from tcpstates.sources.place import save_place

        written = save_place(self.place, self.save, self.replace)
        out.say(f"saved {written} files to {self.save}")
        return ExitStatus.OK


@dataclass(frozen=True, slots=True)
class MetricsRequest(Request):
    NAME = "-o openmetrics"
    FORMATS = ("openmetrics",)
    REFUSED = {"all_netns": "its counts would add up several namespaces; give --netns"}
    fmt: str = "openmetrics"
    query: Query = Query()
    place: Place = Place()
    by: str | None = None
    verbose: bool = False

    def run(self, out: Output) -> int:
        from tcpstates.export.run import metrics

        return metrics(self.query, self.place, (self.by,) if self.by else (), out, self.verbose)


@dataclass(frozen=True, slots=True)
class DoctorRequest(Request):
    NAME = "doctor"
    FORMATS = ("table", "plain", "json")
    REFUSED = {"all_netns": "it diagnoses one namespace at a time; give --netns"}
    place: Place = Place()
    fmt: str | None = None
    color: str = "auto"
    lang: str | None = None
    verbose: bool = False
    no_pager: bool = False
    interval: float = LOOK_INTERVAL

    def refused(self) -> dict[str, str]:
        if isinstance(self.place.where, Capture):
            return {
                **self.REFUSED,
                "interval": "a capture is one moment; it cannot be looked at twice",
            }
        return self.REFUSED

    def run(self, out: Output) -> int:
        from tcpstates.doctor.run import doctor

        return doctor(self.place, out, self.fmt, self.verbose, self.interval)


@dataclass(frozen=True, slots=True)
class KillRequest(Request):
    NAME = "kill"
    FORMATS = ("table", "plain", "json")
    IMPLIED = frozenset({"processes"})  # its report always names each socket's owner
    REFUSED = {
        "all_netns": "it destroys in one namespace at a time; give --netns",
        "captures": "a capture's sockets are a file's lines, not sockets to destroy",
        "verbose": "it always reads with netlink sock_diag, the one way to destroy a socket",
    }
    query: Query = Query()
    # The states -s or -l named one by one (not by a group): listeners in them are destroyed.
    named: frozenset[TcpState] = frozenset()
    place: Place = Place()
    fmt: str | None = None
    color: str = "auto"
    wide: bool = False
    lang: str | None = None
    yes: bool = False
    dry_run: bool = False

    def refused(self) -> dict[str, str]:
        refusals = dict(self.REFUSED)
        if self.place.reader in ("procfs", "psutil"):
            refusals["source"] = "only netlink sock_diag can destroy a socket"
        if self.dry_run:
            refusals["yes"] = "--dry-run destroys nothing"
        return refusals

    def run(self, out: Output) -> int:
        from tcpstates.kill.run import kill

        return kill(
            self.query, self.named, self.place, out, self.fmt, yes=self.yes, dry_run=self.dry_run
        )


@dataclass(frozen=True, slots=True)
class TopRequest(Request):
    NAME = "top"
    RUNS_UNTIL_STOPPED = True
    REFUSED = {
        "captures": "a capture is one moment; top reads again and again",
        "verbose": "its status line names where it reads",
    }
    query: Query = Query()
    place: Place = Place()
    interval: float = TOP_INTERVAL
    no_owners: bool = False
    lang: str | None = None

    def run(self, out: Output) -> int:
        from tcpstates.top.run import top

        return top(self.query, self.place, out, self.interval, owners=not self.no_owners)


@dataclass(frozen=True, slots=True)
class CountersRequest(Request):
    NAME = "counters"
    FORMATS = ("table", "plain", "json")
    REFUSED = {
        "all_netns": "each namespace has its own counters; give --netns",
        "source": "it reads /proc/net/snmp and netstat, not a socket table",
        "verbose": "it reads /proc/net/snmp and netstat, not a socket table",
    }
    patterns: tuple[str, ...] = ()
    interval: float | None = None
    zeros: bool = False
    place: Place = Place()
    fmt: str | None = None
    color: str = "auto"
    lang: str | None = None
    no_pager: bool = False

    def refused(self) -> dict[str, str]:
        if isinstance(self.place.where, Capture):
            return {**self.REFUSED, "interval": "a capture is one moment; it cannot change"}
        return self.REFUSED

    def run(self, out: Output) -> int:
        from tcpstates.counters.run import counters

        return counters(self.place, self.patterns, self.interval, self.zeros, out, self.fmt)


@dataclass(frozen=True, slots=True)
class TraceRequest(Request):
    NAME = "trace"
    FORMATS = ("plain", "jsonl", "csv")
    RUNS_UNTIL_STOPPED = True
    FITTED = "plain"  # its lines fit a terminal (trace/render.py); -W: one line each
    REFUSED = {
        "tcp": "the tracepoint sees TCP only",
        "udp": "the tracepoint sees TCP only",
        "listening": "a listener makes no transitions to trace; use -s listen",
        "pid": "a transition's owner is looked up after it happened",
        "process": "a transition's owner is looked up after it happened",
        "captures": "a capture holds no transitions",
        "source": "it reads the kernel's tracepoint, not a socket table",
        "verbose": "it reads the kernel's tracepoint, not a socket table",
    }
    query: Query = Query()
    place: Place = Place()
    fmt: str = "plain"
    wide: bool = False
    duration: float | None = None
    count: int | None = None

    def run(self, out: Output) -> int:
        from tcpstates.trace.run import trace

        return trace(self.query, self.place, out, self.fmt, self.duration, self.count)


@dataclass(frozen=True, slots=True)
class CleanupRequest(Request):
    NAME = "trace --cleanup"
    cleanup: bool = True

    def run(self, out: Output) -> int:
        from tcpstates.trace.run import cleanup

        return cleanup(out)


@dataclass(frozen=True, slots=True)
class ExportRequest(Request):
    NAME = "export"
    RUNS_UNTIL_STOPPED = True
    REFUSED = {
        "all_netns": "its counts would add up several namespaces; give --netns",
        "tcp": "it always counts TCP; -u adds UDP",
    }
    query: Query = Query()
    place: Place = Place()
    by: tuple[str, ...] = ()
    max_series: int = 1000
    listen: tuple[str, int] | None = None
    textfile: str | None = None
    interval: float | None = None
    verbose: bool = False

    def run(self, out: Output) -> int:
        from tcpstates.export.metrics import Selection
        from tcpstates.export.run import export

        selection = Selection(self.query, self.by, self.max_series)
        return export(
            self.place, selection, out, self.listen, self.textfile, self.interval, self.verbose
        )


@dataclass(frozen=True, slots=True)
class HelpRequest(Request):
    NAME = "help"
    topic: str = "tcpstates"

    def pages(self) -> bool:
        """man brings its own pager; the page shown as text, where there is no man, ours."""
        from tcpstates.manual.pages import man_program

        return man_program() is None

    def run(self, out: Output) -> int:
        from tcpstates.manual.pages import show

        return show(self.topic, out.stdout)
