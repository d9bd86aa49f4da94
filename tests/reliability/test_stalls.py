"""Scenario 8: stalled connections — cut at the configured timeout, retried, and nothing leaked.

A stalled call never answers: the service holds it for ``stall_seconds``, here an hour, far longer than
the hang guard lets a run take. So a run that ends with every file stored ended because the client's
``api.timeout`` cut each stalled add and sent it again, and the retry was answered while the service
still held the stalled call — shown by order, not by timing the run. When the run ends no task,
session or connector is left behind.

The emulator draws each request's fate from its seeded RNG in arrival order, so which adds of a seed
stall is fixed; a seed may stall none of these few adds (seed 0 does not), so it is the range of
seeds, not each one, that must see stalls.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

from pipeline.emulator import EmulatorThread
from tests.helpers import make_config, sync, write_files

from .conftest import Watch, archive

QUICK_SEEDS = range(5)
SOAK_SEEDS = range(100, 120)
FILES = 16
STALL = 0.25
TIMEOUT = 0.3
#: How long the service holds a stalled call: far longer than the hang guard lets a run take.
HELD = 3600.0
HANG_GUARD = 60.0
#: A known rate far above what these adds need: they go out together, held back by the stalls alone.
RATE = 200
ADD = ("POST", "/api/v2/face_search/images")


async def stalled_then_settle(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> int:
    """One seed's run, checked and settled; how many adds stalled (none is a possible draw)."""
    files = archive(range(seed * 100, seed * 100 + FILES))
    write_files(tmp_path / "archive", files)
    watch.expect(files)
    limits = {"retries": 6, "concurrency": FILES, "rate": RATE}
    config = make_config(emulator.base_url, tmp_path, api={"timeout": TIMEOUT}, limits=limits)
    emulator.configure(seed=seed, stall=STALL, stall_seconds=HELD)
    loop = asyncio.get_running_loop()
    complaints: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: complaints.append(context))
    tasks_before = asyncio.all_tasks()
    threads_before = set(threading.enumerate())

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with asyncio.timeout(HANG_GUARD):
            report, log = await sync(config)
        await asyncio.sleep(0)
        gc.collect()

    loop.set_exception_handler(None)
    # A stalled add was sent and never answered: it may be stored, so the run names reconcile (exit 1).
    assert report.failed == 0 and report.exit_code == (1 if report.uncertain else 0), log
    adds = [r for r in emulator.requests() if (r.method, r.path) == ADD]
    stalled = [r for r in adds if r.outcome == "stalled"]
    stored = [r for r in adds if r.outcome == "ok"]
    # A stalled add stores nothing, yet every file is stored, by one add each: each stalled add was
    # cut by the client and sent again (the client counts the stalled ones among what it sent).
    assert (len(stored), len(emulator.images())) == (len(files), len(files))
    assert report.requests == len(emulator.requests())
    # Each add that stalled and was answered on a later attempt is one the run calls uncertain.
    assert (report.uncertain > 0) == (len(stalled) > 0) and report.uncertain <= len(stalled)
    assert asyncio.all_tasks() - tasks_before == set()
    assert not [t for t in set(threading.enumerate()) - threads_before if t.name == "facesync-march"]
    unclosed = [str(w.message) for w in caught if "Unclosed" in str(w.message)]
    unclosed += [str(c.get("message")) for c in complaints]
    assert unclosed == []
    await watch.settle(config, files)
    return len(stalled)


async def test_stalled_calls_are_cut_at_the_timeout_retried_and_leak_nothing(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path
) -> None:
    stalls: dict[int, int] = {}
    for seed in QUICK_SEEDS:
        emulator.reset()  # also lets go of the calls the last seed left stalled
        try:
            stalls[seed] = await stalled_then_settle(emulator, watch, tmp_path / f"seed-{seed}", seed)
        except Exception as exc:
            exc.add_note(f"emulator seed {seed}")
            raise
    assert sum(stalls.values()) > 0, f"no add stalled under any seed: {stalls}"


@pytest.mark.soak
@pytest.mark.parametrize("seed", SOAK_SEEDS)
async def test_stalls_soak(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> None:
    await stalled_then_settle(emulator, watch, tmp_path, seed)
