"""Scenario: the state file is lost (a new disk, a new host) after a run that may have met lost
answers, and the archive changes meanwhile. The next sync uploads nothing (exit 6); ``reconcile
--adopt`` rebuilds the state; then everything is in step: nothing lost, nothing stored twice."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pipeline.emulator import EmulatorThread
from pipeline.errors import EXIT_FOREIGN
from tests.helpers import make_config, reconcile, sync, write_files
from tests.imagefactory import jpeg_bytes

from .conftest import Watch, archive

QUICK_SEEDS = range(3)
SOAK_SEEDS = range(100, 120)


async def state_lost_then_adopted(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "archive"
    files = archive(range(seed * 100, seed * 100 + 30))
    write_files(root, files)
    config = make_config(emulator.base_url, tmp_path, limits={"max_delete": "100%", "retries": 5})
    emulator.configure(seed=seed, store_then_fail=rng.choice([0.0, 0.1, 0.2]))
    await sync(config)  # perhaps with lost answers: duplicates and uploading rows left behind
    emulator.configure(store_then_fail=0.0)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{config.state.path}{suffix}").unlink(missing_ok=True)
    keys = sorted(files)
    for key in rng.sample(keys, 3):  # edited while the state was gone
        files[key] = jpeg_bytes(rng.randrange(10_000, 20_000))
    gone = rng.choice(keys)
    del files[gone]
    (root / gone).unlink()
    write_files(root, files)
    watch.expect(files)
    images = len(emulator.images())

    refused, log = await sync(config)
    assert refused.exit_code == EXIT_FOREIGN and len(emulator.images()) == images, log
    adopted, log = await reconcile(config, adopt=True, max_delete=images)
    assert adopted.exit_code == 0, log

    await watch.settle(config, files)


@pytest.mark.parametrize("seed", QUICK_SEEDS)
async def test_a_lost_state_is_adopted_and_nothing_is_stored_twice(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int
) -> None:
    await state_lost_then_adopted(emulator, watch, tmp_path, seed)


@pytest.mark.soak
@pytest.mark.parametrize("seed", SOAK_SEEDS)
async def test_state_loss_soak(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> None:
    await state_lost_then_adopted(emulator, watch, tmp_path, seed)
