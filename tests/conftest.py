"""What every test module may use, and the markers.

Fixtures: ``cli`` (tcpstates run as a user runs it), ``nobody`` (run as the user nobody, by
root), ``sockets`` (loopback sockets closed after the test), ``zoo`` (a socket in every state,
for one module), ``netns`` (network namespaces of the test's own), ``golden``
(``--update-golden`` rewrites files under tests/golden/).

Markers (registered in pyproject.toml; ``--strict-markers`` refuses any other):
``root``  needs root: skipped with the reason "needs root" otherwise. Given to every test that
          uses the ``nobody`` or ``netns`` fixture.
``netns`` makes network namespaces: root and a working ``ip netns``, or skipped saying which is
          missing. Given to every test that uses the ``netns`` fixture.
``slow``  takes seconds, not milliseconds: ``pytest -m "not slow"`` for a quick pass.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ss_reader import ss_path
from zoo import Sockets, Zoo

GOLDEN = Path(__file__).parent / "golden"
DATA = Path(__file__).parent / "data"
# A separate process as the console script starts it (its fast path included).
TCPSTATES = (sys.executable, "-m", "tcpstates")
NEEDS_ROOT = "needs root"
SYSTEM_PYTHON = "/usr/bin/python3.11"  # one nobody may run: root's own may live under /root


# What a listing with owners says on stderr when run by a user who may not look into other
# users' processes (the suite's unprivileged pass, wherever such processes hold sockets).
UNATTRIBUTED = re.compile(
    r"^tcpstates: the sockets of \d+ processes of other users cannot be attributed;"
    r" their owner shows as -\n",
    re.MULTILINE,
)


def said(stderr: str) -> str:
    """What a run said on stderr besides the notice an unprivileged user gets."""
    return UNATTRIBUTED.sub("", stderr)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/ files")


def pytest_configure() -> None:
    # Hypothesis keeps the examples it found under .hypothesis/ in the working directory. In a
    # checkout this user may only read (CI's unprivileged pass) it would warn instead, and a
    # warning fails the test: there, found examples are not kept between runs.
    if not os.access(".", os.W_OK):
        from hypothesis import settings

        settings.register_profile("read-only checkout", database=None)
        settings.load_profile("read-only checkout")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "netns" in fixtures:
            item.add_marker(pytest.mark.netns)
        if item.get_closest_marker("netns") or "nobody" in fixtures:
            item.add_marker(pytest.mark.root)
        if item.get_closest_marker("root") and os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason=NEEDS_ROOT))
        elif item.get_closest_marker("netns") and (why := netns_unavailable()):
            item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture
def golden(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """``golden("name.txt", text)`` compares text with a golden file (or rewrites it)."""
    update = request.config.getoption("--update-golden")

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if update or not path.exists():
            if not update:
                pytest.fail(f"missing golden file {path}; run pytest --update-golden")
            path.write_text(text)
        assert text == path.read_text()

    return check


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Times shown in UTC, as the golden screens have them."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def golden_update(request: pytest.FixtureRequest) -> bool:
    """Whether --update-golden was given: generated parts of docs are rewritten, not checked."""
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(autouse=True)
def english(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Tests expect English whatever the developer's locale says (LANGUAGE decides first, and
    touches nothing but message catalogues); each test starts and ends in English."""
    from tcpstates.model import i18n

    monkeypatch.setenv("LANGUAGE", "en")
    i18n.use("en")
    yield
    i18n.use("en")


# --- the command line ------------------------------------------------------------------------


class Cli:
    """tcpstates as a user runs it; each answer is a CompletedProcess: the exit status, and
    stdout and stderr kept apart (a hint on stderr must never pass for output).

        done = cli("--explain", "LISTEN")    # in this process: fast, monkeypatches apply
        done = cli.process("--summary")      # ``python -m tcpstates``: its own process
    """

    def __call__(
        self, *args: str, stdin: str = "", env: Mapping[str, str | None] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``run(ARGS)``, the function the console script calls, with stdin, stdout, stderr
        and the environment (``env`` is added to it; None unsets) swapped by click's runner."""
        from tcpstates.cli.root import run

        with CliRunner(env=env).isolation(input=stdin) as (out, err, _):
            status = run(list(args))
            sys.stdout.flush()  # the runner's streams are buffered: what was written, all of it
            sys.stderr.flush()
            return subprocess.CompletedProcess(
                ["tcpstates", *args], status, out.getvalue().decode(), err.getvalue().decode()
            )

    def process(
        self,
        *args: str,
        stdin: str = "",
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """``python -m tcpstates ARGS`` with ``stdin`` as its input and ``env`` as its whole
        environment (default: ours); the timeout turns a hang into a failure."""
        return subprocess.run(
            [*TCPSTATES, *args],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def cli() -> Cli:
    """tcpstates run as a user runs it: see Cli."""
    return Cli()


@pytest.fixture(scope="session")
def nobody(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """``nobody(ARGS, wrap=SHELL)`` runs tcpstates as the user nobody (root drops to it with
    runuser), on a copy of the package nobody may read. ``wrap``, if given, runs first as root
    in a private mount namespace: to mount a /proc with hidepid there, say. Tests' temporary
    directories are on a path nobody may walk (what it may read in them is the test's say)."""
    if os.geteuid() != 0:
        pytest.skip(NEEDS_ROOT)
    if not shutil.which("runuser") or not os.path.exists(SYSTEM_PYTHON):
        pytest.skip(f"needs runuser and {SYSTEM_PYTHON}")
    # Not under pytest's temporary root: any pytest session of root's that starts meanwhile
    # makes that private again, and nobody could no longer read the copy.
    site = Path(tempfile.mkdtemp(prefix="tcpstates-nobody-"))
    shutil.copytree(Path(__file__).parent.parent / "tcpstates", site / "tcpstates")
    for name in ("click", "rich", "psutil", "markdown_it", "mdurl", "pygments"):
        module = importlib.import_module(name)
        shutil.copytree(Path(module.__file__).parent, site / name)  # type: ignore[arg-type]
    for path in [site, *site.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    prefix = ["runuser", "-u", "nobody", "--", "env", f"PYTHONPATH={site}", SYSTEM_PYTHON, "-m"]

    def run(*args: str, wrap: str = "") -> subprocess.CompletedProcess[str]:
        # pytest's temporary root is private to root, and each pytest session of root's that
        # starts makes it so again: opened up each time.
        base = tmp_path_factory.getbasetemp()
        for parent in (base, *base.parents):
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o005)
        argv = [*prefix, "tcpstates", *args]
        if wrap:
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                    wrap + ' && exec "$@"', "sh", *argv]  # fmt: skip
        # In the copy: `python -m` looks in its working directory first, and that must not
        # be a checkout that nobody happens to be able to read.
        return subprocess.run(
            argv, cwd=site, capture_output=True, text=True, timeout=60, check=False
        )

    try:
        yield run
    finally:
        shutil.rmtree(site)


# --- sockets ---------------------------------------------------------------------------------


@pytest.fixture
def sockets() -> Iterator[Sockets]:
    """Loopback sockets made for the test (see zoo.Sockets), reset after it."""
    made = Sockets()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def zoo() -> Iterator[Zoo]:
    """Every socket state the zoo knows, held for the whole module."""
    ss_path()  # a clear failure when iproute2 is missing
    with Zoo() as built:
        yield built


# --- network namespaces ----------------------------------------------------------------------


@functools.cache
def netns_unavailable() -> str | None:
    """Why this run cannot make network namespaces, or None when it can."""
    if os.geteuid() != 0:
        return NEEDS_ROOT
    if shutil.which("ip") is None:
        return "needs ip (iproute2) for network namespaces"
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"ip netns does not work here: {done.stderr.strip()}"
    return None


@dataclass(frozen=True)
class Netns:
    """A named network namespace with its loopback up; commands run inside it."""

    name: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list, repr=False, compare=False)

    @property
    def inode(self) -> int:
        return os.stat(f"/run/netns/{self.name}").st_ino

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self, *argv: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*argv), capture_output=True, text=True, timeout=timeout, check=check
        )

    def popen(self, *argv: str, **kwargs: Any) -> subprocess.Popen[str]:
        """A process inside; killed, if it still runs, before the namespace is deleted."""
        proc = subprocess.Popen(self.argv(*argv), text=True, **kwargs)
        self.procs.append(proc)
        return proc


def _delete(space: Netns) -> None:
    for proc in space.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()  # left open, its ResourceWarning fails whichever test runs next
    subprocess.run(["ip", "netns", "del", space.name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def netns() -> Iterator[Callable[[str], Netns]]:
    """``netns("label")`` makes a namespace named ``tcpstates-label-RANDOM`` (so that parallel
    runs never meet), with lo up. Each is deleted, with the processes started in it, when the
    module's tests are done. Skips, saying why, without root or a working ``ip netns``."""
    if why := netns_unavailable():
        pytest.skip(why)
    made: list[Netns] = []

    def make(label: str = "t") -> Netns:
        space = Netns(f"tcpstates-{label}-{secrets.token_hex(4)}")
        added = subprocess.run(["ip", "netns", "add", space.name], capture_output=True, text=True)
        if added.returncode != 0:
            pytest.skip(f"ip netns add failed: {added.stderr.strip()}")
        made.append(space)
        space.run("ip", "link", "set", "lo", "up")
        return space

    try:
        yield make
    finally:
        for space in made:
            _delete(space)
