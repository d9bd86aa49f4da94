"""Reconcile: ``facesync reconcile`` over 100,000 and 1,000,000 remote images (page size 100) vs a bare
client paging them, and its peak RSS — against the light sink and the emulator (``BENCH_SERVERS``); then,
on the sink, 100,000 and 1,000,000 images the state does not hold (``BENCH_RECONCILE_UNHELD``): the
max-delete refusal's time, the dry run's memory and what both print.

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

import os
import shutil
import time

from bench.common import (
    OUT,
    PY,
    SERVERS,
    Figure,
    Measured,
    Server,
    Sink,
    facesync,
    log,
    median,
    rounds,
    run_measured,
    server_for,
    wait_quiet,
    write_config,
)
from bench.noop import compile_package
from bench.server import seed_key, seed_token
from pipeline.state import Row, State, Status

SIZES = [int(n) for n in os.environ.get("BENCH_RECONCILE_SIZES", "100000,1000000").split(",") if n]
#: Collections facesync holds none of (a legacy collection), listed against the sink only.
UNHELD = [int(n) for n in os.environ.get("BENCH_RECONCILE_UNHELD", "100000,1000000").split(",") if n]
PAGE_SIZE = 100
ROUNDS = rounds("reconcile", 3)
TARGET = 1.2
RSS_TARGET_MB = 100.0
#: A screenful: what a refusal or a dry run of any number of orphans may print on stderr.
SCREENFUL = 40


def run() -> list[Figure]:
    compile_package()  # what is timed is the run, not compiling the package from source (bench/noop.py)
    figures: list[Figure] = []
    for kind in SERVERS:
        for size in SIZES:
            figures += run_size(kind, size)
    if "sink" in SERVERS:
        for size in UNHELD:
            figures += run_unheld(size)
    return figures


def bare_list(server: Server, expected: int) -> Measured:
    bare = run_measured(
        [PY, "-m", "bench.bare", "list", "--url", server.base_url, "--page-size", str(PAGE_SIZE)]
    )
    listed = bare.json()["listed"]
    if listed != expected:
        raise RuntimeError(f"bare listing saw {listed} of {expected}: {bare.stderr[-2000:]}")
    return bare


def run_size(kind: str, IMAGES: int) -> list[Figure]:
    base = OUT / f"reconcile-{kind}-{IMAGES}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    ids_file, state = base / "ids.json", base / "state.db"
    log(f"reconcile ({kind}): seeding {IMAGES:,} remote images and their state rows ...")
    seeded = server_for(kind, base / "emulator", seed=IMAGES, seed_ids=ids_file, settings={})
    if kind == "sink":
        seeded.settings = {"seed_kind": "facesync"}
    with seeded as server:
        ids = server.seeded_ids()
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
        del ids
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
        walls, engine, bare_walls, paging, rss = [], [], [], [], [first.maxrss_mb]
        cpus: list[float] = []
        bare_cpus: list[float] = []
        for n in range(ROUNDS):
            wait_quiet()
            bare = bare_list(server, IMAGES)
            m = facesync(config, "reconcile", "--json")
            report = m.json()
            if m.returncode != 0 or report["listed"] != IMAGES or report["deleted"] or report["orphans"]:
                raise RuntimeError(f"reconcile was not a clean listing: {report}; {m.stderr[-2000:]}")
            walls.append(m.wall)
            engine.append(report["elapsed"])
            bare_walls.append(bare.wall)
            paging.append(bare.json()["elapsed"])
            cpus.append(m.cpu)
            bare_cpus.append(bare.cpu)
            rss.append(m.maxrss_mb)
            log(
                f"reconcile ({kind}) round {n + 1}: facesync {m.wall:.2f} s "
                f"(engine {report['elapsed']:.2f} s, CPU {m.cpu:.2f} s, RSS {m.maxrss_mb:.0f} MB), "
                f"bare {bare.wall:.2f} s (CPU {bare.cpu:.2f} s) "
                f"(paging {bare.json()['elapsed']:.2f} s)"
            )
    wall, bare_wall, peak = median(walls), median(bare_walls), max(rss)
    inside = median(engine) / median(paging)
    where = f"{IMAGES:,} images, {kind}"
    return [
        Figure(
            f"reconcile, {where}, first run of a state",
            first.wall,
            "s",
            "as it comes",
            first.wall / bare_wall,
            None,
            "the limiter finds the rate from its start; later runs start where it ended",
        ),
        Figure(
            f"reconcile, {where}",
            wall,
            "s",
            f"<= {TARGET} x bare ({bare_wall:.2f} s)",
            wall / bare_wall,
            wall / bare_wall <= TARGET,
            f"page size {PAGE_SIZE}, whole process, median of {ROUNDS} nightly runs; engine "
            f"{median(engine):.2f} s against the bare paging {median(paging):.2f} s = {inside:.2f} x; "
            f"CPU {median(cpus):.2f} s against {median(bare_cpus):.2f} s",
        ),
        Figure(
            f"reconcile peak RSS, {where}",
            peak,
            "MB",
            f"<= {RSS_TARGET_MB:.0f} MB",
            peak / RSS_TARGET_MB,
            peak <= RSS_TARGET_MB,
            f"the facesync process, largest of {ROUNDS + 1}",
        ),
    ]


def run_unheld(IMAGES: int) -> list[Figure]:
    """A collection of images the state does not hold (a legacy collection, on the sink): every run
    lists it, finds every image an orphan and is refused by max-delete (exit 5); then one dry run
    writes every orphan to ``--would-delete-file``."""
    base = OUT / f"reconcile-unheld-{IMAGES}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    state, listed = base / "state.db", base / "would-delete.ndjson"
    log(f"reconcile (sink): {IMAGES:,} images the state does not hold ...")
    with Sink(base / "sink", seed=IMAGES) as server:
        config = write_config(
            base / "config.json",
            base_url=server.base_url,
            source=base / "archive",
            state=state,
            limits={"max_delete": "10%"},
        )
        wait_quiet()
        first = facesync(config, "reconcile", "--json")
        walls, engine, bare_walls, paging, rss = [], [], [], [], [first.maxrss_mb]
        cpus: list[float] = []
        bare_cpus: list[float] = []
        for n in range(ROUNDS):
            wait_quiet()
            bare = bare_list(server, IMAGES)
            m = facesync(config, "reconcile", "--json")
            report = m.json()
            if m.returncode != 5 or (report["listed"], report["orphans"]) != (IMAGES, IMAGES):
                raise RuntimeError(f"reconcile was not refused on {IMAGES} orphans: {report}")
            walls.append(m.wall)
            engine.append(report["elapsed"])
            bare_walls.append(bare.wall)
            paging.append(bare.json()["elapsed"])
            cpus.append(m.cpu)
            bare_cpus.append(bare.cpu)
            rss.append(m.maxrss_mb)
            log(
                f"reconcile unheld round {n + 1}: facesync {m.wall:.2f} s (engine {report['elapsed']:.2f} s, "
                f"CPU {m.cpu:.2f} s, RSS {m.maxrss_mb:.0f} MB), bare {bare.wall:.2f} s (CPU {bare.cpu:.2f} s)"
            )
        human = facesync(config, "reconcile")
        dry = facesync(config, "reconcile", "--dry-run", "--json", "--would-delete-file", str(listed))
        out = dry.json()
        if out["would_delete_count"] != IMAGES or len(out["would_delete"]) > 100:
            raise RuntimeError(f"the dry run did not count {IMAGES}: {out}")
        with listed.open("rb") as f:
            file_lines = sum(1 for _ in f)
        log(
            f"reconcile unheld dry run: {dry.wall:.2f} s, RSS {dry.maxrss_mb:.0f} MB, JSON line "
            f"{len(dry.stdout):,} bytes, {file_lines:,} lines ({listed.stat().st_size / 1e6:.0f} MB) in the "
            f"file, {len(dry.stderr.splitlines())} lines on stderr; "
            f"the refusal {len(human.stderr.splitlines())}"
        )
    wall, bare_wall = median(walls), median(bare_walls)
    inside = median(engine) / median(paging)
    stderr_lines = max(len(human.stderr.splitlines()), len(dry.stderr.splitlines()))
    where = f"{IMAGES:,} unheld images, sink"
    return [
        Figure(
            f"reconcile, {where}",
            wall,
            "s",
            f"<= {TARGET} x bare ({bare_wall:.2f} s)",
            wall / bare_wall,
            wall / bare_wall <= TARGET,
            f"max-delete refuses (exit 5); whole process, median of {ROUNDS} after a first run "
            f"({first.wall:.2f} s); engine {median(engine):.2f} s against the bare paging "
            f"{median(paging):.2f} s = {inside:.2f} x; CPU {median(cpus):.2f} s against "
            f"{median(bare_cpus):.2f} s; peak RSS {max(rss):.0f} MB",
        ),
        Figure(
            f"dry-run peak RSS, {where}",
            dry.maxrss_mb,
            "MB",
            f"<= {RSS_TARGET_MB:.0f} MB",
            dry.maxrss_mb / RSS_TARGET_MB,
            dry.maxrss_mb <= RSS_TARGET_MB,
            f"--dry-run --json --would-delete-file: {dry.wall:.2f} s, a {len(dry.stdout):,}-byte JSON "
            f"line, {file_lines:,} lines in the file",
        ),
        Figure(
            f"stderr of a refusal and a dry run, {where}",
            stderr_lines,
            "lines",
            f"<= {SCREENFUL} (a screenful)",
            stderr_lines / SCREENFUL,
            stderr_lines <= SCREENFUL and file_lines == IMAGES,
            "the larger of the two; each names the first 10 and the command (or file) that lists all",
        ),
    ]


if __name__ == "__main__":
    from bench.report import print_table

    print_table(run())
