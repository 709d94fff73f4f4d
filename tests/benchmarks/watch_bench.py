"""Time a --watch frame against one `ss -tanp` on the same zoo, and a watch's peak memory.

Run as root (it creates network namespaces):

    python tests/benchmarks/watch_bench.py --sizes 50000,100000 --runs 3

For each size it builds a zoo as bench.py does (zoo_at_scale.py) and, in each round, runs
`ss -tanp` once and `tcpstates --watch 0.001 -o jsonl` (with owners, as a watch shows them)
for FRAMES frames, alternating which goes first. A frame is timed from the moment the previous
frame's line arrived to the moment its own does, so it holds everything a frame costs: the
reading with owners, the sort, the diff, the counts and the line written (the 1 ms interval is
left in). Frame 0, which reports every socket as appeared, is timed apart. Memory is the watch's
own VmHWM (peak RSS) read from /proc before it is stopped, after FRAMES frames.

How to read the output: `frame` is the median over rounds of the median frame after the first;
`ratio` the paired median of frame / `ss -tanp` in the same round.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import zoo_at_scale as zoo_mod
from bench import interpreter_of, run_once

FRAMES = 4  # frames read per round: frame 0 and three more
TIMEOUT = 120.0  # seconds a round of frames may take


def watch_round(tcpstates: Path) -> tuple[float, list[float], float]:
    """(frame 0 seconds, the later frames' seconds, peak MiB) of one watch."""
    argv = [str(tcpstates), "--watch", "0.001", "-o", "jsonl"]
    start = time.perf_counter()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        arrived = [start]
        deadline = start + TIMEOUT
        while len(arrived) <= FRAMES and time.perf_counter() < deadline:
            if not proc.stdout.readline():
                break
            arrived.append(time.perf_counter())
        peak = _peak_mib(proc.pid)
        proc.send_signal(signal.SIGINT)
        proc.stdout.read()
        proc.wait(timeout=30)
    if len(arrived) <= FRAMES:
        raise RuntimeError(f"the watch gave {len(arrived) - 1} frames, not {FRAMES}")
    gaps = [b - a for a, b in zip(arrived, arrived[1:], strict=False)]
    return gaps[0], gaps[1:], peak


def _peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_size(n: int, runs: int, tcpstates: Path) -> None:
    zoo = zoo_mod.Zoo(n)
    name = f"tcpstates-watchbench-{os.getpid()}"
    with zoo_mod.inside_namespace(name, zoo_mod.namespace_sysctls(zoo.plan)):
        try:
            zoo.build()
            print(f"== {n} sockets: {zoo_mod.format_counts(zoo_mod.state_counts())}")
            ss, firsts, frames, ratios, peaks = [], [], [], [], []
            env = dict(os.environ)
            for index in range(runs):
                order = ["ss", "watch"] if index % 2 == 0 else ["watch", "ss"]
                for what in order:
                    if what == "ss":
                        took, code = run_once(("/usr/bin/ss", "-tanp"), os.devnull, env)
                        assert code == 0
                        ss.append(took)
                    else:
                        first, later, peak = watch_round(tcpstates)
                        firsts.append(first)
                        frames.append(statistics.median(later))
                        peaks.append(peak)
                ratios.append(frames[-1] / ss[-1])
        finally:
            with zoo_mod.signals_deferred():
                zoo.close()
    print(f"ss -tanp            {statistics.median(ss):7.3f} s")
    print(f"frame 0 (all new)   {statistics.median(firsts):7.3f} s")
    ratio = statistics.median(ratios)
    print(f"frame (median)      {statistics.median(frames):7.3f} s  ratio {ratio:.2f}x ss -tanp")
    print(f"peak RSS            {max(peaks):7.1f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50000,100000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tcpstates", type=Path, default=Path(sys.executable).parent / "tcpstates")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("watch_bench.py: needs root: it creates network namespaces", file=sys.stderr)
        return 2
    zoo_mod.raise_on_sigterm()
    zoo_mod.remove_stale_namespaces(["tcpstates-watchbench-", "tcpstates-zoo-"])
    interpreter_of(args.tcpstates)
    for n in (int(s) for s in args.sizes.split(",")):
        bench_size(n, args.runs, args.tcpstates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
