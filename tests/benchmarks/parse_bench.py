"""Time parse_table on a generated 50,000-line table, as the procfs source parses it.

    python tests/benchmarks/parse_bench.py [--lines 50000] [--runs 15]

Half IPv4, half IPv6 lines, in the kernel's own format (net/ipv4/tcp_ipv4.c, get_tcp4_sock;
net/ipv6/tcp_ipv6.c, get_tcp6_sock), with mixed states. Prints the best and median time of
parsing every line, and of a TIME_WAIT-only read (most lines skipped after the state column).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from tcpstates.model.query import Query
from tcpstates.model.states import TcpState
from tcpstates.sources.procfs import parse_table

V4 = "%4d: %08X:%04X %08X:%04X %02X %08X:%08X %02X:%08X %08X %5u %8d %d %d %016x %u %u %u %u %d\n"
V6 = (
    "%4d: %08X%08X%08X%08X:%04X %08X%08X%08X%08X:%04X %02X %08X:%08X %02X:%08X %08X %5u %8d %d"
    " %d %016x %u %u %u %u %d\n"
)
STATES = (0x01, 0x01, 0x01, 0x06, 0x06, 0x08, 0x0A)


def table(lines: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        state = rng.choice(STATES)
        common = (state, 0, rng.randrange(100), 3 if state == 6 else 0, rng.randrange(6000), 0,
                  rng.choice((0, 1000)), 0, 0 if state == 6 else rng.randrange(1, 10**7), 1,
                  rng.getrandbits(64), 20, 4, 30, 10, -1)  # fmt: skip
        if i % 2:
            local = (0, 0, 0xFFFF0000, 0x0100007F + (rng.randrange(4) << 24))
            remote = (0, 0, 0xFFFF0000, 0x0100007F)
            out.append(V6 % (i, *local, 8080, *remote, rng.randrange(1 << 16), *common))
        else:
            ip = 0x0100007F + (rng.randrange(64) << 24)
            out.append(V4 % (i, ip, rng.randrange(1 << 16), 0x0100007F, 443, *common))
    return out


def best(fn, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    lines = table(args.lines)
    everything = Query(protos=frozenset({"tcp"}))
    time_wait = Query(protos=frozenset({"tcp"}), states=frozenset({TcpState.TIME_WAIT}))
    for label, query in (("all sockets", everything), ("TIME_WAIT only", time_wait)):
        low, mid = best(lambda q=query: sum(1 for _ in parse_table(lines, "tcp", q)), args.runs)
        print(f"parse_table {args.lines} lines, {label}: best {low * 1000:.1f} ms,"
              f" median {mid * 1000:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
