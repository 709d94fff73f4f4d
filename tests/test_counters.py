"""tcpstates counters: the kernel's counters as nstat reads them, per namespace, over an interval.

The namespaces these tests make are quiet (nothing runs in them but what a test starts), so a
counter there changes by exactly what the test did, and nstat reads the same values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from terminal import table_lines, terminal

from tcpstates.counters.values import nstat_values, rows, wanted
from tcpstates.sources.kernel import KernelState

TCPSTATES = [sys.executable, "-m", "tcpstates"]

CONNECT = """
import socket, sys
server = socket.create_server(("127.0.0.1", 0))
for _ in range(int(sys.argv[1])):
    client = socket.create_connection(server.getsockname())
    server.accept()[0].close()
    client.close()
"""


def connect(space, n: int) -> None:
    """``n`` loopback connections made and closed inside ``space``."""
    space.run(sys.executable, "-c", CONNECT, str(n), timeout=30)


def as_json(*args: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run([*TCPSTATES, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_counters_are_what_nstat_reads_in_the_same_namespace(netns, tmp_path) -> None:
    space = netns("counters")
    connect(space, 5)
    ours = as_json("--netns", space.name, "counters", "-z", "*", "-o", "json")
    history = {"NSTAT_HISTORY": str(tmp_path / "nstat.history")}
    done = subprocess.run(
        space.argv("nstat", "-a", "-z", "-s", "-j"),
        capture_output=True, text=True, timeout=30, env={**os.environ, **history},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)["kernel"]
    values = {c["name"]: c["value"] for c in ours["counters"]}
    both = values.keys() & theirs.keys()
    assert {"TcpActiveOpens", "TcpExtListenOverflows", "TcpExtSyncookiesSent"} <= both
    assert {name: values[name] for name in both} == {name: theirs[name] for name in both}
    assert values["TcpActiveOpens"] == 5 and values["TcpPassiveOpens"] == 5
    assert ours["scope"] == "namespace"
    assert ours["since"] == "since the network namespace was created"


def test_a_change_over_the_interval_is_what_happened_in_it(netns) -> None:
    space = netns("counters")
    argv = [*TCPSTATES, "--netns", space.name, "counters", "--interval", "3", "-o", "json"]
    reading = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.8)  # the first reading is taken at once; the connections come after it
    connect(space, 7)
    out, err = reading.communicate(timeout=30)
    assert reading.returncode == 0, err
    found = {c["name"]: c for c in json.loads(out)["counters"]}
    opens = found["TcpActiveOpens"]
    assert opens["delta"] == 7 and opens["value"] == 7
    assert found["TcpPassiveOpens"]["delta"] == 7
    seconds = json.loads(out)["interval_s"]
    assert 3 <= seconds < 4 and opens["rate"] == pytest.approx(7 / seconds, abs=0.01)
    assert "TcpCurrEstab" not in found or found["TcpCurrEstab"]["rate"] is None  # a level


def test_a_quiet_namespace_says_nothing_changed_in_words(netns) -> None:
    space = netns("counters")
    done = subprocess.run(
        [*TCPSTATES, "--netns", space.name, "counters", "--interval", "0.3"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    heading, rest = done.stdout.split("\n", 1)
    assert heading.startswith("Change over 0.3") and "since the network namespace" in heading
    assert "since boot" not in done.stdout
    assert rest.startswith("None to show")


def test_patterns_select_in_any_case_and_a_name_typed_whole_shows_at_zero() -> None:
    kernel = KernelState(
        {"TcpExt.ListenOverflows": 0, "TcpExt.ListenDrops": 3, "Tcp.ActiveOpens": 9,
         "Udp.NoPorts": 4, "Tcp.RtoMin": 200},
        {},
    )  # fmt: skip
    now = nstat_values(kernel)
    assert list(now) == ["TcpActiveOpens", "TcpRtoMin", "UdpNoPorts", "TcpExtListenOverflows",
                         "TcpExtListenDrops"]  # fmt: skip  # netstat -s's order of groups
    assert wanted(list(now), []) == [
        "TcpActiveOpens", "TcpRtoMin", "TcpExtListenOverflows", "TcpExtListenDrops"
    ]  # fmt: skip
    assert wanted(list(now), ["tcpextlisten*"]) == ["TcpExtListenOverflows", "TcpExtListenDrops"]
    names = wanted(list(now), ["*"])
    shown = [r.name for r in rows(None, now, names, None)]
    assert shown == ["TcpActiveOpens", "UdpNoPorts", "TcpExtListenDrops"]  # no 0, no constant
    named = rows(None, now, names, None, frozenset({"TcpExtListenOverflows"}))
    assert "TcpExtListenOverflows" in [r.name for r in named]
    earlier = {**now, "TcpExtListenDrops": 1, "TcpActiveOpens": 9}
    moved = rows(earlier, now, names, 2.0)
    assert [(r.name, r.delta, r.rate) for r in moved] == [("TcpExtListenDrops", 2, 1.0)]


@pytest.mark.parametrize(
    ("args", "status", "said"),
    [
        (["counters", "NoSuchCounter"], 1, "no counter matches 'NoSuchCounter'"),
        (["counters", "--interval", "0"], 2, "not a number of seconds"),
        (["counters", "--interval", "nan"], 2, "not a number of seconds"),
        (["--all-netns", "counters"], 2, "--all-netns does not apply to counters"),
        (["counters", "--source", "procfs"], 2, "No such option"),
        (["--netns", "tcpstates-no-such-namespace", "counters"], 1, "tcpstates-no-such"),
    ],
)
def test_bad_input_is_one_line(args, status, said) -> None:
    done = subprocess.run([*TCPSTATES, *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == status, done.stderr
    assert said in done.stderr and done.stderr.count("\n") == 1 and not done.stdout


def test_a_capture_is_one_moment(tmp_path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text("")
    (tmp_path / "net" / "netstat").write_text("TcpExt: ListenOverflows\nTcpExt: 12\n")
    done = subprocess.run(
        [*TCPSTATES, "counters", "--from", str(tmp_path), "-o", "plain"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Totals up to the capture")
    assert "TcpExtListenOverflows     12" in done.stdout
    refused = subprocess.run(
        [*TCPSTATES, "counters", "--from", str(tmp_path), "--interval", "1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode == 2 and "a capture is one moment" in refused.stderr


def test_this_namespace_is_readable_by_anyone() -> None:
    # /proc/net/snmp and netstat are world-readable: no privilege needed, as nobody too.
    found = as_json("counters", "-o", "json", "TcpActiveOpens")
    (opens,) = found["counters"]
    assert opens["name"] == "TcpActiveOpens" and opens["value"] >= 0
    assert found["scope"] in ("host", "unsure") and "meaning" in opens


@pytest.mark.parametrize("width", [60, 80, 200])
def test_the_table_fits_the_terminal_and_never_cuts_a_name(width) -> None:
    names = ["TcpExtListenOverflows", "TcpActiveOpens", "TcpExtTCPAbortOnData"]
    argv = [*TCPSTATES, "counters", "--no-pager", "-z", *names]
    with terminal(argv, width, 40) as term:
        term.wait_for("EXIT=")
        lines = [line for line in table_lines(term.joined_lines()) if line]
    assert max(map(len, lines)) <= width, "\n".join(lines)
    assert lines[0].startswith("Totals since")
    for name in names:
        assert any(line.split() and line.split()[0] == name for line in lines), lines
    assert any("accept queue" in line for line in lines)  # meanings wrap, not vanish


def test_export_publishes_node_exporters_netstat_counters_but_not_into_a_textfile(
    tmp_path,
) -> None:
    from tcpstates.sources.kernel import read_kernel

    before = read_kernel().counters["Tcp.ActiveOpens"]
    text = subprocess.run(
        [*TCPSTATES, "export"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    after = read_kernel().counters["Tcp.ActiveOpens"]
    assert "# TYPE node_netstat_Tcp_ActiveOpens unknown\n" in text
    assert "# HELP node_netstat_TcpExt_ListenOverflows Statistic TcpExtListenOverflows.\n" in text
    (line,) = [x for x in text.splitlines() if x.startswith("node_netstat_Tcp_ActiveOpens ")]
    assert before <= int(line.split()[1]) <= after
    assert "node_netstat_TcpExt_TCPAbortOnData" not in text  # not one node_exporter publishes
    path = tmp_path / "tcpstates.prom"
    subprocess.run([*TCPSTATES, "export", "--textfile", str(path)], check=True, timeout=30)
    written = path.read_text()
    assert "node_tcp_connection_states" in written and "node_netstat_" not in written


def test_prometheus_text_format_calls_the_counters_untyped() -> None:
    from tcpstates.export.metrics import netstat_families
    from tcpstates.export.render import Format, exposition

    families = list(netstat_families({"TcpExt.ListenDrops": 3, "TcpExt.TW": 1}))
    assert [f.name for f in families] == ["node_netstat_TcpExt_ListenDrops"]
    assert "# TYPE node_netstat_TcpExt_ListenDrops untyped\n" in exposition(families, Format.TEXT)
    assert "# TYPE node_netstat_TcpExt_ListenDrops unknown\n" in exposition(families)


def test_a_captures_counter_names_are_shown_as_written_never_as_markup(tmp_path) -> None:
    # A capture comes from another host: a "counter" named like Rich markup must not style
    # (or hide) anything on this terminal.
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text("")
    (tmp_path / "net" / "netstat").write_text("TcpExt: [red]Evil[/red] [link=x]L\nTcpExt: 5 6\n")
    done = subprocess.run(
        [*TCPSTATES, "counters", "--from", str(tmp_path), "-o", "table", "--color", "always"],
        capture_output=True, text=True, timeout=30, env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "TcpExt[red]Evil[/red]" in done.stdout and "TcpExt[link=x]L" in done.stdout
    assert "\x1b[31m" not in done.stdout and "\x1b]8;" not in done.stdout
