"""The answers issue "One command model" found wrong, on real sockets in namespaces made here.

Each command reads the place it was given (never the host instead), options typed before a
subcommand reach it, and what cannot apply is refused in one line instead of being ignored.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest
from conftest import Netns

HOLD = """
import socket, sys, time
listener = socket.create_server(("127.0.0.1", 18080))
clients = [socket.create_connection(("127.0.0.1", 18080)) for _ in range(int(sys.argv[1]))]
for _ in clients:
    listener.accept()[0].close()  # the server closes: each client is left in CLOSE_WAIT
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="module")
def two_namespaces(netns: Callable[[str], Netns]) -> dict[str, int]:
    """Two namespaces, each with a listener on 18080 and its own number of CLOSE_WAIT sockets.
    The holders are killed with their namespaces by the netns fixture."""
    piles = {}
    for label, n in (("model-a", 3), ("model-b", 5)):
        space = netns(label)
        holder = space.popen(
            sys.executable, "-c", HOLD, str(n), stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        piles[space.name] = n
    return piles


def _json(done: subprocess.CompletedProcess[str]) -> object:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_doctor_diagnoses_the_namespace_named_before_or_after_it(cli, two_namespaces) -> None:
    for name, pile in two_namespaces.items():
        for args in (("--netns", name, "doctor"), ("doctor", "--netns", name)):
            report = _json(cli.process(*args, "-o", "json"))
            titles = [f["title"] for f in report["findings"]]  # type: ignore[index]
            assert any(t.startswith(f"{pile} CLOSE_WAIT sockets") for t in titles), (args, titles)
            nexts = [f["next"] for f in report["findings"]]  # type: ignore[index]
            assert all(n.startswith(f"tcpstates --netns {name} ") for n in nexts), nexts


def test_explain_counts_the_namespace_and_fails_on_one_that_is_not_there(
    cli, two_namespaces
) -> None:
    for name, pile in two_namespaces.items():
        explained = _json(cli.process("--netns", name, "--explain", "CLOSE_WAIT", "-o", "json"))
        assert explained["count"] == pile  # type: ignore[index]
    missing = cli.process("--netns", "tcpstates-model-nosuch", "--explain", "TIME_WAIT")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert (
        missing.stderr
        == "tcpstates: no network namespace named 'tcpstates-model-nosuch' in /run/netns\n"
    )


def test_export_counts_the_namespace(cli, two_namespaces) -> None:
    for name, pile in two_namespaces.items():
        for args in (("--netns", name, "export"), ("export", "--netns", name)):
            done = cli.process(*args)
            assert done.returncode == 0, done.stderr
            assert f'node_tcp_connection_states{{state="close_wait"}} {pile}\n' in done.stdout


def test_breakdowns_keep_namespaces_apart(cli, two_namespaces) -> None:
    # The same port in two "containers" is two groups, never one of 8.
    done = cli.process("--all-netns", "--by", "local-port", "-s", "listen", "-o", "json")
    groups = _json(done)
    mine = {label: g for label, g in groups.items() if any(n in label for n in two_namespaces)}  # type: ignore[union-attr]
    assert len(mine) == 2
    for listed in mine.values():
        assert [(g["local-port"], g["total"]) for g in listed] == [("18080", 1)]


def test_an_end_in_several_namespaces_is_explained_naming_each(cli, two_namespaces) -> None:
    # The same 127.0.0.1:18080 in two namespaces: each account says which one it is in.
    done = cli.process("--all-netns", "--explain", "127.0.0.1:18080", "-o", "plain")
    assert done.returncode == 0, done.stderr
    titles = [a for a in done.stdout.split("\n\n") if "127.0.0.1:18080 -> 0.0.0.0:*" in a]
    named = {line.split("(")[-1] for a in titles for line in a.splitlines()[1:2]}
    assert {f"{name})" for name in two_namespaces} <= named, done.stdout


@pytest.mark.parametrize("source", ["psutil", "procfs", "netlink"])
def test_a_namespace_read_by_any_source_shows_the_owners(cli, two_namespaces, source) -> None:
    # psutil gives no inodes, which the owner scan after the read matches by: once, no owners.
    name = next(iter(two_namespaces))
    done = cli.process("--netns", name, "--source", source, "-s", "listen", "-o", "json")
    (listener,) = _json(done)  # type: ignore[misc]
    assert listener["pid"] is not None and listener["process"], listener


def test_the_more_sockets_hint_is_the_command_that_lists_them() -> None:
    from tcpstates.explain import render_sockets
    from tcpstates.explain.sockets import Target, accounts
    from tcpstates.model.sockets import Socket
    from tcpstates.model.states import TcpState

    many = [
        Socket("tcp", 4, "127.0.0.1", 7, "127.0.0.1", 40000 + n, TcpState.CLOSE_WAIT,
               0, 0, 0, 0, None, None, netns=4026532174)
        for n in range(25)
    ]  # fmt: skip
    text = render_sockets.accounts_text(
        accounts(many, Target(7)), 100, {4026532174: "4026532174 (web)"},
        "tcpstates --all-netns --port 7",
    )  # fmt: skip
    assert "... and 5 more sockets (tcpstates --all-netns --port 7 lists them)" in text
    assert text.count("  in network namespace 4026532174 (web)\n") == 20


def test_a_capture_is_diagnosed_and_explained_from_itself(cli, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    explained = cli.process("--from", str(empty), "--explain", "TIME_WAIT", "-o", "json")
    assert explained.returncode == 1 and explained.stdout == ""  # never the live host's count
    doctor = cli.process("--from", "tests/data/proc-little", "doctor", "-o", "json")
    assert doctor.returncode == 0, doctor.stderr
    assert "checks that need the kernel's settings and counters were skipped" in doctor.stderr


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--save", "{dir}", "--summary"], "--summary does not apply to --save"),
        (["--watch", "1", "-o", "openmetrics"], "-o openmetrics does not apply to --watch"),
        (["--watch", "1", "--by", "process"], "--by does not apply to --watch"),
        (["--summary", "-o", "csv"], "-o csv does not apply to --summary"),
        (["--by", "process", "-o", "csv"], "-o csv does not apply to --by"),
        (["-u", "trace"], "--udp does not apply to trace: the tracepoint sees TCP only"),
        (["--summary", "doctor"], "--summary does not apply to doctor"),
        (["-o", "csv", "doctor"], "-o csv does not apply to doctor"),
        (["--netns", "x", "--from", "y"], "--netns and --from name two places to read"),
        (["-o", "json", "export", "--by", "process"], "--format does not apply to export"),
        (["export", "--max-series", "5"], "--max-series caps the --by metrics"),
        (["--lang", "id", "-s", "listen"], "--lang does not apply to a listing"),
        (["-o", "json", "doctor", "-o", "plain"], "--format is given before and after doctor"),
        (["-W", "--summary"], "--wide does not apply to --summary"),
        (["-W", "doctor"], "--wide does not apply to doctor"),
        (["-W", "-o", "json"], "--wide does not apply to -o json: only a table is fitted"),
        (["trace", "-W", "-o", "jsonl"], "--wide does not apply to -o jsonl: only -o plain"),
        (["--watch", "1", "--summary", "-W"], "--wide does not apply to --watch: counts have"),
        # The root's --by takes breakdowns export does not: once a traceback, exit 1.
        (["--by", "remote", "export"], "--by remote does not apply to export"),
        (["--by", "state-group", "export"], "--by state-group does not apply to export"),
        # Once accepted: every frame read the same capture again, and nothing ever changed.
        (["--watch", "1", "--from", "tests/data/proc-little"], "--from does not apply to"),
        (["--watch", "1", "--summary", "--from", "tests/data/proc-little"], "--from does not"),
    ],
)
def test_what_cannot_apply_is_refused_in_one_line(cli, tmp_path, args, line) -> None:
    target = tmp_path / "capture"
    done = cli.process(*[a.format(dir=target) for a in args])
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr.startswith(f"tcpstates: {line}") and done.stderr.count("\n") == 1
    assert not target.exists()  # a refused --save writes nothing


def test_export_counts_udp_with_u_and_honours_a_filter_typed_before_it(cli, sockets) -> None:
    # export's -u once filled a field the table did not know, and was refused: a real run.
    bound = sockets.udp()
    listener = sockets.listener()
    port, udp_port = listener.getsockname()[1], bound.getsockname()[1]
    counted = cli("export", "-u")
    assert counted.returncode == 0, counted.stderr
    unconn = 'tcpstates_sockets{proto="udp",family="ipv4",state="unconn"} '
    assert int(counted.stdout.split(unconn)[1].split()[0]) >= 1
    one = cli("--port", str(port), "export")
    assert one.returncode == 0, one.stderr
    assert 'node_tcp_connection_states{state="listen"} 1\n' in one.stdout
    udp_only = cli("--port", str(udp_port), "-u", "export")
    assert 'tcpstates_sockets{proto="udp",family="ipv4",state="unconn"} 1\n' in udp_only.stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_export_says_its_source_with_v_typed_before_or_after(cli, where: str) -> None:
    # -v was once taken by export and dropped: the exposition alone, as without it.
    args = ["-v", "export"] if where == "before" else ["export", "-v"]
    said, quiet = cli(*args), cli("export")
    assert said.returncode == quiet.returncode == 0, said.stderr + quiet.stderr
    assert "tcpstates: reading sockets with " in said.stderr
    assert "reading sockets with" not in quiet.stderr
