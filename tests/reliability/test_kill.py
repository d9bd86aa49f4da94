"""Scenario 1: ``kill -9`` of a ``facesync sync`` process at random instants, over many seeds.

Each seed runs a few syncs that are killed (the archive changing a little between them), then one
clean ``sync`` + ``reconcile``, then the invariant. The kill instants aim at every window of the
crash-safety protocol: before a request (a random instant, often still starting up), while adds are
in flight at the service (the emulator's ``delay`` holds them), right after the service stored an
image but before the client recorded the answer, and right as the state writer commits.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.config.profile import ServiceProfile, write_profile
from pipeline.emulator import EmulatorThread
from tests.helpers import make_config, write_files
from tests.imagefactory import jpeg_bytes

from .conftest import Watch, archive, write_config_yaml

MODES = ("instant", "in_flight", "stored", "commit")
QUICK_SEEDS = range(10)
SOAK_SEEDS = range(1000, 1050)


async def sync_killed(cfg: Path, emulator: EmulatorThread, tmp_path: Path, rng: random.Random) -> int:
    """Start ``facesync sync`` and SIGKILL it at an instant picked by ``rng``; return its exit status."""
    mode = rng.choice(MODES)
    k = rng.randint(1, 12)
    delay = emulator.settings.delay

    def counts() -> tuple[int, int]:
        return emulator.call(lambda e: (len(e.requests), len(e.store)))

    def wal_stamp() -> tuple[int, int] | None:
        try:
            st = os.stat(tmp_path / "state.db-wal")
        except FileNotFoundError:
            return None
        return (st.st_size, st.st_mtime_ns)

    requests0, images0 = counts()
    log = (tmp_path / "killed.log").open("ab")
    # Popen, polled: asyncio's child watcher can lose a child's status when children die fast.
    proc = subprocess.Popen(  # noqa: ASYNC220 - polled below, never waited on in the loop
        [sys.executable, "-m", "pipeline", "--config", str(cfg), "sync"], stdout=log, stderr=log
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    at = started + rng.uniform(0.2, 1.6)
    stamp, commits = wal_stamp(), 0
    try:
        while proc.poll() is None and loop.time() - started < 10:
            if mode == "instant" and loop.time() >= at:
                break
            if mode in ("in_flight", "stored"):
                sent, stored = counts()
                if mode == "in_flight" and sent - requests0 >= k:
                    await asyncio.sleep(rng.uniform(0, delay))  # the request waits in the service
                    break
                if mode == "stored" and stored - images0 >= k:
                    break  # stored: the answer is on its way, not yet recorded
            if mode == "commit" and (now := wal_stamp()) != stamp:
                stamp, commits = now, commits + 1
                if commits >= k:
                    break
            await asyncio.sleep(0.002)
        if proc.poll() is None:
            proc.kill()
        return await asyncio.to_thread(proc.wait, 10)
    finally:
        log.close()


def mutate(root: Path, files: dict[str, bytes], rng: random.Random, fresh: int) -> None:
    """Edit one image, remove one, add one: the next run has replace and remove work too."""
    keys = sorted(files)
    edited, removed = rng.sample(keys, 2)
    files[edited] = jpeg_bytes(fresh)
    write_files(root, {edited: files[edited]})
    (root / removed).unlink()
    del files[removed]
    added = archive(range(fresh + 1, fresh + 2))
    write_files(root, added)
    files.update(added)


async def killed_runs_then_settle(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "archive"
    files = archive(range(seed * 100, seed * 100 + 24))
    write_files(root, files)
    watch.expect(files)
    emulator.configure(seed=seed, delay=rng.choice([0.05, 0.1, 0.2]))
    cfg = write_config_yaml(tmp_path / "facesync.yaml", emulator.base_url, tmp_path)
    # Even seeds: the service's order is known (a profile, as `facesync probe` writes), so a run after a
    # kill settles the adds the kill left in flight itself. Odd: unknown, so such a run exits 1 and says
    # that reconcile settles them.
    ordered = seed % 2 == 0
    if ordered:
        profile = ServiceProfile(
            endpoint=emulator.base_url, measured_at=time.time(), list_order="oldest_first"
        )
        write_profile(tmp_path / "service-profile.json", profile)
    for run in range(rng.randint(2, 3)):
        status = await sync_killed(cfg, emulator, tmp_path, rng)
        told = (tmp_path / "killed.log").read_text()
        unsettled = not ordered and status == 1 and "`facesync reconcile` settles them" in told
        assert status in (0, -signal.SIGKILL) or unsettled, told
        if run == 0:
            mutate(root, files, rng, fresh=seed * 100 + 50)
            watch.expect(files)
    await watch.settle(make_config(emulator.base_url, tmp_path), files)


@pytest.mark.parametrize("seed", QUICK_SEEDS)
async def test_kill_9_at_random_instants_loses_nothing_and_stores_nothing_twice(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int
) -> None:
    await killed_runs_then_settle(emulator, watch, tmp_path, seed)


@pytest.mark.soak
@pytest.mark.parametrize("seed", SOAK_SEEDS)
async def test_kill_9_soak(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> None:
    await killed_runs_then_settle(emulator, watch, tmp_path, seed)
