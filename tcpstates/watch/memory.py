"""What a long watch (--watch, top) does so that it holds the memory of its readings and not
more, and does not spend its time walking them.

glibc serves a large block (a kernel dump of 100,000 records, a list of 100,000 sockets) with
mmap, and gives it back to the system when it is freed; but every time such a block is freed,
it raises the size that gets mmap (up to 32 MiB). From the second reading on, those blocks come
from the heap instead, and once freed they stay resident under the next reading's sockets.
Fixing the threshold at glibc's starting value, as MALLOC_MMAP_THRESHOLD_ would, keeps them
mmapped. At 100,000 sockets this and frames.in_order (measured together) took a --watch's
peak RSS from 108 MiB to 100 (tests/benchmarks/watch_bench.py).
"""

from __future__ import annotations

M_MMAP_THRESHOLD = -3  # malloc.h
THRESHOLD = 128 * 1024  # glibc's starting value (DEFAULT_MMAP_THRESHOLD_MIN)


def fix_mmap_threshold() -> bool:
    """Fix the C library's mmap threshold; False where it has no mallopt (musl, not Linux)."""
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))


def collect_less() -> tuple[int, int, int]:
    """Tune Python's cycle collector for a view that reads 50,000 sockets a frame; gives the
    thresholds to put back (``collect_as_before``).

    A frame makes some 200,000 objects (the reading, its order, its rows). None is in a
    cycle, and reference counting frees them; but each counts towards the cycle collector,
    whose full collections walked everything the view holds (top's Textual objects, the last
    frame): 17 of them in 13 refreshes of top at 50,000 sockets, 140 ms each. What exists
    now, kept to the end, is frozen out of its walks, and a collection waits for 50,000 new
    objects rather than 700. At 50,000 sockets a top refresh took 440 ms where it took 630
    (in-process, under the pilot), and a --watch frame 0.393 s where it took 0.462
    (tests/benchmarks/watch_bench.py --sizes 50000 --runs 3). Cycles are still found and
    freed, later (tests/test_top.py holds that).
    """
    import gc

    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(COLLECT_AFTER, *before[1:])
    return before


COLLECT_AFTER = 50_000  # new objects between two of the cycle collector's youngest collections


def collect_as_before(thresholds: tuple[int, int, int]) -> None:
    import gc

    gc.unfreeze()
    gc.set_threshold(*thresholds)
