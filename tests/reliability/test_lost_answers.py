"""Scenario 2: lost answers — adds the service stored, then answered 5xx or dropped the connection.

The API has no idempotency: a retried add whose first answer was lost stores a second copy. The
token it carries lets reconcile keep exactly one; nothing may be lost on the way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.emulator import EmulatorThread
from pipeline.state import Status
from tests.helpers import make_config, state_rows, sync, write_files

from .conftest import Watch, archive

QUICK_SEEDS = range(3)
SOAK_SEEDS = range(100, 130)


async def lost_answers_then_settle(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> None:
    files = archive(range(seed * 100, seed * 100 + 40))
    write_files(tmp_path / "archive", files)
    watch.expect(files)
    config = make_config(emulator.base_url, tmp_path, limits={"retries": 2})
    emulator.configure(seed=seed, store_then_fail=0.10, store_then_drop=0.05)

    report, log = await sync(config)

    assert report.exit_code in (0, 1), log
    outcomes = [r.outcome for r in emulator.requests()]
    assert "stored_then_fail" in outcomes or "stored_then_drop" in outcomes
    rows = state_rows(config)
    # Every file is either recorded with its id, or still `uploading` with the token its copies carry.
    assert {r.status for r in rows.values()} <= {Status.SYNCED, Status.UPLOADING}
    assert all(r.token for r in rows.values())
    report, log = await sync(config)  # a second faulty night
    assert report.exit_code in (0, 1), log
    await watch.settle(config, files)


@pytest.mark.parametrize("seed", QUICK_SEEDS)
async def test_adds_stored_but_answered_5xx_or_dropped_end_with_one_copy_each(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int
) -> None:
    await lost_answers_then_settle(emulator, watch, tmp_path, seed)


@pytest.mark.soak
@pytest.mark.parametrize("seed", SOAK_SEEDS)
async def test_lost_answers_soak(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> None:
    await lost_answers_then_settle(emulator, watch, tmp_path, seed)
