"""Which sockets ``tcpstates kill`` destroys, and what became of each.

The sockets are read from netlink sock_diag with the handle that names each one to the kernel
(sources/destroy.py), in the namespace asked for, and filtered as a listing filters them. A
listener (TCP LISTEN, a UDP socket's UNCONN) serves everyone who connects: it is destroyed only
when its state was named (``-s listen``, ``-l``); a group such as ``-s all`` does not name it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from tcpstates.model.errors import ExitStatus, SourceError
from tcpstates.model.place import Capture, Place
from tcpstates.model.query import Query
from tcpstates.model.sockets import Socket
from tcpstates.model.states import TcpState
from tcpstates.sources.destroy import Destroyer, Handle, Outcome, Result

# The state a protocol's listeners are in: UDP has no LISTEN, its servers are unconnected.
LISTENING = {"tcp": TcpState.LISTEN, "udp": TcpState.CLOSE}


@dataclass(frozen=True, slots=True)
class Target:
    """A socket chosen, and the handle that destroys it."""

    socket: Socket
    handle: Handle


@dataclass(frozen=True, slots=True)
class Selection:
    targets: tuple[Target, ...]
    listeners_left: int = 0  # listeners that matched the rest but whose state was not named
    hidden_processes: int = 0  # processes of others whose sockets could not be attributed


@dataclass(frozen=True, slots=True)
class Done:
    """One socket and what the kernel said to destroying it; None: not tried (a dry run, a
    question answered no)."""

    socket: Socket
    result: Result | None = None


def has_filter(query: Query) -> bool:
    """Whether ``query`` narrows sockets down by more than protocol and family: a state, a
    port, an address, an owner. Without one, kill would destroy every connection."""
    narrowing = (query.port, query.sport, query.dport, query.local, query.remote, query.pid)
    return bool(query.states) or any(v is not None for v in narrowing) or bool(query.process)


def is_listener(sock: Socket) -> bool:
    return LISTENING.get(sock.proto) is sock.state


def select(
    found: Iterable[tuple[Socket, Handle]], query: Query, named: frozenset[TcpState]
) -> Selection:
    """The sockets of ``found`` that pass ``query``, each once; listeners only where their state
    is in ``named``."""
    seen: set[Hashable] = set()
    targets: list[Target] = []
    left = 0
    for sock, handle in found:
        if (handle.family, handle.sockid) in seen or not query.matches(sock):
            continue  # a socket a dump sent twice (its table changed under it) is one
        seen.add((handle.family, handle.sockid))
        if is_listener(sock) and sock.state not in named:
            left += 1
            continue
        targets.append(Target(sock, handle))
    return Selection(tuple(targets), left)


def read(place: Place, query: Query, named: frozenset[TcpState]) -> tuple[Selection, Destroyer]:
    """The sockets ``place`` has that ``query`` selects, and a destroyer for that place: both
    made inside its namespace, where a netlink socket keeps answering for it."""
    from tcpstates.sources.netlink import read_handles
    from tcpstates.sources.place import chosen_namespace

    if isinstance(place.where, Capture):  # the request refuses it; never destroy by a file
        raise SourceError("a capture's sockets cannot be destroyed")
    namespace = chosen_namespace(place)
    if namespace is None:
        found, hidden = read_handles(query, owners=True)
        selection = select(found, query, named)
        destroyer = Destroyer()
    else:
        from tcpstates.sources.netns import entered

        with entered(namespace):
            found, hidden = read_handles(query, owners=True)
            selection = select(found, query, named)
            destroyer = Destroyer()
    return Selection(selection.targets, selection.listeners_left, hidden), destroyer


def destroy(targets: Sequence[Target], destroyer: Destroyer) -> list[Done]:
    """Ask the kernel to destroy each target, in order; each answer kept."""
    return [Done(target.socket, destroyer.destroy(target.handle)) for target in targets]


def tally(done: Iterable[Done]) -> Counter[Outcome]:
    return Counter(d.result.outcome for d in done if d.result is not None)


def exit_status(done: Sequence[Done]) -> ExitStatus:
    """OK when every socket matched is gone (destroyed now, or closed meanwhile), or none
    matched; PARTIAL when some were destroyed and the kernel refused others; ERROR when it
    refused every one it was asked to destroy."""
    counts = tally(done)
    if all(outcome.gone for outcome in counts):
        return ExitStatus.OK
    return ExitStatus.FINDINGS if counts[Outcome.DESTROYED] else ExitStatus.ERROR
