"""What a long watch does so that it holds the memory of its readings and not more.

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
