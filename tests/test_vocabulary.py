"""Every name for a state: each vocabulary round-trips, and --explain tells a code from a port."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpstates.explain.sockets import Target, parse_target
from tcpstates.explain.states import name_clashes, names_dict
from tcpstates.model.states import TcpState, is_state_code, names, parse_state, windows_state

S = TcpState
VOCABULARIES = (
    "netstat", "ss", "kernel", "proc_hex", "psutil", "node_exporter", "rfc9293", "windows",
    "windows_mib",
)  # fmt: skip


@pytest.mark.parametrize("state", list(TcpState), ids=lambda s: s.name)
def test_every_vocabulary_round_trips_to_the_same_state(state: TcpState) -> None:
    n = names(state)
    spelled = {v: getattr(n, v) for v in VOCABULARIES if getattr(n, v) is not None}
    assert spelled["netstat"] == state.name
    for vocabulary, name in spelled.items():
        assert parse_state(name) is state, (vocabulary, name)
        assert parse_state(name.lower()) is state, (vocabulary, name)


def test_the_names_the_issue_lists() -> None:
    tw = names(S.TIME_WAIT)
    assert (tw.netstat, tw.ss, tw.kernel, tw.code, tw.proc_hex) == (
        "TIME_WAIT", "TIME-WAIT", "TCP_TIME_WAIT", 6, "06",
    )  # fmt: skip
    assert (tw.psutil, tw.node_exporter, tw.rfc9293) == ("CONN_TIME_WAIT", "time_wait", "TIME-WAIT")
    assert (tw.windows, tw.windows_mib, tw.windows_code) == (
        "TimeWait", "MIB_TCP_STATE_TIME_WAIT", 11,
    )  # fmt: skip
    assert names(S.ESTABLISHED).ss == "ESTAB" and names(S.CLOSE).ss == "UNCONN"
    assert names(S.SYN_RECV).rfc9293 == "SYN-RECEIVED"
    assert names(S.SYN_RECV).windows_mib == "MIB_TCP_STATE_SYN_RCVD"


def test_windows_numbers_follow_mib_tcp_state() -> None:
    # learn.microsoft.com, MIB_TCP_STATE: CLOSED 1 ... TIME_WAIT 11, DELETE_TCB 12.
    order = ["CLOSE", "LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2",
             "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT"]  # fmt: skip
    assert [names(S[name]).windows_code for name in order] == list(range(1, 12))
    assert windows_state(12) == "DeleteTcb" and windows_state(11) == "TimeWait"
    # psutil's source shows Windows' DELETE_TCB as CLOSE; the names agree.
    assert parse_state("DeleteTcb") is S.CLOSE is parse_state("MIB_TCP_STATE_DELETE_TCB")


def test_code_12_is_not_the_same_state_on_windows_and_linux() -> None:
    note = name_clashes(S.NEW_SYN_RECV)
    assert note is not None and "Linux's 12 is DeleteTcb on Windows" in note
    assert "Windows' 11 is CLOSING on Linux" in (name_clashes(S.TIME_WAIT) or "")
    assert name_clashes(S.CLOSE_WAIT) is None  # 8 on both


def test_linux_only_and_unknown_states_have_no_foreign_names() -> None:
    for state in (S.NEW_SYN_RECV, S.BOUND_INACTIVE, S.UNKNOWN):
        n = names(state)
        assert (n.psutil, n.node_exporter, n.rfc9293, n.windows) == (None, None, None, None)
    assert names(S.UNKNOWN).kernel is None and names(S.UNKNOWN).proc_hex is None


@pytest.mark.parametrize(
    ("text", "state"),
    [("06", S.TIME_WAIT), ("0A", S.LISTEN), ("0a", S.LISTEN), ("0x0a", S.LISTEN),
     ("0x6", S.TIME_WAIT), ("0C", S.NEW_SYN_RECV), ("0D", S.BOUND_INACTIVE), ("01", S.ESTABLISHED)],
)  # fmt: skip
def test_state_codes_as_proc_net_tcp_prints_them(text: str, state: TcpState) -> None:
    assert is_state_code(text) and parse_state(text) is state


@given(
    st.tuples(
        st.sampled_from(["", " ", "\t", "\u00a0"]),
        st.sampled_from(["", "0", "1", "a"]),
        st.sampled_from(["", "x", "X"]),
        st.text(alphabet="09aAfFgG:\u0660", max_size=3),
        st.sampled_from(["", " ", "\n"]),
    ).map("".join)
)
@settings(max_examples=2000)  # a thousandth of a second each
def test_a_state_code_is_what_its_pattern_says(text: str) -> None:
    # is_state_code spares a listing the import of re; it must say what the pattern says.
    pattern = r"0[0-9A-Fa-f]|0[xX][0-9A-Fa-f]{1,2}"
    assert is_state_code(text) == (re.fullmatch(pattern, text.strip()) is not None)


@pytest.mark.parametrize(
    ("text", "target"),
    [("22", Target(22)), ("6", Target(6)), (":6", Target(6)), ("*:6", Target(6)),
     ("080", Target(80)), ("8080", Target(8080)), ("127.0.0.1:6", Target(6, "127.0.0.1"))],
)  # fmt: skip
def test_numbers_that_are_ports(text: str, target: Target) -> None:
    assert not is_state_code(text)
    with pytest.raises(ValueError):
        parse_state(text)
    assert parse_target(text) == target


def test_explain_06_is_time_wait_and_shows_every_name(cli) -> None:
    result = cli("--explain", "06", "-o", "plain")
    assert result.returncode == 0
    text = result.stdout
    assert text.startswith("TIME_WAIT (ss: TIME-WAIT, kernel: TCP_TIME_WAIT = 6")
    names_section = text.split("Every name for it\n", 1)[1]
    for line in (
        "  netstat        TIME_WAIT",
        "  ss             TIME-WAIT",
        "  kernel         TCP_TIME_WAIT = 6; 06 in /proc/net/tcp",
        "  psutil         CONN_TIME_WAIT",
        "  node_exporter  time_wait",
        "  RFC 9293       TIME-WAIT",
        "  Windows        TimeWait, MIB_TCP_STATE_TIME_WAIT = 11",
    ):
        assert line + "\n" in names_section
    assert "Windows' 11 is CLOSING on Linux" in " ".join(names_section.split())


@pytest.mark.parametrize("spelling", ["CONN_CLOSE_WAIT", "close_wait", "CloseWait", "08",
                                      "MIB_TCP_STATE_CLOSE_WAIT", "TCP_CLOSE_WAIT"])  # fmt: skip
def test_explain_accepts_every_vocabulary(cli, spelling: str) -> None:
    data = json.loads(cli("--explain", spelling, "-o", "json").stdout)
    assert data["state"] == "CLOSE_WAIT"
    assert data["names"] == names_dict(S.CLOSE_WAIT)
    assert data["names"]["windows_code"] == 8 and data["names"]["proc_net_tcp"] == "08"


def test_explain_12_warning_in_json_and_text(cli) -> None:
    data = json.loads(cli("--explain", "0C", "-o", "json").stdout)
    assert data["state"] == "NEW_SYN_RECV" and "DeleteTcb" in data["names_note"]
    text = " ".join(cli("--explain", "NEW_SYN_RECV").stdout.split())
    assert "Linux's 12 is DeleteTcb on Windows, a connection being deleted" in text


@pytest.mark.parametrize("text", ["00", "0E", "0xff"])
def test_a_code_no_state_has_is_one_line_exit_2(cli, text: str) -> None:
    done = cli.process("--explain", text)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "is not a TCP state code" in done.stderr and ":PORT" in done.stderr


def test_colon_port_is_a_port_not_a_code(cli) -> None:
    done = cli.process("--explain", ":6")
    assert (done.returncode, done.stderr) == (1, "tcpstates: no TCP socket has the end :6\n")


def test_unknown_text_names_every_form(cli) -> None:
    done = cli.process("--explain", "nope")
    assert done.returncode == 2
    assert "unknown state 'nope'" in done.stderr
    assert "a state code such as 06, an ADDRESS:PORT or a local PORT" in done.stderr
