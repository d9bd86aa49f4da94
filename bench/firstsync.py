"""A big first sync in flat memory: ``facesync sync`` of N tiny images into an empty collection.

A migration: every file is new, so every one is read, checked, hashed, marked ``uploading`` (durably),
sent and recorded. The tree holds N distinct 1×1 GIFs of ~60 bytes (a comment makes each one unique, so
no file is held back as a copy of another), 1,000 to a folder, built once under ``bench/out`` and reused.
The emulator runs in its own process with ``fast_adds`` (no Pillow decode, no file written: only the
answer's cost), so the run measures the client. The client's peak RSS (``os.wait4``) is measured at
``BENCH_FIRSTSYNC_FILES`` (100,000) and ``BENCH_FIRSTSYNC_BIG`` (1,000,000; 0 skips it): flat means the
big run's peak within 1.2 × the small one's, and both under 100 MB. Wall time and CPU are noted.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from bench.common import OUT, Figure, Measured, Server, facesync, fresh_state, log, wait_quiet, write_config

SMALL = int(os.environ.get("BENCH_FIRSTSYNC_FILES", "100000"))
BIG = int(os.environ.get("BENCH_FIRSTSYNC_BIG", "1000000"))
PER_DIR = 1000
RSS_TARGET_MB = 100.0
RSS_GROWTH_TARGET = 1.2
#: As a migration would run it: a wide pool, a rate the emulator never refuses.
LIMITS = {"concurrency": 32, "rate": 100_000}

_GIF_HEAD = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
_GIF_TAIL = b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"


def tiny_gif(i: int) -> bytes:
    """A valid 1×1 GIF, unique to ``i`` (a comment extension carries it)."""
    text = f"facesync bench {i}".encode()
    return _GIF_HEAD + b"!\xfe" + bytes([len(text)]) + text + b"\x00" + _GIF_TAIL


def build(n: int) -> Path:
    """The tree of ``n`` tiny distinct images, built once (timed) and reused."""
    base = OUT / f"firstsync-{n}"
    tree, marker = base / "tree", base / ".complete"
    if marker.exists():
        return tree
    log(f"firstsync: building a tree of {n:,} tiny images (once; reused from {base}) ...")
    started = time.perf_counter()
    shutil.rmtree(base, ignore_errors=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for i in range(n):
        path = tree / f"d{i // PER_DIR:04d}" / f"IMG_{i:07d}.gif"
        if i % PER_DIR == 0:
            path.parent.mkdir(parents=True)
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, tiny_gif(i))
        finally:
            os.close(fd)
    marker.write_text(str(n))
    log(f"firstsync: built {n:,} files in {time.perf_counter() - started:.1f} s")
    return tree


def first_sync(server: Server, n: int) -> tuple[Measured, float]:
    """One ``facesync sync`` of the ``n``-file tree into an empty collection, from a fresh state: the
    whole process's figures, and the engine's own time (the report's ``elapsed``)."""
    tree = build(n)
    state = OUT / f"firstsync-{n}" / "state.db"
    fresh_state(state)
    server.reset()
    server.configure(fast_adds=True)
    config = write_config(
        OUT / f"firstsync-{n}.json", base_url=server.base_url, source=tree, state=state, limits=LIMITS
    )
    wait_quiet()
    m = facesync(config, "sync", "--json")
    report = m.json()
    if m.returncode != 0 or report["added"] != n:
        raise RuntimeError(f"firstsync ({n:,}) did not upload every file: {report}; {m.stderr[-2000:]}")
    log(
        f"firstsync ({n:,} files): {m.wall:.1f} s ({n / m.wall:,.0f} files/s; engine "
        f"{report['elapsed']:.1f} s), user {m.user:.1f} s, sys {m.sys:.1f} s, peak RSS {m.maxrss_mb:.0f} MB"
    )
    return m, report["elapsed"]


def _note(m: Measured, n: int, engine: float) -> str:
    return (
        f"whole process: {m.wall:.0f} s, {n / m.wall:,.0f} files/s, CPU {m.cpu:.0f} s; the engine alone "
        f"{engine:.0f} s"
    )


def run() -> list[Figure]:
    figures = []
    with Server(OUT / "firstsync-emulator") as server:
        small, engine = first_sync(server, SMALL)
        figures.append(
            Figure(
                f"first-sync peak RSS, {SMALL // 1000}k files",
                small.maxrss_mb,
                "MB",
                f"<= {RSS_TARGET_MB:g} MB",
                small.maxrss_mb / RSS_TARGET_MB,
                small.maxrss_mb <= RSS_TARGET_MB,
                _note(small, SMALL, engine),
            )
        )
        if BIG:
            big, engine = first_sync(server, BIG)
            growth = big.maxrss_mb / small.maxrss_mb
            figures.append(
                Figure(
                    f"first-sync peak RSS, {BIG // 1000}k files",
                    big.maxrss_mb,
                    "MB",
                    f"<= {RSS_TARGET_MB:g} MB and <= {RSS_GROWTH_TARGET} x the {SMALL // 1000}k figure",
                    growth,
                    big.maxrss_mb <= RSS_TARGET_MB and growth <= RSS_GROWTH_TARGET,
                    f"ratio is to the {SMALL // 1000}k figure; {_note(big, BIG, engine)}",
                )
            )
    return figures


if __name__ == "__main__":
    from bench.report import print_table

    print_table(run())
