"""`tcpstates export` under attack, the cases tests/test_export_attacks.py leaves out.

- 800 idle connections with no descriptor limit: one thread, and every one closed by the
  timeout (the wsgiref server held 800 threads for ever).
- Five descriptors, where every accept() fails with EMFILE and the server has no connection
  of its own to close: accepting pauses rather than spins (CPU over 2 s measured), said once.
- What is not a scrape (another path, POST, TLS, a 9 kB header, HEAD) gets one short answer,
  delivered whole even when the client's bytes were not all read.
- --textfile: a symlink on the way is judged by its owner (nobody's refused, root's followed),
  and a loop whose file is swapped for a symlink leaves it alone, says so once, and recovers.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TCPSTATES
from zoo import free_port

from tcpstates.export.server import MAX_CONNECTIONS, TIMEOUT

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
NOBODY = 65534
HALF_A_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # and then nothing more


# -- the exporter as a process ---------------------------------------------------------------


@dataclass
class Exporter:
    process: subprocess.Popen[str]
    url: str
    stderr: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def threads(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def errors(self) -> str:
        return self.stderr.read_text()

    def stop(self) -> str:
        """SIGTERM; the exit status must be 0. Returns all it said on stderr."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=10) == 0
        return self.errors()


@contextlib.contextmanager
def exporter(tmp_path: Path, *args: str, nofile: int | None = None) -> Iterator[Exporter]:
    """``export --listen 127.0.0.1:PORT ARGS``, with RLIMIT_NOFILE ``nofile`` if given."""
    port = free_port()
    prefix = [] if nofile is None else ["prlimit", f"--nofile={nofile}", "--"]
    stderr = tmp_path / f"exporter-{port}.err"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [*prefix, *TCPSTATES, "export", "--listen", f"127.0.0.1:{port}", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            close_fds=True,
        )
    running = Exporter(process, f"http://127.0.0.1:{port}/metrics", stderr)
    try:
        deadline = time.monotonic() + 15
        while "serving" not in running.errors():
            assert process.poll() is None, running.errors()
            assert time.monotonic() < deadline, "the exporter never started"
            time.sleep(0.05)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def scrape(url: str, accept: str = "", timeout: float = 10) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read().decode(), response.headers["Content-Type"]


def timed_scrape(url: str) -> tuple[float, str]:
    started = time.monotonic()
    text, _ = scrape(url, OPENMETRICS, timeout=5)
    return time.monotonic() - started, text


@contextlib.contextmanager
def idle_clients(
    port: int, count: int, greeting: bytes = HALF_A_REQUEST
) -> Iterator[list[socket.socket]]:
    """``count`` connections that send ``greeting`` and then wait, held open by us."""
    wanted = count + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"{count} connections need {wanted} descriptors; the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    clients: list[socket.socket] = []
    try:
        for _ in range(count):
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            client.sendall(greeting)
            clients.append(client)
        yield clients
    finally:
        for client in clients:
            client.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def closed_by_server(client: socket.socket, wait: float) -> bool:
    """Whether the server has closed ``client`` (EOF or reset) within ``wait`` seconds."""
    client.settimeout(wait)
    try:
        return client.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


# -- item 4: idle connections do not take the exporter down ----------------------------------


@pytest.mark.slow
def test_800_idle_connections_hold_one_thread_and_are_closed_by_the_timeout(
    tmp_path: Path,
) -> None:
    with exporter(tmp_path) as running, idle_clients(port_of(running.url), 800) as idle:
        opened = time.monotonic()
        threads = running.threads()
        fds = running.descriptors()
        elapsed, _ = timed_scrape(running.url)
        # The last ones accepted are held until TIMEOUT after they came; then none is left.
        still_open = [
            c for c in idle if not closed_by_server(c, TIMEOUT + 2 - (time.monotonic() - opened))
        ]
        waited = time.monotonic() - opened
        said = running.stop()
    assert threads == 1 and fds <= MAX_CONNECTIONS + 16
    assert elapsed < 1.0
    assert still_open == [] and waited <= TIMEOUT + 2
    assert "Traceback" not in said and said.count("\n") == 1


def test_with_no_descriptor_to_accept_with_it_pauses_instead_of_spinning(tmp_path: Path) -> None:
    # Five descriptors: stdio, the listener and epoll. Every accept() fails with EMFILE and
    # there is no connection of its own to close, so only pausing keeps it from spinning on a
    # listener that stays readable.
    with exporter(tmp_path, nofile=5) as running:
        waiting = socket.create_connection(("127.0.0.1", port_of(running.url)), timeout=5)
        waiting.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        time.sleep(0.5)
        cpu = running.cpu_seconds()
        time.sleep(2)
        spent = running.cpu_seconds() - cpu
        waiting.close()
        said = running.stop()
    assert spent <= 0.1
    assert said.splitlines()[1:] == [
        "tcpstates: cannot accept connections (Too many open files); each time, accepting"
        " pauses 1 s"
    ]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", b"404 Not Found"),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"405 Method Not Allowed"),
        (b"\x16\x03\x01\x02\x00\x01\r\n\r\n", b"400 Bad Request"),  # TLS to plain HTTP
        (b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000, b"431 Request Header Fields Too Large"),
        (b"HEAD /metrics HTTP/1.1\r\n\r\n", b"200 OK"),
    ],
)
def test_what_is_not_a_scrape_gets_one_short_answer(
    tmp_path: Path, request_bytes: bytes, status: bytes
) -> None:
    with exporter(tmp_path) as running:
        with socket.create_connection(("127.0.0.1", port_of(running.url)), timeout=5) as client:
            client.sendall(request_bytes)
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        said = running.stop()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 " + status
    assert (body == b"") == request_bytes.startswith(b"HEAD")  # HEAD: the head alone
    assert "Traceback" not in said and said.count("\n") == 1


# -- item 5: --textfile refuses what is not a regular file -----------------------------------


@pytest.mark.root  # to make a symlink owned by another user
def test_a_symlink_another_user_planted_on_the_way_is_not_followed(cli, tmp_path: Path) -> None:
    protected = tmp_path / "root-only"
    protected.mkdir(mode=0o700)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    planted = shared / "metrics"
    planted.symlink_to(protected)
    os.lchown(planted, NOBODY, NOBODY)
    done = cli.process("export", "--textfile", str(planted / "tcpstates.prom"))
    assert done.returncode == 1
    assert done.stderr == (
        f"tcpstates: cannot write {planted}/tcpstates.prom: {planted} is a symbolic link owned"
        f" by uid {NOBODY}; only links owned by root or by the user running tcpstates are"
        " followed\n"
    )
    assert os.listdir(protected) == []
    # The same link made by root is followed: the rule is about who made it.
    os.lchown(planted, 0, 0)
    done = cli.process("export", "--textfile", str(planted / "tcpstates.prom"))
    assert (done.returncode, done.stderr) == (0, "")
    assert os.listdir(protected) == ["tcpstates.prom"]


def test_a_loop_whose_file_is_swapped_for_a_symlink_leaves_it_and_recovers(
    tmp_path: Path,
) -> None:
    target = tmp_path / "tcpstates.prom"
    victim = tmp_path / "victim"
    victim.write_text("someone else's\n")
    with textfile_loop(target, interval=0.2) as (process, stderr):
        wait_for(lambda: target.exists(), 10)
        swapped = tmp_path / "swap"
        swapped.symlink_to(victim)
        swapped.rename(target)  # atomically, as an attacker in a shared directory would
        time.sleep(1.0)  # five intervals
        assert target.is_symlink() and victim.read_text() == "someone else's\n"
        target.unlink()
        wait_for(lambda: target.exists() and not target.is_symlink(), 5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert stderr.read_text().splitlines() == [
        f"tcpstates: cannot write {target}: a symbolic link (give the path it points to), not"
        " a regular file; it is left as it is; trying again every 0.2 s",
        f"tcpstates: wrote {target} again",
    ]


@contextlib.contextmanager
def textfile_loop(target: Path, interval: float) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    stderr = target.parent.parent / f"{target.name}.err"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            (*TCPSTATES, "export", "--textfile", str(target), "--interval", str(interval)),
            stderr=err,
            text=True,
        )
    try:
        yield process, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(condition, seconds: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- --interval is bounded -------------------------------------------------------------------


def test_a_day_is_a_valid_interval(cli) -> None:
    # Past the bound's check, the command refuses --interval without --textfile: the value
    # itself was accepted.
    done = cli.process("export", "--interval", "86400")
    assert done.returncode == 2 and "--interval goes with --textfile" in done.stderr
