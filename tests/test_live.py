"""tcpstates against `ss` on the same real sockets: every state of the zoo, every source."""

from __future__ import annotations

import json
import os

import pytest
from ss_reader import ss_rows
from zoo import Zoo

from tcpstates.model.query import Query
from tcpstates.model.sockets import Socket
from tcpstates.sources.place import open_source

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux /proc")
BOTH = Query(protos=frozenset({"tcp", "udp"}))
EXPECTED_STATES = {
    "LISTEN", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
    "CLOSE_WAIT", "LAST_ACK", "CLOSING", "UNCONN",
}  # fmt: skip


def ours(zoo: Zoo, sockets) -> list[Socket]:
    """Sockets with both ends on the zoo's ports: other processes' sockets cannot intrude."""
    ports = zoo.ports
    return [
        s
        for s in sockets
        if s.local_port in ports and (s.remote_port in ports or not s.remote_port)
    ]


def theirs(zoo: Zoo):
    ports = zoo.ports
    rows = ss_rows("tcp", ports) + ss_rows("udp", ports)
    return [
        r for r in rows if r.local_port in ports and (r.remote_port in ports or not r.remote_port)
    ]


def key(s) -> tuple:
    state = s.state_name if isinstance(s, Socket) else s.state
    return (
        s.proto,
        s.family,
        s.local_address,
        s.local_port,
        s.remote_address,
        s.remote_port,
        state,
    )


def test_zoo_covers_every_state(zoo):
    assert {e.state for e in zoo.expected} >= EXPECTED_STATES
    assert any(e.local_address.startswith("::ffff:") for e in zoo.expected)
    assert any(e.local_address == "::1" for e in zoo.expected)


@pytest.mark.parametrize("source", ["netlink", "procfs"])
def test_rows_match_ss_row_by_row(zoo, source):
    mine = ours(zoo, open_source(source).read(BOTH).sockets)
    witness = theirs(zoo)
    assert sorted(map(key, mine)) == sorted(map(key, witness))
    assert {e.key() for e in zoo.expected} <= set(map(key, mine))
    queues = {key(r): (r.recv_q, r.send_q) for r in witness}
    for sock in mine:
        recv_q, send_q = queues[key(sock)]
        assert sock.recv_q == recv_q, sock
        if sock.send_q is not None or source == "netlink":  # /proc has no listener backlog
            assert sock.send_q == send_q, sock


@pytest.mark.parametrize("source", ["netlink", "procfs"])
def test_owners(zoo, source):
    by_key = {key(s): s for s in ours(zoo, open_source(source).read(BOTH, owners=True).sockets)}
    for expected in zoo.expected:
        sock = by_key[expected.key()]
        if expected.owned:
            assert (sock.pid, sock.kernel_owned) == (os.getpid(), False), sock
        else:
            assert (sock.pid, sock.inode, sock.kernel_owned) == (None, 0, True), sock


def test_netlink_and_procfs_agree(zoo):
    def records(name):
        sockets = ours(zoo, open_source(name).read(BOTH, owners=True).sockets)
        return sorted(
            (key(s), s.recv_q, s.uid, s.inode, s.pid, s.process, s.timer) for s in sockets
        )

    assert records("netlink") == records("procfs")


def test_psutil_and_procfs_agree(zoo):
    def records(name):
        sockets = ours(zoo, open_source(name).read(BOTH, owners=True).sockets)
        return sorted((key(s), s.pid, s.process) for s in sockets)

    assert records("psutil") == records("procfs")


def test_state_filter_pushed_into_the_kernel(zoo):
    from tcpstates.model.states import TcpState

    query = Query(states=frozenset({TcpState.TIME_WAIT}))
    mine = ours(zoo, open_source("netlink").read(query).sockets)
    assert mine and {s.state_name for s in mine} == {"TIME_WAIT"}
    assert sorted(map(key, mine)) == sorted(e.key() for e in zoo.of_state("TIME_WAIT"))


def _zoo_records(zoo: Zoo, packed: bytes) -> list[tuple]:
    from tcpstates.sources import inet_diag as diag
    from tcpstates.sources import netlink

    records = netlink.decode(diag.RECORD.iter_unpack(packed), "tcp", None)
    return [(key(s), s.inode) for s in ours(zoo, records)]


def test_one_walk_gives_both_families_as_two_dumps_do(zoo):
    import socket

    from tcpstates.sources import inet_diag as diag
    from tcpstates.sources import netlink

    mask = netlink.state_mask(frozenset())
    both = _zoo_records(zoo, diag.dump_packed(socket.IPPROTO_TCP, socket.AF_UNSPEC, mask))
    apart = [
        record
        for family in (socket.AF_INET, socket.AF_INET6)
        for record in _zoo_records(zoo, diag.dump_packed(socket.IPPROTO_TCP, family, mask))
    ]
    assert {family for (_, family, *_), _ in both} == {4, 6}
    # The same records, IPv4 first; within a family the kernel's walk order may differ.
    assert sorted(both) == sorted(apart)
    assert [r[0][1] for r in both] == [r[0][1] for r in apart]


def test_two_dumps_where_the_one_walk_request_is_refused(zoo, monkeypatch):
    import socket

    from tcpstates.sources import inet_diag as diag
    from tcpstates.sources import netlink

    # An unknown request type is what a kernel without the old request answers: EINVAL.
    monkeypatch.setattr(diag, "TCPDIAG_GETSOCK", 0x7F)
    mask = netlink.state_mask(frozenset())
    records = _zoo_records(zoo, diag.dump_packed(socket.IPPROTO_TCP, socket.AF_UNSPEC, mask))
    witness = [r for r in theirs(zoo) if r.proto == "tcp"]
    assert sorted(k for k, _ in records) == sorted(map(key, witness))


def _kernel_filters(zoo: Zoo) -> list[dict[str, object]]:
    # A port with a listener and its connections (both ends), a client port (one end), and
    # addresses: IPv4, IPv6, a v4 block that must also take v4-mapped ends, a v4-mapped one.
    from tcpstates.model.query import parse_network as net

    server = next(e for e in zoo.expected if e.proto == "tcp" and e.state == "ESTABLISHED")
    client = next(
        e for e in zoo.expected if e.proto == "tcp" and e.remote_port == server.local_port
    )
    mapped = next(e for e in zoo.expected if e.local_address.startswith("::ffff:"))
    p, c = server.local_port, client.local_port
    return [
        {"port": p}, {"sport": p}, {"dport": p}, {"sport": c}, {"port": c, "dport": p},
        {"port": p, "sport": p}, {"sport": c, "dport": p}, {"port": p, "sport": c, "dport": p},
        {"local": net("::1")}, {"remote": net("127.0.0.0/8")}, {"local": net(server.local_address)},
        {"local": net(mapped.local_address)}, {"remote": net("::/0")},
        {"local": net("127.0.0.1"), "remote": net(client.local_address), "dport": c},
        {"port": p, "local": net("127.0.0.0/8")}, {"remote": net("::/1")},
    ]  # fmt: skip


def test_port_and_address_filters_run_in_the_kernel_as_in_the_query(zoo):
    import socket

    from tcpstates.sources import inet_diag as diag
    from tcpstates.sources import netlink

    def zoo_sockets(packed: bytes) -> list[Socket]:
        return ours(zoo, netlink.decode(diag.RECORD.iter_unpack(packed), "tcp", None))

    mask = diag.ALL_STATES
    everything = zoo_sockets(diag.dump_packed(socket.IPPROTO_TCP, socket.AF_UNSPEC, mask))
    for filters in _kernel_filters(zoo):
        query = Query(**filters)  # type: ignore[arg-type]
        program = netlink._program(query)
        sent = zoo_sockets(diag.dump_packed(socket.IPPROTO_TCP, socket.AF_UNSPEC, mask, program))
        wanted = [s for s in everything if query.matches(s)]
        assert wanted, filters
        assert len(sent) < len(everything), filters  # the kernel did filter
        assert sorted(map(key, sent)) == sorted(map(key, wanted)), filters


def test_a_program_the_kernel_refuses_means_every_record(zoo):
    import socket

    from tcpstates.sources import inet_diag as diag

    mask = diag.ALL_STATES
    bogus = diag._OP.pack(99, 4, 8)  # no such op: the kernel's audit refuses the program
    for family in (socket.AF_UNSPEC, socket.AF_INET6):
        refused = diag.dump_packed(socket.IPPROTO_TCP, family, mask, bogus)
        plain = diag.dump_packed(socket.IPPROTO_TCP, family, mask)
        assert sorted(_zoo_records(zoo, refused)) == sorted(_zoo_records(zoo, plain))


def test_cli_json_states_and_owner(cli, zoo):
    result = cli.process("-s", "close-wait", "-s", "FIN-WAIT-2", "-o", "json")
    assert result.returncode == 0, result.stderr
    rows = [r for r in json.loads(result.stdout) if r["local_port"] in zoo.ports]
    assert {r["state"] for r in rows} == {"CLOSE_WAIT", "FIN_WAIT2"}
    assert all(r["pid"] == os.getpid() for r in rows)
    expected = zoo.of_state("CLOSE_WAIT") + zoo.of_state("FIN_WAIT2")
    assert {(r["local_port"], r["remote_port"]) for r in rows} == {
        (e.local_port, e.remote_port) for e in expected
    }


def test_cli_plain_time_wait_is_kernel_owned(cli, zoo):
    (tw,) = zoo.of_state("TIME_WAIT")
    # Both ends: the ephemeral port may also be in a TIME_WAIT towards another peer (churn).
    result = cli.process(
        "--state", "time_wait", "--sport", str(tw.local_port), "--dport", str(tw.remote_port)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["State", "Recv-Q"]
    assert len(lines) == 2 and "TIME_WAIT" in lines[1] and lines[1].endswith("(kernel)")


def test_cli_udp_and_listening(cli, zoo):
    result = cli.process("-u", "-o", "jsonl")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    mine = {(r["local_port"], r["state"]) for r in rows if r["local_port"] in zoo.ports}
    assert {state for _, state in mine} == {"UNCONN", "ESTABLISHED"}
    assert all(r["proto"] == "udp" for r in rows)
    listening = cli.process("-l", "-o", "jsonl")
    states = {json.loads(line)["state"] for line in listening.stdout.splitlines()}
    assert states == {"LISTEN"}


def test_cli_filters(cli, zoo):
    mapped = next(e for e in zoo.expected if e.local_address.startswith("::ffff:"))
    result = cli.process(
        "--local", "127.0.0.0/8", "-6", "--port", str(mapped.local_port), "-o", "jsonl"
    )
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows and all(r["family"] == 6 and r["local_address"].startswith("::ffff:") for r in rows)
    by_process = cli.process("--process", "nomatch-*", "-o", "json")
    assert json.loads(by_process.stdout) == []
    by_pid = cli.process("--pid", str(os.getpid()), "-s", "closing", "-o", "jsonl")
    rows = [json.loads(line) for line in by_pid.stdout.splitlines()]
    assert rows and {r["state"] for r in rows} == {"CLOSING"}


def test_explain_counts_live_sockets(cli, zoo):
    result = cli.process("--explain", "CLOSING", "-o", "json")
    data = json.loads(result.stdout)
    assert data["count"] >= len(zoo.of_state("CLOSING")) >= 1


@pytest.mark.slow
def test_soak_twenty_rounds_against_ss_without_a_mismatch(zoo):
    # The whole state matrix (TCP's eleven states, UDP, IPv6, v4-mapped), read again and again:
    # a race or a misread record shows up as one mismatch in twenty.
    for _ in range(20):
        witness = sorted(map(key, theirs(zoo)))
        for source in ("netlink", "procfs"):
            assert sorted(map(key, ours(zoo, open_source(source).read(BOTH).sockets))) == witness
