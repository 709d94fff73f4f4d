"""Time tcpstates side by side with ss, netstat and psutil on socket zoos of growing size.

Run as root (it creates network namespaces):

    python tests/benchmarks/bench.py --sizes 1000,10000,50000,100000 --runs 7 [--tcpstates PATH]
    python tests/benchmarks/bench.py --sizes 10000 --runs 7 --markdown   # README table too

For each size it creates the namespace ``tcpstates-bench-<pid>``, builds a zoo of that many
sockets in it (see zoo_at_scale.py), moves itself into the namespace (setns, so no command pays
for an ``ip netns exec`` wrapper) and runs every command as a whole process, stdout to /dev/null:
one untimed warm-up round, then --runs timed rounds. Within a round each command runs once and the
order rotates and alternates from round to round, so drift on a shared machine hits all alike.

How to read the output, per size:

* ``median s``: median wall time of the whole process (spawn to exit) over the timed rounds.
* ``ratio``: the paired median of (this command / its baseline) taken within the same round; it
  is steadier than dividing two medians. Baseline commands are compared with ``ss -tan``; each
  tcpstates command with the tool it must beat (the ``baseline`` column), and what a terminal
  gets with ``tcpstates -o plain``: ``tcpstates on a 100x50 pty, paged`` runs with its stdout
  on a pseudo-terminal of that size, so it writes the fitted, coloured table into its pager,
  here one that reads it all (``dd``, as a person who pages to the end); the pty is read and
  dropped as it fills.
* ``peak MiB``: peak RSS of the process (ru_maxrss from os.wait4), taken in the warm-up round.
  A child's ru_maxrss also counts the memory of the process it was spawned from (the kernel
  folds the pre-exec image into it), so the runner starts each memory run from a tiny ``sh``
  that backgrounds the command and exits; being a child subreaper, the runner then reaps the
  command itself. Timed runs are spawned directly (posix_spawn), without that detour.
* ``FAILED: ...``: the command exited non-zero (or could not start); the first line of its
  stderr follows. The benchmark goes on; a target that depends on it FAILs.
* Targets (from the performance issue) end each size with PASS or FAIL and the measured ratio.

TIME_WAIT sockets live exactly 60 s. When the next round might outlast the current TIME_WAIT
cohort, the runner waits for it to expire and builds a new one, so every timed round sees the
zoo at full size. The header line tells how many refreshes that took, and the lowest and highest
TIME_WAIT count seen at the start and end of every round (equal to the zoo's when all went well).
The exit code is 0 when the benchmark ran, whatever the targets say; 2 on a setup error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import zoo_at_scale as zoo_mod

PR_SET_CHILD_SUBREAPER = 36
# Runs "$@" in the background of a small shell and reports its pid on fd 3 (see peak_rss).
# sh starts the command in the background, says its pid on fd 3 and exits; the command waits
# on fd 4 (a pipe we close once sh is reaped), so it cannot finish, and be reaped by sh, before
# it is re-parented to us.
TRAMPOLINE = '(exec 3>&-; read _ <&4; exec "$@" 4<&-) & echo $! >&3'
COMMAND_TIMEOUT = 300.0  # seconds; a hung command is killed and reported FAILED
TIME_WAIT_MARGIN = 3.0  # seconds of slack before a TIME_WAIT cohort could expire mid-round
MEMORY_TARGET_MIB = 80.0


@dataclass(frozen=True)
class Command:
    label: str
    argv: tuple[str, ...]
    baseline: str  # label of the command this one is compared with
    ours: bool = False  # a tcpstates command (memory target applies)
    env: tuple[tuple[str, str], ...] = ()  # set in its environment: TCPSTATES_PAGER=...
    pty: bool = False  # stdout on a pseudo-terminal (PTY), not /dev/null

    def environ(self) -> dict[str, str]:
        return {**os.environ, **dict(self.env)}


@dataclass
class Result:
    times: list[float] = field(default_factory=list)  # one per timed round while it succeeds
    rss_kib: list[int] = field(default_factory=list)
    error: str | None = None

    def median(self) -> float | None:
        return statistics.median(self.times) if self.times and self.error is None else None

    def peak_mib(self) -> float | None:
        return max(self.rss_kib) / 1024 if self.rss_kib and self.error is None else None


@dataclass(frozen=True)
class Target:
    """A tcpstates command, what it is compared with, and the highest ratio allowed at each
    size the performance issue sets one for (``ANY``: every size; none: measured, not judged)."""

    label: str
    baseline: str
    max_ratio: dict[int, float] = field(default_factory=dict)
    readme: bool = True  # a row of README's table (where its baseline is a peer's)
    on_terminal: bool = False  # run on PTY, with PAGED_ENV: the label is not a command line

    def limit(self, n: int) -> float | None:
        return self.max_ratio.get(n, self.max_ratio.get(ANY))


ANY = 0  # a Target.max_ratio key: at every size
TERMINAL_LABEL = "tcpstates on a 100x50 pty, paged"
PTY_SIZE = (50, 100)  # rows, columns
# A pager that reads everything and shows nothing: the cost is tcpstates' and the pipe's.
PAGED_ENV = (("TCPSTATES_PAGER", "dd of=/dev/null bs=1M status=none"),)
# The targets of issue 18 ("Fast from the first millisecond"), by size.
TARGETS = (
    Target("tcpstates -o plain", "ss -tanp", {50_000: 0.7, 100_000: 0.5}),
    Target("tcpstates -o json", "ss -tanp", {50_000: 1.0, 100_000: 1.0}),
    Target("tcpstates -o plain --state time-wait", "ss -tan state time-wait",
           {50_000: 2.0, 100_000: 1.5}),
    Target("tcpstates --summary -o json", "ss -tan", {50_000: 0.8, 100_000: 0.8}),
    # tcp_info for every socket: ss -tin prints it as text, tcpstates as JSON records.
    Target("tcpstates -i -o json --no-owners", "ss -tin", {50_000: 1.0, 100_000: 1.0}),
    Target("tcpstates --version", "python -c pass", {ANY: 3.0}),
    Target("tcpstates --explain TIME_WAIT -o plain", "python -c pass", readme=False),
    # The table a terminal gets (fitted to 100 columns, states coloured), written to the pipe
    # its pager reads: a large listing stays a table only while it costs about what plain does.
    Target(TERMINAL_LABEL, "tcpstates -o plain", {ANY: 1.5}, readme=False, on_terminal=True),
)  # fmt: skip


@dataclass
class SizeReport:
    n: int
    counts: str
    build_s: float
    measure_s: float
    holders: int
    refreshes: int
    time_wait_seen: tuple[int, int]
    results: dict[str, Result]


# ---------------------------------------------------------------- what to run


def interpreter_of(script: Path) -> str:
    """The interpreter in a console script's shebang, so psutil/pass use tcpstates' Python."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        first = script.read_text().split("\n", 1)[0]
        if first.startswith("#!"):
            candidate = first[2:].split()[0]
            if "python" in Path(candidate).name and os.access(candidate, os.X_OK):
                return candidate
    return sys.executable


def build_commands(tcpstates: Path, python: str) -> list[Command]:
    base = "ss -tan"
    baselines = [
        Command("ss -tan", ("ss", "-tan"), base),
        Command("ss -tanp", ("ss", "-tanp"), base),
        Command("ss -tan state time-wait", ("ss", "-tan", "state", "time-wait"), base),
        Command("ss -tin", ("ss", "-tin"), base),
        Command("netstat -tanp", ("netstat", "-tanp"), base),
        Command("netstat -tan", ("netstat", "-tan"), base),
        Command(
            "psutil.net_connections('tcp')",
            (python, "-c", "import psutil; psutil.net_connections('tcp')"),
            base,
        ),
        Command("python -c pass", (python, "-c", "pass"), base),
    ]
    return baselines + [our_command(t, tcpstates) for t in TARGETS]


def our_command(target: Target, tcpstates: Path) -> Command:
    """A target's command from its label, a shell's: ``[VAR=value ...] tcpstates ARGS``; for
    one on a terminal, the listing on PTY, through PAGED_ENV's pager."""
    if target.on_terminal:
        return Command(target.label, (str(tcpstates),), target.baseline, True, PAGED_ENV, True)
    words = target.label.split()
    env = tuple((name, value) for name, _, value in (w.partition("=") for w in words if "=" in w))
    args = words[len(env) + 1 :]
    return Command(target.label, (str(tcpstates), *args), target.baseline, True, env)


def resolve(argv: tuple[str, ...]) -> tuple[str, ...] | str:
    """Absolute argv (PATH is searched once, outside the timing), or a reason it can't run."""
    exe = shutil.which(argv[0])
    return (exe, *argv[1:]) if exe else f"not found or not executable: {argv[0]}"


# ---------------------------------------------------------------- running one command


class Pty:
    """One pseudo-terminal of PTY_SIZE for the whole run, its output read and dropped by a
    thread (a terminal that is not read blocks its writer once its buffer fills)."""

    def __init__(self) -> None:
        import fcntl
        import struct
        import termios
        import threading

        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *PTY_SIZE, 0, 0))
        self.path = os.ttyname(slave)
        self.slave = slave  # held open: the pty lives while the run does
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self.master, 1 << 16):
                pass


_PTY: Pty | None = None


def stdout_path(pty: bool) -> str:
    global _PTY
    if not pty:
        return os.devnull
    _PTY = _PTY or Pty()
    return _PTY.path


def _std_actions(errfile: str, stdout: str = os.devnull) -> list[tuple[object, ...]]:
    """stdin on /dev/null, stdout there too or on a pty, stderr to a file (read back only on
    failure)."""
    return [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, stdout, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, errfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
    ]


def run_once(
    argv: tuple[str, ...], errfile: str, env: dict[str, str], stdout: str = os.devnull
) -> tuple[float, int]:
    """Run argv to completion; return (wall seconds from spawn to reap, exit code)."""
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=_std_actions(errfile, stdout))
    status, _ = _reap(pid)
    return time.perf_counter() - start, os.waitstatus_to_exitcode(status)


def peak_rss(
    argv: tuple[str, ...], errfile: str, env: dict[str, str], stdout: str = os.devnull
) -> tuple[int, int]:
    """Run argv once; return (its own peak RSS in KiB, exit code).

    Spawned directly, the child's ru_maxrss would include this runner's RSS (the pre-exec
    image). So `sh` forks the command and exits at once: the command starts from sh's small
    image, is re-parented to us (child subreaper), and we wait4 it for a clean ru_maxrss.
    """
    read_end, write_end = os.pipe()
    gate_read, gate_write = os.pipe()
    try:
        actions = [
            *_std_actions(errfile, stdout),
            (os.POSIX_SPAWN_DUP2, write_end, 3),
            (os.POSIX_SPAWN_DUP2, gate_read, 4),
        ]
        shell = os.posix_spawn(
            "/bin/sh", ["sh", "-c", TRAMPOLINE, "sh", *argv], env, file_actions=actions
        )
        os.close(write_end)
        write_end = -1
        os.close(gate_read)
        gate_read = -1
        pid_text = _read_all(read_end)
        pid = int(pid_text)
        try:
            _reap(shell)
        except BaseException:
            _kill_and_reap(pid)
            raise
    finally:
        os.close(read_end)
        for fd in (write_end, gate_read, gate_write):
            if fd >= 0:
                os.close(fd)  # closing the gate lets the command run
    status, usage = _reap(pid)
    return usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def _read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 64):
        data += chunk
    return data


def _reap(pid: int) -> tuple[int, resource.struct_rusage]:
    """Wait for our child `pid` (killing it past COMMAND_TIMEOUT or on Ctrl-C)."""
    try:
        _wait_exit(pid, COMMAND_TIMEOUT)
        _, status, usage = os.wait4(pid, 0)
    except BaseException:  # interrupted or timed out: never leave the child behind
        _kill_and_reap(pid)
        raise
    return status, usage


def _kill_and_reap(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _wait_exit(pid: int, timeout: float) -> None:
    """Block until `pid` exits (a pidfd turns readable), or raise TimeoutError."""
    pidfd = os.pidfd_open(pid)
    try:
        if not select.select([pidfd], [], [], timeout)[0]:
            raise TimeoutError(f"still running after {timeout:.0f} s")
    finally:
        os.close(pidfd)


def first_line(path: str) -> str:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text(errors="replace").splitlines():
            if line.strip():
                return line.strip()[:160]
    return ""


def run_command(cmd: Command, result: Result, errfile: str, warm_up: bool) -> None:
    """Run once: the warm-up run measures memory, the others time. A failure sets
    result.error, and a failed command is not run again."""
    argv = resolve(cmd.argv)
    if isinstance(argv, str):
        result.error = argv
        return
    try:
        stdout = stdout_path(cmd.pty)
        if warm_up:
            rss, code = peak_rss(argv, errfile, cmd.environ(), stdout)
        else:
            elapsed, code = run_once(argv, errfile, cmd.environ(), stdout)
    except (TimeoutError, OSError, ValueError) as exc:  # hung, or could not be spawned
        result.error = str(exc) or type(exc).__name__
        return
    if code != 0:
        result.error = f"exit {code}: {first_line(errfile) or '(no stderr)'}"
    elif warm_up:
        result.rss_kib.append(rss)
    else:
        result.times.append(elapsed)


# ---------------------------------------------------------------- rounds


def round_order(commands: list[Command], index: int) -> list[Command]:
    """Rotate the start each round and reverse every other round, so no command is always
    first (cold) or always right after the expensive ones."""
    k = index % len(commands)
    order = commands[k:] + commands[:k]
    return order[::-1] if index % 2 else order


def keep_time_wait_alive(zoo: zoo_mod.Zoo, next_round_s: float) -> float | None:
    """If the TIME_WAIT cohort could expire during the next round, wait for it to go and
    build a fresh one (building early would double-count). Returns the seconds that took,
    or None when the cohort is young enough."""
    if zoo.plan.time_wait == 0:
        return None
    if zoo.time_wait_age() + next_round_s + TIME_WAIT_MARGIN < zoo_mod.TIME_WAIT_SECONDS:
        return None
    start = time.monotonic()
    zoo.wait_time_wait_expiry()
    zoo.refresh_time_wait()
    return time.monotonic() - start


def measure(
    zoo: zoo_mod.Zoo, commands: list[Command], runs: int, progress: bool
) -> tuple[dict[str, Result], int, tuple[int, int]]:
    """Warm-up round plus `runs` timed rounds; returns results, refresh count, TW range seen."""
    results = {c.label: Result() for c in commands}
    refreshes, last_round_s, seen = 0, 0.0, []
    with tempfile.TemporaryDirectory(prefix="tcpstates-bench-") as tmp:
        errfile = os.path.join(tmp, "stderr")
        # Round -1 warms caches (.pyc, page cache), finds failures and measures peak RSS.
        for index in range(-1, runs):
            took = keep_time_wait_alive(zoo, 1.25 * last_round_s)
            if took is not None:
                refreshes += 1
                if progress:
                    print(f"  TIME_WAIT expired and rebuilt: {took:.1f} s", file=sys.stderr)
            start = time.monotonic()
            seen.append(zoo_mod.time_wait_count())
            for cmd in round_order(commands, index):
                result = results[cmd.label]
                if result.error is None:
                    run_command(cmd, result, errfile, warm_up=index < 0)
            seen.append(zoo_mod.time_wait_count())
            last_round_s = time.monotonic() - start
            if progress:
                print(f"  round {index + 1}/{runs}: {last_round_s:.1f} s", file=sys.stderr)
    return results, refreshes, (min(seen), max(seen))


def paired_ratio(results: dict[str, Result], label: str, baseline: str) -> float | None:
    """Median over rounds of time(label) / time(baseline) measured in the same round."""
    mine, base = results[label], results[baseline]
    if mine.error or base.error:
        return None
    # Neither failed, so both ran in every round: the lists align round by round.
    pairs = [a / b for a, b in zip(mine.times, base.times, strict=True) if b > 0]
    return statistics.median(pairs) if pairs else None


# ---------------------------------------------------------------- one size


def bench_size(n: int, commands: list[Command], runs: int, progress: bool) -> SizeReport:
    """Build a zoo of `n` sockets in a fresh namespace, measure, and tear everything down."""
    name = f"tcpstates-bench-{os.getpid()}"
    zoo = zoo_mod.Zoo(n)
    with zoo_mod.inside_namespace(name, zoo_mod.namespace_sysctls(zoo.plan)):
        try:
            start = time.monotonic()
            zoo.build()
            build_s = time.monotonic() - start
            counts = zoo_mod.format_counts(zoo_mod.state_counts())
            if progress:
                print(f"{n}: built in {build_s:.1f} s: {counts}", file=sys.stderr)
            start = time.monotonic()
            results, refreshes, seen = measure(zoo, commands, runs, progress)
            measure_s = time.monotonic() - start
            holders = len(zoo.holders)
        finally:
            with zoo_mod.signals_deferred():
                zoo.close()
    return SizeReport(n, counts, build_s, measure_s, holders, refreshes, seen, results)


# ---------------------------------------------------------------- reporting


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_size(report: SizeReport, commands: list[Command]) -> None:
    lo, hi = report.time_wait_seen
    print(f"\n== {report.n} sockets: {report.counts}")
    print(
        f"   built in {report.build_s:.1f} s with {report.holders} holder(s); measured in "
        f"{report.measure_s:.1f} s; TIME_WAIT refreshes {report.refreshes}, seen {lo}-{hi}"
    )
    width = max(len(c.label) for c in commands)
    print(f"{'command':<{width}}  {'median s':>9}  {'ratio':>6}  {'baseline':<24} {'peak MiB':>8}")
    for cmd in commands:
        res = report.results[cmd.label]
        if res.error:
            print(f"{cmd.label:<{width}}  FAILED: {res.error}")
            continue
        ratio = paired_ratio(report.results, cmd.label, cmd.baseline)
        print(
            f"{cmd.label:<{width}}  {_fmt(res.median(), '9.3f')}  {_fmt(ratio, '6.2f')}  "
            f"{cmd.baseline:<24} {_fmt(res.peak_mib(), '8.1f')}"
        )
    print(f"targets at {report.n} sockets:")
    for verdict, claim, measured in target_verdicts(report, commands):
        print(f"  {verdict}  {claim}: {measured}")


def target_verdicts(report: SizeReport, commands: list[Command]) -> Iterator[tuple[str, str, str]]:
    """(PASS or FAIL, the target, what was measured) for each target of the issue."""
    for t in TARGETS:
        limit = t.limit(report.n)
        if limit is None:
            continue  # no target at this size
        claim = f"{t.label} <= {limit:g} x {t.baseline}"
        ratio = paired_ratio(report.results, t.label, t.baseline)
        if ratio is None:
            why = report.results[t.label].error or report.results[t.baseline].error
            yield "FAIL", claim, f"not measured ({why})"
        else:
            yield ("PASS" if ratio <= limit else "FAIL"), claim, f"{ratio:.2f}x"
    yield memory_verdict(report, commands)


def memory_verdict(report: SizeReport, commands: list[Command]) -> tuple[str, str, str]:
    claim = f"peak RSS of every tcpstates command <= {MEMORY_TARGET_MIB:g} MiB (set for 100k)"
    ours = [report.results[c.label] for c in commands if c.ours]
    failed = [r.error for r in ours if r.error]
    peaks = [p for r in ours if (p := r.peak_mib()) is not None]
    if not peaks:
        return "FAIL", claim, f"not measured ({failed[0] if failed else 'no runs'})"
    verdict = "PASS" if max(peaks) <= MEMORY_TARGET_MIB else "FAIL"
    # A failed command has no figure; say so rather than hide it behind a PASS.
    note = f" ({len(failed)} of {len(ours)} commands failed, not counted)" if failed else ""
    return verdict, claim, f"{max(peaks):.1f} MiB{note}"


def print_markdown(reports: list[SizeReport], commands: list[Command]) -> None:
    """The ratio table for the README: one column per size, `seconds (ratio×)` per cell."""
    sizes = " | ".join(f"{r.n:,} sockets" for r in reports)
    print(f"\n| command | compared with | {sizes} | peak MiB at {reports[-1].n:,} |")
    print("|---|---|" + "---:|" * (len(reports) + 1))
    for cmd in commands:
        cells = [_markdown_cell(r, cmd) for r in reports]
        peak = reports[-1].results[cmd.label].peak_mib()
        row = f"| `{cmd.label}` | `{cmd.baseline}` | " + " | ".join(cells)
        print(f"{row} | {_fmt(peak, '.1f')} |")
    print("\n| size | target | verdict |")
    print("|---:|---|---|")
    for report in reports:
        for verdict, claim, measured in target_verdicts(report, commands):
            # A FAILED command's stderr can be long and hold "|"; the text table has it whole.
            shown = verdict if measured.startswith("not measured") else f"{verdict} {measured}"
            print(f"| {report.n:,} | {claim} | {shown} |")


# README's table: how tcpstates compares with its peers, without the targets (the issue's own
# yardstick) and without a row that failed; rewritten between these two lines.
README_BEGIN, README_END = "<!-- bench:begin -->", "<!-- bench:end -->"
PEERS = ("ss", "netstat", "python -c pass")


def readme_table(reports: list[SizeReport], commands: list[Command], argv: str) -> str:
    """The README's performance table: each tcpstates command against the peer it is
    compared with, `ratio× (seconds)` per size; the command line that measured it."""
    sizes = " | ".join(f"{r.n:,} sockets" for r in reports)
    lines = [
        f"Median wall time against the peer, same sockets, alternating runs ({date.today()},"
        f" {os.cpu_count()} cores, Linux {os.uname().release.split('-')[0]}):",
        "",
        f"| command | compared with | {sizes} |",
        "|---|---|" + "---:|" * len(reports),
    ]
    in_readme = {t.label for t in TARGETS if t.readme}
    for cmd in commands:
        if cmd.label not in in_readme or not cmd.baseline.startswith(PEERS):
            continue
        cells = [_readme_cell(r, cmd) for r in reports]
        if any(cell is None for cell in cells):
            continue  # failed somewhere: the benchmark's own output says why
        row = " | ".join(str(cell) for cell in cells)
        lines.append(f"| `{cmd.label}` | `{cmd.baseline}` | {row} |")
    lines += ["", f"Measured with `sudo .venv/bin/python tests/benchmarks/bench.py {argv}`."]
    return "\n".join(lines)


def _readme_cell(report: SizeReport, cmd: Command) -> str | None:
    ratio = paired_ratio(report.results, cmd.label, cmd.baseline)
    median = report.results[cmd.label].median()
    if ratio is None or median is None:
        return None
    return f"{ratio:.2f}× ({median * 1000:.0f} ms)"


def rewrite_readme(path: Path, table: str) -> None:
    """Put ``table`` between README's markers, the rest as it was; the file is replaced whole
    (a new file renamed over it), never left half-written."""
    text = path.read_text()
    head, begin, rest = text.partition(README_BEGIN)
    _, end, tail = rest.partition(README_END)
    if not (begin and end):
        raise SystemExit(f"bench.py: {path} has no {README_BEGIN} ... {README_END} lines")
    fresh = path.with_name(path.name + ".bench-new")
    fresh.write_text(f"{head}{README_BEGIN}\n{table}\n{README_END}{tail}")
    fresh.replace(path)


def _markdown_cell(report: SizeReport, cmd: Command) -> str:
    res = report.results[cmd.label]
    if res.error:
        return "FAILED"
    ratio = paired_ratio(report.results, cmd.label, cmd.baseline)
    return f"{_fmt(res.median(), '.3f')} s ({_fmt(ratio, '.2f')}×)"


# ---------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Needs root, ip and ss (iproute2); netstat (net-tools) for its baselines.",
    )
    parser.add_argument("--sizes", default="1000,10000,50000,100000", help="comma-separated N")
    parser.add_argument("--runs", type=int, default=7, help="timed rounds per size (default 7)")
    parser.add_argument(
        "--tcpstates",
        type=Path,
        default=Path(sys.executable).parent / "tcpstates",
        help="tcpstates console script (default: next to this interpreter)",
    )
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    parser.add_argument(
        "--readme",
        type=Path,
        help="rewrite the table between README's <!-- bench:begin/end --> lines with this run's",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes takes integers, e.g. 1000,10000")
    if not args.sizes or min(args.sizes) < 10 or args.runs < 1:
        parser.error("sizes must be >= 10 and --runs >= 1")
    return args


def preflight() -> str | None:
    if os.geteuid() != 0:
        return "needs root: it creates network namespaces"
    missing = [tool for tool in ("ip", "ss") if not shutil.which(tool)]
    return f"missing: {', '.join(missing)} (iproute2)" if missing else None


def compile_package(python: str) -> None:
    """Byte-compile tcpstates as pip does on install, so that no timed run compiles it.

    An editable install compiles on first import, unless PYTHONDONTWRITEBYTECODE is set; then
    every run would pay 30 ms of compiling that no installed copy pays.
    """
    code = (
        "import compileall, os, tcpstates;"
        " compileall.compile_dir(os.path.dirname(tcpstates.__file__), quiet=1)"
    )
    subprocess.run([python, "-c", code], check=True, stdout=subprocess.DEVNULL)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    problem = preflight()
    if problem:
        print(f"bench.py: {problem}", file=sys.stderr)
        return 2
    zoo_mod.raise_on_sigterm()
    # Commands started by peak_rss's shell are re-parented to us, so we can wait4 them.
    zoo_mod.prctl(PR_SET_CHILD_SUBREAPER, 1)
    zoo_mod.remove_stale_namespaces(["tcpstates-bench-", "tcpstates-zoo-"])
    python = interpreter_of(args.tcpstates)
    compile_package(python)
    commands = build_commands(args.tcpstates, python)
    print(f"tcpstates: {args.tcpstates}; python for psutil/pass: {python}; runs: {args.runs}")
    reports = []
    for n in args.sizes:
        report = bench_size(n, commands, args.runs, progress=not args.quiet)
        print_size(report, commands)
        sys.stdout.flush()
        reports.append(report)
    if args.markdown:
        print_markdown(reports, commands)
    if args.readme:
        words = [f"--sizes {','.join(str(n) for n in args.sizes)}", f"--runs {args.runs}"]
        rewrite_readme(args.readme, readme_table(reports, commands, " ".join(words)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM; the finally blocks have cleaned up
        print("bench.py: interrupted; namespace and holders removed", file=sys.stderr)
        sys.exit(130)
