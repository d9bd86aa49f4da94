"""Scenario 4: the quota runs out after K adds — stop cleanly, resumable, and resume without duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.emulator import EmulatorThread
from pipeline.state import Status
from tests.helpers import make_config, remote_hashes, state_rows, sync, write_files

from .conftest import Watch, archive, sha

QUICK_CASES = [(0, 7), (1, 2)]
SOAK_CASES = [(seed, k) for seed in range(100, 110) for k in (2, 5, 13)]


async def quota_spent_then_resume(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int, k: int
) -> None:
    files = archive(range(seed * 100, seed * 100 + 24))
    write_files(tmp_path / "archive", files)
    watch.expect(files)
    config = make_config(emulator.base_url, tmp_path, limits={"quota_wait": 0, "concurrency": 4})
    emulator.configure(seed=seed, quota=k, retry_after=1)

    report, log = await sync(config)

    assert report.exit_code == 4, log
    log_ = emulator.requests()
    first_throttle = next(i for i, r in enumerate(log_) if r.status_code == 4)
    assert len(log_) - first_throttle <= config.limits.concurrency
    assert not any(r.method == "DELETE" for r in log_)
    rows = state_rows(config)
    synced = [r for r in rows.values() if r.status is Status.SYNCED]
    adds = k - 1  # the quota counts every request: the first is the listing page of the first-upload check
    assert len(synced) == adds == len(emulator.images())
    # The rest stays to do: nothing half-recorded, nothing marked as refused.
    assert {r.status for r in rows.values()} <= {Status.SYNCED}
    assert report.pending == 0 and len(rows) == adds
    assert report.not_tried == len(files) - adds

    emulator.configure(quota=None)
    report, log = await sync(config)
    assert report.exit_code == 0, log
    assert report.added == len(files) - adds
    assert remote_hashes(emulator) == {sha(b): 1 for b in files.values()}  # no duplicate, before reconcile
    await watch.settle(config, files)


@pytest.mark.parametrize(("seed", "k"), QUICK_CASES)
async def test_spent_quota_stops_with_exit_4_after_exactly_k_adds_and_resumes_without_duplicates(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int, k: int
) -> None:
    await quota_spent_then_resume(emulator, watch, tmp_path, seed, k)


@pytest.mark.soak
@pytest.mark.parametrize(("seed", "k"), SOAK_CASES)
async def test_spent_quota_soak(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int, k: int
) -> None:
    await quota_spent_then_resume(emulator, watch, tmp_path, seed, k)
