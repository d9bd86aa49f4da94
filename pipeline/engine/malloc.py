"""glibc's allocator, set for uploads: each image's buffers from the heap, not fresh pages each time.

An upload makes three buffers of an image's size a file (its bytes, their base64, the request), each
freed before the next file's. glibc serves an allocation over ``M_MMAP_THRESHOLD`` (128 KiB at the
start; it rises only when such a block is freed whole, which a socket read's shrunk buffer never is)
with ``mmap``, and gives back the heap's top once more than ``M_TRIM_THRESHOLD`` is free there: for
100 KB images both happened a file, and every page of every buffer was a fresh zeroed page, a fault
each. Measured on a sync of 10,000 images against the sink: 1.7–1.9 s of system CPU, 1.1–1.2 s with
the thresholds below (docs/performance.md, "Issue 23, round 4").

:func:`for_big_buffers` raises both, once, when a run's first upload is queued: blocks under 4 MiB
come from the heap (a camera JPEG; a decoded 12 MP frame still gets its own mapping, given back when
freed), and the heap keeps up to 32 MiB free before it shrinks. A run that sends nothing never loads
ctypes for it. Elsewhere than glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import os

#: ``mallopt`` parameters (glibc's malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 32 << 20

_done = False


def for_big_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds (once a process); whether they are set."""
    global _done
    if _done:
        return True
    _done = True
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):  # not a GNU system
        return False
    if not libc.startswith("glibc"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # Setting one turns off glibc's own moving of the mmap threshold, so both are set together.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
