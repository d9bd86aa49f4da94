"""glibc's thresholds for uploads (``pipeline/engine/malloc.py``): image-sized buffers reuse the heap.

Counted, not timed: the minor page faults of a loop doing what an upload does a file, in a fresh
interpreter: a socket read of a small answer into a 256 KiB buffer (shrunk, as asyncio's are), then a
100 KB file's bytes, their base64 and a request joined from it, all freed. With glibc's defaults the
shrunk read keeps the mmap threshold low, so the big buffers are fresh mappings and every page of
them faults (36-60 a file); once :func:`for_big_buffers` has run, the heap's pages are reused.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"), reason="glibc's allocator only"
)

LOOP = """
import base64, resource, socket
{setup}
a, b = socket.socketpair()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def upload():
    a.send(b"an answer")
    answer = b.recv(262144)
    data = b"x" * 100_000
    encoded = base64.b64encode(data)
    request = b"".join((b"POST /images", encoded))
    del answer, data, encoded, request
for _ in range(5):
    upload()
before = faults()
for _ in range(200):
    upload()
print(faults() - before)
"""


def faults(setup: str) -> int:
    code = LOOP.format(setup=setup)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return int(done.stdout)


def test_image_sized_buffers_reuse_the_heap_once_set() -> None:
    default = faults("")
    tuned = faults("from pipeline.engine.malloc import for_big_buffers\nassert for_big_buffers()")
    # The default's count varies with the kernel's fault-around and its memory tiering (36 to 60 a
    # file seen on this VM); ten a file is far above what the tuned heap takes for the whole loop.
    assert default >= 200 * 10
    assert tuned < 100
