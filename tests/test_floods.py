"""doctor catches a SYN flood on one listener: real spoofed SYNs on a veth pair between two
network namespaces this module makes, compared with what ss and nstat say in the victim.

The attacker namespace sends hand-built SYNs (IPv4 + TCP headers with their checksums) from
random addresses of 10.78.0.0/16 through a raw socket; the victim routes that range back to the
attacker, which neither owns nor forwards it and so drops the SYN-ACKs without a reset: the
handshakes stay half-open, as a flood's do. Nothing leaves the two namespaces, and each flood is
bounded in packets and seconds. Root only (network namespaces), skipped otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import Netns

from tcpstates.doctor.checks import Evidence, Look, diagnose
from tcpstates.model.errors import ExitStatus
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState
from tcpstates.sources.kernel import KernelState, Scope

S = TcpState
VICTIM, ATTACKER = "10.77.0.1", "10.77.0.2"
SPOOFED = "10.78.0.0/16"
BACKLOG = 16
RATE = 400  # SYNs a second: each flood is RATE * SECONDS packets, far below 5,000
SECONDS = 3.0

# Sends SECONDS * RATE SYNs to DST:PORT from random addresses of SPOOFED: argv DST PORT RATE
# SECONDS NETWORK. IPPROTO_RAW means the IP header is ours (IP_HDRINCL); both checksums are
# computed here as a real stack would, so the victim's kernel takes every segment.
SYN_SENDER = r"""
import ipaddress, random, socket, struct, sys, time

dst, port, rate, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
network = ipaddress.ip_network(sys.argv[5])

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

def syn(src, sport):
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    seq = random.getrandbits(32)
    tcp = struct.pack("!HHIIBBHHH", sport, port, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = s + d + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0, 64,
                     socket.IPPROTO_TCP, 0, s, d)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp

raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
hosts = network.num_addresses - 2
batch, sent, start = max(1, rate // 50), 0, time.monotonic()
total = int(rate * seconds)
while sent < total and time.monotonic() - start < seconds + 1:
    for _ in range(min(batch, total - sent)):
        src = str(network.network_address + 1 + random.randrange(hosts))
        raw.sendto(syn(src, random.randrange(1024, 65536)), (dst, 0))
        sent += 1
    time.sleep(max(0.0, start + sent / rate - time.monotonic()))
print(sent)
"""

LISTENER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
if ":" in sys.argv[1]:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # takes IPv4 too
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(int(sys.argv[3]))
print("listening", flush=True)
time.sleep(120)
"""


@dataclass(frozen=True)
class Pair:
    victim: Netns
    attacker: Netns


@pytest.fixture(scope="module")
def pair(netns: Any) -> Iterator[Pair]:
    victim, attacker = netns("victim"), netns("attacker")
    victim.run("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns",
               attacker.name)  # fmt: skip
    victim.run("ip", "addr", "add", f"{VICTIM}/24", "dev", "v0")
    victim.run("ip", "link", "set", "v0", "up")
    attacker.run("ip", "addr", "add", f"{ATTACKER}/24", "dev", "v1")
    attacker.run("ip", "link", "set", "v1", "up")
    # The SYN-ACKs to the spoofed range go back to the attacker, which drops them silently.
    victim.run("ip", "route", "add", SPOOFED, "via", ATTACKER)
    attacker.run("sysctl", "-qw", "net.ipv4.ip_forward=0")
    yield Pair(victim, attacker)


def listen(space: Netns, port: int, address: str = VICTIM) -> None:
    proc = space.popen(sys.executable, "-c", LISTENER, address, str(port), str(BACKLOG),
                       stdout=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "listening\n"


def flood(pair: Pair, port: int) -> subprocess.Popen[str]:
    return pair.attacker.popen(
        sys.executable, "-c", SYN_SENDER, VICTIM, str(port), str(RATE), str(SECONDS), SPOOFED,
        stdout=subprocess.PIPE,
    )  # fmt: skip


def nstat(space: Netns, *names: str) -> dict[str, int]:
    """Absolute counters, as nstat shows them (-a), without touching its history (-s)."""
    done = space.run("nstat", "-asz", *names)
    return {line.split()[0]: int(line.split()[1]) for line in done.stdout.splitlines()[1:]}


def syn_recv(space: Netns, port: int) -> list[tuple[str, str]]:
    """(local, peer) of each SYN-RECV socket to ``port``, as ss lists them."""
    done = space.run("ss", "-Htan", "state", "syn-recv", "sport", f"= :{port}")
    return [tuple(line.split()[2:4]) for line in done.stdout.splitlines()]  # type: ignore[misc]


def doctor(cli: Any, space: Netns) -> tuple[subprocess.CompletedProcess[str], list[Any], float]:
    """doctor on ``space`` and nstat's SyncookiesSent/TCPReqQFullDrop rate over the same run."""
    names = ("TcpExtSyncookiesSent", "TcpExtTCPReqQFullDrop")
    before, started = nstat(space, *names), time.monotonic()
    done = cli.process("--netns", space.name, "doctor", "-o", "json", "--interval", "0.5")
    after, seconds = nstat(space, *names), time.monotonic() - started
    grown = sum(after[n] - before[n] for n in names)
    return done, json.loads(done.stdout)["findings"], grown / seconds


def finding_for(findings: list[Any], port: int, listener: str = VICTIM) -> dict[str, Any]:
    title = f"SYN queue full on {listener}:{port}: "
    (found,) = [f for f in findings if f["title"].startswith(title)]
    return found  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("address", "port", "shown"),
    [(VICTIM, 8080, VICTIM), ("::", 8082, "*")],  # "::" taking IPv4 too: ss's "*"
)
def test_a_syn_flood_on_one_listener_is_named_with_its_backlog_and_sources(
    cli, pair, address: str, port: int, shown: str
) -> None:
    pair.victim.run("sysctl", "-qw", "net.ipv4.tcp_syncookies=1")
    listen(pair.victim, port, address)
    attack = flood(pair, port)
    try:
        time.sleep(0.5)  # the queue fills in the first few dozen SYNs
        done, findings, nstat_rate = doctor(cli, pair.victim)
        seen = syn_recv(pair.victim, port)
    finally:
        sent, _ = attack.communicate(timeout=SECONDS + 10)
    assert int(sent) <= RATE * SECONDS
    found = finding_for(findings, port, shown)
    data = found["data"]
    assert (data["local_port"], data["backlog"], data["pid"] is not None) == (port, BACKLOG, True)
    # The kernel keeps backlog + 1 request sockets, and ss counts what doctor counted.
    assert data["syn_recv"] == len(seen) == BACKLOG + 1
    assert found["severity"] == "warning"  # cookies answer: clients still get in
    assert done.returncode == ExitStatus.OK, done.stderr
    cookies = data["rates"]["SyncookiesSent"]
    assert cookies > 0 and nstat_rate / 10 < cookies < nstat_rate * 10, (cookies, nstat_rate)
    assert data["rates"]["TCPReqQFullDrop"] == 0
    peers = [peer.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:") for _, peer in seen]
    networks = {ipaddress.ip_network(f"{p}/24", strict=False) for p in peers}
    assert data["sources"]["addresses"] == len(set(peers))
    assert data["sources"]["networks"] == len(networks) > 1  # spoofed: scattered
    assert all(ipaddress.ip_network(n).subnet_of(ipaddress.ip_network(SPOOFED))
               for n in data["sources"]["top_networks"])  # fmt: skip
    assert "SyncookiesSent" in " ".join(found["evidence"]) and "/s" in " ".join(found["evidence"])
    assert found["next"] == f"tcpstates --netns {pair.victim.name} -s syn-recv --sport {port}"


def test_a_flood_without_syncookies_is_critical_and_fails_the_gate(cli, pair) -> None:
    port = 8081
    pair.victim.run("sysctl", "-qw", "net.ipv4.tcp_syncookies=0")
    try:
        listen(pair.victim, port)
        attack = flood(pair, port)
        try:
            time.sleep(0.5)
            done, findings, nstat_rate = doctor(cli, pair.victim)
            seen = syn_recv(pair.victim, port)
        finally:
            attack.communicate(timeout=SECONDS + 10)
    finally:
        pair.victim.run("sysctl", "-qw", "net.ipv4.tcp_syncookies=1")
    found = finding_for(findings, port)
    assert found["severity"] == "critical" and done.returncode == ExitStatus.FINDINGS == 3
    assert found["data"]["syn_recv"] == len(seen) == BACKLOG + 1
    drops = found["data"]["rates"]["TCPReqQFullDrop"]
    assert drops > 0 and nstat_rate / 10 < drops < nstat_rate * 10, (drops, nstat_rate)
    assert found["data"]["rates"]["SyncookiesSent"] == 0


# --- without root: the rules on their own -------------------------------------------------------


def kernel(counters: dict[str, int], **settings: str) -> KernelState:
    base = {"net.ipv4.tcp_syncookies": "1", "net.ipv4.tcp_max_syn_backlog": "2048",
            "net.ipv4.tcp_max_tw_buckets": "131072", "net.core.somaxconn": "4096"}  # fmt: skip
    return KernelState(counters, base | settings, scope=Scope.HOST)


def sock(state: TcpState, local: str, port: int, remote: str = "0.0.0.0", **kw: Any) -> Socket:
    return Socket("tcp", 4 if ":" not in local else 6, local, port, remote,
                  0 if state is S.LISTEN else 40000, state, **kw)  # fmt: skip


def test_no_warning_about_time_wait_overflows_since_boot_when_none_happen_now() -> None:
    # This host printed "TIME_WAIT near its limit: 0 of tcp_max_tw_buckets 131072" because the
    # counter was not zero since boot.
    before = kernel({"TcpExt.TCPTimeWaitOverflow": 5})
    now = kernel({"TcpExt.TCPTimeWaitOverflow": 5})
    for evidence in (Evidence([], now, earlier=Look([], before), seconds=0.5), Evidence([], now)):
        assert not [f for f in diagnose(evidence) if "TIME_WAIT" in f.title]
    grown = kernel({"TcpExt.TCPTimeWaitOverflow": 9})
    (over,) = diagnose(Evidence([], grown, earlier=Look([], before), seconds=0.5))
    assert over.title == "TIME_WAIT over its limit now: 0 of tcp_max_tw_buckets 131072"
    assert over.evidence == ("now, over 0.5 s: TCPTimeWaitOverflow 8/s",)


def test_listen_overflows_since_boot_are_info_and_say_since_when() -> None:
    counters = {"TcpExt.ListenOverflows": 3, "TcpExt.ListenDrops": 3}
    (once,) = diagnose(Evidence([], kernel(counters)))
    assert (once.severity.name, once.title) == ("INFO", "Listen queues have overflowed 3 times"
                                                " since boot")  # fmt: skip
    namespace = KernelState(counters, {}, scope=Scope.NAMESPACE)
    (there,) = diagnose(Evidence([], namespace))
    assert "since boot" not in there.title + " ".join(there.evidence)
    assert there.title.endswith("since the network namespace was created")
    # Two looks: the same totals are not news; growth between them is, and it is now.
    same = Evidence([], kernel(counters), earlier=Look([], kernel(counters)), seconds=0.5)
    assert diagnose(same) == []
    grown = {"TcpExt.ListenOverflows": 8, "TcpExt.ListenDrops": 8}
    (now,) = diagnose(Evidence([], kernel(grown), earlier=Look([], kernel(counters)), seconds=0.5))
    assert (now.severity.name, now.title) == ("CRITICAL", "Accept queues overflow now: 10/s")


@pytest.mark.parametrize(
    ("listener", "request_local", "v6only", "matched"),
    [
        ("10.0.0.1", "10.0.0.1", None, True),
        ("0.0.0.0", "10.0.0.1", None, True),
        ("::", "::ffff:10.0.0.1", False, True),  # an IPv4 client of a dual-stack listener
        ("::", "10.0.0.1", False, True),
        ("::", "::ffff:10.0.0.1", True, False),  # IPV6_V6ONLY: IPv4 never reaches it
        ("::", "2001:db8::1", True, True),
        ("10.0.0.2", "10.0.0.1", None, False),
    ],
)
def test_a_request_belongs_to_the_listener_that_takes_its_address(
    listener: str, request_local: str, v6only: bool | None, matched: bool
) -> None:
    from tcpstates.doctor.floods import syn_queues

    socks = [sock(S.LISTEN, listener, 80, "::" if ":" in listener else "0.0.0.0", send_q=4,
                  v6only=v6only)]  # fmt: skip
    socks += [sock(S.SYN_RECV, request_local, 80, f"10.9.{i}.1") for i in range(6)]
    queues = syn_queues(socks)
    assert bool(queues) is matched
    if matched:
        (queue,) = queues
        assert (queue.backlog, len(queue.requests)) == (4, 6)


def test_the_most_specific_listener_takes_the_request() -> None:
    from tcpstates.doctor.floods import syn_queues

    socks = [sock(S.LISTEN, "0.0.0.0", 80, send_q=100), sock(S.LISTEN, "10.0.0.1", 80, send_q=2)]
    socks += [sock(S.SYN_RECV, "10.0.0.1", 80, f"10.9.0.{i}") for i in range(3)]
    socks += [sock(S.SYN_RECV, "10.0.0.2", 80, "10.9.1.1")]
    by_address = {q.listener.local_address: len(q.requests) for q in syn_queues(socks)}
    assert by_address == {"10.0.0.1": 3, "0.0.0.0": 1}
    (full,) = [f for f in diagnose(Evidence(socks, kernel({}))) if "SYN queue" in f.title]
    assert full.title == "SYN queue full on 10.0.0.1:80: 3 half-open handshakes, backlog 2"
    assert full.severity.name == "WARNING"  # one look, cookies on


def test_tcp_max_syn_backlog_counts_only_without_syncookies() -> None:
    socks = [sock(S.LISTEN, "0.0.0.0", 80, send_q=4096)]
    socks += [sock(S.SYN_RECV, "10.0.0.1", 80, f"10.{i // 250}.{i % 250}.1") for i in range(1600)]
    assert not [f for f in diagnose(Evidence(socks, kernel({}))) if "SYN" in f.title]
    off = kernel({}, **{"net.ipv4.tcp_syncookies": "0"})
    (full,) = [f for f in diagnose(Evidence(socks, off)) if "SYN" in f.title]
    assert full.severity.name == "CRITICAL" and full.data["limit"] == 2048 - 512


# --- TIME_WAIT overflows: now, not since the namespace was made ------------------------------

# Makes argv[1] connections on loopback and closes each from the client first, which leaves the
# client's end in TIME_WAIT, at argv[2] closes a second.
CLOSER = r"""
import socket, sys, time
n, rate = int(sys.argv[1]), float(sys.argv[2])
server = socket.create_server(("127.0.0.1", 0))
start = time.monotonic()
for i in range(n):
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    client.close()
    time.sleep(0.01)  # the FIN is acknowledged: the client's end is in FIN_WAIT2
    accepted.close()
    time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
"""


def time_wait_findings(cli: Any, space: Netns) -> list[Any]:
    done = cli.process("--netns", space.name, "doctor", "-o", "json", "--interval", "0.5")
    assert done.returncode == ExitStatus.OK, done.stderr
    return [f for f in json.loads(done.stdout)["findings"] if f["title"].startswith("TIME_WAIT")]


def test_time_wait_overflows_warn_while_they_happen_and_not_after(cli, netns) -> None:
    space = netns("tw")
    space.run("sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=4")
    space.run(sys.executable, "-c", CLOSER, "12", "200")  # 8 closes skip TIME_WAIT
    overflowed = nstat(space, "TcpExtTCPTimeWaitOverflow")["TcpExtTCPTimeWaitOverflow"]
    assert overflowed >= 6
    space.run("sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=1000")
    # The counter says 8 since the namespace was made; nothing overflows now: no warning (it
    # was "TIME_WAIT near its limit: 4 of tcp_max_tw_buckets 1000").
    assert time_wait_findings(cli, space) == []
    space.run("sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=4")
    closer = space.popen(sys.executable, "-c", CLOSER, "200", "100")  # 2 s at most
    try:
        time.sleep(0.3)
        (now,) = time_wait_findings(cli, space)
    finally:
        closer.wait(timeout=30)
    assert now["title"].startswith("TIME_WAIT over its limit now: ")
    assert now["severity"] == "warning"
    assert "TCPTimeWaitOverflow" in now["evidence"][0] and "/s" in now["evidence"][0]
