"""What ``tcpstates trace`` costs per event: a loopback connect/close loop, traced.

Run as root (tracing needs it):

    python tests/benchmarks/trace_bench.py --connections 20000 [--namespaces 2] [--runs 3]
        [--python PATH] [--pythonpath DIR] [-- TRACE-OPTIONS...]

Each run starts ``python -m tcpstates trace -o jsonl --port P [TRACE-OPTIONS]`` with stdout to a
file, waits until its instance is enabled, then a child makes CONNECTIONS loopback connections
to port P (each ten transitions) as fast as it can, in the namespace the trace runs in. Once
the output stops growing, the trace's CPU time since it was ready is read from /proc/PID/stat.

* ``events``: records written; ``lost``: events the kernel dropped because the trace read too
  slowly (shown as lost_events records, or overwritten, from stderr); ``left out``: events the
  trace could not place in a network namespace (stderr).
* ``events/cpu-s``: events read (written and left out) per second of the trace's own CPU time
  (user + system): the rate one core could sustain; its inverse is the per-event cost.
* ``--namespaces N``: N extra network namespaces exist meanwhile (made and deleted here), each
  with a process in it, so a trace that looks sockets up in every namespace pays for them.
* ``--pythonpath DIR`` runs another checkout (e.g. ``git archive`` of a base commit), so
  before and after are the same command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

LOOP = """
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
with socket.create_server(("127.0.0.1", port), backlog=512) as server:
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        client.close()
        accepted.close()
"""


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


def _enabled(pid: int) -> bool:
    """Whether the process holds a tcpstates instance's trace_pipe with its event enabled."""
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.endswith("/trace_pipe") and "/tcpstates-" in target:
                    instance = target.rpartition("/")[0]
                    enable = f"{instance}/events/sock/inet_sock_set_state/enable"
                    with open(enable) as f:
                        return f.read().strip() == "1"
    return False


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settled(path: str) -> None:
    size, deadline = -1, time.monotonic() + 60
    while size != os.path.getsize(path) and time.monotonic() < deadline:
        size = os.path.getsize(path)
        time.sleep(0.5)


@contextlib.contextmanager
def _namespaces(count: int) -> Iterator[None]:
    names = [f"tcpstates-tb{os.getpid()}-{i}" for i in range(count)]
    holders = []
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True)
            holders.append(
                subprocess.Popen(["ip", "netns", "exec", name, "sleep", "3600"])
            )  # a process in it, as a container has
        yield
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False)


def run_once(args: argparse.Namespace) -> dict[str, float]:
    port = _free_port()
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    with tempfile.NamedTemporaryFile("w+", suffix=".jsonl") as out:
        command = [args.python, "-m", "tcpstates", "trace", "-o", "jsonl", "--port", str(port)]
        tracer = subprocess.Popen(
            [*command, *args.trace_options],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=args.pythonpath,  # python -m puts the working directory first on the path
        )
        try:
            deadline = time.monotonic() + 20
            while not _enabled(tracer.pid):
                if tracer.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the trace did not start: {tracer.communicate()[1]}")
                time.sleep(0.05)
            time.sleep(0.3)  # its first empty read done
            cpu = _cpu_seconds(tracer.pid)
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-c", LOOP, str(port), str(args.connections)], check=True
            )
            looped = time.monotonic() - started
            _settled(out.name)
            cpu = _cpu_seconds(tracer.pid) - cpu
            tracer.send_signal(signal.SIGTERM)
            _, err = tracer.communicate(timeout=30)
        finally:
            if tracer.poll() is None:
                tracer.kill()
                tracer.wait()
        out.seek(0)
        records = [json.loads(line) for line in out]
    events = sum(1 for r in records if "lost_events" not in r)
    lost = sum(r.get("lost_events", 0) for r in records)
    left_out = 0
    for line in err.splitlines():
        if "overwrote" in line:
            lost += int(line.split("overwrote ")[1].split()[0])
        if line.startswith("tcpstates: left out "):
            left_out = int(line.split()[3])
    return {"events": events, "lost": lost, "left_out": left_out, "cpu": cpu, "loop": looped}


def _rate(result: dict[str, float]) -> float:
    return (result["events"] + result["left_out"]) / result["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=20000)
    parser.add_argument("--namespaces", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--pythonpath")
    parser.add_argument("trace_options", nargs="*")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("tracing needs root")
    results = []
    with _namespaces(args.namespaces):
        for _ in range(args.runs):
            result = run_once(args)
            results.append(result)
            print(
                f"events {result['events']:.0f}  lost {result['lost']:.0f}"
                f"  left out {result['left_out']:.0f}"
                f"  trace cpu {result['cpu']:.2f} s  loop {result['loop']:.2f} s"
                f"  events/cpu-s {_rate(result):.0f}",
                flush=True,
            )
    rate = statistics.median(_rate(r) for r in results)
    print(f"median events/cpu-s {rate:.0f}  ({1e6 / rate:.1f} us an event)")


if __name__ == "__main__":
    main()
