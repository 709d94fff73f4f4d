"""Network namespaces: --netns, --netns-pid and --all-netns against `ip netns exec … ss`.

Two namespaces are made for the test, each with the same listener address and port and its own
connections, so nothing can pass by assuming an address is unique across namespaces.
Needs root and `ip` (CI runs as root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cli_run import run_cli
from click.testing import CliRunner
from ss_reader import row_key, ss_rows

from tcpstates import netns
from tcpstates.cli import cli
from tcpstates.errors import SourceError

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="making network namespaces needs root and ip (iproute2); CI runs as root",
)

PORT = 7000
HOLDER = """
import socket, sys
server = socket.create_server(("127.0.0.1", {port}))
held = [server]
for _ in range({pairs}):
    client = socket.create_connection(("127.0.0.1", {port}))
    accepted, _ = server.accept()
    held += [client, accepted]
held[-2].shutdown(socket.SHUT_WR)  # one FIN_WAIT2 / CLOSE_WAIT pair
print("ready", flush=True)
sys.stdin.read()
"""


@dataclass(frozen=True)
class Space:
    name: str
    holder: subprocess.Popen[str]

    @property
    def inode(self) -> int:
        return os.stat(f"/run/netns/{self.name}").st_ino


def _make(name: str, pairs: int) -> Space:
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    holder = subprocess.Popen(
        ["ip", "netns", "exec", name, sys.executable, "-c", HOLDER.format(port=PORT, pairs=pairs)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    return Space(name, holder)


@pytest.fixture(scope="module")
def spaces() -> Iterator[tuple[Space, Space]]:
    names = (f"tcpstates-t{os.getpid()}-a", f"tcpstates-t{os.getpid()}-b")
    made: list[Space] = []
    try:
        made = [_make(names[0], 2), _make(names[1], 3)]
        yield made[0], made[1]
    finally:
        for space in made:
            space.holder.communicate(input="", timeout=10)
        for name in names:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def records(*args: str) -> list[dict[str, object]]:
    done = run_cli(*args, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def keys(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return sorted(
        (r["proto"], r["family"], r["local_address"], r["local_port"], r["remote_address"],
         r["remote_port"], r["state"])
        for r in rows
    )  # fmt: skip


def test_netns_by_name_is_what_ss_sees_inside(spaces) -> None:
    for space in spaces:
        ours = records("--netns", space.name)
        assert keys(ours) == sorted(row_key(r) for r in ss_rows("tcp", netns=space.name))
        assert {r["netns"] for r in ours} == {space.inode}
        assert {r["pid"] for r in ours if r["state"] != "TIME_WAIT"} == {space.holder.pid}


def test_netns_of_a_process_is_the_same_namespace(spaces) -> None:
    a, _ = spaces
    assert keys(records("--netns-pid", str(a.holder.pid))) == keys(records("--netns", a.name))


def test_all_netns_lists_each_namespace_once_with_its_own_sockets(spaces) -> None:
    ours = records("--all-netns")
    for space in spaces:
        inside = [r for r in ours if r["netns"] == space.inode]
        assert keys(inside) == sorted(row_key(r) for r in ss_rows("tcp", netns=space.name))
    # The same listener address and port in both namespaces, told apart by the namespace.
    listeners = [r["netns"] for r in ours if r["local_port"] == PORT and r["state"] == "LISTEN"]
    assert {spaces[0].inode, spaces[1].inode} <= set(listeners)
    table = run_cli("--all-netns", "-o", "plain", "--port", str(PORT)).stdout
    assert table.startswith("Netns") and f"{spaces[0].inode} ({spaces[0].name})" in table


def test_all_netns_summary_is_per_namespace(spaces) -> None:
    done = run_cli("--all-netns", "--summary", "-o", "json")
    data = json.loads(done.stdout)
    for space, established in zip(spaces, (4, 6), strict=True):
        label = f"{space.inode} ({space.name})"
        counts = data[label]
        assert counts["ESTABLISHED"] == established - 2 and counts["LISTEN"] == 1
        assert counts["FIN_WAIT2"] == 1 and counts["CLOSE_WAIT"] == 1


def test_without_permission_netns_pid_falls_back_to_proc(spaces, monkeypatch) -> None:
    # setns needs CAP_SYS_ADMIN; root has it, so its refusal is simulated here.
    def refuse(fd: int, what: str) -> None:
        raise SourceError(f"entering {what} needs root (CAP_SYS_ADMIN)")

    monkeypatch.setattr(netns, "_setns", refuse)
    a, _ = spaces
    result = CliRunner().invoke(cli, ["--netns-pid", str(a.holder.pid), "-o", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert keys(rows) == sorted(row_key(r) for r in ss_rows("tcp", netns=a.name))
    named = CliRunner().invoke(cli, ["--netns", a.name])
    assert named.exit_code != 0 and isinstance(named.exception, SourceError)
    assert "needs root" in str(named.exception)


def test_bad_names_and_conflicting_options_are_one_line_errors() -> None:
    missing = run_cli("--netns", "no-such-namespace-here")
    assert missing.returncode == 1
    assert (
        missing.stderr == "tcpstates: no network namespace named 'no-such-namespace-here'"
        " in /run/netns\n"
    )
    both = run_cli("--netns", "x", "--all-netns")
    assert both.returncode == 2 and both.stderr.count("\n") == 1
