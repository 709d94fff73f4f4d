import re

import pytest
from conftest import DATA

from tcpstates.model.states import (
    BY_CODE,
    GROUPS,
    TcpState,
    UnknownStateError,
    parse_state,
    parse_states,
    state_name,
)


def manual_descriptions() -> dict[str, str]:
    """The netstat(8) manual's state list from the seed, whitespace reflowed."""
    text = (DATA / "netstat-states.txt").read_text()
    parts = re.split(r"^   ([A-Z_0-9]+)\s", text, flags=re.M)[1:]
    return {
        name: " ".join(body.split()) for name, body in zip(parts[::2], parts[1::2], strict=True)
    }


def test_every_manual_description_is_verbatim():
    manual = manual_descriptions()
    assert len(manual) == 12  # eleven states and UNKNOWN
    for name, description in manual.items():
        assert TcpState[name].description == description
        assert TcpState[name].info.from_manual


def test_linux_only_states_say_so_and_point_at_syn_recv():
    for state in (TcpState.NEW_SYN_RECV, TcpState.BOUND_INACTIVE):
        assert not state.info.from_manual
        assert "Linux-internal" in state.description
    assert "SYN_RECV (03" in TcpState.NEW_SYN_RECV.description


@pytest.mark.parametrize(
    ("code", "name"),
    [(1, "ESTABLISHED"), (6, "TIME_WAIT"), (0x0A, "LISTEN"), (0x0B, "CLOSING"),
     (0x0C, "NEW_SYN_RECV"), (0x0D, "BOUND_INACTIVE"), (0x0E, "UNKNOWN"), (0xFF, "UNKNOWN"),
     (0, "UNKNOWN")],
)  # fmt: skip
def test_kernel_codes_never_fail(code, name):
    assert TcpState(code).name == name
    assert BY_CODE[code].name == name  # the table both sources decode with


def test_the_sources_table_covers_every_byte():
    assert len(BY_CODE) == 256 and all(BY_CODE[code] is TcpState(code) for code in range(256))


def test_codes_match_tcp_states_h():
    # include/net/tcp_states.h
    expected = ["ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
                "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
                "BOUND_INACTIVE"]  # fmt: skip
    assert [TcpState(code).name for code in range(1, 14)] == expected


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("TIME_WAIT", TcpState.TIME_WAIT),
        ("time-wait", TcpState.TIME_WAIT),
        ("time_wait", TcpState.TIME_WAIT),
        ("Time-Wait", TcpState.TIME_WAIT),
        ("TIME-WAIT", TcpState.TIME_WAIT),
        ("ESTAB", TcpState.ESTABLISHED),
        ("established", TcpState.ESTABLISHED),
        ("FIN-WAIT-2", TcpState.FIN_WAIT2),
        ("fin_wait2", TcpState.FIN_WAIT2),
        ("SYN-RECV", TcpState.SYN_RECV),
        ("syn-rcv", TcpState.SYN_RECV),
        ("UNCONN", TcpState.CLOSE),
        ("unconnected", TcpState.CLOSE),
        ("closed", TcpState.CLOSE),
        ("listening", TcpState.LISTEN),
        ("TCP_CLOSE_WAIT", TcpState.CLOSE_WAIT),
        (" close-wait ", TcpState.CLOSE_WAIT),
    ],
)
def test_user_spellings(text, state):
    assert parse_state(text) is state


def test_unknown_state_lists_valid_names():
    with pytest.raises(UnknownStateError) as info:
        parse_state("TIME_WAITING")
    message = str(info.value)
    assert "'TIME_WAITING'" in message
    for name in ("ESTABLISHED", "CLOSE_WAIT", "LISTEN", "connected", "bucket"):
        assert name in message


def test_groups_follow_ss():
    assert GROUPS["bucket"] == {TcpState.SYN_RECV, TcpState.TIME_WAIT}
    assert TcpState.LISTEN not in GROUPS["connected"]
    assert TcpState.CLOSE not in GROUPS["connected"]
    assert TcpState.SYN_SENT in GROUPS["connected"]
    assert TcpState.SYN_SENT not in GROUPS["synchronized"]
    assert TcpState.TIME_WAIT not in GROUPS["big"]
    assert parse_states(["all"]) == GROUPS["all"]


def test_states_union():
    assert parse_states(["close-wait", "FIN-WAIT-2"]) == {TcpState.CLOSE_WAIT, TcpState.FIN_WAIT2}
    assert parse_states(["bucket", "listen"]) == {
        TcpState.SYN_RECV,
        TcpState.TIME_WAIT,
        TcpState.LISTEN,
    }


def test_udp_close_is_unconn():
    assert state_name(TcpState.CLOSE, "udp") == "UNCONN"
    assert state_name(TcpState.ESTABLISHED, "udp") == "ESTABLISHED"
    assert state_name(TcpState.CLOSE, "tcp") == "CLOSE"
