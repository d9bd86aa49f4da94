"""Scenario 7: the archive changes while uploads are in flight — added, edited and deleted files.

Nothing the source still holds is deleted remotely, and one more run converges.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from pipeline.emulator import EmulatorThread
from tests.helpers import make_config, sync, write_files
from tests.imagefactory import jpeg_bytes

from .conftest import Watch, archive, wait_until

QUICK_SEEDS = range(2)
SOAK_SEEDS = range(100, 125)


async def change_while_uploading(
    emulator: EmulatorThread, watch: Watch, root: Path, files: dict[str, bytes], rng: random.Random, seed: int
) -> None:
    """Once some adds have landed: add 3 files, edit 3, delete 3 (old and new ones alike)."""
    await wait_until(lambda: len(emulator.images()) >= 24)
    edited_and_deleted = rng.sample(sorted(files), 6)
    for i, key in enumerate(edited_and_deleted[:3]):
        files[key] = jpeg_bytes(seed * 1000 + 900 + i)
        write_files(root, {key: files[key]})
    for key in edited_and_deleted[3:]:
        (root / key).unlink()
        del files[key]
    added = archive(range(seed * 100 + 80, seed * 100 + 83))
    write_files(root, added)
    files.update(added)
    watch.expect(files)


async def changes_in_flight(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "archive"
    files = archive(range(seed * 100, seed * 100 + 20))
    write_files(root, files)
    watch.expect(files)
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    more = archive(range(seed * 100 + 20, seed * 100 + 40))
    write_files(root, more)
    files.update(more)
    watch.expect(files)
    emulator.configure(seed=seed, delay=0.1)

    changer = asyncio.create_task(change_while_uploading(emulator, watch, root, files, rng, seed))
    report, log = await sync(config)
    await changer

    assert report.exit_code in (0, 1), log
    assert watch.wrong_deletes == []
    await watch.settle(config, files)


@pytest.mark.parametrize("seed", QUICK_SEEDS)
async def test_files_added_edited_and_deleted_during_a_run_lose_nothing_and_converge(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int
) -> None:
    await changes_in_flight(emulator, watch, tmp_path, seed)


@pytest.mark.soak
@pytest.mark.parametrize("seed", SOAK_SEEDS)
async def test_source_changes_soak(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> None:
    await changes_in_flight(emulator, watch, tmp_path, seed)
