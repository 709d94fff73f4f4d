"""Build a zoo of N TCP sockets on loopback inside a private network namespace.

Run it standalone (as root) to see how fast a zoo builds and which states it reaches:

    python tests/benchmarks/zoo_at_scale.py -n 100000 [--hold 30]

It creates the namespace ``tcpstates-zoo-<pid>``, builds the zoo, prints the per-state counts
(as ``ss -tan`` sees them) and the build time, optionally holds the zoo for ``--hold`` seconds so
you can look at it with ``ip netns exec tcpstates-zoo-<pid> ss -tan``, then removes everything.
``bench.py`` imports this module to build its zoos.

Shape of the zoo (share of N): about 60% ESTABLISHED (both ends counted), 20% TIME_WAIT, 6%
CLOSE_WAIT, 6% FIN_WAIT2, 2% LISTEN, 3% SYN_RECV, 3% SYN_SENT. Recipes, all on loopback:

* ESTABLISHED: connect + accept, both ends kept open.
* FIN_WAIT2 / CLOSE_WAIT: as above, then the client does shutdown(SHUT_WR); nobody else acts.
* TIME_WAIT: the client closes first, then the server; the client end lingers 60 s in the kernel.
* SYN_RECV: a listener with TCP_DEFER_ACCEPT and silent clients (their ends are ESTABLISHED).
* SYN_SENT: a listen(0) listener never accepted; with syncookies off every SYN is dropped.
* LISTEN: the listeners above, plus idle ones to reach the share.

One process may hold at most 20,000 fds here (even as root), so the sockets live in several
"holder" subprocesses of at most HOLDER_FDS fds each. A holder dies with its parent (stdin EOF
and PR_SET_PDEATHSIG), so nothing outlives the benchmark; the namespace is deleted in a finally.
Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

# Holders keep this many fds at most, leaving headroom under the 20,000 hard limit for the
# transient sockets of a TIME_WAIT batch and the interpreter's own files.
HOLDER_FDS = 16_000
# Connections per (address, port) destination: far below the ~55k ephemeral ports per
# destination, so connect() always finds a free port at once.
PER_DEST = 2_000
# Defer-accept listeners keep their SYN_RECV requests in a queue bounded by the backlog.
PER_DEFER_LISTENER = 1_000
BATCH = 500  # connects in flight before we accept them: below every backlog used here
ACCEPT_TIMEOUT = 10.0  # seconds; a build step that stalls fails instead of hanging forever
REPLY_TIMEOUT = 120.0  # seconds a holder may take for one command
TIME_WAIT_SECONDS = 60  # TCP_TIMEWAIT_LEN, fixed in the kernel (no sysctl)

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
RUN_NETNS = Path("/run/netns")

# Listener groups; each gets its own 127.<holder>.<kind>.x addresses.
KIND_ESTABLISHED, KIND_HALF_CLOSED, KIND_TIME_WAIT, KIND_DEFER, KIND_SYN_SENT, KIND_IDLE = range(
    1, 7
)


@dataclass(frozen=True)
class ZooPlan:
    """How many sockets of each recipe to build (for the whole zoo or one holder's share)."""

    established_pairs: int
    half_closed_pairs: int  # each gives one FIN_WAIT2 (client) and one CLOSE_WAIT (server)
    time_wait: int
    syn_recv: int  # each also gives one ESTABLISHED client end
    syn_sent: int
    listen: int

    @classmethod
    def for_size(cls, n: int) -> ZooPlan:
        """Split N sockets into the target shares; ESTABLISHED takes what rounding leaves."""
        listen = max(1, round(0.02 * n))
        syn_recv = round(0.03 * n)
        syn_sent = round(0.03 * n)
        half_closed = round(0.06 * n)
        time_wait = round(0.20 * n)
        established = n - listen - syn_recv - syn_sent - 2 * half_closed - time_wait
        pairs = max(0, (established - syn_recv) // 2)
        return cls(pairs, half_closed, time_wait, syn_recv, syn_sent, listen)

    def fds(self) -> int:
        """File descriptors needed to hold this plan (TIME_WAIT ends belong to the kernel)."""
        pairs = self.established_pairs + self.half_closed_pairs
        return 2 * pairs + self.syn_recv + self.syn_sent + self.listen

    def split(self, parts: int) -> list[ZooPlan]:
        """Share every count as evenly as possible between `parts` holders."""
        fields = asdict(self)
        shares = [
            {k: v // parts + (i < v % parts) for k, v in fields.items()} for i in range(parts)
        ]
        return [ZooPlan(**share) for share in shares]


# ---------------------------------------------------------------- network namespace handling


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def prctl(option: int, arg: int) -> None:
    if _libc().prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def _netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def remove_stale_namespaces(prefixes: Sequence[str]) -> None:
    """Delete namespaces named <prefix><pid> whose pid is dead (left by a SIGKILLed run)."""
    if not RUN_NETNS.is_dir():
        return
    for entry in RUN_NETNS.iterdir():
        for prefix in prefixes:
            pid = entry.name.removeprefix(prefix)
            if (
                entry.name.startswith(prefix)
                and pid.isdigit()
                and not Path(f"/proc/{pid}").exists()
            ):
                subprocess.run(["ip", "netns", "del", entry.name], check=False)


@contextlib.contextmanager
def inside_namespace(name: str, sysctls: dict[str, str]) -> Iterator[None]:
    """Create netns `name`, move this thread into it, yield; always move back and delete it.

    Children spawned meanwhile (holders, timed commands) inherit the namespace, so no command
    pays for an `ip netns exec` wrapper.
    """
    subprocess.run(["ip", "netns", "add", name], check=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    home_inode = _netns_inode()
    try:
        target = os.open(RUN_NETNS / name, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        # Guard: the sysctl writes below must never land in the host's namespace.
        if _netns_inode() == home_inode:
            raise RuntimeError(f"setns into {name} had no effect")
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        _write_sysctls(sysctls)
        yield
    finally:
        with signals_deferred():
            _setns(home)
            os.close(home)
            subprocess.run(["ip", "netns", "del", name], check=False)


def _write_sysctls(sysctls: dict[str, str]) -> None:
    # /proc/sys/net/* resolves to the writer's namespace, which is ours by now.
    for key, value in sysctls.items():
        Path("/proc/sys", key.replace(".", "/")).write_text(value + "\n")


def namespace_sysctls(plan: ZooPlan) -> dict[str, str]:
    """Per-namespace settings the zoo needs; none of them touches the host."""
    return {
        # Ephemeral ports above every listener port (8000-9999), and more of them.
        "net.ipv4.ip_local_port_range": "10000 65535",
        # Default 2 lets loopback connects recycle TIME_WAIT 4-tuples and eat our TIME_WAITs.
        "net.ipv4.tcp_tw_reuse": "0",
        "net.ipv4.tcp_max_tw_buckets": str(max(262_144, 2 * plan.time_wait)),
        # Off, so a full listen(0) queue drops SYNs (SYN_SENT) instead of answering cookies.
        "net.ipv4.tcp_syncookies": "0",
        # Without cookies this caps pending requests per listener; raise it above our queues.
        "net.ipv4.tcp_max_syn_backlog": "65536",
        "net.core.somaxconn": "65535",
    }


# ---------------------------------------------------------------- counting states


def state_counts() -> Counter[str]:
    """Per-state socket counts as `ss -tan` reports them in the current namespace."""
    out = subprocess.run(["ss", "-tanH"], check=True, capture_output=True, text=True).stdout
    return Counter(line.split(None, 1)[0] for line in out.splitlines() if line.strip())


def time_wait_count() -> int:
    """TIME_WAIT sockets in this namespace; /proc/net/sockstat is per-namespace and cheap."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("tw") + 1])
    return 0


def format_counts(counts: Counter[str]) -> str:
    order = ["ESTAB", "TIME-WAIT", "CLOSE-WAIT", "FIN-WAIT-2", "LISTEN", "SYN-RECV", "SYN-SENT"]
    names = order + sorted(set(counts) - set(order))
    return ", ".join(f"{name} {counts[name]}" for name in names if counts[name])


# ---------------------------------------------------------------- holder side (subprocess)


def _dest(holder: int, kind: int, index: int) -> tuple[str, int]:
    """Address and port of listener `index` of a kind: spreads 4-tuples over many dests."""
    return f"127.{10 + holder}.{kind}.{1 + index % 250}", 8000 + index // 250


def _listener(addr: tuple[str, int], backlog: int, defer: bool = False) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if defer:
        # Bare ACKs are ignored for an hour, so the request stays SYN_RECV meanwhile.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 3600)
    sock.bind(addr)
    sock.listen(backlog)
    sock.settimeout(ACCEPT_TIMEOUT)
    return sock


def _connect_batch(addr: tuple[str, int], count: int) -> list[socket.socket]:
    clients = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.connect(addr)  # blocking is fast on loopback: the handshake runs in this call
        clients.append(sock)
    return clients


def _pairs(listener: socket.socket, count: int) -> Iterator[tuple[socket.socket, socket.socket]]:
    """Yield `count` connected (client, server) pairs, in batches that fit the backlog."""
    for start in range(0, count, BATCH):
        yield from _pairs_once(listener, min(BATCH, count - start))


def _pairs_once(
    listener: socket.socket, count: int
) -> Iterator[tuple[socket.socket, socket.socket]]:
    """Connect `count` clients, then accept them (the backlog holds them meanwhile)."""
    clients = _connect_batch(listener.getsockname(), count)
    for client in clients:
        yield client, listener.accept()[0]


def _listeners_for(holder: int, kind: int, count: int, per: int, **kw: bool) -> list[socket.socket]:
    return [_listener(_dest(holder, kind, i), 65535, **kw) for i in range(math.ceil(count / per))]


def _spread(listeners: list[socket.socket], count: int) -> Iterator[tuple[socket.socket, int]]:
    """Share `count` connections between listeners, at most PER_DEST each."""
    for i, listener in enumerate(listeners):
        yield listener, min(PER_DEST, count - i * PER_DEST)


class Holder:
    """The sockets of one holder process, built from its share of the plan."""

    def __init__(self, index: int, plan: ZooPlan) -> None:
        self.index = index
        self.plan = plan
        self.keep: list[socket.socket] = []
        self.tw_listeners: list[socket.socket] = []

    def build(self) -> None:
        self._established()
        self._half_closed()
        self._syn_recv()
        self._syn_sent()
        self.tw_listeners = _listeners_for(
            self.index, KIND_TIME_WAIT, self.plan.time_wait, PER_DEST
        )
        self.keep += self.tw_listeners
        self._idle_listeners()

    def _established(self) -> None:
        # One pair per listen(0) listener comes from _syn_sent (see there).
        pairs = max(0, self.plan.established_pairs - math.ceil(self.plan.syn_sent / PER_DEST))
        listeners = _listeners_for(self.index, KIND_ESTABLISHED, pairs, PER_DEST)
        self.keep += listeners
        for listener, count in _spread(listeners, pairs):
            for client, server in _pairs(listener, count):
                self.keep += (client, server)

    def _half_closed(self) -> None:
        listeners = _listeners_for(
            self.index, KIND_HALF_CLOSED, self.plan.half_closed_pairs, PER_DEST
        )
        self.keep += listeners
        for listener, count in _spread(listeners, self.plan.half_closed_pairs):
            for client, server in _pairs(listener, count):
                client.shutdown(socket.SHUT_WR)  # client FIN_WAIT2, server CLOSE_WAIT
                self.keep += (client, server)

    def _syn_recv(self) -> None:
        count = self.plan.syn_recv
        listeners = _listeners_for(self.index, KIND_DEFER, count, PER_DEFER_LISTENER, defer=True)
        self.keep += listeners
        for i, listener in enumerate(listeners):
            n = min(PER_DEFER_LISTENER, count - i * PER_DEFER_LISTENER)
            # Silent clients: their handshake completes, the server waits for data forever.
            self.keep += _connect_batch(listener.getsockname(), n)

    def _syn_sent(self) -> None:
        count = self.plan.syn_sent
        listeners = [
            _listener(_dest(self.index, KIND_SYN_SENT, i), 0)
            for i in range(math.ceil(count / PER_DEST))
        ]
        self.keep += listeners
        for listener, n in _spread(listeners, count):
            addr = listener.getsockname()
            # The kernel admits backlog + 1 connections, so the first one to listen(0) gets
            # ESTABLISHED (both ends): connect one extra (and build one pair fewer elsewhere).
            for _ in range(n + 1):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                # 127 SYN retries with backoff capped at 120 s: hours before connect gives up.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 127)
                sock.setblocking(False)
                sock.connect_ex(addr)  # EINPROGRESS; the SYN is dropped, the socket waits
                self.keep.append(sock)

    def _idle_listeners(self) -> None:
        missing = self.plan.listen - sum(map(_is_listener, self.keep))
        for i in range(max(0, missing)):
            self.keep.append(_listener(_dest(self.index, KIND_IDLE, i), 16))

    def make_time_wait(self) -> int:
        """Create this holder's TIME_WAIT share; the kernel keeps each for 60 s."""
        made = 0
        for listener, count in _spread(self.tw_listeners, self.plan.time_wait):
            for start in range(0, count, BATCH):
                batch = list(_pairs_once(listener, min(BATCH, count - start)))
                for client, _ in batch:
                    client.close()  # active close: this end ends in TIME_WAIT
                for _, server in batch:
                    server.close()
                made += len(batch)
        return made


def _is_listener(sock: socket.socket) -> bool:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


def _die_with_parent() -> None:
    """Get SIGKILLed when the parent dies, even by SIGKILL, so no holder is ever orphaned."""
    parent = os.getppid()
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def holder_main(index: int) -> None:
    """Serve JSON-line commands from the parent on stdin until EOF or "quit"."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    holder: Holder | None = None
    for line in sys.stdin.buffer:
        cmd = json.loads(line)
        start = time.monotonic()
        reply: dict[str, object]
        try:
            if cmd["op"] == "build":
                holder = Holder(index, ZooPlan(**cmd["plan"]))
                holder.build()
                reply = {"ok": True, "fds": len(holder.keep)}
            elif cmd["op"] == "time_wait" and holder is not None:
                reply = {"ok": True, "made": holder.make_time_wait()}
            else:
                break
        except OSError as exc:
            reply = {"ok": False, "error": f"holder {index}: {exc!r}"}
        reply["seconds"] = time.monotonic() - start
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


# ---------------------------------------------------------------- parent side


class Zoo:
    """The holders of one zoo; use as a context manager so they are always stopped."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.plan = ZooPlan.for_size(n)
        self.holders: list[subprocess.Popen[bytes]] = []
        self.time_wait_born = 0.0  # time.monotonic() of the current TIME_WAIT cohort

    def __enter__(self) -> Zoo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self) -> None:
        """Start the holders and build everything; TIME_WAIT comes last (its clock runs)."""
        parts = max(1, math.ceil(self.plan.fds() / HOLDER_FDS))
        for index, share in enumerate(self.plan.split(parts)):
            proc = subprocess.Popen(
                [sys.executable, __file__, "--holder", str(index)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
            )
            self.holders.append(proc)
            self._send(proc, {"op": "build", "plan": asdict(share)})
        self._replies()
        self.refresh_time_wait()

    def refresh_time_wait(self) -> None:
        """Make a new TIME_WAIT cohort (after the previous one expired)."""
        for proc in self.holders:
            self._send(proc, {"op": "time_wait"})
        self.time_wait_born = time.monotonic()
        self._replies()

    def time_wait_age(self) -> float:
        return time.monotonic() - self.time_wait_born

    def wait_time_wait_expiry(self, limit: float = TIME_WAIT_SECONDS + 30) -> None:
        """Block until the kernel has reaped the current cohort (bounded by `limit` seconds)."""
        deadline = time.monotonic() + limit
        while time_wait_count() > 0 and time.monotonic() < deadline:
            time.sleep(0.5)

    def close(self) -> None:
        """Stop every holder: EOF first (clean exit), SIGKILL if one does not go in 5 s."""
        for proc in self.holders:
            if proc.stdin:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        for proc in self.holders:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()
        self.holders.clear()

    @staticmethod
    def _send(proc: subprocess.Popen[bytes], cmd: dict[str, object]) -> None:
        assert proc.stdin is not None
        proc.stdin.write((json.dumps(cmd) + "\n").encode())

    def _replies(self) -> list[dict[str, object]]:
        replies = [_read_reply(proc, time.monotonic() + REPLY_TIMEOUT) for proc in self.holders]
        errors = [str(r.get("error")) for r in replies if not r.get("ok")]
        if errors:
            raise RuntimeError("; ".join(errors))
        return replies


def _read_reply(proc: subprocess.Popen[bytes], deadline: float) -> dict[str, object]:
    """Read one JSON line from a holder, giving up at `deadline` instead of hanging."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"holder pid {proc.pid} did not answer in time")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise RuntimeError(f"holder pid {proc.pid} exited (code {proc.wait()})")
        data += chunk
    reply: dict[str, object] = json.loads(data)
    return reply


# ---------------------------------------------------------------- signals and CLI


def raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so `finally` blocks clean up as on Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while cleaning up, so a second Ctrl-C cannot leave debris."""
    blocked = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="number of sockets (default 10000)")
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to keep the zoo up")
    parser.add_argument("--holder", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.holder is not None:
        holder_main(args.holder)
        return 0
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces)")
    raise_on_sigterm()
    remove_stale_namespaces(["tcpstates-zoo-", "tcpstates-bench-"])
    name = f"tcpstates-zoo-{os.getpid()}"
    zoo = Zoo(args.n)
    with inside_namespace(name, namespace_sysctls(zoo.plan)):
        try:
            start = time.monotonic()
            zoo.build()
            built = time.monotonic() - start
            counts = state_counts()
            print(
                f"netns {name}: {sum(counts.values())} sockets in {built:.1f} s "
                f"with {len(zoo.holders)} holder(s)"
            )
            print(format_counts(counts))
            time.sleep(max(0.0, min(args.hold, 3600.0)))
        finally:
            with signals_deferred():
                zoo.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM; the finally blocks have cleaned up
        print("zoo_at_scale.py: interrupted; namespace and holders removed", file=sys.stderr)
        sys.exit(130)
