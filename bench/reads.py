"""Reading a file for upload: one ``asyncio.to_thread`` hop (what facesync does) vs aiofiles.

``LocalSource.read`` opens, fstats, reads and fstats again in one thread hop. aiofiles, which the
project once declared, runs each of open, read and close as its own hop to its thread pool (and a
stat, to check the file did not change, as another). Both read the same files from the page cache
(warmed first), 8 at a time as the upload workers do, in this process on the client CPUs; the figure
is the ratio of wall times, median of alternating rounds. Two sizes: a small JPEG (50 KB: thread
hops dominate) and a camera JPEG (4 MB: the copy dominates).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import CLIENT_CPUS, OUT, Figure, log, median, rounds, wait_quiet
from pipeline.config import SourceConfig
from pipeline.sources import SourceItem
from pipeline.sources.local import LocalSource

ROUNDS = rounds("reads", 3)
CONCURRENCY = 8
SIZES = {"50 KB": (50_000, 2000), "4 MB": (4_000_000, 100)}  # bytes per file, files


def make_tree(root: Path, size: int, count: int) -> None:
    """``count`` files of ``size`` random bytes (the content does not matter to a read)."""
    if root.exists() and len(list(root.iterdir())) == count:
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    block = os.urandom(size)
    for i in range(count):
        (root / f"IMG_{i:05d}.jpg").write_bytes(block)


async def each(items: list[SourceItem], read: Callable[[SourceItem], Awaitable[bytes]]) -> float:
    """Read every item, ``CONCURRENCY`` at a time; the wall time."""
    queue: asyncio.Queue[SourceItem] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            item = queue.get_nowait()
            data = await read(item)
            assert len(data) == item.size

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started


def readers(source: LocalSource) -> dict[str, Callable[[SourceItem], Awaitable[bytes]]]:
    import aiofiles
    import aiofiles.os

    async def with_to_thread(item: SourceItem) -> bytes:
        return await source.read(item, 1 << 30)

    async def with_aiofiles(item: SourceItem) -> bytes:
        path = source.local_path(item.key)
        async with aiofiles.open(path, "rb") as f:
            before = await aiofiles.os.stat(path)
            data = await f.read()
        if before.st_size != item.size:
            raise RuntimeError("changed")
        return data

    return {"to_thread": with_to_thread, "aiofiles": with_aiofiles}


def run() -> list[Figure]:
    try:
        import aiofiles  # noqa: F401
    except ImportError:
        log("reads: aiofiles is not installed (pip install aiofiles): skipped")
        return []
    if CLIENT_CPUS:
        os.sched_setaffinity(0, CLIENT_CPUS)
    figures = []
    for label, (size, count) in SIZES.items():
        root = OUT / "reads" / label.replace(" ", "")
        make_tree(root, size, count)
        source = LocalSource(SourceConfig(path=root))
        items = list(source.scan())
        timed: dict[str, list[float]] = {"to_thread": [], "aiofiles": []}
        for _ in range(ROUNDS):
            for name, read in readers(source).items():
                wait_quiet()
                asyncio.run(each(items, read))  # warm: the page cache, the thread pool
                timed[name].append(asyncio.run(each(items, read)))
        ours, theirs = median(timed["to_thread"]), median(timed["aiofiles"])
        log(f"reads {label}: to_thread {ours:.3f} s, aiofiles {theirs:.3f} s for {count} files")
        figures.append(
            Figure(
                f"read {count} × {label}: aiofiles ÷ one to_thread hop",
                theirs / ours,
                "×",
                "> 1 (measured, not a target)",
                None,
                None,
                f"to_thread {count / ours:,.0f} files/s, aiofiles {count / theirs:,.0f} files/s",
            )
        )
    return figures
