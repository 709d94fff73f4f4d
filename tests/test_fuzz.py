"""Hostile input for every decoder and parser: the outcome is a record, a skip, or one clear error.

Property-based (hypothesis): arbitrary bytes and text, truncated and widened lines, ports past
0xFFFF, NUL, CRLF, a 10 MB line, missing headers. Nothing else may escape: no IndexError, no
ValueError, no struct.error, and no unbounded memory. The decoders get 10,000 cases each.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpstates import inet_diag as diag
from tcpstates.errors import CaptureFormatError, SourceError, TcpstatesError
from tcpstates.explain_socket import parse_target
from tcpstates.export_command import parse_listen
from tcpstates.query import Query, parse_network
from tcpstates.sockets import Socket
from tcpstates.sources import capture, netlink
from tcpstates.sources.procfs import parse_table
from tcpstates.states import UnknownStateError, parse_states
from tcpstates.trace import ParseError, parse_line

DECODER = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PARSER = settings(max_examples=2_000, deadline=None)

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


@DECODER
@given(st.lists(mutated_lines() | st.text(max_size=200), max_size=5), st.booleans())
def test_procfs_decoder_gives_records_or_one_error(lines: list[str], header: bool) -> None:
    text = ([HEADER] if header else []) + lines
    result = _outcome(lambda: parse_table(text, "tcp", Query(), None, "fuzz"))
    assert result is None or all(isinstance(s, Socket) for s in result)


@DECODER
@given(st.binary(max_size=600))
def test_capture_reader_gives_records_or_one_error(data: bytes) -> None:
    text = (HEADER + "\r\n").encode() + data
    source = capture.CaptureSource(["-"], stdin=_Stream(text))
    result = _outcome(lambda: source.read(Query(protos=frozenset({"tcp", "udp"}))).sockets)
    assert result is None or all(isinstance(s, Socket) for s in result)


class _Stream:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def isatty(self) -> bool:
        return False

    def read(self, size: int) -> bytes:
        return self.data[:size]


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


@DECODER
@given(netlink_chunks())
def test_netlink_decoder_gives_records_or_one_error(chunk: bytes) -> None:
    try:
        offsets, _ = diag.parse_chunk(chunk, len(chunk))
        records = [RECORD.unpack_from(chunk, offset) for offset in offsets]
        sockets = list(netlink._decode(records, "tcp", None))
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


def test_every_user_facing_error_is_a_tcpstates_error() -> None:
    assert issubclass(CaptureFormatError, TcpstatesError) and issubclass(
        SourceError, TcpstatesError
    )
