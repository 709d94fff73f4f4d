"""The root command: its options, typed into a request, checked against the option table.

Every command (the listing, --summary, --watch, --explain, doctor, trace, export, ...) is a
request built here from what was typed (cli/requests.py); cli/table.py refuses every typed
option its request has no field for. Options typed before a subcommand go to it the same way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from tcpstates import __version__
from tcpstates.cli.complete import COMPLETE_VAR, complete
from tcpstates.cli.dispatch import (
    REQUEST,
    RESOLVE,
    ROOT_TYPED,
    execute,
    root_request,
    typed_options,
)
from tcpstates.cli.options import (
    FORMATS,
    SCENARIO_NAMES,
    color_option,
    format_option,
    interval_option,
    lang_option,
    no_pager_option,
    place_options,
    socket_filters,
    wide_option,
)
from tcpstates.cli.requests import Request
from tcpstates.counters.command import counters
from tcpstates.doctor.command import doctor
from tcpstates.export.command import export
from tcpstates.kill.command import kill
from tcpstates.manual.command import help_command
from tcpstates.model import i18n
from tcpstates.model.errors import ExitStatus, TcpstatesError, output_failed, silence_stdout
from tcpstates.model.states import valid_names
from tcpstates.render.safe import safe
from tcpstates.summary.groups import BY
from tcpstates.top.command import top
from tcpstates.trace.command import trace

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
  tcpstates kill -s close-wait --pid 1234   destroy a leak's sockets (root)
  tcpstates export --listen :9977 Prometheus metrics on 127.0.0.1:9977

\b
Exit status:
  0    success
  1    an error, said in one line on stderr (a source could not be read)
  2    a bad option or value
  3    doctor: a finding is critical; kill: some sockets could not be destroyed
  4    --scenario --live: the kernel's states differed from the scenario's
  130  interrupted (Ctrl-C), except for --watch, trace and export: 0
  141  the reader of the output went away (tcpstates | head)

Each command takes only the options that change what it does; any other
option typed is refused (exit 2), before or after a subcommand. The list:
COMMANDS AND OPTIONS in man tcpstates, which tells the full story."""


@click.group(
    invoke_without_command=True,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@socket_filters("Only listening sockets (LISTEN; UNCONN for UDP).")
@format_option(FORMATS)
@click.option("--summary", is_flag=True, help="Count sockets per state instead of listing them.")
@click.option(
    "--by",
    type=click.Choice(BY),
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
@click.option(
    "-e",
    "--extended",
    is_flag=True,
    help="Show the Uid and Inode columns (netstat -e, ss -e); records always carry them.",
)
@click.option(
    "-H", "--no-header", is_flag=True, help="Leave the header out, as ss -H does (no counts)."
)
@click.option(
    "-i",
    "--info",
    is_flag=True,
    help="tcp_info of each TCP socket, as ss -ti: round-trip time, congestion window,"
    " retransmissions, delivery rate, time since data last moved; JSON carries all of it"
    " (tcp_info). Netlink only.",
)
@click.option(
    "-m",
    "--memory",
    is_flag=True,
    help="Socket memory, as ss -m: bytes held against each buffer and drops; JSON carries"
    " every counter (memory). Netlink only.",
)
@click.option(
    "--timers",
    is_flag=True,
    help="The timer column, as ss -o: which timer runs (on, keepalive, timewait, persist),"
    " the time left and the retransmissions.",
)
@click.option(
    "--cgroup",
    is_flag=True,
    help="Show each socket's cgroup (v2) path, as ss --cgroup does: the one it was made in"
    " (netlink), else its owner's.",
)
@click.option(
    "-a", "--all", "all_states", is_flag=True, help="Every state, listening or not: the default."
)
@click.option("-n", "--numeric", is_flag=True, help="Numeric addresses and ports: so unless -r.")
@click.option(
    "-r",
    "--resolve",
    is_flag=True,
    help="Name ports (/etc/services) and hosts (reverse DNS, at most 1 s in all) in a table or"
    " plain text; records (JSON, CSV) stay numeric.",
)
@click.option("-p", "--processes", is_flag=True, help="Show each socket's process: the default.")
@place_options()
@color_option
@no_pager_option
@wide_option
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
    " kernel reports beside the expected ones (exit 4 if they differ).",
)
@lang_option
@click.option(
    "--save",
    metavar="DIR",
    help="Save the socket tables and the kernel settings doctor reads (of this namespace, or"
    " --netns's) to DIR (new or"
    " empty; made private to you), all or nothing, for --from later, and exit.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="With --save: replace the capture DIR holds already, in one step.",
)
@click.version_option(__version__, "-V", "--version", prog_name="tcpstates")
@click.pass_context
def cli(ctx: click.Context, /, **params: Any) -> int:
    """List sockets and their TCP states, filter them, and explain what each state means.

    With no options: every TCP socket (IPv4 and IPv6) in every state, with its owner.
    """
    i18n.use(params["lang"])
    if ctx.invoked_subcommand is not None:
        # The subcommand takes what was typed here as if typed after it (cli/dispatch.py).
        ctx.meta[ROOT_TYPED] = typed_options(ctx, params)
        return ExitStatus.OK
    return execute(ctx, root_request(ctx, params), params)


cli.add_command(trace)
cli.add_command(doctor)
cli.add_command(export)
cli.add_command(kill)
cli.add_command(top)
cli.add_command(counters)
cli.add_command(help_command)


def resolve(argv: Sequence[str]) -> Request:
    """The request ``argv`` makes, without running it: what the option table test and the
    documentation's table are checked against. Raises what a run would (UsageError)."""
    with cli.make_context("tcpstates", list(argv)) as ctx:
        ctx.meta[RESOLVE] = True
        cli.invoke(ctx)
        request: Request = ctx.meta[REQUEST]
        return request


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and turn every user-facing failure into one line and an exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        instruction = os.environ.get(COMPLETE_VAR)
        if instruction:  # the shell asks for its script or for completions: read no sockets
            return complete(cli, instruction)
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
