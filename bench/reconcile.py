"""Reconcile: ``facesync reconcile`` over 100,000 and 1,000,000 remote images (page size 100) vs a bare
client paging them, and its peak RSS.

The emulator (its own process) is seeded with N images whose metadata looks like facesync's; the state
DB holds every one of them as ``synced`` (so the run lists into its table, diffs in SQL and finds
nothing to change). The baseline pages the same listing with aiohttp and ``json.loads``, nothing more.
Both are whole-process wall times, median of alternating runs; RSS is the facesync process's peak.
Targets (issue 13): time <= 1.2 x the bare pager, peak RSS <= 100 MB at every size.

The timed rounds are nightly runs: one reconcile of the same state runs first, as last night's did, so
the limiter starts at the rate it found then (``pipeline/engine/pace.py``). That first run is reported
on its own line, without a target: it finds the rate from the limiter's modest start.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from bench.common import (
    OUT,
    PY,
    Figure,
    Server,
    facesync,
    log,
    median,
    run_measured,
    wait_quiet,
    write_config,
)
from bench.server import seed_key, seed_token
from pipeline.state import Row, State, Status

SIZES = [int(n) for n in os.environ.get("BENCH_RECONCILE_SIZES", "100000,1000000").split(",") if n]
PAGE_SIZE = 100
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
TARGET = 1.2
RSS_TARGET_MB = 100.0


def run() -> list[Figure]:
    figures: list[Figure] = []
    for size in SIZES:
        figures += run_size(size)
    return figures


def run_size(IMAGES: int) -> list[Figure]:
    base = OUT / f"reconcile-{IMAGES}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    ids_file, state = base / "ids.json", base / "state.db"
    log(f"reconcile: seeding {IMAGES:,} remote images and their state rows ...")
    with Server(base / "emulator", seed=IMAGES, seed_ids=ids_file) as server:
        ids = json.loads(ids_file.read_text())
        now = time.time()
        with State.open(state) as db:
            db.put_many(
                [
                    Row(
                        key=seed_key(i),
                        size=100_000,
                        mtime_ns=1_700_000_000_000_000_000 + i,
                        status=Status.SYNCED,
                        sha256=f"{i:064x}",
                        remote_id=image_id,
                        token=seed_token(i),
                        meta_hash="|",
                        updated_at=now,
                    )
                    for i, image_id in enumerate(ids)
                ]
            )
        config = write_config(
            base / "config.json",
            base_url=server.base_url,
            source=base / "archive",
            state=state,
            limits={"max_missing": "0%"},
        )
        wait_quiet()
        first = facesync(config, "reconcile", "--json")
        if first.returncode != 0:
            raise RuntimeError(f"the first reconcile failed: {first.stderr[-2000:]}")
        log(f"reconcile, first run of the state: {first.wall:.2f} s (engine {first.json()['elapsed']:.2f} s)")
        walls, bare_walls, rss = [], [], [first.maxrss_mb]
        for n in range(ROUNDS):
            wait_quiet()
            bare = run_measured(
                [PY, "-m", "bench.bare", "list", "--url", server.base_url, "--page-size", str(PAGE_SIZE)]
            )
            listed = bare.json()["listed"]
            if listed != IMAGES:
                raise RuntimeError(f"bare listing saw {listed} of {IMAGES}: {bare.stderr[-2000:]}")
            m = facesync(config, "reconcile", "--json")
            report = m.json()
            if m.returncode != 0 or report["listed"] != IMAGES or report["deleted"] or report["orphans"]:
                raise RuntimeError(f"reconcile was not a clean listing: {report}; {m.stderr[-2000:]}")
            walls.append(m.wall)
            bare_walls.append(bare.wall)
            rss.append(m.maxrss_mb)
            log(
                f"reconcile round {n + 1}: facesync {m.wall:.2f} s (engine {report['elapsed']:.2f} s, CPU "
                f"{m.cpu:.2f} s, RSS {m.maxrss_mb:.0f} MB), bare {bare.wall:.2f} s "
                f"(paging {bare.json()['elapsed']:.2f} s)"
            )
    wall, bare_wall, peak = median(walls), median(bare_walls), max(rss)
    return [
        Figure(
            f"reconcile, {IMAGES:,} images, first run of a state",
            first.wall,
            "s",
            "as it comes",
            first.wall / bare_wall,
            None,
            "the limiter finds the rate from its start; later runs start where it ended",
        ),
        Figure(
            f"reconcile, {IMAGES:,} images",
            wall,
            "s",
            f"<= {TARGET} x bare ({bare_wall:.2f} s)",
            wall / bare_wall,
            wall / bare_wall <= TARGET,
            f"page size {PAGE_SIZE}, whole process, median of {ROUNDS} nightly runs",
        ),
        Figure(
            f"reconcile peak RSS, {IMAGES:,} images",
            peak,
            "MB",
            f"<= {RSS_TARGET_MB:.0f} MB",
            peak / RSS_TARGET_MB,
            peak <= RSS_TARGET_MB,
            f"the facesync process, largest of {ROUNDS + 1}",
        ),
    ]


if __name__ == "__main__":
    from bench.report import print_table

    print_table(run())
