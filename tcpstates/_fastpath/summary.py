"""``tcpstates --summary -o json``, answered before click is loaded: what a monitor runs often.

Counting 50,000 sockets costs the kernel and this process about 60 ms; loading click,
dataclasses and typing to read three options would cost as much again. So ``run_fast`` takes
only the argument lists it understands completely (``--summary``, a JSON format, the protocol and
family flags), counts with inet_diag.py, and writes the JSON the click command writes.
Anything else, and any failure, returns None: the click command then runs as usual and reports
errors in the one usual place. tests/test_fastpath.py holds both to the same bytes on real
sockets, so the fast path cannot drift from the command it stands in for.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from tcpstates.model.state_codes import TCP_SUMMARY, UDP_SUMMARY
from tcpstates.sources import inet_diag as diag

_FLAGS = {
    "--summary": "summary",
    "-t": "tcp",
    "--tcp": "tcp",
    "-u": "udp",
    "--udp": "udp",
    "-4": "ipv4",
    "--ipv4": "ipv4",
    "-6": "ipv6",
    "--ipv6": "ipv6",
}  # fmt: skip  (--no-owners is not here: it does not apply to --summary, and click says so)
_FORMAT_OPTIONS = ("-o", "--format")
VERSION = (["-V"], ["--version"])
_JSON_FORMATS = ("json", "jsonl")  # a summary is one JSON object in both

Plan = tuple[tuple[str, ...], tuple[int, ...]]  # protocols, address families to count


def parse(argv: Sequence[str]) -> Plan | None:
    """What to count for ``argv``, or None unless it is a JSON summary and nothing more."""
    flags: set[str] = set()
    formats: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in _FLAGS:
            flags.add(_FLAGS[arg])
        elif arg in _FORMAT_OPTIONS:
            formats.append(next(args, ""))
        elif arg.startswith("--format="):
            formats.append(arg.partition("=")[2])
        else:
            return None
    if "summary" not in flags or not formats or formats[-1] not in _JSON_FORMATS:
        return None
    protos = tuple(p for p in ("tcp", "udp") if p in flags) or ("tcp",)
    families = tuple(f for f, flag in ((4, "ipv4"), (6, "ipv6")) if flag in flags) or (4, 6)
    return protos, families


def run_fast(argv: Sequence[str]) -> int | None:
    """The exit status, or None when the click command must answer ``argv`` instead."""
    if list(argv) in VERSION:  # click's own words, without loading click and the commands
        from tcpstates import __version__

        return _write(f"tcpstates, version {__version__}\n")
    plan = parse(argv)
    if plan is None:
        return None
    try:
        text = summary_json(*plan)
    except Exception:  # noqa: BLE001 - the click command will meet it again and say what it is
        return None
    except KeyboardInterrupt:
        return quiet_exit("INTERRUPTED")
    return _write(text)


def _write(text: str) -> int:
    return written(lambda: sys.stdout.write(text))


def written(write: Callable[[], object]) -> int:
    """The exit status of ``write`` to stdout, flushed, as the click command's would be: 0, or
    quiet on a closed pipe and Ctrl-C, or one line for an output that fails. Both fast paths
    write through this."""
    try:
        write()
        sys.stdout.flush()
    except BrokenPipeError:
        return quiet_exit("BROKEN_PIPE")
    except KeyboardInterrupt:
        return quiet_exit("INTERRUPTED")
    except OSError as e:
        from tcpstates.model.errors import output_failed

        return output_failed(e)
    return 0


def summary_json(protos: tuple[str, ...], families: tuple[int, ...]) -> str:
    """The summary as the click command's ``-o json`` prints it (json.dumps, indent 2)."""
    objects = []
    for proto in protos:
        counts = _count(proto, families)
        listed = TCP_SUMMARY if proto == "tcp" else UDP_SUMMARY
        if set(counts) - {code for code, _ in listed}:
            raise LookupError("a state the summary does not list by default")  # the full path
        objects.append((proto, [(name, counts.get(code, 0)) for code, name in listed]))
    if len(objects) == 1:
        return _json_object(objects[0][1], "") + "\n"
    inner = [(proto, _json_object(pairs, "  ")) for proto, pairs in objects]
    return "{\n" + ",\n".join(f'  "{proto}": {text}' for proto, text in inner) + "\n}\n"


def _count(proto: str, families: tuple[int, ...]) -> dict[int, int]:
    protocol = diag.IPPROTO_TCP if proto == "tcp" else diag.IPPROTO_UDP
    afs = [diag.AF_INET6 if family == 6 else diag.AF_INET for family in families]
    total: dict[int, int] = {}
    for af in diag.dump_families(protocol, afs):
        for code, n in diag.count_states(protocol, af, diag.ALL_STATES).items():
            total[code] = total.get(code, 0) + n
    return total


def _json_object(pairs: list[tuple[str, int]], indent: str) -> str:
    # State names are plain ASCII words, so no string here needs escaping.
    lines = ",\n".join(f'{indent}  "{name}": {count}' for name, count in pairs)
    return "{\n" + lines + "\n" + indent + "}"


def quiet_exit(status: str) -> int:
    from tcpstates.model.errors import ExitStatus, silence_stdout

    silence_stdout()
    return int(ExitStatus[status])
