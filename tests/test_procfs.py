import json

import pytest
from conftest import DATA

from tcpstates.model.errors import CaptureFormatError, SourceError
from tcpstates.model.query import Query
from tcpstates.model.states import TcpState
from tcpstates.sources.procfs import ProcfsSource, decode_address, parse_table

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
    assert "local_address '0100007F:1F9' is not 8 or 32 hex digits" in message


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


GOOD = "   0: 0100007F:1F90 0100007F:C350 01 00000000:00000001 00:00000000 00000000  1000        0 4242 1 0000000000000000 20 4 30 10 -1"  # noqa: E501


def test_a_good_line_parses_to_its_fields():
    (sock,) = parse_table([GOOD], "tcp")
    assert (sock.local_port, sock.remote_port, sock.state, sock.uid, sock.inode) == (
        8080, 50000, TcpState.ESTABLISHED, 1000, 4242
    )  # fmt: skip


# Each replaces one field of GOOD with what int() would take but the kernel never prints.
OUT_OF_FORMAT = [
    ("00000000:00000001", "0:" + "1" * 5000, "tx_queue:rx_queue"),  # a 5,000-digit queue
    ("00000000:00000001", "-1:-1", "tx_queue:rx_queue"),
    ("00000000:00000001", "-0000001:00000001", "tx_queue:rx_queue"),  # right width, a sign
    ("00000000:00000001", "00000000:0000_001", "tx_queue:rx_queue"),
    ("00000000:00000001", "00000000:+0000001", "tx_queue:rx_queue"),
    ("  1000 ", "  -5 ", "uid"),
    ("  1000 ", "  1_000 ", "uid"),
    ("  1000 ", "  +5 ", "uid"),
    ("  1000 ", "  12345678901 ", "uid"),  # 11 digits: more than a uid_t holds
    (" 4242 ", " -77 ", "inode"),
    (" 4242 ", " 4_242 ", "inode"),
    (" 4242 ", " 123456789012345678901 ", "inode"),  # 21 digits
    ("0100007F:1F90 ", "0100007F:0x1F ", "local_address"),  # int('0x1F', 16) is 31
    ("0100007F:1F90 ", "0100007F:+1F9 ", "local_address"),
    (" 01 ", " +1 ", "st"),
    (" 01 ", " 1 ", "st"),
    ("00:00000000", "00:" + "0" * 17, "tr:tm->when"),  # wider than an unsigned long
    ("00:00000000", "00:-0000001", "tr:tm->when"),
    (" 00000000  1000", " 0000_000  1000", "retrnsmt"),
]


@pytest.mark.parametrize(("old", "new", "field"), OUT_OF_FORMAT)
def test_numbers_outside_the_kernels_widths_are_rejected(old, new, field):
    line = GOOD.replace(old, new, 1)
    assert line != GOOD
    with pytest.raises(CaptureFormatError) as info:
        list(parse_table(["  sl  local_address", line], "tcp", source="cap"))
    message = str(info.value)
    assert message.startswith(f"cap:2: {field} ") and len(message) < 300, message


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (GOOD.replace(" 0100007F:C350", "\t0100007F:C350"), "apart by other than spaces"),
        (GOOD.replace("  1000 ", "\x0b1000 "), "apart by other than spaces"),
        (GOOD.replace("  1000 ", "  1000\x1c"), "apart by other than spaces"),  # split() splits
        (GOOD.replace("  1000 ", "  4294967296 "), "uid above 2\\^32-1"),
        (GOOD.replace(" 4242 ", " 18446744073709551616 "), "inode above 2\\^64-1"),
        (GOOD.replace("0100007F:C350", "00000000000000000000000001000000:C350"), "families"),
    ],
)
def test_whitespace_tricks_and_out_of_range_values_are_rejected(line, reason):
    with pytest.raises(CaptureFormatError, match=reason):
        list(parse_table([line], "tcp"))


def test_the_widest_values_the_kernel_prints_are_accepted():
    widest = (
        "99999: FFFFFFFF:FFFF FFFFFFFF:FFFF FF FFFFFFFF:FFFFFFFF 04:FFFFFFFFFFFFFFFF FFFFFFFF"
        " 4294967295 -2147483648 18446744073709551615 2 ffff888003c5d000 0"
    )
    (sock,) = parse_table([widest], "udp")
    assert (sock.recv_q, sock.uid, sock.inode, sock.timer_ms) == (
        0xFFFFFFFF, 0xFFFFFFFF, 2**64 - 1, (2**64 - 1) * 10
    )  # fmt: skip


def test_a_filtered_read_checks_every_line_too():
    # Whether a capture reads must not depend on -s: a bad LISTEN line fails a TIME_WAIT read.
    bad = GOOD.replace(" 01 ", " 0A ").replace("  1000 ", "  -5 ")
    query = Query(protos=frozenset({"tcp"}), states=frozenset({TcpState.TIME_WAIT}))
    with pytest.raises(CaptureFormatError, match="uid '-5'"):
        list(parse_table([bad], "tcp", query))


def test_the_live_tables_parse_under_the_strict_format():
    # This host's own tables are the kernel's format by definition: none of it may be refused.
    source = ProcfsSource("/proc")
    listed = list(source.read(BOTH).sockets)
    assert listed and all(s.proto in ("tcp", "udp") for s in listed)


def test_counting_takes_each_socket_once_as_listing_does(sockets, tmp_path):
    # Real lines of real sockets (a listener, both ends of a connection, a TIME_WAIT), then the
    # same table as a page-at-a-time read under churn gives it: rows repeated. Counting must
    # agree with the listing, and both with the table read once.
    import time
    from collections import Counter

    server = sockets.listener()
    port = server.getsockname()[1]
    sockets.connect(server)
    closer, closer_peer = sockets.connect(server)
    closer.close()  # closes first: TIME_WAIT once the peer closes too
    closer_peer.close()
    time.sleep(0.2)
    with open("/proc/net/tcp") as f:
        header, *rows = f.read().splitlines()
    mine = [row for row in rows if f":{port:04X}" in row]
    assert len(mine) == 4  # LISTEN, two ESTABLISHED, TIME_WAIT
    once, repeated = tmp_path / "once", tmp_path / "repeated"
    for root, table in ((once, mine), (repeated, mine + mine[1:] + mine[::-1])):
        root.mkdir()
        (root / "tcp").write_text("\n".join([header, *table]) + "\n")
    tcp = Query()
    want = Counter(s.state for s in ProcfsSource(once).read(tcp).sockets)
    assert len(want) == 3
    for root in (once, repeated):
        source = ProcfsSource(root)
        assert Counter(s.state for s in source.read(tcp).sockets) == want
        assert {s: n for (_, s), n in source.count(tcp).items() if n} == want
