"""Scenario 5: the credentials are revoked mid-run — exit 3, nothing deleted, synced rows untouched."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pipeline.emulator import EmulatorThread
from pipeline.state import Status
from tests.helpers import make_config, state_rows, sync, write_files

from .conftest import Watch, archive, wait_until

QUICK_SEEDS = range(2)
SOAK_SEEDS = range(100, 120)


async def rotate_after(emulator: EmulatorThread, stored: int) -> None:
    """Revoke the client's secret once the service holds ``stored`` images."""
    await wait_until(lambda: len(emulator.images()) >= stored)
    emulator.configure(api_secret="rotated-secret")


async def revoked_mid_run(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> None:
    root = tmp_path / "archive"
    files = archive(range(seed * 100, seed * 100 + 12))
    write_files(root, files)
    watch.expect(files)
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    before = state_rows(config)
    gone = sorted(files)[seed % len(files)]
    (root / gone).unlink()
    del files[gone]
    more = archive(range(seed * 100 + 50, seed * 100 + 80))
    write_files(root, more)
    files.update(more)
    watch.expect(files)
    emulator.configure(seed=seed, delay=0.08)
    requests0 = len(emulator.requests())

    rotation = asyncio.create_task(rotate_after(emulator, 12 + 1 + seed % 8))
    report, log = await sync(config)
    await rotation

    assert report.exit_code == 3, log
    assert "rotated-secret" not in log and "demo-secret" not in log
    assert not any(r.method == "DELETE" for r in emulator.requests()[requests0:])
    rows = state_rows(config)
    # What was synced before is exactly as it was, the removed file's row included (no delete ran).
    assert {k: rows[k] for k in before} == before
    # What this run did: recorded (synced) or put back as it was (no row); nothing left half-done.
    assert {r.status for k, r in rows.items() if k not in before} <= {Status.SYNCED}
    stored = {str(i.id) for i in emulator.images()}
    assert {str(r.remote_id) for r in rows.values()} == stored
    await watch.settle(config, files)


@pytest.mark.parametrize("seed", QUICK_SEEDS)
async def test_credentials_revoked_mid_run_exit_3_delete_nothing_and_leave_synced_rows_alone(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int
) -> None:
    await revoked_mid_run(emulator, watch, tmp_path, seed)


@pytest.mark.soak
@pytest.mark.parametrize("seed", SOAK_SEEDS)
async def test_credentials_revoked_soak(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int
) -> None:
    await revoked_mid_run(emulator, watch, tmp_path, seed)
