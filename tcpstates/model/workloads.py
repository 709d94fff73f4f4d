"""What runs in a cgroup, read from its path: a systemd unit, a container, a Kubernetes pod.

systemd, container engines and the kubelet name the cgroups they make after what they run, so
a path alone often says it: ``/system.slice/nginx.service`` is nginx's unit,
``/system.slice/docker-<64 hex>.scope`` a Docker container (systemd driver), ``/docker/<id>`` one
too (cgroupfs driver), ``kubepods-burstable-pod<uid>.slice`` a pod. This is parsing only; a
container's name (not in the path) is read by sources/cgroups.py.

The innermost component that says something wins, except that a pod wins over its containers:
a pod's containers share one network namespace, which is the pod's.
"""

from __future__ import annotations

import re

from tcpstates.model.record import Record

# Scope prefix of each engine's systemd driver (<prefix>-<64 hex>.scope) -> the engine.
_ENGINES = {"docker": "docker", "cri-containerd": "containerd", "crio": "cri-o", "libpod": "podman"}
_SCOPE = re.compile(rf"(?P<engine>{'|'.join(_ENGINES)})-(?P<id>[0-9a-f]{{64}})\.scope")
_BARE_ID = re.compile(r"[0-9a-f]{64}")  # cgroupfs drivers: the id alone, under /docker/ or a pod
# The kubelet's: kubepods-<qos>-pod<uid>.slice (systemd, "-" in the uid written "_"),
# pod<uid> (cgroupfs).
_UID = r"[0-9a-f]{8}(?:[-_][0-9a-f]{4}){3}[-_][0-9a-f]{12}"
_POD = re.compile(rf"(?:kubepods(?:-[a-z]+)?-)?pod(?P<uid>{_UID})(?:\.slice)?")
_UNIT = re.compile(r"[^/]+\.(?:service|scope)")
SHORT_ID = 12  # how docker ps shortens a container id


class Workload(Record):
    """What a cgroup runs: ``kind`` is "unit", "pod" or an engine (docker, containerd, cri-o,
    podman); ``ident`` the unit's name, the pod's uid or the container's full id."""

    kind: str
    ident: str

    def label(self, name: str | None = None) -> str:
        """``nginx.service``, ``pod 0f3c...``, ``docker 4c01db0b339c``; ``name``, a container's
        own name where it could be read, instead of its short id: ``docker web-1``."""
        if self.kind == "unit":
            return self.ident
        if self.kind == "pod":
            return f"pod {self.ident}"
        return f"{self.kind} {name or self.ident[:SHORT_ID]}"


def workload(path: str) -> Workload | None:
    """What the cgroup at ``path`` (as /proc/PID/cgroup or ss --cgroup write it) runs; None when
    its path says nothing (``/``, a slice alone, a directory someone named freely).

    >>> workload("/system.slice/nginx.service")
    Workload(kind='unit', ident='nginx.service')
    >>> workload("/docker/" + "ab" * 32).label()
    'docker abababababab'
    >>> workload("/user.slice") is None
    True
    """
    parts = [part for part in path.split("/") if part]
    for part in parts:
        pod = _POD.fullmatch(part)
        if pod:
            return Workload("pod", pod["uid"].replace("_", "-"))
    for depth in range(len(parts) - 1, -1, -1):
        found = _component(parts[depth], parts[depth - 1] if depth else None)
        if found is not None:
            return found
    return None


def _component(part: str, parent: str | None) -> Workload | None:
    scope = _SCOPE.fullmatch(part)
    if scope:
        return Workload(_ENGINES[scope["engine"]], scope["id"])
    if parent == "docker" and _BARE_ID.fullmatch(part):
        return Workload("docker", part)
    if _UNIT.fullmatch(part):
        return Workload("unit", part)
    return None
