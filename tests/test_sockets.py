"""The socket record, and the fast constructor the sources use to make 100,000 of them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpstates.model.record import fields as record_fields
from tcpstates.model.record import replace
from tcpstates.model.sockets import FIELDS, Socket, endpoint, new_socket, owner_of
from tcpstates.model.states import TcpState

records = st.fixed_dictionaries(
    {
        "proto": st.sampled_from(["tcp", "udp"]),
        "family": st.sampled_from([4, 6]),
        "local_address": st.text(max_size=40),
        "local_port": st.integers(0, 65535),
        "remote_address": st.text(max_size=40),
        "remote_port": st.integers(0, 65535),
        "state": st.sampled_from(list(TcpState)),
    },
    optional={
        name: st.none() | st.integers(0, 2**32)
        for name in ("recv_q", "send_q", "uid", "inode", "pid", "timer_ms", "retransmits")
    }
    | {"process": st.none() | st.text(max_size=15), "timer": st.none() | st.text(max_size=9)},
)


@given(records)
def test_fast_constructor_makes_the_same_record(fields: dict[str, object]) -> None:
    fast, slow = new_socket(**fields), Socket(**fields)  # type: ignore[arg-type]
    assert type(fast) is Socket
    assert fast == slow and hash(fast) == hash(slow)
    assert fast.as_dict() == slow.as_dict()
    assert list(fast.as_dict()) == list(FIELDS)


def test_fast_record_is_frozen_and_slotted() -> None:
    sock = new_socket(
        proto="tcp",
        family=4,
        local_address="127.0.0.1",
        local_port=80,
        remote_address="0.0.0.0",
        remote_port=0,
        state=TcpState.LISTEN,
    )
    with pytest.raises(AttributeError):
        sock.state = TcpState.CLOSE  # type: ignore[misc]
    assert not hasattr(sock, "__dict__")
    assert replace(sock, local_port=81).local_port == 81


def test_fast_constructor_rejects_what_socket_rejects() -> None:
    with pytest.raises(TypeError):
        new_socket(proto="tcp")
    with pytest.raises(TypeError):
        new_socket(proto="tcp", family=4, bogus=1)


@pytest.mark.parametrize(
    ("state", "proto", "name"),
    [
        (TcpState.CLOSE, "udp", "UNCONN"),
        (TcpState.CLOSE, "tcp", "CLOSE"),
        (TcpState.ESTABLISHED, "udp", "ESTABLISHED"),
        (TcpState.UNKNOWN, "tcp", "UNKNOWN"),
    ],
)
def test_state_name_per_protocol(state: TcpState, proto: str, name: str) -> None:
    sock = Socket(proto, 4, "0.0.0.0", 0, "0.0.0.0", 0, state)
    assert sock.state_name == name


@given(st.lists(records, max_size=30), st.booleans(), st.booleans())
def test_a_listing_formats_each_row_as_alone(
    many: list[dict[str, object]], proto: bool, owners: bool
) -> None:
    # Rows remember the address and owner text they made; no row may take another's.
    from tcpstates.render.columns import Layout

    sockets = [new_socket(**fields) for fields in many]
    layout = Layout(proto=proto, owners=owners, netns_labels={0: "host"} if proto else None)
    assert layout.rows(sockets) == [layout.row_maker()(s) for s in sockets]
    for sock, row in zip(sockets, layout.rows(sockets), strict=True):
        assert row[layout.state_index] == sock.state_name


@given(st.lists(records, max_size=30), st.none() | st.integers(1, 2**32))
def test_json_records_are_json_dumps_of_the_record(
    many: list[dict[str, object]], netns: int | None
) -> None:
    import json

    from tcpstates.render.formats import json_record_maker

    record = json_record_maker()  # one for all: what it remembers must not leak between rows
    for fields in many:
        sock = new_socket(**fields, netns=netns)
        assert record(sock) == json.dumps(sock.as_dict())


@given(st.lists(records, max_size=30), st.none() | st.integers(1, 2**32))
def test_csv_rows_are_the_records_values_made_safe(
    many: list[dict[str, object]], netns: int | None
) -> None:
    from tcpstates.render.formats import csv_row_maker
    from tcpstates.render.safe import safe

    def cell(value: object) -> object:
        if value is None:
            return ""
        return safe(value) if isinstance(value, str) else value

    row = csv_row_maker(netns is not None)  # one for all: nothing may leak between rows
    for fields in many:
        sock = new_socket(**fields, netns=netns)
        assert row(sock) == tuple(cell(value) for value in sock.as_dict().values())


def test_endpoint_brackets_ipv6_and_shows_no_port_as_a_star() -> None:
    assert endpoint("::ffff:127.0.0.1", 80) == "[::ffff:127.0.0.1]:80"
    assert endpoint("::1", 22) == "[::1]:22"
    assert endpoint("0.0.0.0", 0) == "0.0.0.0:*"


# --- owners: one classification, one table of spellings, used by every place that shows one --

ALONE = "the kernel alone (no process holds it)"
OWNERS = [  # (pid, process, inode) -> listing cells, --by process, metric label, prose
    ((812, "nginx", 5), ("812", "nginx"), "nginx (812)", "nginx", "nginx (pid 812)"),
    ((812, None, 5), ("812", "?"), "? (812)", "(unknown)", "? (pid 812)"),
    ((None, None, 0), ("-", "(kernel)"), "(kernel)", "(kernel)", ALONE),
    ((None, None, 5), ("-", "-"), "-", "(unknown)", "an unknown process"),
    ((None, None, None), ("-", "-"), "-", "(unknown)", "an unknown process"),
]  # fmt: skip


@pytest.mark.parametrize(("held", "cells", "text", "label", "prose"), OWNERS)
def test_an_owner_is_spelled_the_same_in_every_place(
    held: tuple[int | None, str | None, int | None],
    cells: tuple[str, str],
    text: str,
    label: str,
    prose: str,
) -> None:
    from tcpstates.explain.sockets import account
    from tcpstates.export.metrics import BREAKDOWNS
    from tcpstates.render.columns import Layout, owner_cells
    from tcpstates.summary.groups import group_sockets
    from tcpstates.trace.events import Event, Transition
    from tcpstates.trace.render import plain_line

    pid, process, inode = held
    sock = Socket("tcp", 4, "10.0.0.1", 80, "10.0.0.2", 5000, TcpState.CLOSE_WAIT,
                  inode=inode, pid=pid, process=process)  # fmt: skip
    holder = owner_of(sock)
    assert (holder.text, holder.label, holder.prose()) == (text, label, prose)
    assert owner_cells(holder) == cells == Layout().cells(sock)[-2:]  # the listing
    (group,) = group_sockets([sock], "process")  # --summary --by process
    assert (group.key, group.text) == (holder, text)
    assert BREAKDOWNS["process"].key(sock) == label  # export --by process
    assert account(sock).next_step.startswith(f"{prose}: close()")  # --explain ADDR:PORT
    if inode is None:  # a traced event: no inode, so never the kernel's
        event = Event(0.0, 4, "10.0.0.1", 80, "10.0.0.2", 5000, TcpState.ESTABLISHED,
                      TcpState.CLOSE_WAIT, pid, process)  # fmt: skip
        assert plain_line(Transition(event, None, 0.0)).split()[-2:] == list(cells)


# --- the record's fields, written once (FIELDS), and every place that must follow its order --

# One record, each field a value no other field has, so a swap anywhere shows.
RECORD = {
    "proto": "tcp", "family": 4, "local_address": "10.0.0.1", "local_port": 8080,
    "remote_address": "10.0.0.2", "remote_port": 40000, "state": TcpState.CLOSE_WAIT,
    "recv_q": 11, "send_q": 12, "uid": 1001, "inode": 4242, "pid": 77, "process": "app",
    "timer": "keepalive", "timer_ms": 7000, "retransmits": 3, "interface": None, "v6only": None,
}  # fmt: skip
DETAILS = ("holders", "cgroup", "info", "memory")  # after netns, only when asked for


def test_fields_are_the_records_in_its_order() -> None:
    assert list(RECORD) == list(FIELDS)
    assert FIELDS + ("netns", *DETAILS) == record_fields(Socket)
    assert new_socket(*RECORD.values()) == Socket(**RECORD)  # sources pass them by position


def test_as_dict_follows_fields() -> None:
    sock = replace(Socket(**RECORD), netns=4026531840)
    assert sock.as_dict() == {**RECORD, "state": "CLOSE_WAIT", "netns": 4026531840}
    assert list(sock.as_dict()) == [*FIELDS, "netns"]


def test_netlink_builds_the_record_in_fields_order() -> None:
    import socket

    from tcpstates.sources import inet_diag as diag
    from tcpstates.sources.netlink import decode
    from tcpstates.sources.owners import Owner

    packed = diag.RECORD.pack(
        0, 0, 0, 0, 0,  # the netlink header
        socket.AF_INET, TcpState.CLOSE_WAIT, 2, 3,  # family, state, timer (keepalive), retrans
        socket.htons(8080), socket.htons(40000),
        socket.inet_aton("10.0.0.1") + bytes(12), socket.inet_aton("10.0.0.2") + bytes(12),
        0, 7000, 11, 12, 1001, 4242,  # interface, expires, rqueue, wqueue, uid, inode
    )  # fmt: skip
    (sock,) = decode(diag.RECORD.iter_unpack(packed), "tcp", {4242: Owner(77, "app")})
    assert sock == Socket(**RECORD)


def test_procfs_builds_the_record_in_fields_order() -> None:
    from tcpstates.sources.owners import Owner
    from tcpstates.sources.procfs import parse_table

    line = "0: 0100000A:1F90 0200000A:9C40 08 0000000C:0000000B 02:000002BC 00000003 1001 0 4242"
    owners = {4242: Owner(77, "app")}
    (sock,) = parse_table([line], "tcp", owners=owners, byteorder="little")
    assert sock == Socket(**RECORD)


def test_the_inodes_an_owner_scan_looks_for_are_the_non_zero_ones() -> None:
    import socket

    from tcpstates.sources import inet_diag as diag
    from tcpstates.sources.netlink import Inodes

    def record(inode: int) -> bytes:
        return diag.RECORD.pack(
            0, 0, 0, 0, 0, socket.AF_INET, 1, 0, 0, 1, 2, bytes(16), bytes(16), 0, 0, 0, 0, 0, inode
        )

    dumps = [bytearray(b"".join(map(record, [0, 5, 2**32 - 1, 0]))), bytearray(record(9))]
    wanted = Inodes(dumps)
    assert len(wanted) == 3 and bool(wanted)
    assert list(wanted) == [5, 2**32 - 1, 9]
    assert 9 in wanted and 0 not in wanted and 6 not in wanted
    assert not Inodes([bytearray(record(0))]) and not Inodes([])
