"""A state that has never sent an image never uploads into a collection that holds some (exit 6), and
``reconcile --adopt`` rebuilds the state from the collection, so the next sync sends nothing twice:
a lost state file, a new host, a plain sync after sharded ones, a change of N in ``--shard I/N``."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from pipeline.config import SHA_FIELD
from pipeline.emulator import EmulatorThread
from pipeline.errors import EXIT_FOREIGN
from pipeline.state import Status
from tests.helpers import (
    assert_in_step,
    make_config,
    reconcile,
    remote_hashes,
    sha,
    state_rows,
    sync,
    write_files,
)
from tests.imagefactory import jpeg_bytes


def archive(n: int, start: int = 0) -> dict[str, bytes]:
    return {f"album {i % 3}/IMG_{i:04d}.jpg": jpeg_bytes(i) for i in range(start, start + n)}


def lose_the_state(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def test_a_lost_state_uploads_nothing_and_adopt_rebuilds_it_so_sync_sends_no_add(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = archive(20)
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    lose_the_state(config.state.path)
    images = len(emulator.images())

    refused, log = await sync(config)

    assert refused.exit_code == EXIT_FOREIGN, log
    assert "reconcile --adopt" in (refused.error or "") and "--allow-foreign" in (refused.error or "")
    assert len(emulator.images()) == images and refused.added == 0
    assert [r.method for r in emulator.requests()][-1] == "GET"  # one listing page, nothing sent

    adopted, log = await reconcile(config, adopt=True)

    assert adopted.exit_code == 0, log
    assert (adopted.restored, adopted.restored_changed, adopted.deleted) == (20, 0, 0)
    after, log = await sync(config)
    assert after.exit_code == 0 and after.requests == 0 and after.unchanged == 20, log
    assert_in_step(config, emulator, files)


async def test_adopt_restores_images_stored_before_facesync_wrote_their_hash_by_downloading_them(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Images uploaded by an earlier facesync carry no facesync_sha256: their url's bytes are hashed."""
    files = archive(6)
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    emulator.call(
        lambda emu: [emu.store.update_metadata(str(i.id), _without_hash(i.metadata)) for i in emu.images()]
    )
    assert not any(SHA_FIELD in (i.metadata or {}) for i in emulator.images())
    lose_the_state(config.state.path)

    adopted, log = await reconcile(config, adopt=True)

    assert adopted.exit_code == 0, log
    assert (adopted.restored, adopted.restored_changed) == (6, 0)
    after, log = await sync(config)
    # Nothing uploaded; each image gets the metadata a sync now writes (its hash): one PUT each.
    assert (after.exit_code, after.added, after.metadata_updated) == (0, 0, 6), log
    assert all(SHA_FIELD in (i.metadata or {}) for i in emulator.images())
    assert_in_step(config, emulator, files)


def _without_hash(metadata: dict[str, object] | None) -> dict[str, object]:
    return {k: v for k, v in (metadata or {}).items() if k != SHA_FIELD}


async def test_adopt_marks_an_image_whose_file_changed_since_for_the_next_sync_to_replace(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    files = archive(5)
    write_files(root, files)
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    lose_the_state(config.state.path)
    edited = next(iter(files))
    files[edited] = jpeg_bytes(999)
    write_files(root, {edited: files[edited]})

    adopted, log = await reconcile(config, adopt=True)

    assert (adopted.exit_code, adopted.restored, adopted.restored_changed) == (0, 5, 1), log
    after, log = await sync(config)
    assert (after.exit_code, after.added, after.replaced) == (0, 0, 1), log
    assert_in_step(config, emulator, files)


async def test_a_plain_sync_after_sharded_runs_is_refused_and_uploads_nothing(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = archive(30)
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path)
    from pipeline.commands.shard import for_shard

    for index in range(2):  # on an empty collection, shard 1 starts while shard 0's images are there
        report, log = await sync(for_shard(config, (index, 2)), shard=(index, 2))
        assert report.exit_code == 0, log
    assert remote_hashes(emulator) == Counter(sha(b) for b in files.values())

    plain, log = await sync(config)

    assert plain.exit_code == EXIT_FOREIGN, log
    assert remote_hashes(emulator) == Counter(sha(b) for b in files.values())
    # A change of N is refused the same way, shard by shard, and adopt rebuilds each shard.
    three = [for_shard(config, (i, 3)) for i in range(3)]
    report, log = await sync(three[0], shard=(0, 3))
    assert report.exit_code == EXIT_FOREIGN, log
    for index, shard_config in enumerate(three):
        adopted, log = await reconcile(shard_config, adopt=True, shard=(index, 3))
        assert adopted.exit_code == 0, log
        again, log = await sync(shard_config, shard=(index, 3))
        assert (again.exit_code, again.added) == (0, 0), log
    assert sum(sum(1 for r in state_rows(c).values() if r.status is Status.SYNCED) for c in three) == 30


async def test_allow_foreign_uploads_anyway(emulator: EmulatorThread, tmp_path: Path) -> None:
    write_files(tmp_path / "archive", archive(3))
    emulator.seed(5)  # another application's images
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == EXIT_FOREIGN

    report, log = await sync(config, allow_foreign=True)

    assert (report.exit_code, report.added) == (0, 3), log
    assert len(emulator.images()) == 8


@pytest.mark.parametrize("list_metadata", [False])
async def test_adopt_refuses_a_listing_without_metadata(
    emulator: EmulatorThread, tmp_path: Path, list_metadata: bool
) -> None:
    write_files(tmp_path / "archive", archive(3))
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    lose_the_state(config.state.path)
    emulator.configure(list_metadata=list_metadata)

    report, log = await reconcile(config, adopt=True)

    assert report.exit_code == 2 and "shows none" in (report.error or ""), log
    assert len(emulator.images()) == 3 and os.path.exists(config.state.path)


async def test_the_first_upload_check_ignores_the_probes_own_images(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    from pipeline.probe.journal import PROBE_FIELD, new_token

    write_files(tmp_path / "archive", archive(2))
    emulator.seed(1, {PROBE_FIELD: new_token()})  # `facesync probe` ran on the empty account first
    config = make_config(emulator.base_url, tmp_path)

    report, log = await sync(config)

    assert (report.exit_code, report.added) == (0, 2), log


async def test_a_state_that_has_sent_before_is_not_refused_when_it_holds_no_image_for_a_while(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    # Found by the state-machine soak: every file deleted (the state holds no image any more) while an
    # image is left in the collection (a delete that failed, another tool's), then new files — the
    # state was not lost, so the next sync must not say it was (exit 6) and leave the files unsent.
    root = tmp_path / "archive"
    write_files(root, archive(2))
    config = make_config(emulator.base_url, tmp_path, limits={"max_delete": "100%"})
    assert (await sync(config))[0].added == 2
    for path in [p for p in root.rglob("*") if p.is_file()]:
        path.unlink()
    emptied, log = await sync(config)
    assert (emptied.exit_code, emptied.removed, len(state_rows(config))) == (0, 2, 0), log
    emulator.seed(1)  # left in the collection
    write_files(root, archive(2, start=10))

    refilled, log = await sync(config)

    assert (refilled.exit_code, refilled.added) == (0, 2), log
    settled, log = await reconcile(config)
    assert (settled.exit_code, settled.deleted) == (0, 1), log
    assert len(emulator.images()) == 2
