"""Accounts of single sockets (``--explain ADDRESS:PORT``), each followed once by its state's
general explanation."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TextIO

from tcpstates.explain.render_states import break_at_spaces, explanation_text
from tcpstates.explain.sockets import Account
from tcpstates.explain.states import Explanation
from tcpstates.model.i18n import _
from tcpstates.model.sockets import NAMELESS, Holder, local_end, owner_of, remote_end
from tcpstates.model.workloads import workload
from tcpstates.render.columns import owner_cells
from tcpstates.render.safe import safe

SHOWN = 20  # accounts in full; a port with thousands of sockets gets a count for the rest


def accounts_text(
    accounts: Sequence[Account],
    width: int = 100,
    labels: Mapping[int, str] | None = None,
    lister: str = "tcpstates --port N",
) -> str:
    """The accounts wrapped to ``width`` at spaces only: an address, a state or a pid is never
    broken, the lines that go on are indented under their own text. ``labels`` name the
    namespaces of sockets read from several; ``lister`` is the command that lists them all."""
    parts = [_account_text(a, width, labels or {}) for a in accounts[:SHOWN]]
    if len(accounts) > SHOWN:
        more = _("... and {n} more sockets ({command} lists them)")
        parts.append(more.format(n=len(accounts) - SHOWN, command=safe(lister)) + "\n")
    parts += [explanation_text(general, min(width, 80)) for general in _generals(accounts[:SHOWN])]
    return "\n".join(parts)


def _generals(accounts: Sequence[Account]) -> list[Explanation]:
    """Each state's general explanation once, in the order its state first came."""
    return list({a.socket.state: a.general for a in accounts}.values())


def _account_text(a: Account, width: int, labels: Mapping[int, str]) -> str:
    sock = a.socket
    pid, process = owner_cells(owner_of(sock))
    queues = f"Recv-Q {_q(sock.recv_q)}, Send-Q {_q(sock.send_q)}"
    timer = ""
    if sock.timer:
        timer = "; " + _("timer {timer} ({ms} ms left)").format(timer=sock.timer, ms=sock.timer_ms)
    so_far, next_, held = _("so far:"), _("next:"), _("held by:")
    holders = sock.holders or ()
    label = max(len(so_far), len(next_), len(held) if len(holders) > 1 else 0)
    owner = _("process {process}, pid {pid}").format(process=process, pid=pid)
    title = f"{safe(local_end(sock))} -> {safe(remote_end(sock))}  {sock.state_name}  ({owner})"
    hang = " " * (2 + label + 1)
    # Read from several namespaces, the same ends may be in more than one: say which.
    place = labels.get(sock.netns) if sock.netns is not None else None
    where = _("in network namespace {label}").format(label=safe(place)) if place else ""
    lines = [
        *break_at_spaces(title, width, "    "),
        *(break_at_spaces(f"  {where}", width, "    ") if where else []),
        *break_at_spaces(f"  {so_far:<{label}} {safe(a.happened)}", width, hang),
        *break_at_spaces(f"  {next_:<{label}} {safe(a.next_step)}", width, hang),
        *_held_by(held, label, holders, width, hang),
        *break_at_spaces(f"  {queues}{timer}", width, "  "),
        *(cgroup_lines(sock.cgroup, width) if sock.cgroup else []),
        *(break_at_spaces(f"  {a.age}", width, "    ") if a.age else []),
        *(line for said in a.health for line in break_at_spaces(f"  {said}", width, "    ")),
    ]
    return "\n".join(lines) + "\n"


def cgroup_lines(path: str, width: int) -> list[str]:
    """What runs in the cgroup at ``path`` (``docker 4c01db0b339c``), where the path says and
    its last part does not already, then the path, cut at the width where it has no spaces to
    break at (a container's is 80 characters): a socket's story gives it whole."""
    found = workload(path)
    label = None if found is None else found.label()
    lines = []
    if label is not None and not path.endswith("/" + label):
        lines.append("  " + _("runs in {workload}").format(workload=safe(label)))
    head, rest = "  " + _("cgroup") + " ", safe(path)
    room = max(10, width - len(head))
    lines.append(head + rest[:room])
    lines += [" " * len(head) + rest[i : i + room] for i in range(room, len(rest), room)]
    return lines


def _held_by(
    held: str, label: int, holders: tuple[Holder, ...], width: int, hang: str
) -> list[str]:
    """Every process and fd that holds a socket several hold: ``held by: nginx (pid 812, fd
    3), nginx (pid 813, fd 3)``; nothing for one held once (the title names its holder)."""
    if len(holders) < 2:
        return []
    named = ", ".join(f"{safe(h.process or NAMELESS)} (pid {h.pid}, fd {h.fd})" for h in holders)
    return break_at_spaces(f"  {held:<{label}} {named}", width, hang)


def _q(value: int | None) -> str:
    return "-" if value is None else str(value)


def render_accounts_json(accounts: Sequence[Account], out: TextIO) -> None:
    data = {
        "sockets": [a.as_dict() for a in accounts],
        "states": [general.as_dict() for general in _generals(accounts)],
    }
    out.write(json.dumps(data, indent=2) + "\n")
