"""Time the record writers on 100,000 sockets: spelled out, as shipped, against loops over FIELDS.

    python tests/benchmarks/record_bench.py [--sockets 100000] [--runs 9]

``Socket.as_dict`` and ``render/formats.record_values`` name every field of the record instead
of looping over ``sockets.FIELDS``. This measures what that buys: -o json and -o csv written
whole (into memory), and as_dict alone, each shipped function beside the shortest loop over
FIELDS that gives the same output (checked first). Within a round the variants alternate, so
drift on a shared machine hits all alike. Prints the best and median time of each, and the
loop's median cost against the shipped code's.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager
from operator import attrgetter
from typing import Any

from tcpstates.model.sockets import FIELDS, Socket, new_socket
from tcpstates.model.states import TcpState
from tcpstates.render import formats

STATES = (TcpState.ESTABLISHED, TcpState.TIME_WAIT, TcpState.CLOSE_WAIT, TcpState.LISTEN)
TEXT = frozenset({"proto", "local_address", "remote_address", "state", "process", "timer"})
VALUES = attrgetter(*("state_name" if name == "state" else name for name in FIELDS))


def sockets(n: int) -> list[Socket]:
    """A mix like a busy server's: repeated addresses and process names, a third IPv6, a
    quarter TIME_WAIT (no owner), every fifth with a timer."""
    out = []
    for i in range(n):
        state, v4 = STATES[i % 4], i % 3
        owned = state is not TcpState.TIME_WAIT
        out.append(new_socket(
            "tcp", 4 if v4 else 6,
            f"10.0.{i % 7}.{i % 200}" if v4 else f"fd00::{i % 300:x}", 1024 + i % 50000,
            f"10.1.{i % 11}.{i % 250}" if v4 else f"fd00::1:{i % 97:x}", 30000 + i % 30000,
            state, i % 5, i % 3, 1000 + i % 4, (i + 1) * owned, 100 + i % 40 if owned else None,
            f"proc{i % 40}" if owned else None, "keepalive" if i % 5 == 0 else None,
            1234 if i % 5 == 0 else None, 0,
        ))  # fmt: skip
    return out


def looped_record_values(
    convert: Callable[[str], str], none: str
) -> Callable[[Socket], tuple[object, ...]]:
    """record_values as a loop over FIELDS."""
    text = formats.remembered(convert, none)
    is_text = tuple(name in TEXT for name in FIELDS)

    def values(sock: Socket) -> tuple[object, ...]:
        return tuple(
            text(v) if t else (none if v is None else v)
            for t, v in zip(is_text, VALUES(sock), strict=True)
        )

    return values


def looped_as_dict(sock: Socket) -> dict[str, Any]:
    """as_dict as a loop over FIELDS."""
    data = dict(zip(FIELDS, VALUES(sock), strict=True))
    if sock.netns is not None:
        data["netns"] = sock.netns
    return data


@contextmanager
def looped() -> Any:
    shipped = formats.record_values
    formats.record_values = looped_record_values
    try:
        yield
    finally:
        formats.record_values = shipped


def write_json(socks: list[Socket]) -> str:
    out = io.StringIO()
    formats.render_json(socks, out)
    return out.getvalue()


def write_csv(socks: list[Socket]) -> str:
    out = io.StringIO()
    formats.render_csv(socks, out)
    return out.getvalue()


def json_looped(socks: list[Socket]) -> str:
    with looped():
        return write_json(socks)


def csv_looped(socks: list[Socket]) -> str:
    with looped():
        return write_csv(socks)


VARIANTS: dict[str, Callable[[list[Socket]], object]] = {
    "-o json": write_json,
    "-o json, loop": json_looped,
    "-o csv": write_csv,
    "-o csv, loop": csv_looped,
    "as_dict": lambda socks: [s.as_dict() for s in socks],
    "as_dict, loop": lambda socks: [looped_as_dict(s) for s in socks],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    socks = sockets(args.sockets)
    sample = socks[:3000]
    assert write_json(sample) == json_looped(sample) and write_csv(sample) == csv_looped(sample)
    assert [s.as_dict() for s in sample] == [looped_as_dict(s) for s in sample]
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for run in range(args.runs):
        for name in VARIANTS if run % 2 == 0 else reversed(VARIANTS):
            started = time.perf_counter()
            VARIANTS[name](socks)
            times[name].append(time.perf_counter() - started)
    print(f"{args.sockets} sockets, {args.runs} runs")
    for name, spent in times.items():
        best, median = min(spent) * 1000, statistics.median(spent) * 1000
        line = f"{name:14} best {best:6.0f} ms  median {median:6.0f} ms"
        if name.endswith(", loop"):
            shipped = statistics.median(times[name.removesuffix(", loop")])
            line += f"  ({statistics.median(spent) / shipped - 1:+.0%} against the shipped code)"
        print(line)


if __name__ == "__main__":
    main()
