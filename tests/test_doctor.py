"""Diagnosis: grouped summaries, doctor's findings from real sockets, and one socket explained.

Each finding is produced by sockets this test makes; the namespace tests need root and
``ip netns`` (CI runs as root).
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import Netns

from tcpstates.doctor.checks import Evidence, Severity, Thresholds, diagnose, exit_status
from tcpstates.doctor.run import ONE_LOOK
from tcpstates.explain import render_sockets
from tcpstates.explain.render_states import explanation_text
from tcpstates.explain.sockets import account
from tcpstates.explain.states import explain
from tcpstates.model.errors import ExitStatus
from tcpstates.model.sockets import Socket
from tcpstates.model.states import Phase, TcpState
from tcpstates.sources.kernel import KernelState, read_kernel
from tcpstates.summary.groups import group_sockets

S = TcpState
with open("/proc/self/comm") as _f:
    COMM = _f.read().strip()  # how the kernel names this process: what owners show


def sock(state: TcpState, local_port: int, remote_port: int = 0, **kw: object) -> Socket:
    fields: dict[str, object] = {
        "proto": "tcp",
        "family": 4,
        "local_address": "127.0.0.1",
        "local_port": local_port,
        "remote_address": "127.0.0.1" if remote_port else "0.0.0.0",
        "remote_port": remote_port,
        "state": state,
        "inode": 1,
    } | kw
    return Socket(**fields)  # type: ignore[arg-type]


# --- grouping -------------------------------------------------------------------------------


def test_groups_are_largest_first_with_their_states() -> None:
    socks = [
        sock(S.CLOSE_WAIT, 80, 5000, pid=7, process="app"),
        sock(S.CLOSE_WAIT, 80, 5001, pid=7, process="app"),
        sock(S.ESTABLISHED, 80, 5002, pid=7, process="app"),
        sock(S.TIME_WAIT, 5003, 80, inode=0),
    ]
    groups = group_sockets(socks, "process")
    assert [g.as_dict("process") for g in groups] == [
        {"process": "app (7)", "total": 3, "states": {"CLOSE_WAIT": 2, "ESTABLISHED": 1}},
        {"process": "(kernel)", "total": 1, "states": {"TIME_WAIT": 1}},
    ]
    assert group_sockets(socks, "state-group")[0].key is Phase.PEER_CLOSED


def test_state_groups_are_the_phases_in_a_connections_order() -> None:
    assert [(phase.value, {s.name for s in TcpState if s.phase is phase}) for phase in Phase] == [
        ("listening", {"LISTEN"}),
        ("handshake", {"SYN_SENT", "SYN_RECV", "NEW_SYN_RECV"}),
        ("open", {"ESTABLISHED"}),
        ("we closed first", {"FIN_WAIT1", "FIN_WAIT2", "CLOSING", "TIME_WAIT"}),
        ("peer closed first", {"CLOSE_WAIT", "LAST_ACK"}),
        ("inactive", {"CLOSE", "BOUND_INACTIVE", "UNKNOWN"}),
    ]
    (group,) = group_sockets([sock(S.FIN_WAIT2, 80, 5000)], "state-group")
    assert group.as_dict("state-group")["meaning"] == Phase.WE_CLOSED.meaning


@pytest.fixture
def half_closed(sockets) -> tuple[int, list[socket.socket]]:  # type: ignore[no-untyped-def]
    """A listener with 12 connections whose clients shut down: 12 CLOSE_WAIT held by us."""
    server = sockets.listener(backlog=64)
    held = [server]
    for _ in range(12):
        client, accepted = sockets.connect(server)
        client.shutdown(socket.SHUT_WR)
        held += [client, accepted]
    time.sleep(0.1)
    return server.getsockname()[1], held


def test_summary_by_local_port_counts_what_ss_counts(cli, half_closed) -> None:
    port, _ = half_closed
    done = cli.process("--summary", "--by", "local-port", "--port", str(port), "-o", "json")
    assert done.returncode == 0, done.stderr
    groups = {g["local-port"]: g for g in json.loads(done.stdout)}
    assert groups[str(port)]["states"] == {"CLOSE_WAIT": 12, "LISTEN": 1}
    ss = subprocess.run(
        ["ss", "-tanH", "state", "close-wait", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(ss.stdout.splitlines()) == 12


# --- doctor on real sockets -----------------------------------------------------------------


def _findings(done: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    data = json.loads(done.stdout)
    assert data["exit_status"] == done.returncode
    return data["findings"]  # type: ignore[no-any-return]


def test_close_wait_held_by_a_process_is_named(cli, half_closed) -> None:
    done = cli.process("doctor", "-o", "json")
    ours = [
        f
        for f in _findings(done)
        if f["data"].get("pid") == os.getpid() and "CLOSE_WAIT" in f["title"]  # type: ignore[union-attr]
    ]
    assert len(ours) == 1
    (finding,) = ours
    assert finding["severity"] == "warning"
    assert finding["data"]["count"] == 12  # type: ignore[index]
    assert finding["next"] == f"tcpstates kill -s close-wait --pid {os.getpid()} --dry-run"
    text = cli.process("doctor", "-o", "plain").stdout
    assert f"WARNING  12 CLOSE_WAIT sockets held by python (pid {os.getpid()})" in text or (
        "12 CLOSE_WAIT sockets held by" in text and f"(pid {os.getpid()})" in text
    )


def test_a_full_accept_queue_is_critical_and_fails_the_gate(cli, sockets) -> None:
    server = sockets.listener(backlog=1)
    port = server.getsockname()[1]
    for _ in range(4):  # the queue takes backlog + 1; later SYNs are dropped (SYN_SENT)
        client = sockets.sock(socket.AF_INET)
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
    time.sleep(0.2)
    done = cli.process("doctor", "-o", "json")
    full = [f for f in _findings(done) if f["title"] == f"Accept queue full on 127.0.0.1:{port}"]
    assert len(full) == 1 and full[0]["severity"] == "critical"
    data = full[0]["data"]
    assert {k: data[k] for k in ("local_port", "recv_q", "backlog")} == {
        "local_port": port,
        "recv_q": 2,
        "backlog": 1,
    }
    assert set(data["rates"]) == {"ListenOverflows", "ListenDrops"}  # now, between the looks
    assert done.returncode == ExitStatus.FINDINGS


def test_explain_one_socket_in_its_connections_terms(cli, half_closed) -> None:
    port, held = half_closed
    client = held[1]
    peer = client.getsockname()[1]
    done = cli.process("--explain", f"127.0.0.1:{peer}", "-o", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    # Both ends of this connection. Another connection's TIME_WAIT may hold the same port
    # number towards another peer (the kernel hands such a port out again): that one is shown
    # too, rightly, but it is not this test's.
    ours = [
        a
        for a in data["sockets"]
        if port in (a["socket"]["local_port"], a["socket"]["remote_port"])
    ]
    by_state = {a["socket"]["state"]: a for a in ours}
    assert len(ours) == 2 and set(by_state) == {"CLOSE_WAIT", "FIN_WAIT2"}
    assert by_state["CLOSE_WAIT"]["next"].startswith(f"{COMM} (pid {os.getpid()}): close()")
    assert "closed first" in by_state["FIN_WAIT2"]["happened"]
    # Each state shown is explained once, and no other.
    assert sorted(s["state"] for s in data["states"]) == sorted(
        {a["socket"]["state"] for a in data["sockets"]}
    )
    text = cli.process("--explain", f"127.0.0.1:{peer}", "-o", "plain").stdout
    assert f"next:   {COMM} (pid" in text and "netstat(8): The remote end has shut down" in text
    missing = cli.process("--explain", "127.0.0.1:1")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1


def test_socket_accounts_explain_each_state_once_in_the_order_it_came() -> None:
    S = TcpState
    states = [S.TIME_WAIT, S.ESTABLISHED, S.TIME_WAIT] * 7 + [S.CLOSE_WAIT]  # 22 accounts
    found = [account(sock(state, 8080, 40000 + n)) for n, state in enumerate(states)]
    assert all(a.general == explain(a.socket.state) for a in found)
    out = io.StringIO()
    render_sockets.render_accounts_json(found, out)
    expected = [explain(s).as_dict() for s in (S.TIME_WAIT, S.ESTABLISHED, S.CLOSE_WAIT)]
    assert json.loads(out.getvalue())["states"] == json.loads(json.dumps(expected))
    text = render_sockets.accounts_text(found)  # the first 20 accounts hold no CLOSE_WAIT
    tail = text.split("tcpstates --port N lists them)", 1)[1]
    assert tail == "\n\n" + "\n".join(
        explanation_text(explain(s)) for s in (S.TIME_WAIT, S.ESTABLISHED)
    )


# --- in network namespaces: port pressure, and a clean host --------------------------------

NAMESPACE_SCRIPT = """
import json, socket, subprocess, sys
{setup}
done = subprocess.run([sys.executable, "-m", "tcpstates", "doctor", "-o", "json"],
                      capture_output=True, text=True)
text = subprocess.run([sys.executable, "-m", "tcpstates", "doctor", "-o", "plain"],
                      capture_output=True, text=True).stdout
print(json.dumps({{"status": done.returncode, "out": done.stdout, "err": done.stderr,
                  "text": text}}))
"""

BURST = """
with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
    f.write("40000 40019")
server = socket.create_server(("127.0.0.1", 9000), backlog=64)
for _ in range(15):  # short connections, the client closing first: TIME_WAIT on its port
    client = socket.create_connection(("127.0.0.1", 9000))
    accepted, _ = server.accept()
    client.close()
    accepted.close()
"""


def in_namespace(space: Netns, setup: str) -> dict[str, object]:
    """``setup``, then doctor in JSON and in text, all inside ``space``."""
    script = NAMESPACE_SCRIPT.format(setup=textwrap.dedent(setup))
    return json.loads(space.run(sys.executable, "-c", script, timeout=60).stdout)  # type: ignore[no-any-return]


def test_ephemeral_port_pressure_in_a_narrow_range(netns) -> None:
    result = in_namespace(netns("doctor"), BURST)
    findings = json.loads(str(result["out"]))["findings"]
    (pressure,) = [f for f in findings if f["title"].startswith("Ephemeral ports")]
    assert pressure["severity"] == "warning"
    assert pressure["data"] == {
        "local": "127.0.0.1",
        "remote": "127.0.0.1",
        "remote_port": 9000,
        "count": 15,
        "usable": 20,
    }
    assert "Ephemeral ports towards 127.0.0.1:9000: 15 of 20 used (75%)" in str(result["text"])
    assert result["status"] == 0  # a warning does not fail the gate


def test_a_clean_namespace_has_nothing_above_info(netns) -> None:
    result = in_namespace(netns("doctor"), "")
    findings = json.loads(str(result["out"]))["findings"]
    assert all(f["severity"] == "info" for f in findings), findings
    assert result["status"] == 0 and result["err"] == ""


def test_a_close_wait_pile_is_critical_and_exits_3(netns) -> None:
    # The peer closes and this process never does, as many times as makes a pile critical.
    n = Thresholds().close_wait_critical
    result = in_namespace(
        netns("doctor"),
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, max(4096, resource.getrlimit(
            resource.RLIMIT_NOFILE)[1])))
        server = socket.create_server(("127.0.0.1", 9000), backlog=64)
        held = []
        for _ in range({n}):
            client = socket.create_connection(("127.0.0.1", 9000))
            held.append(server.accept()[0])
            client.close()
        """,
    )
    findings = json.loads(str(result["out"]))["findings"]
    (pile,) = [f for f in findings if "CLOSE_WAIT sockets held by" in f["title"]]
    assert pile["severity"] == "critical" and pile["data"]["count"] == n
    assert result["status"] == ExitStatus.FINDINGS == 3
    assert json.loads(str(result["out"]))["exit_status"] == 3


@pytest.mark.parametrize("what", ["missing", "empty"])
def test_a_source_that_cannot_be_read_is_1_not_a_finding(cli, tmp_path, what: str) -> None:
    path = tmp_path / what
    if what == "empty":
        path.mkdir()  # a directory with no /proc/net tables in it
    done = cli.process("doctor", "--from", str(path), "-o", "json")
    assert (done.returncode, done.stdout) == (ExitStatus.ERROR, "")
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("tcpstates: ")


# --- the checks on their own ----------------------------------------------------------------

KERNEL = KernelState(
    counters={"TcpExt.ListenOverflows": 0},
    settings={
        "net.ipv4.ip_local_port_range": "32768 60999",
        "net.ipv4.tcp_max_syn_backlog": "128",
        "net.ipv4.tcp_syncookies": "1",
        "net.ipv4.tcp_max_tw_buckets": "100",
        "net.ipv4.ip_local_reserved_ports": "32768-32777,40000",
    },
)


def test_severity_order_and_gate() -> None:
    socks = [sock(S.TIME_WAIT, 33000 + i, 80, inode=0) for i in range(90)]
    socks += [sock(S.FIN_WAIT1, 5000, 80, send_q=100, inode=0)]
    findings = diagnose(Evidence(socks, KERNEL))
    assert [f.severity for f in findings] == sorted((f.severity for f in findings), reverse=True)
    assert {f.title.split()[0] for f in findings if f.severity is Severity.WARNING} >= {
        "TIME_WAIT",
        "1",
    }
    assert exit_status(findings) == 0


def test_reserved_ports_shrink_the_budget() -> None:
    assert KERNEL.usable_ephemeral_ports == 60999 - 32768 + 1 - 11


def test_syn_flood_without_syncookies_is_critical() -> None:
    kernel = KernelState({}, {**KERNEL.settings, "net.ipv4.tcp_syncookies": "0"})
    socks = [sock(S.LISTEN, 80, send_q=16, recv_q=0)]
    socks += [sock(S.SYN_RECV, 80, 10000 + i, inode=0) for i in range(17)]
    (flood,) = [f for f in diagnose(Evidence(socks, kernel)) if "SYN queue full" in f.title]
    assert flood.severity is Severity.CRITICAL and exit_status([flood]) is ExitStatus.FINDINGS


def test_read_kernel_parses_this_hosts_counters() -> None:
    kernel = read_kernel()
    assert "TcpExt.ListenOverflows" in kernel.counters and "Tcp.ActiveOpens" in kernel.counters
    assert kernel.port_range is not None


# --- a capture whose settings are not text ----------------------------------------------------

CAPTURED_TCP = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout"
    " inode\n"
    + "".join(
        f"{i:4d}: 0100007F:{40000 + i:04X} 0100007F:1F90 06 00000000:00000000 03:00000BB8"
        " 00000000     0        0 0 3 0000000000000000\n"
        for i in range(3)
    )
)
NOT_TEXT = {  # file: bytes no kernel writes there, and where the first one is
    "net/netstat": (b"TcpExt: ListenOverflows\nTcpExt: \xfe1\n", 0xFE, 32),
    "net/snmp": (b"Tcp: RtoAlgorithm\nTcp: \x801\n", 0x80, 23),
    "sys/net/ipv4/ip_local_port_range": (b"32768\xff\t60999\n", 0xFF, 5),
    "sys/net/core/somaxconn": (b"\xc3\x28\n", 0xC3, 0),
    "sys/net/ipv4/tcp_syncookies": (b"1\x1b[2J\n", 0x1B, 1),  # ASCII, and an escape
}


def test_doctor_on_a_capture_whose_settings_are_not_text(cli, tmp_path) -> None:
    cap = tmp_path / "cap"
    files = {
        "net/tcp": CAPTURED_TCP.encode(),
        "sys/net/ipv4/tcp_fin_timeout": b"42\n",  # good: it must still be read
        **{name: data for name, (data, _, _) in NOT_TEXT.items()},
    }
    for name, data in files.items():
        (cap / name).parent.mkdir(parents=True, exist_ok=True)
        (cap / name).write_bytes(data)
    done = cli.process("doctor", "--from", str(cap), "-o", "json")
    assert done.returncode == 0, done.stderr
    expected = [
        f"tcpstates: {cap}/{name}: not text (byte 0x{byte:02x} at offset {offset}); left out"
        for name, (_, byte, offset) in NOT_TEXT.items()
    ]
    expected.append(f"tcpstates: {ONE_LOOK}")  # and what a capture of one moment cannot tell
    assert sorted(done.stderr.splitlines()) == sorted(expected)  # one line each
    findings = json.loads(done.stdout)["findings"]  # the other findings still come
    (kernel_held,) = [f for f in findings if "held by the kernel alone" in f["title"]]
    assert kernel_held["data"] == {"counts": {"TIME_WAIT": 3}}
    assert "(42 s here)" in kernel_held["meaning"]
    plain = cli.process("doctor", "--from", str(cap), "-o", "plain")
    assert plain.returncode == 0 and "\x1b" not in plain.stdout + plain.stderr


def test_doctor_reads_a_captures_settings_through_the_capture_opener(cli, tmp_path) -> None:
    # A FIFO where net/snmp should be would hang it, a link to /dev/zero fill memory: neither
    # is read (no link inside a capture directory is followed).
    cap = tmp_path / "cap"
    (cap / "net").mkdir(parents=True)
    (cap / "net" / "tcp").write_text(CAPTURED_TCP)
    os.mkfifo(cap / "net" / "snmp")
    (cap / "sys" / "net" / "core").mkdir(parents=True)
    (cap / "sys" / "net" / "core" / "somaxconn").symlink_to("/dev/zero")
    done = cli.process("doctor", "--from", str(cap), "-o", "json", timeout=20)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stderr.splitlines()) == [
        f"tcpstates: {cap}/net/snmp: a FIFO, not a capture file; left out",
        f"tcpstates: {cap}/sys/net/core/somaxconn: a symbolic link (a capture directory holds"
        " none), not a capture file; left out",
        f"tcpstates: {ONE_LOOK}",
    ]
    assert any(
        "held by the kernel alone" in f["title"] for f in json.loads(done.stdout)["findings"]
    )


def test_counters_are_read_only_as_the_kernel_prints_them(tmp_path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "netstat").write_text(
        "TcpExt: ListenOverflows ListenDrops TCPTimeWaitOverflow PAWSActive\n"
        f"TcpExt: 1_000 +5 {'9' * 5000} 7\n"
    )
    (tmp_path / "net" / "snmp").write_text(
        "Tcp: MaxConn ActiveOpens\nTcp: -1 18446744073709551615\n"
    )
    assert read_kernel(str(tmp_path)).counters == {
        "TcpExt.PAWSActive": 7,
        "Tcp.MaxConn": -1,
        "Tcp.ActiveOpens": 2**64 - 1,
    }


@pytest.mark.parametrize(
    ("reserved", "port_range", "usable"),
    [
        ("0-4000000000", "32768 60999", 28232),  # was four billion ports in a set: gigabytes
        ("1-x,40000", "32768 60999", 28231),  # was a ValueError traceback; the good part counts
        ("9" * 5000, "32768 60999", 28232),  # int() refuses 5,000 digits
        ("", "60999 32768", None),  # backwards: no range the kernel would take
        ("", "32768 99999999", None),
    ],
)
def test_a_captures_port_settings_cost_what_the_kernel_could_hold(
    tmp_path, reserved: str, port_range: str, usable: int | None
) -> None:
    cap = tmp_path / "cap"
    files = {
        "net/tcp": CAPTURED_TCP,
        "sys/net/ipv4/ip_local_reserved_ports": reserved + "\n",
        "sys/net/ipv4/ip_local_port_range": port_range + "\n",
    }
    for name, text in files.items():
        (cap / name).parent.mkdir(parents=True, exist_ok=True)
        (cap / name).write_text(text)
    # A child with 1 GiB of address space: the old code ran to 7.5 GB on the first case.
    limited = "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30));"
    done = subprocess.run(
        [sys.executable, "-c", limited + "from tcpstates.__main__ import main; main()",
         "doctor", "--from", str(cap), "-o", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    from tcpstates.sources.capture import read_small_capture_file

    kernel = read_kernel(str(cap), read=read_small_capture_file)
    assert kernel.usable_ephemeral_ports == usable


# --- two looks ----------------------------------------------------------------------------------


def test_two_looks_tell_what_grew_between_them(sockets) -> None:
    from tcpstates.doctor.checks import Look

    before = read_kernel()
    server = sockets.listener()
    for _ in range(5):
        sockets.connect(server)
    now = read_kernel()
    evidence = Evidence([], now, earlier=Look([], before), seconds=0.5)
    grown = evidence.growth("Tcp.ActiveOpens")
    assert grown is not None and grown >= 5
    assert evidence.rate("Tcp.ActiveOpens") == grown / 0.5
    assert Evidence([], now).growth("Tcp.ActiveOpens") is None  # one look: nothing to compare


def test_a_namespace_counts_since_it_was_made_not_since_boot(cli, netns) -> None:
    from tcpstates.model.place import NamedNetns, Place
    from tcpstates.sources.kernel import Scope
    from tcpstates.sources.place import kernel_of

    space = netns("scope")
    kernel, known = kernel_of(Place(NamedNetns(space.name)))
    assert known and kernel.scope is Scope.NAMESPACE
    assert "since boot" not in kernel.scope.since()
