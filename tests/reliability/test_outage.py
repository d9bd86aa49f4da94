"""Scenario: the service goes down mid-archive — every call 500, connections reset, a proxy's HTML at
HTTP 200, or most calls failing. The run stops sending within about one round of retries, and the
next run (the service back) finishes the job: nothing lost, nothing stored twice."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from pipeline.api.breaker import CONSECUTIVE
from pipeline.emulator import EmulatorThread
from tests.helpers import make_config, sync, write_files

from .conftest import Watch, archive

QUICK_SEEDS = range(3)
SOAK_SEEDS = range(100, 120)
CONCURRENCY, RETRIES = 4, 2
#: Down: every call fails. The run stops within one round of retries for every worker.
DOWN: list[dict[str, Any]] = [
    {"fail_before": 1.0, "fail_status": 500},
    {"reset_before": 1.0},
    {"fail_before": 1.0, "fail_status": 200, "fail_body_html": True},
    {"store_then_fail": 1.0},  # stores, and never answers: failing too (reconcile settles the copies)
]
#: Failing, not quite down: most calls fail; the breaker's failure share stops it a little later.
FAILING: list[dict[str, Any]] = [{"fail_before": 0.8, "fail_status": 502}]


async def outage_then_recover(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    files = archive(range(seed * 100, seed * 100 + 40))
    keys = sorted(files)
    before = {k: files[k] for k in keys[: rng.randrange(1, 10)]}
    write_files(tmp_path / "archive", before)
    limits = {"concurrency": CONCURRENCY, "retries": RETRIES}
    config = make_config(emulator.base_url, tmp_path, limits=limits)
    assert (await sync(config))[0].exit_code == 0
    write_files(tmp_path / "archive", files)
    watch.expect(files)
    sent_before = len(emulator.requests())
    mode = rng.choice(DOWN + FAILING)
    emulator.configure(seed=seed, **mode)

    report, log = await sync(config)

    sent = len(emulator.requests()) - sent_before
    assert report.exit_code == 1, log
    if mode in DOWN:
        assert sent <= CONCURRENCY * (RETRIES + 1) + CONSECUTIVE - 1
    await watch.settle(config, files)


@pytest.mark.parametrize("seed", QUICK_SEEDS)
async def test_an_outage_stops_the_run_and_the_next_finishes_with_every_file_once(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int
) -> None:
    await outage_then_recover(emulator, watch, tmp_path, seed)


@pytest.mark.soak
@pytest.mark.parametrize("seed", SOAK_SEEDS)
async def test_outage_soak(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> None:
    await outage_then_recover(emulator, watch, tmp_path, seed)
