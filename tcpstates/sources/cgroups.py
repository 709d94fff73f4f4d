"""Control groups: a socket's cgroup as a path, as ``ss --cgroup`` shows it, and what runs there.

sock_diag sends each full socket's cgroup as a number (INET_DIAG_CGROUP_ID, kernels 5.7 and
later): the cgroup v2 directory the socket was created in, whose id is that directory's inode
number. As ss does, the ids are turned into paths by one walk of the cgroup2 mount, made the
first time an id is met in a reading and kept for the rest of it.

Where no id came (procfs and psutil, an older kernel, a cgroup removed since) the owner's
/proc/PID/cgroup says where the owner runs (its ``0::`` line): where it is now, which is where
it made the socket unless it has been moved since. A TIME_WAIT socket has none: the kernel
sends no id for it and no process holds it (ss prints none either). A connection waiting to be
accepted has no owner yet, but netlink sends its listener's cgroup.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator

from tcpstates.model.sockets import Socket
from tcpstates.model.workloads import Workload, workload

MOUNTINFO = "/proc/self/mountinfo"
DOCKER_CONTAINERS = "/var/lib/docker/containers"
_CONFIG_LIMIT = 4 << 20  # a config.v2.json is a few kilobytes; never read a huge one whole


def cgroup2_mount(mountinfo: str = MOUNTINFO) -> tuple[str, str] | None:
    """Where cgroup v2 is mounted, and which of its directories the mount shows (``/`` unless
    a subtree was bind-mounted); None without one. A hybrid host mounts it at
    /sys/fs/cgroup/unified, a unified one at /sys/fs/cgroup."""
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as lines:
            for line in lines:
                fields = line.split()
                if "-" in fields[6:] and fields[fields.index("-", 6) + 1] == "cgroup2":
                    return _unescape(fields[4]), _unescape(fields[3])
    except OSError:
        return None
    return None


def _unescape(field: str) -> str:
    r"""mountinfo writes a space, tab, newline or backslash in a path as \ and 3 octal digits."""
    if "\\" not in field:
        return field
    raw = field.encode("utf-8", "surrogateescape").decode("unicode_escape")
    return raw.encode("latin-1").decode("utf-8", "surrogateescape")


class CgroupPaths:
    """Cgroup id -> path, for one reading: the cgroup2 mount walked once, at the first id."""

    def __init__(self, mountinfo: str = MOUNTINFO) -> None:
        self._mountinfo = mountinfo
        self._paths: dict[int, str] | None = None

    def path(self, cgroup_id: int) -> str | None:
        if self._paths is None:
            self._paths = _walk(self._mountinfo)
        return self._paths.get(cgroup_id)


def _walk(mountinfo: str) -> dict[int, str]:
    """Every cgroup's id (its directory's inode) -> its path from the hierarchy's root.

    The inode comes with each directory entry (getdents' d_ino): no stat per cgroup.
    """
    mount = cgroup2_mount(mountinfo)
    if mount is None:
        return {}
    top, root = mount
    base = "" if root == "/" else root
    try:
        paths = {os.stat(top).st_ino: root}
    except OSError:
        return {}
    pending = [(top, base)]
    while pending:
        directory, path = pending.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        below = f"{path}/{entry.name}"
                        paths[entry.inode()] = below
                        pending.append((entry.path, below))
        except OSError:  # removed meanwhile, or not ours to read
            continue
    return paths


def of_process(pid: int, proc: str = "/proc") -> str | None:
    """The cgroup v2 path of process ``pid`` (its /proc/PID/cgroup ``0::`` line); None when it
    has gone or has none (a host without cgroup v2)."""
    try:
        with open(f"{proc}/{pid}/cgroup", encoding="utf-8", errors="surrogateescape") as lines:
            for line in lines:
                if line.startswith("0::"):
                    return line[3:].rstrip("\n")
    except OSError:
        return None
    return None


def completed(sockets: Iterable[Socket], proc: str = "/proc") -> Iterator[Socket]:
    """``sockets`` (made by a source for this reading) with the cgroup of those the source gave
    none filled in from their owner's /proc/PID/cgroup, each owner read once."""
    by_pid: dict[int, str | None] = {}
    for sock in sockets:
        pid = sock.pid
        if sock.cgroup is None and pid is not None:
            path = by_pid[pid] if pid in by_pid else by_pid.setdefault(pid, of_process(pid, proc))
            # Made a moment ago for this reading alone (see namespaced._fill).
            object.__setattr__(sock, "cgroup", path)
        yield sock


def name(path: str, containers: str = DOCKER_CONTAINERS) -> str | None:
    """What runs in the cgroup at ``path``, as a label: ``nginx.service``, ``docker web-1``,
    ``pod <uid>``; None when the path does not say. A Docker container's name is read from
    its config.v2.json where that is readable (root)."""
    found = workload(path)
    if found is None:
        return None
    return found.label(docker_name(found, containers) if found.kind == "docker" else None)


def docker_name(container: Workload, containers: str = DOCKER_CONTAINERS) -> str | None:
    """The name Docker gave ``container`` (``web-1``), None where it cannot be read."""
    path = f"{containers}/{container.ident}/config.v2.json"  # ident: 64 hex digits, no "/"
    try:
        with open(path, "rb") as file:
            config = json.loads(file.read(_CONFIG_LIMIT))
    except (OSError, ValueError):
        return None
    given = config.get("Name") if isinstance(config, dict) else None
    return given.lstrip("/") or None if isinstance(given, str) else None
