"""`tcpstates export` attacked as another user on the host would: names, clients, files, disks.

The server's limits are also driven with a fake clock (no waiting for real timeouts); the rest
runs the exporter as a real process against real loopback clients, files and a real tmpfs.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TCPSTATES, Cli
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families as text_families
from test_hardening import RAW, hostile  # noqa: F401 - hostile is a fixture
from zoo import free_port

from tcpstates.export import server as metrics_server
from tcpstates.export.metrics import MetricFamily, MetricType, Sample
from tcpstates.export.render import escape
from tcpstates.export.server import MAX_CONNECTIONS, TIMEOUT, MetricsServer
from tcpstates.render.safe import safe

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
HALF_A_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # and never the blank line


def scrape(url: str, accept: str = "", timeout: float = 5) -> str:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text: str = response.read().decode()
        return text


def wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- the server's limits, on a fake clock ----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


ONE = (MetricFamily("up", "Up.", MetricType.GAUGE, (Sample((), 1),)),)


@pytest.fixture
def fake() -> Iterator[tuple[MetricsServer, Clock, tuple[str, int]]]:
    clock = Clock()
    listener = metrics_server.listen(("127.0.0.1", 0))
    server = MetricsServer(listener, metrics_server.metrics_handler(lambda: ONE), clock)
    try:
        yield server, clock, listener.getsockname()[:2]
    finally:
        server.close()


def settle(server: MetricsServer, connections: int) -> None:
    """Step (real select, fake clock) until the server holds ``connections``, boundedly."""
    for _ in range(200):
        server.step(0.01)
        if server.connections == connections:
            return
    raise AssertionError(f"{server.connections} connections, not {connections}")


def answer(server: MetricsServer, client: socket.socket) -> bytes:
    """Step the server until ``client`` has its whole answer (the server closes after it)."""
    client.setblocking(False)
    got = b""
    for _ in range(200):
        server.step(0.01)
        with contextlib.suppress(BlockingIOError):
            chunk = client.recv(65536)
            if not chunk:
                return got
            got += chunk
    raise AssertionError(f"no whole answer: {got!r}")


def closed(client: socket.socket, wait: float = 0.5) -> bool:
    client.settimeout(wait)
    try:
        return client.recv(1) == b""
    except ConnectionResetError:
        return True
    except (TimeoutError, BlockingIOError):
        return False


def test_a_silent_connection_is_closed_at_the_timeout_not_before(fake) -> None:
    server, clock, address = fake
    with socket.create_connection(address) as client:
        client.sendall(HALF_A_REQUEST)
        settle(server, 1)
        clock.now += TIMEOUT - 0.01
        server.step(0)
        assert server.connections == 1
        client.sendall(b"X-Trickle: 1\r\n")  # bytes in time do not buy more time
        clock.now += 0.02
        server.step(0)
        assert server.connections == 0 and closed(client)


def test_past_the_cap_the_oldest_go_and_a_scrape_still_gets_through(fake) -> None:
    server, clock, address = fake
    extra = 5
    clients = []
    try:
        for _ in range(MAX_CONNECTIONS + extra):
            client = socket.create_connection(address)
            client.sendall(HALF_A_REQUEST)
            clients.append(client)
            clock.now += 0.001  # accepted in this order
            if len(clients) <= MAX_CONNECTIONS:
                settle(server, len(clients))
            else:  # accepted when the oldest still open has gone
                oldest = clients[len(clients) - MAX_CONNECTIONS - 1]
                for _ in range(200):
                    server.step(0.01)
                    if closed(oldest, wait=0):
                        break
        assert [closed(c) for c in clients[:extra]] == [True] * extra
        assert not closed(clients[extra])
        with socket.create_connection(address) as scraper:
            scraper.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            got = answer(server, scraper)
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"up 1\n")
        settle(server, MAX_CONNECTIONS - 1)  # the scraper gone, it took an old one's place
        assert closed(clients[extra], wait=0)
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize(
    "head",
    [
        b"GET //[x/ HTTP/1.1\r\n\r\n",  # urlsplit raises ValueError on it
        b"\x00\xff GET\r\n\r\n",
        b"GET /metrics?name[]=%ff%fe HTTP/1.1\r\nAccept: \xff\r\n\r\n",
    ],
)
def test_a_malformed_request_is_answered_and_the_server_goes_on(fake, head: bytes) -> None:
    server, _, address = fake
    with socket.create_connection(address) as client:
        client.sendall(head)
        assert answer(server, client).split(b"\r\n")[0] in (
            b"HTTP/1.1 400 Bad Request",
            b"HTTP/1.1 200 OK",
        )
    with socket.create_connection(address) as client:
        client.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        assert answer(server, client).startswith(b"HTTP/1.1 200 OK")


# -- the exporter as a process ---------------------------------------------------------------


@contextlib.contextmanager
def exporter(
    tmp_path: Path, *args: str, nofile: int | None = None, blocked: frozenset[int] = frozenset()
) -> Iterator[tuple[int, str]]:
    """``export --listen 127.0.0.1:PORT ARGS`` running: (pid, url); stderr in tmp_path/err.
    ``nofile`` limits its descriptors; ``blocked`` signals it is started with held back."""
    port = free_port()

    def start() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)

    err = tmp_path / "err"
    with err.open("w") as f:
        process = subprocess.Popen(
            (*TCPSTATES, "export", "--listen", f"127.0.0.1:{port}", *args),
            stderr=f,
            stdout=subprocess.DEVNULL,
            preexec_fn=start,
        )
    try:
        wait_for(lambda: "serving" in err.read_text() or process.poll() is not None, 15)
        assert process.poll() is None, err.read_text()
        yield process.pid, f"http://127.0.0.1:{port}/metrics"
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=10) == 0
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit 10 s after SIGTERM: {stuck(process.pid)}; {err.read_text()}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def stuck(pid: int) -> str:
    """Where each of ``pid``'s threads waits (state, kernel wait channel), to tell a hang from
    a slow machine when a stop times out."""
    tasks = []
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        with contextlib.suppress(OSError):
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
            tasks.append(f"{task.name} {state} {(task / 'wchan').read_text()}")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return f"threads {tasks}, children {children}"


def proc_status(pid: int) -> tuple[int, int, float]:
    """(threads, open descriptors, CPU seconds used) of ``pid``."""
    status = Path(f"/proc/{pid}/status").read_text()
    threads = int(status.split("Threads:")[1].split()[0])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return threads, len(os.listdir(f"/proc/{pid}/fd")), cpu


def test_a_hostile_name_is_one_escaped_label_in_all_four_expositions(
    cli,
    tmp_path: Path,
    hostile: dict[int, str],  # noqa: F811 - the fixture imported from test_hardening
) -> None:
    # What the kernel keeps of each name: its first 15 bytes.
    comms = [name.encode()[:15].decode("utf-8", "backslashreplace") for name in hostile.values()]
    by_process = ("--by", "process", "--max-series", "65536")
    textfile = tmp_path / "m.prom"
    printed = cli.process("-o", "openmetrics", "--by", "process")
    written = cli.process("export", "--textfile", str(textfile), *by_process)
    with exporter(tmp_path, *by_process) as (_, url):
        served_text = scrape(url, "text/plain")
        served_om = scrape(url, OPENMETRICS)
    assert printed.returncode == written.returncode == 0, printed.stderr + written.stderr
    texts = {
        "-o openmetrics": printed.stdout,
        "--textfile": textfile.read_text(),
        "--listen OpenMetrics": served_om,
        "--listen text/plain": served_text,
    }
    for how, text in texts.items():
        for comm in comms:
            assert f'process="{escape(comm)}"' in text, (how, comm)
        for raw in RAW:
            assert raw not in text, (how, repr(raw))
    for families in (om_families(served_om), text_families(served_text)):
        by = {f.name: f for f in families}["tcpstates_sockets_by_process"]
        labels = {sample.labels["process"] for sample in by.samples}
        assert {safe(comm) for comm in comms} <= labels  # read back as shown safely


@pytest.mark.parametrize(
    ("nofile", "flood"),
    [(1024, 1100), (40, 300)],  # systemd's default; and fewer descriptors than the cap needs
)
def test_a_flood_of_half_requests_under_a_descriptor_limit(
    tmp_path: Path, nofile: int, flood: int
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < flood + 100:
        pytest.skip(f"{flood} client sockets need a hard descriptor limit above {flood + 100}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (flood + 100, hard))
    clients: list[socket.socket] = []
    try:
        with exporter(tmp_path, nofile=nofile) as (pid, url):
            port = int(url.split(":")[2].split("/")[0])
            for _ in range(flood):
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                with contextlib.suppress(OSError):  # already closed to make room: fine
                    client.sendall(HALF_A_REQUEST)
                clients.append(client)
            started = time.monotonic()
            text = scrape(url, OPENMETRICS)
            latency = time.monotonic() - started
            threads, fds, cpu = proc_status(pid)
            time.sleep(2)  # every client connection still open, and silent
            threads_later, fds_later, cpu_later = proc_status(pid)
            for client in clients:
                client.close()
            clients.clear()
            assert "node_tcp_connection_states" in scrape(url)
        said = (tmp_path / "err").read_text()
    finally:
        for client in clients:
            client.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    print(
        f"nofile {nofile}: latency {latency:.3f}s threads {threads} fds {fds}/{fds_later}", end=""
    )
    print(f" idle cpu {cpu_later - cpu:.2f}s; said {said!r}")
    assert latency < 1.0 and text.endswith("# EOF\n")
    assert {threads, threads_later} <= {1, 2}
    assert max(fds, fds_later) <= min(nofile, MAX_CONNECTIONS + 16)  # + listener, epoll, stdio
    assert cpu_later - cpu < 0.3
    assert "Traceback" not in said and said.count("out of file descriptors") <= 1
    assert said.count("\n") <= 2  # "serving ...", and that at most once


@pytest.mark.slow
def test_a_slowloris_is_closed_at_the_timeout(tmp_path: Path) -> None:
    with exporter(tmp_path) as (_, url):
        port = int(url.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            started = time.monotonic()
            lasted = None
            for byte in HALF_A_REQUEST * 2:  # 0.5 s a byte: far more than TIMEOUT in all
                with contextlib.suppress(OSError):
                    slow.sendall(bytes([byte]))
                slow.settimeout(0.5)
                try:
                    if slow.recv(1) == b"":
                        lasted = time.monotonic() - started
                        break
                except ConnectionResetError:
                    lasted = time.monotonic() - started
                    break
                except TimeoutError:
                    pass
            assert "node_tcp_connection_states" in scrape(url)  # answered all along
    assert lasted is not None and TIMEOUT - 0.2 <= lasted <= TIMEOUT + 1.0


def test_name_filter(tmp_path: Path) -> None:
    with exporter(tmp_path) as (_, url):
        one = scrape(f"{url}?name[]=node_tcp_connection_states", OPENMETRICS)
        two = scrape(f"{url}?name[]=node_tcp_connection_states&name[]=tcpstates_sockets")
        everything = scrape(url, OPENMETRICS)
    assert [f.name for f in om_families(one)] == ["node_tcp_connection_states"]
    assert {f.name for f in text_families(two)} == {
        "node_tcp_connection_states",
        "tcpstates_sockets",
    }
    assert len(list(om_families(everything))) > 2


@pytest.mark.parametrize("value", ["1e10", "nan", "inf", "0"])
def test_an_interval_out_of_bounds_is_one_line_and_exit_2(cli, tmp_path: Path, value: str) -> None:
    done = cli.process("export", "--interval", value, "--textfile", str(tmp_path / "m.prom"))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1 and "at most 86400" in done.stderr
    assert not (tmp_path / "m.prom").exists()


# -- item 5: what --textfile refuses ---------------------------------------------------------


def refused(cli: Cli, target: Path, kind: str) -> None:
    done = cli.process("export", "--textfile", str(target))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"tcpstates: cannot write {target}: {kind}, not a regular file; it is left as it is\n"
    )


@pytest.mark.root
def test_dev_full_stays_a_device(cli) -> None:
    before = os.stat("/dev/full")
    assert stat.S_ISCHR(before.st_mode)
    refused(cli, Path("/dev/full"), "a character device")
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (
        before.st_ino,
        before.st_rdev,
    )
    assert not [n for n in os.listdir("/dev") if n.startswith(".full.")]


def test_a_fifo_and_a_directory_are_refused(cli, tmp_path: Path) -> None:
    fifo, directory = tmp_path / "fifo.prom", tmp_path / "dir.prom"
    os.mkfifo(fifo)
    directory.mkdir()
    refused(cli, fifo, "a FIFO")  # cli.process has a timeout: had it opened the FIFO, it would hang
    refused(cli, directory, "a directory")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(directory) == []
    assert sorted(os.listdir(tmp_path)) == ["dir.prom", "fifo.prom"]


@pytest.fixture
def sticky(tmp_path: Path) -> Path:
    """A /tmp-like directory (1777) that nobody can reach, and a way to act as nobody."""
    if shutil.which("runuser") is None:
        pytest.skip("needs runuser (util-linux)")
    for parent in [tmp_path, *tmp_path.parents]:
        if parent != Path("/"):
            parent.chmod(parent.stat().st_mode | 0o001)  # pytest's temporary root is 0700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    return shared


def as_nobody(*argv: str) -> None:
    subprocess.run(["runuser", "-u", "nobody", "--", *argv], check=True, timeout=10)


@pytest.mark.root
def test_a_symlink_planted_by_nobody_is_refused(cli, tmp_path: Path, sticky: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("root's own\n")
    victim.chmod(0o600)
    target = sticky / "m.prom"
    as_nobody("ln", "-s", str(victim), str(target))
    refused(cli, target, "a symbolic link (give the path it points to)")
    assert victim.read_text() == "root's own\n" and victim.stat().st_mode & 0o777 == 0o600
    assert os.readlink(target) == str(victim)


@pytest.mark.root
def test_a_directory_symlink_of_nobody_on_the_way_is_refused(
    cli, tmp_path: Path, sticky: Path
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    as_nobody("ln", "-s", str(private), str(sticky / "d"))
    done = cli.process("export", "--textfile", str(sticky / "d" / "m.prom"))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.count("\n") == 1
    assert f"{sticky}/d is a symbolic link owned by uid 65534" in done.stderr
    assert os.listdir(private) == []


def test_a_regular_file_is_replaced_whole_never_written_into(cli, tmp_path: Path) -> None:
    target = tmp_path / "m.prom"
    target.write_text("old\n")
    target.chmod(0o600)
    os.link(target, tmp_path / "other-name")  # a second name: it must keep the old text
    before = target.stat().st_ino
    done = cli.process("export", "--textfile", str(target))
    assert (done.returncode, done.stderr) == (0, "")
    assert target.stat().st_ino != before and target.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "other-name").read_text() == "old\n"
    assert target.read_text().endswith("# EOF\n") and list(om_families(target.read_text()))
    assert sorted(os.listdir(tmp_path)) == ["m.prom", "other-name"]


# -- item 15: a full disk under the textfile loop --------------------------------------------


@pytest.mark.root
def test_the_loop_outlives_a_full_tmpfs(tmp_path: Path) -> None:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    target, err = mount / "m.prom", tmp_path / "err"
    try:
        with err.open("w") as f:
            loop = subprocess.Popen(
                (*TCPSTATES, "export", "--textfile", str(target), "--interval", "0.2"), stderr=f
            )
        try:
            wait_for(target.exists, 10)
            filler = mount / "filler"
            with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
                for _ in range(64 * 1024):  # bounded: the tmpfs holds 64 KiB
                    out.write(b"\0" * 512)
            time.sleep(0.5)  # a write begun before the disk filled has ended
            whole = target.read_text()
            wait_for(lambda: "No space left on device" in err.read_text(), 5)
            time.sleep(0.6)  # three more intervals, each failing
            assert loop.poll() is None and target.read_text() == whole
            assert whole.endswith("\n# EOF\n") and list(om_families(whole))
            assert sorted(os.listdir(mount)) == ["filler", "m.prom"]  # no temporary left
            filler.unlink()
            wait_for(lambda: target.read_text() != whole, 5)
            loop.send_signal(signal.SIGTERM)
            assert loop.wait(timeout=10) == 0
        finally:
            if loop.poll() is None:
                loop.kill()
                loop.wait()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)
    assert err.read_text().splitlines() == [
        f"tcpstates: cannot write {target}: No space left on device; trying again every 0.2 s",
        f"tcpstates: wrote {target} again",
    ]


def test_an_exporter_started_with_sigterm_held_back_still_stops_on_it(tmp_path: Path) -> None:
    # A blocked mask is inherited: the old exporter then waited in epoll through SIGTERM (the
    # CI flake of this file's stop tests, seen as "do_epoll_wait" by stuck()). exporter()
    # stops it with SIGTERM and asks for exit 0 within 10 s.
    with exporter(tmp_path, blocked=frozenset({signal.SIGTERM})):
        pass
