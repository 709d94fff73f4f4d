"""Metrics for Prometheus: the exposition, the exporter over HTTP, the textfile, the series cap.

Counts are compared with `ss` inside a network namespace of their own (root), where no
other process's sockets can make a number inexact; the HTTP and textfile exporters run as real
processes on the host's loopback.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TCPSTATES, Cli, Netns
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as text_format_families
from zoo import Sockets, free_port

from tcpstates.export import metrics
from tcpstates.export import render as openmetrics
from tcpstates.export import run as export_command
from tcpstates.export import server as metrics_server
from tcpstates.export.metrics import (
    BREAKDOWNS,
    BY,
    OVERFLOW,
    MetricFamily,
    MetricType,
    Sample,
    Selection,
    cap_series,
    collect,
    state_label,
)
from tcpstates.export.render import exposition, render_openmetrics
from tcpstates.export.run import parse_listen, write_openmetrics
from tcpstates.model.errors import SourceError, UsageError
from tcpstates.model.query import Query
from tcpstates.model.states import TcpState
from tcpstates.sources.netlink import NetlinkSource
from tcpstates.summary.counts import TCP_STATES

TESTS = Path(__file__).parent
# The CLI as the console script runs it, on an interpreter where `import prometheus_client`
# fails as if it were not installed.
WITHOUT_CLIENT = (
    sys.executable,
    "-c",
    'import sys; sys.modules["prometheus_client"] = None\n'
    "from tcpstates.cli.root import run\n"
    "sys.exit(run(sys.argv[1:]))\n",
)
# node_exporter's label values: collector/tcpstat_linux.go, tcpConnectionState.String, states 1-11.
NODE_VALUES = [
    "established",
    "syn_sent",
    "syn_recv",
    "fin_wait1",
    "fin_wait2",
    "time_wait",
    "close",
    "close_wait",
    "last_ack",
    "listen",
    "closing",
]


def parse(text: str) -> dict[str, Any]:
    """Family name -> the family, as prometheus_client's OpenMetrics parser reads the text."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def values(family: Any, label: str) -> dict[str, float]:
    return {sample.labels[label]: sample.value for sample in family.samples}


# -- running a function of this module inside a new network namespace ------------------------


def in_new_netns(space: Netns, name: str, *args: Any) -> Any:
    """Call ``name(*args)`` in a fresh interpreter in the network namespace ``space``; its
    result, which must be JSON, comes back here, where the assertions are made."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "import test_metrics\n"
        "result = getattr(test_metrics, sys.argv[1])(*json.loads(sys.argv[2]))\n"
        "print(json.dumps(result))\n"
    )
    done = space.run(sys.executable, "-c", code, name, json.dumps(args), check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _zoo_and_exposition() -> dict[str, Any]:
    """In the namespace: every state the zoo can build, the exposition, and ss's counts."""
    from ss_reader import ss_rows
    from zoo import Zoo

    from tcpstates.export.run import gather
    from tcpstates.sources.place import open_source

    query = Query(protos=frozenset({"tcp", "udp"}))
    with Zoo():
        texts = {
            name: exposition(gather(open_source(name), Selection(query)))
            for name in ("netlink", "procfs")
        }
        rows = [row for p in ("tcp", "udp") for row in ss_rows(p)]
    ss = [[row.proto, row.family, row.state] for row in rows]
    queued = [
        sum(r.recv_q for r in rows if r.proto == "tcp"),
        sum(r.send_q for r in rows if r.proto == "tcp"),
    ]
    return {"texts": texts, "ss": ss, "queued": queued}


def _listeners_capped(count: int, max_series: int) -> dict[str, Any]:
    sockets = Sockets()
    ports = sorted(sockets.listener().getsockname()[1] for _ in range(count))
    done = Cli().process("export", "--by", "local-port", "--max-series", str(max_series))
    sockets.close()
    return {"ports": ports, "status": done.returncode, "out": done.stdout, "err": done.stderr}


def _bound_address(listen: str) -> dict[str, Any]:
    """Start ``export --listen LISTEN``, and report where the kernel says it listens."""
    exporter = subprocess.Popen(
        (*TCPSTATES, "export", "--listen", listen), stderr=subprocess.PIPE, text=True
    )
    port = parse_listen(listen)[1]
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = subprocess.run(
                ["ss", "-tlnH", f"sport = :{port}"], capture_output=True, text=True
            ).stdout.split()
            if rows:
                return {"local": rows[3]}
            time.sleep(0.05)
        return {"local": None}
    finally:
        exporter.send_signal(signal.SIGTERM)
        exporter.wait(timeout=10)


# -- the library and the renderer ------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [metrics, openmetrics, export_command, metrics_server],
)
def test_docstring_examples(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_node_exporter_label_values() -> None:
    # node_exporter's states are the summary's: ESTABLISHED (1) ... CLOSING (11)
    assert [state_label(state, "tcp") for state in TCP_STATES] == NODE_VALUES
    assert [state.value for state in TCP_STATES] == list(range(1, 12))


def test_both_by_options_offer_the_one_engines_keys() -> None:
    import click

    from tcpstates.cli.root import cli
    from tcpstates.export.command import export
    from tcpstates.summary.groups import BY as GROUP_BY
    from tcpstates.summary.groups import KEYS

    def choices(command: click.Command) -> tuple[str, ...]:
        (by,) = [p for p in command.params if p.name == "by"]
        assert isinstance(by.type, click.Choice)
        return tuple(by.type.choices)

    assert choices(cli) == GROUP_BY == tuple(KEYS)  # --summary --by, -o openmetrics --by
    assert choices(export) == BY == tuple(BREAKDOWNS)  # export --by
    assert set(BY) < set(GROUP_BY)
    assert all(BREAKDOWNS[name].by is KEYS[name] for name in BY)  # one engine


def test_label_values_and_help_are_escaped() -> None:
    awkward = 'back\\slash "quoted"\nnew line, ünï'
    family = MetricFamily(
        "tcpstates_test",
        "Help with \\ and a\nline feed.",
        MetricType.GAUGE,
        (Sample((("process", awkward),), 3), Sample((("process", "plain"),), 0.5)),
    )
    out = io.StringIO()
    render_openmetrics([family], out)
    text = out.getvalue()
    assert text.endswith("\n# EOF\n")
    # A line feed, like any control character, is spelled out (\x0a) rather than escaped as
    # \n: the exposition is read in terminals too, so none of them travels raw or comes back.
    assert 'tcpstates_test{process="back\\\\slash \\"quoted\\"\\\\x0anew line, ünï"} 3\n' in text
    parsed = parse(text)["tcpstates_test"]
    assert parsed.documentation == "Help with \\ and a\\x0aline feed."
    shown = awkward.replace("\n", "\\x0a")
    assert values(parsed, "process") == {shown: 3, "plain": 0.5}


def test_the_default_metrics_build_no_socket_records() -> None:
    class CountOnly(NetlinkSource):
        def read(self, query: Query, owners: bool = False) -> Any:
            raise AssertionError("records were built for the default metrics")

    families = {f.name: f for f in collect(CountOnly(), Selection())}
    assert {"node_tcp_connection_states", "tcpstates_sockets"} <= set(families)
    with pytest.raises(AssertionError, match="records were built"):
        collect(CountOnly(), Selection(by=("local-port",)))


def test_the_cap_keeps_whole_groups_largest_first() -> None:
    counts: Counter[tuple[str, str, TcpState]] = Counter(
        {
            ("tcp", "443", TcpState.ESTABLISHED): 50,
            ("tcp", "443", TcpState.TIME_WAIT): 20,
            ("tcp", "443", TcpState.LISTEN): 1,
            ("tcp", "22", TcpState.ESTABLISHED): 3,
            ("tcp", "22", TcpState.LISTEN): 1,
            ("tcp", "8080", TcpState.LISTEN): 1,
            ("tcp", "9090", TcpState.LISTEN): 1,
            ("udp", "53", TcpState.CLOSE): 1,
        }
    )
    kept, overflow, folded = cap_series(counts, max_series=5)
    # 443 (3 label sets) and 22 (2) fit in 5; 53, 8080 and 9090 (one socket each) do not.
    assert [(group, state.name, n) for (_, group, state), n in kept] == [
        ("443", "ESTABLISHED", 50),
        ("443", "TIME_WAIT", 20),
        ("443", "LISTEN", 1),
        ("22", "ESTABLISHED", 3),
        ("22", "LISTEN", 1),
    ]
    assert overflow == [
        (("tcp", OVERFLOW, TcpState.LISTEN), 2),
        (("udp", OVERFLOW, TcpState.CLOSE), 1),
    ]
    assert folded == 3
    everything, overflow, folded = cap_series(counts, max_series=100)
    assert len(everything) == len(counts) and overflow == [] and folded == 0


def test_a_selection_refuses_what_it_cannot_count() -> None:
    with pytest.raises(ValueError, match="cannot break down by 'remote'"):
        Selection(by=("remote",))
    with pytest.raises(ValueError, match="at least 1"):
        Selection(max_series=0)


def test_listen_addresses() -> None:
    assert parse_listen(":9977") == ("127.0.0.1", 9977)
    assert parse_listen("9977") == ("127.0.0.1", 9977)
    assert parse_listen("0.0.0.0:9977") == ("0.0.0.0", 9977)
    assert parse_listen("[::1]:9977") == ("::1", 9977)
    for bad in ("::1:9977", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http", ""):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_what_dash_o_openmetrics_prints(sockets) -> None:
    out = io.StringIO()
    port = str(sockets.listener().getsockname()[1])
    write_openmetrics(NetlinkSource(), Query(), out, by=["local-port"], max_series=65536)
    families = parse(out.getvalue())
    assert values(families["tcpstates_sockets_by_local_port"], "local_port")[port] == 1
    with pytest.raises(UsageError, match="cannot break down by 'remote'"):
        write_openmetrics(NetlinkSource(), Query(), out, by=["remote"])


def test_a_source_failing_mid_run_answers_500_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def failing() -> tuple[MetricFamily, ...]:
        raise SourceError("netlink sock_diag refused the dump: Operation not permitted (EPERM)")

    listener = metrics_server.listen(("127.0.0.1", 0))
    server = metrics_server.MetricsServer(listener, metrics_server.metrics_handler(failing))
    try:
        with socket.create_connection(listener.getsockname()[:2], timeout=5) as client:
            client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            server.step(1.0)
            answer = client.recv(4096).decode()
    finally:
        server.close()
    assert answer.startswith("HTTP/1.1 500 Internal Server Error\r\n")
    assert answer.endswith(
        "\r\n\r\nnetlink sock_diag refused the dump: Operation not permitted (EPERM)\n"
    )
    assert capsys.readouterr().err == (
        "tcpstates: netlink sock_diag refused the dump: Operation not permitted (EPERM)\n"
    )


# -- counts against ss, in a namespace of our own --------------------------------------------


def test_the_exposition_parses_and_counts_what_ss_counts(netns) -> None:
    result = in_new_netns(netns("metrics"), "_zoo_and_exposition")
    ss = Counter((proto, family, state) for proto, family, state in result["ss"])
    for source, text in result["texts"].items():
        assert text.endswith("\n# EOF\n"), source
        families = parse(text)
        # node_exporter: TCP of both families summed, only the states that have sockets.
        node = values(families["node_tcp_connection_states"], "state")
        # node_exporter's byte sums, which only netlink's count can give without records.
        queued = [node.pop("rx_queued_bytes", None), node.pop("tx_queued_bytes", None)]
        assert queued == (result["queued"] if source == "netlink" else [None, None]), source
        expected: Counter[str] = Counter()
        for (proto, _, state), n in ss.items():
            if proto == "tcp":
                expected[state.lower()] += n
        assert node == dict(expected), source
        assert set(node) <= set(NODE_VALUES) and "close" not in node
        assert len(node) == 10  # every state but CLOSE, which the zoo cannot build
        # tcpstates_sockets: every state of every family, zeros included.
        sockets = {
            (s.labels["proto"], s.labels["family"], s.labels["state"]): s.value
            for s in families["tcpstates_sockets"].samples
        }
        assert len(sockets) == 2 * 11 + 2 * 2
        for (proto, family, state), n in sockets.items():
            assert n == ss[proto, int(family[-1]), state.upper()], (source, proto, family, state)
        assert families["tcpstates_ephemeral_ports"].samples[0].value == 60999 - 32768 + 1
        assert families["tcpstates_scrape_duration_seconds"].unit == "seconds"


def test_the_series_cap_is_honoured(netns) -> None:
    result = in_new_netns(netns("metrics"), "_listeners_capped", 30, 10)
    assert result["status"] == 0 and result["err"] == ""
    families = parse(result["out"])
    ports = values(families["tcpstates_sockets_by_local_port"], "local_port")
    # Equal groups go by port number: the ten lowest ports stay, the other 20 are folded.
    assert ports == {**{str(p): 1 for p in result["ports"][:10]}, OVERFLOW: 20}
    dropped = values(families["tcpstates_series_dropped"], "metric")
    assert dropped == {"tcpstates_sockets_by_local_port": 20}


# -- the exporter over HTTP ------------------------------------------------------------------


@contextlib.contextmanager
def exporter(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``export --listen 127.0.0.1:PORT ARGS`` running, answering at the URL it yields."""
    port = free_port()
    process = subprocess.Popen(
        (*TCPSTATES, "export", "--listen", f"127.0.0.1:{port}", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 15
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the exporter never answered"
                time.sleep(0.05)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def scrape(url: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode(), response.headers["Content-Type"]


def test_a_real_scrape_over_http_then_sigterm_exits_0(sockets) -> None:
    listener = sockets.listener()
    port = listener.getsockname()[1]
    with exporter("--by", "local-port", "--max-series", "65536") as (process, url):
        text, kind = scrape(url, "application/openmetrics-text; version=1.0.0")
        assert kind.startswith("application/openmetrics-text")
        families = parse(text)
        assert values(families["tcpstates_sockets_by_local_port"], "local_port")[str(port)] >= 1
        assert values(families["node_tcp_connection_states"], "state")["listen"] >= 1
        # Prometheus's own text format too, which is what a plain Accept gets.
        plain, kind = scrape(url)
        assert kind.startswith("text/plain")
        names = {f.name for f in text_format_families(plain)}
        assert {"node_tcp_connection_states", "tcpstates_sockets"} <= names
        # Each scrape reads the sockets anew.
        listener.close()
        after = values(
            parse(scrape(url, "application/openmetrics-text")[0])[
                "tcpstates_sockets_by_local_port"
            ],
            "local_port",
        )
        assert str(port) not in after
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert err == f"tcpstates: serving {url}\n" and out == ""


def test_a_busy_port_is_one_line_and_status_1(cli, sockets) -> None:
    port = sockets.listener().getsockname()[1]
    done = cli.process("export", "--listen", f":{port}")
    assert done.returncode == 1
    assert done.stderr == f"tcpstates: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--listen", "::1:9977"), "put an IPv6 address in brackets"),
        (("--listen", "127.0.0.1:99999"), "a PORT from 1 to 65535"),
        (("--listen", ":9977", "--textfile", "x.prom"), "cannot be combined"),
        (("--interval", "5"), "--interval goes with --textfile"),
        (("--by", "remote"), "'remote' is not one of"),
        (("--max-series", "0"), "0 is not in the range"),
    ],
)
def test_usage_errors_exit_2_with_one_line(cli, args: tuple[str, ...], message: str) -> None:
    done = cli.process("export", *args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_non_loopback_only_when_asked_for(netns) -> None:
    port = 9977  # a namespace of our own: any port is free
    for listen, local in ((f":{port}", {f"127.0.0.1:{port}"}),
                          (f"0.0.0.0:{port}", {f"0.0.0.0:{port}"}),
                          (f"[::]:{port}", {f"*:{port}", f"[::]:{port}"})):  # fmt: skip
        assert in_new_netns(netns("metrics"), "_bound_address", listen)["local"] in local


def test_without_prometheus_client_every_export_works(tmp_path: Path) -> None:
    """prometheus_client is for the tests' parsers only: the exporter is standard library."""
    port = free_port()
    process = subprocess.Popen(
        (*WITHOUT_CLIENT, "export", "--listen", f"127.0.0.1:{port}"),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        assert process.stderr.readline() == f"tcpstates: serving http://127.0.0.1:{port}/metrics\n"
        text, _ = scrape(f"http://127.0.0.1:{port}/metrics", "application/openmetrics-text")
        assert "node_tcp_connection_states" in parse(text)
    finally:
        process.kill()
        process.communicate()
    done = subprocess.run([*WITHOUT_CLIENT, "export"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "node_tcp_connection_states" in parse(done.stdout)
    target = tmp_path / "tcpstates.prom"
    done = subprocess.run([*WITHOUT_CLIENT, "export", "--textfile", str(target)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "tcpstates_sockets" in parse(target.read_text())


# -- the textfile ----------------------------------------------------------------------------


def test_the_textfile_is_written_once_readable_by_others(cli, tmp_path: Path) -> None:
    target = tmp_path / "tcpstates.prom"
    done = cli.process("export", "--textfile", str(target))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert target.stat().st_mode & 0o777 == 0o644  # node_exporter runs as another user
    text = target.read_text()
    assert "node_tcp_connection_states" in parse(text)
    # node_exporter's textfile collector reads Prometheus's older text format, where `# UNIT`
    # and `# EOF` are comments: the same families come out.
    assert {f.name for f in text_format_families(text)} == set(parse(text))
    assert os.listdir(tmp_path) == ["tcpstates.prom"]  # no temporary file left behind


def test_an_unwritable_directory_is_one_line_and_status_1(cli, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "tcpstates.prom"
    done = cli.process("export", "--textfile", str(target))
    assert done.returncode == 1
    assert done.stderr == f"tcpstates: cannot write {target}: No such file or directory\n"


def read_while_rewritten(
    target: Path, seconds: float, enough: int = 200
) -> tuple[int, set[str], list[str]]:
    """Read ``target`` in a loop for ``seconds`` or until ``enough`` versions were seen:
    (reads, distinct contents, contents that were not whole)."""
    reads, seen, broken = 0, set(), []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(seen) < enough:
        try:
            text = target.read_text()
        except FileNotFoundError:
            continue  # not written yet
        reads += 1
        if text not in seen:
            seen.add(text)
            try:
                whole = text.endswith("\n# EOF\n") and bool(parse(text))
            except ValueError:
                whole = False
            if not whole:
                broken.append(text)
    return reads, seen, broken


@pytest.mark.slow
def test_the_textfile_is_never_seen_half_written(tmp_path: Path) -> None:
    target = tmp_path / "tcpstates.prom"
    # Every version differs (tcpstates_scrape_duration_seconds), so versions can be told apart.
    process = subprocess.Popen(
        (
            *TCPSTATES,
            "export",
            "--textfile",
            str(target),
            "--interval",
            "0.001",
            "--by",
            "local-port",
        ),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        reads, seen, broken = read_while_rewritten(target, 10.0)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    assert (process.returncode, err) == (0, "")
    assert broken == []
    assert len(seen) >= 20, "the reader never overlapped the writer: the test proved nothing"
    assert reads >= len(seen)
    assert os.listdir(tmp_path) == ["tcpstates.prom"]


def test_the_reader_does_catch_a_file_written_in_place(tmp_path: Path) -> None:
    """The check above can fail: a writer that rewrites the file in place is caught."""
    target = tmp_path / "naive.prom"
    text = exposition(collect(NetlinkSource(), Selection()))
    code = (
        "import sys\n"
        "path, text = sys.argv[1], sys.argv[2]\n"
        "while True:\n"
        "    with open(path, 'w') as f:\n"
        "        f.write(text[:200]); f.flush(); f.write(text[200:])\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code, str(target), text])
    try:
        _, _, broken = read_while_rewritten(target, 2.0)
    finally:
        writer.kill()
        writer.wait()
    assert broken, "a file rewritten in place was never seen half-written"


# -- a process name that needs escaping, end to end ------------------------------------------


def test_an_awkward_process_name_survives_the_round_trip(cli) -> None:
    name = 'we"ird\\na\nme'  # 13 bytes: comm keeps 15
    code = (
        "import ctypes, socket, sys\n"
        "ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME\n"
        "s = socket.create_server(('127.0.0.1', 0))\n"
        "print(s.getsockname()[1], flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        holder.stdout.readline()
        done = cli.process("export", "--by", "process", "--max-series", "65536")
    finally:
        holder.communicate("")
    assert done.returncode == 0, done.stderr
    processes = values(parse(done.stdout)["tcpstates_sockets_by_process"], "process")
    assert processes.get(name.replace("\n", "\\x0a"), 0) >= 1  # the line feed spelled out
    assert "\x07" not in done.stdout and "\n" not in name.replace("\n", "\\x0a")


@pytest.mark.parametrize("moment", ["created", "written"])
def test_a_stop_mid_write_leaves_the_new_file_whole_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    """SIGTERM (a service manager's stop) arriving just after the temporary file is created,
    or while it is written, takes effect once the file is in place: never a temporary left
    behind (it was, now and then, in test_the_textfile_is_never_seen_half_written)."""
    from tcpstates.cli.signals import terminate_as_interrupt
    from tcpstates.export import textfile

    target = tmp_path / "tcpstates.prom"
    target.write_text("old\n")
    # Just after the temporary file is made, or while it is written (os.fsync).
    where, name = (textfile, "_create_temporary") if moment == "created" else (os, "fsync")
    real = getattr(where, name)

    def then_stopped(*args: Any, **kwargs: Any) -> Any:
        done = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return done

    with monkeypatch.context() as patched, terminate_as_interrupt():
        patched.setattr(where, name, then_stopped)
        with pytest.raises(KeyboardInterrupt):
            textfile.write_atomically(str(target), "new\n")
    assert os.listdir(tmp_path) == ["tcpstates.prom"]
    assert target.read_text() == "new\n"
