"""How fast can Python write `-i -o json` at all? The floor, beside ss -tin and tcpstates.

Run as root (it creates a network namespace):

    python tests/benchmarks/info_floor.py --sizes 50000,100000 --runs 5

Issue 18 asks `tcpstates -i -o json --no-owners` to take no longer than `ss -tin`. This times
three whole processes on the same zoo (zoo_at_scale.py), alternating, stdout to /dev/null:

* ``ss -tin``;
* ``tcpstates -i -o json --no-owners``;
* the floor: a Python program that does the least such a listing can (FLOOR below). It loads
  nothing but inet_diag's reader, asks the kernel for tcp_info and the congestion control,
  walks each record's attributes, unpacks tcp_info and writes one JSON object a socket with
  tcpstates' keys, but with the kernel's raw integers: no units, no null for what the kernel
  left out, no state names, no addresses as text. Real output needs all of those.

If the floor is slower than ss, no Python listing meets the target; the ratios say by how much.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import zoo_at_scale as zoo_mod
from bench import run_once

FLOOR = r"""
import sys
from tcpstates.sources import inet_diag as diag
from tcpstates.model.details import INFO_FIELDS
from tcpstates.model.sockets import FIELDS
from tcpstates.sources.details import _TCP_INFO

ext = diag.extension_bits(diag.INET_DIAG_INFO, diag.INET_DIAG_CONG)
base = ", ".join(f'"{name}": %s' for name in FIELDS)
info = ", ".join(f'"{name}": %s' for name in INFO_FIELDS[1:])
line = "{" + base + ', "tcp_info": {"congestion": %s, ' + info + "}}\n"
record, unpack, size = diag.RECORD.unpack_from, _TCP_INFO.unpack_from, _TCP_INFO.size
keys = len(INFO_FIELDS) - 1
out, batch, pad = sys.stdout, [], (0,) * (len(FIELDS) - 12)
for buffer, offsets in diag.batches(6, 0, diag.ALL_STATES, b"", ext):
    for offset in offsets:
        r = record(buffer, offset)
        found = diag.attributes(buffer, offset + diag._ATTRIBUTES_OFFSET, offset + r[0])
        raw = found.get(diag.INET_DIAG_INFO)
        values = unpack(raw)[8:8 + keys] if raw is not None and len(raw) >= size else (0,) * keys
        cong = found.get(diag.INET_DIAG_CONG, b"")
        ints = (*r[5:11], *r[13:19])  # family .. dport, interface .. inode: no text at all
        batch.append(line % (*ints, *pad, cong, *values))
    out.write("".join(batch))
    batch.clear()
"""


def bench_size(n: int, runs: int, python: str, tcpstates: str) -> None:
    zoo = zoo_mod.Zoo(n)
    name = f"tcpstates-infofloor-{os.getpid()}"
    commands = {
        "ss -tin": ("/usr/bin/ss", "-tin"),
        "tcpstates -i -o json --no-owners": (tcpstates, "-i", "-o", "json", "--no-owners"),
        "floor (python)": (python, "-c", FLOOR),
    }
    times: dict[str, list[float]] = {label: [] for label in commands}
    with zoo_mod.inside_namespace(name, zoo_mod.namespace_sysctls(zoo.plan)):
        try:
            zoo.build()
            print(f"== {n} sockets: {zoo_mod.format_counts(zoo_mod.state_counts())}")
            for index in range(runs + 1):  # the first round warms up, untimed
                labels = list(commands)
                for label in labels[index % 3 :] + labels[: index % 3]:
                    took, code = run_once(commands[label], os.devnull, dict(os.environ))
                    if code != 0:
                        raise RuntimeError(f"{label} exited {code}")
                    if index:
                        times[label].append(took)
        finally:
            with zoo_mod.signals_deferred():
                zoo.close()
    ss = statistics.median(times["ss -tin"])
    for label, taken in times.items():
        median = statistics.median(taken)
        print(f"{label:34s} {median:7.3f} s  {median / ss:5.2f}x ss -tin")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50000,100000")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("info_floor.py: needs root: it creates network namespaces", file=sys.stderr)
        return 2
    zoo_mod.raise_on_sigterm()
    tcpstates = os.path.join(os.path.dirname(sys.executable), "tcpstates")
    for n in (int(s) for s in args.sizes.split(",")):
        bench_size(n, args.runs, sys.executable, tcpstates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
