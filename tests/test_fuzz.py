"""Hostile input for every decoder and parser: the outcome is a record, a skip, or one clear error.

Property-based (hypothesis): arbitrary bytes and text, truncated and widened lines, ports past
0xFFFF, NUL, CRLF, a 10 MB line, missing headers. Nothing else may escape: no IndexError, no
ValueError, no struct.error, and no unbounded memory. The decoders get 10,000 cases each.
"""

from __future__ import annotations

import csv
import io
import json
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpstates.explain.sockets import parse_target
from tcpstates.export.run import parse_listen
from tcpstates.model.errors import CaptureFormatError, SourceError, TcpstatesError
from tcpstates.model.query import Query, parse_network
from tcpstates.model.sockets import Socket
from tcpstates.model.states import UnknownStateError, parse_states
from tcpstates.sources import capture, netlink
from tcpstates.sources import inet_diag as diag
from tcpstates.sources.procfs import parse_table
from tcpstates.trace.events import ParseError, parse_line

DECODER = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PARSER = settings(max_examples=2_000, deadline=None)
LINES = settings(max_examples=1_500, deadline=None)  # each example draws a dozen fields

TCP_LINE = (
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
    "     0        0 12345 1 0000000000000000 100 0 0 10 0"
)
HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
    "   uid  timeout inode"
)


def mutated_lines() -> st.SearchStrategy[str]:
    """A real line with fields dropped, widened, swapped for junk, or control characters in."""
    junk = st.text(
        alphabet=st.sampled_from("0123456789ABCDEFabcdef:xZ\x00\r\t \u202e\x1b"), max_size=12
    )
    fields = TCP_LINE.split()

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        out = list(fields)
        for _ in range(draw(st.integers(0, 4))):
            i = draw(st.integers(0, len(out) - 1))
            action = draw(st.sampled_from(["drop", "junk", "widen", "port"]))
            if action == "drop" and len(out) > 1:
                del out[i]
            elif action == "junk":
                out[i] = draw(junk)
            elif action == "widen":
                out[i] = out[i] + draw(junk)
            else:
                out[i] = f"0100007F:{draw(st.integers(0, 0xFFFFF)):X}"
        return " ".join(out)

    return mutate()


def _outcome(run) -> list[Socket] | None:  # type: ignore[no-untyped-def]
    try:
        return list(run())
    except (CaptureFormatError, SourceError):
        return None


@pytest.mark.slow
@DECODER
@given(st.lists(mutated_lines() | st.text(max_size=200), max_size=5), st.booleans())
def test_procfs_decoder_gives_records_or_one_error(lines: list[str], header: bool) -> None:
    text = ([HEADER] if header else []) + lines
    result = _outcome(lambda: parse_table(text, "tcp", Query(), None, "fuzz"))
    assert result is None or all(isinstance(s, Socket) for s in result)


@pytest.mark.slow
@DECODER
@given(st.binary(max_size=600))
def test_capture_reader_gives_records_or_one_error(data: bytes) -> None:
    text = (HEADER + "\r\n").encode() + data
    read, write = os.pipe()  # standard input as --from - has it: a pipe (text fits its buffer)
    os.write(write, text)
    os.close(write)
    with os.fdopen(read, "rb") as stdin:
        source = capture.CaptureSource(["-"], stdin=stdin)
        result = _outcome(lambda: source.read(Query(protos=frozenset({"tcp", "udp"}))).sockets)
    assert result is None or all(isinstance(s, Socket) for s in result)


def test_a_10_mb_line_is_one_error_with_a_short_message() -> None:
    line = "   0: " + "A" * (10 * 1024 * 1024)
    with pytest.raises(CaptureFormatError) as caught:
        list(parse_table([HEADER, line], "tcp", Query(), None, "big"))
    assert len(str(caught.value)) < 200


RECORD = diag.RECORD


@st.composite
def netlink_chunks(draw: st.DrawFn) -> bytes:
    """Messages with arbitrary lengths, types and bodies, some of them real records."""
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from([20, 20, 2, 3, 0, 0xFFFF]))
        body = draw(st.binary(max_size=RECORD.size + 16))
        length = draw(st.sampled_from([16 + len(body), 0, 3, 16, 0xFFFFFFFF]))
        parts.append(struct.pack("=IHHII", length, kind, 0, 1, 0) + body)
    return b"".join(parts) + draw(st.binary(max_size=20))


@pytest.mark.slow
@DECODER
@given(netlink_chunks())
def test_netlink_decoder_gives_records_or_one_error(chunk: bytes) -> None:
    try:
        offsets, _ = diag.parse_chunk(chunk, len(chunk))
        records = [RECORD.unpack_from(chunk, offset) for offset in offsets]
        sockets = list(netlink.decode(records, "tcp", None))
    except SourceError:
        return
    assert all(isinstance(s, Socket) for s in sockets)


@PARSER
@given(st.lists(st.text(max_size=30), max_size=4))
def test_state_parser_gives_states_or_one_error(values: list[str]) -> None:
    try:
        states = parse_states(values)
    except UnknownStateError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(states, frozenset)


@PARSER
@given(st.text(max_size=60))
def test_address_port_and_listen_parsers_never_raise_anything_else(text: str) -> None:
    target = parse_target(text)
    assert target is None or 0 <= target.port <= 65535
    try:
        parse_network(text)
    except ValueError:
        pass
    try:
        host, port = parse_listen(text)
        assert 0 < port < 65536
    except ValueError:
        pass


@PARSER
@given(st.text(max_size=300))
def test_trace_line_parser_gives_an_event_none_or_parse_error(line: str) -> None:
    try:
        parse_line(line)
    except ParseError:
        pass


# --- the socket line's widths: what the parser accepts, and that every renderer takes it -----

HEX_DIGITS = frozenset("0123456789ABCDEFabcdef")
DEC_DIGITS = frozenset("0123456789")


def _digits(text: str, allowed: frozenset[str], low: int, high: int) -> bool:
    return low <= len(text) <= high and set(text) <= allowed


def _pair(text: str, left: tuple[int, int], right: tuple[int, int]) -> bool:
    a, sep, b = text.partition(":")
    return bool(sep) and _digits(a, HEX_DIGITS, *left) and _digits(b, HEX_DIGITS, *right)


def kernel_could_print(line: str) -> bool:
    """The oracle, written apart from the parser: each field within its printf width, spaces
    between (net/ipv4/tcp_ipv4.c: "%4d: %08X:%04X %08X:%04X %02X %08X:%08X %02X:%08lX %08X
    %5u %8d %lu ..."). What follows the inode is not read, so it is not judged either."""
    f = [part for part in line.rstrip("\r\n").split(" ") if part]
    if not set("".join(f[:10])) <= HEX_DIGITS | set(":-"):
        return False
    if len(f) < 10 or not (f[0].endswith(":") and _digits(f[0][:-1], DEC_DIGITS, 1, 10)):
        return False
    addresses = [f[1].partition(":")[0], f[2].partition(":")[0]]
    return (
        all(_pair(f[i], (8, 8), (4, 4)) or _pair(f[i], (32, 32), (4, 4)) for i in (1, 2))
        and len(addresses[0]) == len(addresses[1])
        and _digits(f[3], HEX_DIGITS, 2, 2)
        and _pair(f[4], (8, 8), (8, 8))
        and _pair(f[5], (2, 2), (8, 16))
        and _digits(f[6], HEX_DIGITS, 8, 8)
        and _digits(f[7], DEC_DIGITS, 1, 10)
        and int(f[7]) < 2**32
        and _digits(f[8].removeprefix("-"), DEC_DIGITS, 1, 10)
        and _digits(f[9], DEC_DIGITS, 1, 20)
        and int(f[9]) < 2**64
    )


def _hex(n: int) -> st.SearchStrategy[str]:
    return st.integers(0, 16**n - 1).map(lambda v: f"{v:0{n}X}")


def _decimal(limit: int) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from([0, limit]), st.integers(0, limit)).map(str)


TRICKS = st.sampled_from(
    ["-1", "+5", "1_000", "0x1F", "0X0A", "-77", "1" * 5000, "00000000:0000_001", "-1:-1", "٣",
     "", "FFFFFFFFF", "0:0", ":", "1e3", "0b11", "\x00", "\u00a0"]
) | st.text(alphabet=st.sampled_from("0123456789ABCDEFabcdefxX_+-: "), max_size=20)  # fmt: skip
SEPARATORS = st.sampled_from([" ", " ", " ", "  ", "\t", "\x0b", "\x0c", "\x1c", "\x1f"])


@st.composite
def socket_lines(draw: st.DrawFn, tricks: bool) -> str:
    """A socket line in the kernel's format, with (``tricks``) some fields and gaps swapped for
    what int() or str.split() would take and the kernel never prints."""
    v6 = draw(st.booleans())
    address = _hex(32 if v6 else 8)
    fields = [
        draw(st.integers(0, 99999).map(lambda n: f"{n:4d}:")),
        draw(address) + ":" + draw(_hex(4)),
        draw(address) + ":" + draw(_hex(4)),
        draw(_hex(2)),
        draw(_hex(8)) + ":" + draw(_hex(8)),
        draw(_hex(2)) + ":" + draw(_hex(draw(st.integers(8, 16)))),
        draw(_hex(8)),
        draw(_decimal(2**32 - 1)),
        draw(st.integers(-(2**31), 2**31 - 1).map(str)),
        draw(_decimal(2**64 - 1)),
        "1 0000000000000000 100 0 0 10 0",
    ]
    gaps = [" "] * (len(fields) - 1)
    if tricks:
        for _ in range(draw(st.integers(1, 3))):
            if draw(st.booleans()):
                fields[draw(st.integers(0, 9))] = draw(TRICKS)
            else:
                gaps[draw(st.integers(0, len(gaps) - 1))] = draw(SEPARATORS)
    return "".join(f + g for f, g in zip(fields, [*gaps, "\n"], strict=True))


@pytest.mark.slow
@LINES
@given(socket_lines(tricks=True))
def test_the_parser_accepts_only_what_the_kernel_could_print(line: str) -> None:
    try:
        parsed = list(parse_table([line], "tcp", Query(), None, "fuzz"))
    except CaptureFormatError as e:
        assert str(e).startswith("fuzz:1: ") and len(str(e)) < 300
        return
    assert len(parsed) == 1 and kernel_could_print(line), line


@pytest.mark.slow
@LINES
@given(socket_lines(tricks=False))
def test_the_parser_accepts_every_line_the_kernel_could_print(line: str) -> None:
    assert kernel_could_print(line)
    assert len(list(parse_table([line], "tcp", Query(), None, "fuzz"))) == 1


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.lists(socket_lines(tricks=False), min_size=1, max_size=4), st.booleans())
def test_every_renderer_takes_whatever_the_parser_accepts(lines: list[str], udp: bool) -> None:
    sockets = list(parse_table(lines, "udp" if udp else "tcp", Query(), None, "fuzz"))
    records = [s.as_dict() for s in sockets]
    assert json.loads(_rendered(sockets, "json")) == records
    assert [json.loads(line) for line in _rendered(sockets, "jsonl").splitlines()] == records
    rows = list(csv.DictReader(io.StringIO(_rendered(sockets, "csv"))))
    assert [row["inode"] for row in rows] == [str(s.inode) for s in sockets]
    plain = _rendered(sockets, "plain").splitlines()[1:]  # a row a socket, below the header
    assert len(plain) == len(sockets)
    assert all(f" {s.recv_q} " in row for s, row in zip(sockets, plain, strict=True))
    table = _rendered(sockets, "table")
    assert all(str(s.recv_q) in table for s in sockets), table


def _rendered(sockets: list[Socket], fmt: str) -> str:
    from tcpstates.listing.run import render
    from tcpstates.render.columns import Layout
    from tcpstates.render.output import Output

    out = Output(io.StringIO(), io.StringIO(), is_terminal=False, color="never", width=300)
    render(iter(sockets), Layout(proto=True, owners=True), out, fmt)
    return out.stdout.getvalue()  # type: ignore[attr-defined, no-any-return]


def test_every_user_facing_error_is_a_tcpstates_error() -> None:
    assert issubclass(CaptureFormatError, TcpstatesError) and issubclass(
        SourceError, TcpstatesError
    )
