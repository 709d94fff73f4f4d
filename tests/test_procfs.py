import json

import pytest
from conftest import DATA

from tcpstates.errors import CaptureFormatError, SourceError
from tcpstates.query import Query
from tcpstates.sources.procfs import ProcfsSource, decode_address, parse_table
from tcpstates.states import TcpState

BOTH = Query(protos=frozenset({"tcp", "udp"}))


def records(root, byteorder, query=BOTH):
    source = ProcfsSource(root, byteorder=byteorder)
    return [sock.as_dict() for sock in source.read(query).sockets]


@pytest.mark.parametrize(
    ("text", "byteorder", "expected"),
    [
        ("0500000A:0016", "little", ("10.0.0.5", 22)),
        ("0A000005:0016", "big", ("10.0.0.5", 22)),
        ("0100007F:1F90", "little", ("127.0.0.1", 8080)),
        ("00000000:0000", "little", ("0.0.0.0", 0)),
        ("0000000000000000FFFF00000100007F:1F90", "little", ("::ffff:127.0.0.1", 8080)),
        ("00000000000000000000FFFF7F000001:1F90", "big", ("::ffff:127.0.0.1", 8080)),
        ("00000000000000000000000001000000:0050", "little", ("::1", 80)),
        ("B80D0120000000000000000001000000:FFFF", "little", ("2001:db8::1", 65535)),
    ],
)
def test_decode_address_vectors(text, byteorder, expected):
    assert decode_address(text, byteorder) == expected


@pytest.mark.parametrize("bad", ["0100007F", "0100007F:16", "0100:0016", "zz00007F:0016", ":"])
def test_decode_address_rejects(bad):
    with pytest.raises(ValueError):
        decode_address(bad, "little")


def test_golden_capture(golden):
    rows = records(DATA / "proc-little", "little")
    golden("proc-capture.json", json.dumps(rows, indent=1) + "\n")


def test_both_byte_orders_give_the_same_records():
    assert records(DATA / "proc-big", "big") == records(DATA / "proc-little", "little")
    assert records(DATA / "proc-big", "big")  # not vacuous


def test_unusual_codes_are_kept_not_dropped():
    states = {row["state"] for row in records(DATA / "proc-little", "little")}
    assert {"NEW_SYN_RECV", "BOUND_INACTIVE", "UNKNOWN", "UNCONN"} <= states


def test_listener_backlog_limit_is_unknown_not_zero():
    listen = [r for r in records(DATA / "proc-little", "little") if r["state"] == "LISTEN"]
    assert listen and all(r["send_q"] is None for r in listen)
    assert listen[0]["recv_q"] == 3


def test_v4_mapped_is_family_6():
    rows = records(DATA / "proc-little", "little")
    mapped = [r for r in rows if r["local_address"].startswith("::ffff:")]
    assert mapped and all(r["family"] == 6 for r in mapped)


def test_state_filter_applies_while_reading():
    query = Query(protos=frozenset({"tcp"}), states=frozenset({TcpState.TIME_WAIT}))
    rows = records(DATA / "proc-little", "little", query)
    assert [(r["local_port"], r["timer"], r["timer_ms"]) for r in rows] == [
        (40000, "timewait", 30000)
    ]


def test_family_filter():
    query = Query(protos=frozenset({"tcp", "udp"}), families=frozenset({6}))
    assert {r["family"] for r in records(DATA / "proc-little", "little", query)} == {6}


def test_malformed_line_names_file_and_line():
    with pytest.raises(CaptureFormatError) as info:
        records(DATA / "malformed", "little")
    message = str(info.value)
    assert "malformed/tcp:4:" in message
    assert "bad address field" in message


@pytest.mark.parametrize(
    "line",
    [
        "   0: 0100007F:1F90 0100007F:C350 ZZ 00000000:00000001 00:00000000 0 0 0 1",
        "   0: 0100007F:1F90 0100007F:C350 1FF 00000000:00000001 00:00000000 0 0 0 1",
        "   0: 0100007F:1F90 0100007F:C350 01 00000000:00000001",
        "   0: 0100007F:1F90 0100007F:C350 01 00000000:00000001 00:00000000 0 0 0 x 1",
        "garbage",
    ],
)
def test_malformed_lines(line):
    with pytest.raises(CaptureFormatError, match=r"<text>:1: "):
        list(parse_table([line], "tcp"))


def test_missing_tables_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="no /proc/net tables"):
        ProcfsSource(tmp_path).read(BOTH)


def test_capture_has_no_local_owners():
    # A capture's inodes belong to another host: looking them up here would be wrong.
    source = ProcfsSource(DATA / "proc-little", byteorder="little")
    assert all(sock.pid is None for sock in source.read(BOTH, owners=True).sockets)
