import pytest

from tcpstates.model.query import Query, address_in, parse_network
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState


def sock(**fields) -> Socket:
    base = dict(
        proto="tcp",
        family=4,
        local_address="127.0.0.1",
        local_port=8080,
        remote_address="10.1.2.3",
        remote_port=50000,
        state=TcpState.ESTABLISHED,
        pid=42,
        process="nginx",
    )
    return Socket(**{**base, **fields})


def test_ports():
    s = sock()
    assert Query(port=8080).matches(s) and Query(port=50000).matches(s)
    assert not Query(port=1).matches(s)
    assert Query(sport=8080).matches(s) and not Query(sport=50000).matches(s)
    assert Query(dport=50000).matches(s) and not Query(dport=8080).matches(s)


def test_addresses_and_cidr():
    s = sock()
    assert Query(local=parse_network("127.0.0.0/8")).matches(s)
    assert Query(remote=parse_network("10.0.0.0/8")).matches(s)
    assert not Query(remote=parse_network("10.1.2.4")).matches(s)
    assert not Query(local=parse_network("::1")).matches(s)


def test_v4_filter_matches_v4_mapped():
    s = sock(family=6, local_address="::ffff:127.0.0.1", remote_address="::ffff:10.1.2.3")
    assert Query(local=parse_network("127.0.0.1")).matches(s)
    assert Query(remote=parse_network("10.0.0.0/8")).matches(s)
    assert Query(local=parse_network("::ffff:127.0.0.1")).matches(s)
    assert not address_in("::1", parse_network("127.0.0.1"))


def test_owner_filters():
    s = sock()
    assert Query(pid=42).matches(s) and not Query(pid=43).matches(s)
    assert Query(process="nginx").matches(s) and Query(process="ng*").matches(s)
    assert not Query(process="apache").matches(s)
    assert not Query(process="nginx").matches(sock(pid=None, process=None))


def test_parse_network_errors_and_brackets():
    assert str(parse_network("[::1]")) == "::1/128"
    with pytest.raises(ValueError, match="not an IP address"):
        parse_network("localhost")


def test_filters_rows_only_when_something_can_reject():
    assert not Query().filters_rows
    assert Query(port=1).filters_rows
    assert Query(process="x").needs_owners and not Query(port=1).needs_owners
