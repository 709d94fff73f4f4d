"""--cgroup and names after what runs in a cgroup (issue 16, item 7).

The paths are checked against ``ss --cgroup`` on sockets of processes the test puts in a cgroup
of its own, made under the cgroup2 mount and removed after; the names are parsed from paths
systemd, Docker, containerd, CRI-O, podman and the kubelet really make.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TCPSTATES
from ss_reader import ss_path
from terminal import needs_tmux, terminal

from tcpstates.model.workloads import Workload, workload
from tcpstates.render.columns import CGROUP, PROCESS, STATE
from tcpstates.render.fit import fit
from tcpstates.render.safe import safe
from tcpstates.sources import cgroups, netns

ID = "4c01db0b339c2c4b7d6a3f1e9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b"
UID = "8d4b5ac1-0d3b-4b5e-9a5b-2e3f0c1d2e3f"


@pytest.mark.parametrize(
    ("path", "kind", "ident", "label"),
    [
        ("/system.slice/nginx.service", "unit", "nginx.service", "nginx.service"),
        ("/user.slice/user-1000.slice/session-3.scope", "unit", "session-3.scope", None),
        ("/init.scope", "unit", "init.scope", None),
        (
            "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-4242.scope",
            "unit",
            "app-gnome-firefox-4242.scope",
            None,
        ),
        (f"/system.slice/docker-{ID}.scope", "docker", ID, "docker 4c01db0b339c"),
        (f"/docker/{ID}", "docker", ID, "docker 4c01db0b339c"),
        (f"/docker/{ID}/docker/{ID[::-1]}", "docker", ID[::-1], None),  # docker in docker
        (f"/system.slice/cri-containerd-{ID}.scope", "containerd", ID, "containerd 4c01db0b339c"),
        (f"/system.slice/crio-{ID}.scope", "cri-o", ID, None),
        (f"/machine.slice/libpod-{ID}.scope", "podman", ID, "podman 4c01db0b339c"),
        (
            f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container",
            "podman",
            ID,
            None,
        ),
        (
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
            + UID.replace("-", "_")
            + f".slice/cri-containerd-{ID}.scope",
            "pod",
            UID,
            f"pod {UID}",
        ),
        (f"/kubepods/besteffort/pod{UID}/{ID}", "pod", UID, None),
        (f"/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice", "pod", UID, None),
    ],
)
def test_a_path_names_what_runs_there(path: str, kind: str, ident: str, label: str | None) -> None:
    found = workload(path)
    assert found == Workload(kind, ident)
    if label is not None:
        assert found.label() == label


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/system.slice",
        "/user.slice/user-1000.slice",
        "/process_api/6121d1e3ff532d2d1b851a9ab09b3b89",  # a name someone chose freely
        f"/docker/{ID[:12]}",  # a short id is no container's cgroup
        f"/somewhere/{ID}",  # an id alone says nothing outside /docker/
        "/kubepods.slice/kubepods-besteffort.slice",
    ],
)
def test_a_path_that_says_nothing_names_nothing(path: str) -> None:
    assert workload(path) is None


def test_a_docker_container_is_named_from_its_config(tmp_path: Path) -> None:
    (tmp_path / ID).mkdir()
    (tmp_path / ID / "config.v2.json").write_text(json.dumps({"ID": ID, "Name": "/web-1"}))
    assert cgroups.name(f"/system.slice/docker-{ID}.scope", str(tmp_path)) == "docker web-1"
    other = ID[::-1]
    assert cgroups.name(f"/docker/{other}", str(tmp_path)) == f"docker {other[:12]}"
    (tmp_path / other).mkdir()
    (tmp_path / other / "config.v2.json").write_text("{not json")
    assert cgroups.name(f"/docker/{other}", str(tmp_path)) == f"docker {other[:12]}"
    assert cgroups.name("/system.slice/nginx.service", str(tmp_path)) == "nginx.service"
    assert cgroups.name("/system.slice", str(tmp_path)) is None


def test_the_cgroup2_mount_is_found_in_mountinfo(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "41 31 0:38 /sub\\040tree /sys/fs/cgroup/uni\\040fied rw,relatime shared:9 - cgroup2"
        " cgroup2 rw\n"
    )
    assert cgroups.cgroup2_mount(str(mountinfo)) == ("/sys/fs/cgroup/uni fied", "/sub tree")
    mountinfo.write_text("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n")
    assert cgroups.cgroup2_mount(str(mountinfo)) is None
    assert cgroups.cgroup2_mount(str(tmp_path / "absent")) is None


def test_a_narrow_table_cuts_a_cgroup_at_its_start_before_any_process_name() -> None:
    path = f"/system.slice/docker-{ID}.scope"
    fitted = fit((STATE, PROCESS, CGROUP), (["LISTEN"], ["nginx"], [path]), 50)
    cell = fitted.cells[2][0]
    assert cell.startswith("…") and path.endswith(cell[1:]) and cell.endswith(".scope")
    assert fitted.cells[1] == ["nginx"]  # not cut: the cgroup gave way first
    assert "cgroups cut" in fitted.notes[0]


# --- real cgroups ---------------------------------------------------------------------------


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (to make a cgroup)"
    if cgroups.cgroup2_mount() is None:
        return "no cgroup v2 mounted"
    return None


needs_cgroup2 = pytest.mark.skipif(_unavailable() is not None, reason=_unavailable() or "")

LISTENER = (
    "import socket, sys\n"
    "s = socket.socket()\n"
    "s.bind(('127.0.0.1', 0))\n"
    "s.listen()\n"
    "print(s.getsockname()[1], flush=True)\n"
    "sys.stdin.read()\n"
)


@dataclass
class Cgroup:
    directory: Path
    path: str  # as /proc/PID/cgroup and ss --cgroup write it

    def enter(self, pid: int) -> None:
        (self.directory / "cgroup.procs").write_text(str(pid))

    def listener(self, inside: bool = True) -> tuple[subprocess.Popen[str], int]:
        """A process holding a loopback listener made inside this cgroup (or, not ``inside``,
        where the test runs), and its port."""
        enter = 'echo $$ > "$2/cgroup.procs" && ' if inside else ""
        child = subprocess.Popen(
            ["sh", "-c", f'{enter}exec "$0" -c "$1"', sys.executable, LISTENER, self.directory],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        return child, int(child.stdout.readline())


@pytest.fixture
def cgroup() -> Iterator[Callable[[str], Cgroup]]:
    """``cgroup(NAME)``: a cgroup of the test's own under the cgroup2 mount; the processes the
    test put there are killed and the cgroup removed after."""
    made: list[Cgroup] = []
    mount = cgroups.cgroup2_mount()
    assert mount is not None
    top, root = mount

    def make(name: str) -> Cgroup:
        directory = Path(top) / name
        directory.mkdir()
        group = Cgroup(directory, (root.rstrip("/") or "") + "/" + name)
        made.append(group)
        return group

    yield make
    for group in made:
        _remove(group.directory)


def _remove(directory: Path) -> None:
    for _ in range(100):
        for pid in (directory / "cgroup.procs").read_text().split():
            os.kill(int(pid), signal.SIGKILL)  # only the test's own processes are in there
        try:
            directory.rmdir()
            return
        except OSError:  # busy until the killed processes are reaped
            time.sleep(0.05)
    directory.rmdir()


def _ss_cgroups(port: int, peer: int | None = None) -> dict[str, str | None]:
    """State -> cgroup of the sockets on local ``port`` (to ``peer``), as ``ss --cgroup``
    prints them."""
    to_peer = [] if peer is None else ["and", "dport", "=", f":{peer}"]
    lines = subprocess.run(
        [ss_path(), "-tanH", "--cgroup", "sport", "=", f":{port}", *to_peer],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    found = {}
    for line in lines:  # one socket a state in these tests
        match = re.search(r"cgroup:(\S+)", line)
        found[line.split()[0]] = match[1] if match else None
    return found


def _listed(cli: Callable[..., subprocess.CompletedProcess[str]], *args: str) -> list[dict]:  # type: ignore[type-arg]
    done = cli("--cgroup", "-o", "json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _stop(child: subprocess.Popen[str]) -> None:
    child.kill()
    child.communicate()  # reaped, its pipes closed


@needs_cgroup2
def test_a_sockets_cgroup_is_the_one_ss_shows(cli, cgroup) -> None:  # type: ignore[no-untyped-def]
    group = cgroup(f"tcpstates-test-{secrets.token_hex(4)}")
    child, port = group.listener()
    try:
        assert _ss_cgroups(port) == {"LISTEN": group.path}
        (record,) = _listed(cli, "--sport", str(port))
        assert (record["pid"], record["cgroup"]) == (child.pid, group.path)
        # Without netlink the owner's /proc/PID/cgroup says the same: it never moved.
        for source in ("procfs", "psutil"):
            (record,) = _listed(cli, "--source", source, "--sport", str(port))
            assert record["cgroup"] == group.path, source
        # A table shows it at the end, even without the owners' columns.
        done = cli("--cgroup", "--no-owners", "-o", "plain", "--sport", str(port))
        header, row = done.stdout.splitlines()
        assert header.split()[-1] == "Cgroup" and row.split()[-1] == group.path
        assert "PID" not in header
    finally:
        _stop(child)


@needs_cgroup2
def test_a_connection_not_yet_accepted_has_its_listeners_cgroup(cli, cgroup) -> None:  # type: ignore[no-untyped-def]
    """A connection in the accept queue belongs to no process yet (inode 0), yet the kernel
    has made it from the listener: ss shows the listener's cgroup, and so do we."""
    group = cgroup(f"tcpstates-test-{secrets.token_hex(4)}")
    child, port = group.listener()  # it never calls accept()
    client = socket.create_connection(("127.0.0.1", port))
    try:
        assert _ss_cgroups(port) == {"LISTEN": group.path, "ESTAB": group.path}
        waiting = [r for r in _listed(cli, "--sport", str(port)) if r["state"] == "ESTABLISHED"]
        assert [(r["inode"], r["pid"], r["cgroup"]) for r in waiting] == [(0, None, group.path)]
        # Our end was made where the test runs, and ss agrees.
        ours = client.getsockname()[1]
        (record,) = _listed(cli, "--sport", str(ours), "--dport", str(port))
        assert _ss_cgroups(ours, port) == {"ESTAB": record["cgroup"]}
        assert record["cgroup"] == cgroups.of_process(os.getpid())
    finally:
        client.close()
        _stop(child)


@needs_cgroup2
def test_a_cgroup_named_to_attack_the_terminal_is_shown_escaped(cli, cgroup) -> None:  # type: ignore[no-untyped-def]
    group = cgroup(f"tcpstates-\x1b]8;;e\x07\u202e-{secrets.token_hex(2)}")
    child, port = group.listener()
    try:
        for args in (("-o", "plain"), ("-o", "csv"), ("--color", "always")):
            shown = cli("--cgroup", *args, "--sport", str(port)).stdout
            assert "\x1b]" not in shown and "\u202e" not in shown, args
            assert safe(group.path) in shown, args
        (record,) = _listed(cli, "--sport", str(port))  # JSON escapes it its own way
        assert record["cgroup"] == group.path
    finally:
        _stop(child)


@needs_cgroup2
def test_a_socket_keeps_the_cgroup_it_was_made_in(cli, cgroup) -> None:  # type: ignore[no-untyped-def]
    """The kernel ties a socket to the cgroup it was created in; moving its owner since
    changes what /proc/PID/cgroup says, not what sock_diag (and ss) say."""
    group = cgroup(f"tcpstates-test-{secrets.token_hex(4)}")
    child, port = group.listener(inside=False)
    try:
        made_in = cgroups.of_process(os.getpid())
        group.enter(child.pid)
        assert _ss_cgroups(port) == {"LISTEN": made_in}
        (record,) = _listed(cli, "--sport", str(port))
        assert record["cgroup"] == made_in
        (record,) = _listed(cli, "--source", "procfs", "--sport", str(port))
        assert record["cgroup"] == group.path
    finally:
        _stop(child)


def test_a_socket_no_process_holds_has_no_cgroup(cli) -> None:  # type: ignore[no-untyped-def]
    """A TIME_WAIT socket: the kernel sends no cgroup id for it, and no owner is there to ask."""
    server = socket.create_server(("127.0.0.1", 0))
    peer = server.getsockname()[1]
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    port = client.getsockname()[1]
    client.close()  # the side that closes first waits in TIME_WAIT
    accepted.close()
    server.close()
    deadline = time.monotonic() + 5
    while _ss_cgroups(port, peer) != {"TIME-WAIT": None}:
        assert time.monotonic() < deadline, _ss_cgroups(port, peer)
        time.sleep(0.05)
    (record,) = _listed(cli, "--sport", str(port), "--dport", str(peer))
    assert (record["state"], record["cgroup"]) == ("TIME_WAIT", None)


@needs_cgroup2
def test_a_real_cgroup_is_named_after_its_unit_or_container(cgroup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    unit = cgroup(f"tcpstates-test-{secrets.token_hex(4)}.service")
    token = secrets.token_hex(32)
    container = cgroup(f"docker-{token}.scope")
    (tmp_path / token).mkdir()
    (tmp_path / token / "config.v2.json").write_text(json.dumps({"Name": "/web-1"}))
    children = [unit.listener()[0], container.listener()[0]]
    try:
        seen = [cgroups.of_process(child.pid) for child in children]
        assert seen == [unit.path, container.path]
        assert cgroups.name(unit.path) == unit.directory.name
        assert cgroups.name(container.path) == f"docker {token[:12]}"
        assert cgroups.name(container.path, str(tmp_path)) == "docker web-1"
    finally:
        for child in children:
            _stop(child)


# --- namespaces named after what runs in them -------------------------------------------------

LISTENER_ANY = LISTENER.replace("'127.0.0.1'", "'0.0.0.0'")  # a new namespace's lo is down


def _unshared(group: Cgroup | None) -> tuple[subprocess.Popen[str], int, int]:
    """A process in a network namespace of its own (``unshare --net``), put in ``group``
    first, holding a listener: the process, its namespace's inode and the port."""
    enter = "" if group is None else 'echo $$ > "$2/cgroup.procs" && '
    where = [] if group is None else [group.directory]
    child = subprocess.Popen(
        ["sh", "-c", f'{enter}exec unshare --net "$0" -c "$1"', sys.executable, LISTENER_ANY]
        + where,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    port = int(child.stdout.readline())  # printed once inside: the namespace is its own now
    return child, os.stat(f"/proc/{child.pid}/ns/net").st_ino, port


def _netns_cells(cli, port: int) -> list[str]:  # type: ignore[no-untyped-def]
    """The Netns cells of the --all-netns rows listening on ``port``, as a pipe gets them."""
    done = cli.process("--all-netns", "-l", "-o", "plain", "--sport", str(port))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    state = lines[0].index("State")  # the Netns column is as wide as its widest label
    return [line[:state].rstrip() for line in lines[1:]]


@needs_cgroup2
@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare (util-linux)")
def test_a_namespace_is_named_after_what_runs_in_it(cli, cgroup) -> None:  # type: ignore[no-untyped-def]
    unit = cgroup(f"tcpstates-test-{secrets.token_hex(4)}.service")
    token = secrets.token_hex(32)
    container = cgroup(f"docker-{token}.scope")
    hostile = cgroup(f"tcpstates-\x1b]8;;e\x07-{secrets.token_hex(2)}.service")
    started = [_unshared(unit), _unshared(container), _unshared(hostile), _unshared(None)]
    try:
        (in_unit, in_container, in_hostile, in_ours) = [
            _netns_cells(cli, port) for _, _, port in started
        ]
        assert in_unit == [f"{started[0][1]} ({unit.directory.name})"]
        assert in_container == [f"{started[1][1]} (docker {token[:12]})"]
        # A cgroup's name is anyone's: escaped, never sent to the terminal as it is.
        assert in_hostile == [f"{started[2][1]} ({safe(hostile.directory.name)})"]
        assert "\x1b" not in in_hostile[0] and "\\x1b]8;;e\\x07" in in_hostile[0]
        # Made from where the test runs: its cgroup is ours and tells nothing; its pid does.
        child = started[3][0]
        assert in_ours == [f"{started[3][1]} (pid {child.pid} {_comm(child.pid)})"]
    finally:
        for child, _, _ in started:
            _stop(child)


@pytest.mark.root
def test_the_hosts_namespace_is_called_host(cli, sockets) -> None:  # type: ignore[no-untyped-def]
    """The initial namespace (pid 1's) is "host"; one the test makes is not."""
    ours = os.stat("/proc/self/ns/net").st_ino
    try:
        init = os.stat("/proc/1/ns/net").st_ino
    except PermissionError:  # some sandboxes refuse even root; newer kernels fix the number
        init = netns.INIT_NET_INODE
    if ours != init:
        pytest.skip("the tests do not run in the host's network namespace")
    listener = sockets.listener()
    port = listener.getsockname()[1]
    assert _netns_cells(cli, port) == [f"{ours} (host)"]
    child, inode, other = _unshared(None)
    try:
        assert _netns_cells(cli, other) == [f"{inode} (pid {child.pid} {_comm(child.pid)})"]
    finally:
        _stop(child)


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--from", str(Path(__file__).parent / "data" / "proc-little")), "holds no cgroups"),
        (("--watch",), "does not apply to --watch"),
        (("--summary",), "does not apply to --summary"),
    ],
)
def test_cgroup_is_refused_where_it_cannot_apply(cli, args: tuple[str, ...], says: str) -> None:  # type: ignore[no-untyped-def]
    done = cli("--cgroup", *args)
    assert done.returncode == 2 and done.stdout == ""
    assert says in done.stderr and len(done.stderr.splitlines()) == 1


@needs_cgroup2
@needs_tmux
def test_on_a_narrow_terminal_a_cgroup_keeps_its_end(cgroup) -> None:  # type: ignore[no-untyped-def]
    """A 100-column terminal: the path gives way at its start, its unit stays, nothing else
    is cut, and the footer says so."""
    unit = f"tcpstates-test-{secrets.token_hex(4)}.service"
    group = cgroup(f"a-long-slice-name-{'x' * 40}.slice")
    inner = group.directory / unit
    inner.mkdir()
    nested = Cgroup(inner, f"{group.path}/{unit}")
    child, port = nested.listener()
    try:
        argv = [*TCPSTATES, "--cgroup", "--no-pager", "--sport", str(port)]
        with terminal(argv, 100, 24) as term:
            shown = term.wait_for("EXIT=0")
        row = next(line for line in shown.splitlines() if line.startswith("LISTEN"))
        assert row.rstrip().endswith(unit) and "…" in row and str(child.pid) in row
        assert "python" in row  # the process name gave way after the cgroup, not before
        assert "cgroups cut" in shown
    finally:
        _stop(child)
        _remove(inner)
