"""Across nights: uncertainty is state, a sync settles it itself from the end of the listing, a state
restored from a backup re-uploads nothing, and a rewrite that puts the size and mtime back is noticed.

Every test runs whole syncs against the emulator over 127.0.0.1; "the next night" is the next sync on
the same state file (``issues show 21``)."""

from __future__ import annotations

import io
import os
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from pipeline.api.paging import find_end
from pipeline.config import KEY_FIELD, Config
from pipeline.emulator import EmulatorThread
from pipeline.state import State
from tests.helpers import (
    assert_in_step,
    listing_in_order,
    make_config,
    reconcile,
    remote_hashes,
    sha,
    state_rows,
    sync,
    write_files,
)
from tests.imagefactory import image_for


def photos(n: int, start: int = 0, version: int = 0) -> dict[str, bytes]:
    """Distinct JPEGs, each with a comment (an edit that keeps the size changes it)."""
    out = {}
    for i in range(start, start + n):
        buf = io.BytesIO()
        image_for(10_000 * version + i, (64, 64)).save(buf, "JPEG", quality=90, comment=b"night-v1")
        out[f"night/IMG_{i:04d}.jpg"] = buf.getvalue()
    return out


def unsettled(config: Config) -> int:
    with State.open(config.state.path) as state:
        return state.unsettled_count()


def list_requests(emulator: EmulatorThread) -> int:
    return sum(1 for r in emulator.requests() if r.method == "GET")


async def lose_some_answers(emulator: EmulatorThread, config: Config, files: dict[str, bytes]) -> int:
    """A night whose service stores every add but loses a share of the answers (the client retries):
    returns how many uploads it left unsettled, after checking that it says so and exits 1."""
    write_files(Path(config.source.path or "."), files)
    emulator.configure(seed=3, store_then_fail=0.2, store_then_drop=0.2)
    report, log = await sync(config)
    emulator.configure(store_then_fail=0.0, store_then_drop=0.0)
    assert report.unsettled > 0, log
    assert report.exit_code == 1 and report.unsettled == unsettled(config)
    assert report.to_json()["unsettled"] == report.unsettled
    assert sum(1 for n in remote_hashes(emulator).values() if n > 1) <= report.unsettled
    return report.unsettled


@pytest.mark.parametrize("order", ["oldest_first", "newest_first"])
async def test_the_next_sync_settles_lost_answers_itself_and_exits_0(
    emulator: EmulatorThread, tmp_path: Path, order: str
) -> None:
    emulator.configure(list_order=order)
    config = listing_in_order(make_config(emulator.base_url, tmp_path, limits={"retries": 6}), order)
    write_files(tmp_path / "archive", photos(30))
    assert (await sync(config))[0].exit_code == 0
    files = {**photos(30), **photos(20, start=30)}
    left = await lose_some_answers(emulator, config, files)

    extra = sum(n - 1 for n in remote_hashes(emulator).values())
    before = len(emulator.requests())
    report, log = await sync(config)

    assert report.exit_code == 0, log
    assert report.settled == left and report.unsettled == 0 and report.added == 0
    assert report.duplicates_removed == extra
    assert_in_step(config, emulator, files)
    assert unsettled(config) == 0
    assert len(emulator.requests()) - before <= 12  # a few probes, the tail pages, one DELETE
    # ... and the night after is a no-op again: nothing sent at all.
    before = len(emulator.requests())
    assert (await sync(config))[0].exit_code == 0
    assert len(emulator.requests()) == before


async def test_where_the_order_is_unknown_every_sync_exits_1_until_reconcile(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    config = make_config(emulator.base_url, tmp_path, limits={"retries": 6})  # no service profile
    files = photos(40)
    left = await lose_some_answers(emulator, config, files)

    for _night in range(2):
        report, _ = await sync(config)
        assert report.exit_code == 1 and report.unsettled == left
        assert "not known" in (report.error or "") and "facesync reconcile" in (report.error or "")
        assert "unsettled" in report.summary_line()

    settled, _ = await reconcile(config)
    assert settled.exit_code == 0 and settled.settled == left
    assert (await sync(config))[0].exit_code == 0
    assert_in_step(config, emulator, files)


async def test_settling_costs_a_few_requests_at_the_end_of_a_large_collection(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.seed(20_000, {"album": "someone else's"})  # older images the state does not hold
    config = listing_in_order(make_config(emulator.base_url, tmp_path, limits={"retries": 6}))
    write_files(tmp_path / "archive", photos(10))
    assert (await sync(config, allow_foreign=True))[0].exit_code == 0
    files = {**photos(10), **photos(20, start=10)}
    left = await lose_some_answers(emulator, config, files)

    before = list_requests(emulator)
    report, log = await sync(config)

    assert report.exit_code == 0 and report.settled == left, log
    # The state holds 30 of 20,030 images: the probes grow from its guess, then halve; the tail is a page.
    assert list_requests(emulator) - before <= 2 * 8 + 3
    mine = [i for i in emulator.images() if "facesync_key" in i.metadata]
    assert Counter(i.sha256 for i in mine) == Counter(sha(b) for b in files.values())


async def test_find_end_is_logarithmic_and_exact() -> None:
    async def run(count: int, guess: int, limit: int = 100) -> tuple[int, int]:
        calls = 0

        async def fetch(offset: int, size: int) -> list[int]:
            nonlocal calls
            calls += 1
            return list(range(offset, min(count, offset + size)))

        end, _ = await find_end(fetch, limit, guess)
        return end, calls

    assert await run(0, 0) == (0, 1)
    assert await run(10_000_000, 10_000_000) == (10_000_000, 2)  # the state's guess is right
    for count, guess in [
        (10_000_000, 9_990_000),
        (10_000_000, 0),
        (250, 10_000_000),
        (10_000_000, 10_020_000),
    ]:
        end, calls = await run(count, guess)
        assert end == count and calls <= 2 * 24 + 2, (count, guess, calls)
    assert (await run(10_000_000, 9_998_000))[1] <= 12  # 2,000 off: a few doublings and halvings


async def test_find_end_learns_a_page_cap_and_never_takes_a_capped_page_for_the_end() -> None:
    count, cap = 5_000, 40

    async def capped(offset: int, size: int) -> list[int]:
        return list(range(offset, min(count, offset + min(size, cap))))

    for guess in (0, 1, 4_990, 5_000, 9_000):
        assert (await find_end(capped, 100, guess))[0] == count


def copy_db(source: Path, to: Path) -> None:
    """SQLite's online backup, as a backup tool takes it; both connections closed after."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(to)) as dst:
        src.backup(dst)


def back_up(config: Config, to: Path) -> None:
    copy_db(config.state.path, to)


def restore(config: Config, backup: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{config.state.path}{suffix}").unlink(missing_ok=True)
    copy_db(backup, config.state.path)


async def test_a_state_restored_from_a_two_night_old_backup_uploads_nothing_again(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    config = listing_in_order(make_config(emulator.base_url, tmp_path))
    files = photos(40)
    write_files(tmp_path / "archive", files)
    assert (await sync(config))[0].exit_code == 0
    back_up(config, tmp_path / "backup.db")
    for night in (1, 2):  # two nights of changes: edits and new files
        files.update(photos(5, start=5 * night, version=night))
        files.update(photos(5, start=100 + 5 * night))
        write_files(tmp_path / "archive", files)
        assert (await sync(config))[0].exit_code == 0
    assert_in_step(config, emulator, files)
    restore(config, tmp_path / "backup.db")

    report, log = await sync(config)

    assert report.added == 0 and report.replaced == 0, log
    assert report.restored == 20 and report.exit_code == 0
    assert_in_step(config, emulator, files)
    assert (await sync(config))[0].unchanged == len(files)


async def test_a_restored_state_takes_back_a_file_sent_by_a_newer_state_and_moved_since(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Found by the 30-night soak: a newer night edited and sent a file, the next moved it; the restored
    state sees a new key whose content no row holds, and the newer image names the old key."""
    config = listing_in_order(make_config(emulator.base_url, tmp_path))
    files = photos(10)
    write_files(tmp_path / "archive", files)
    assert (await sync(config))[0].exit_code == 0
    back_up(config, tmp_path / "backup.db")
    edited = "night/IMG_0003.jpg"
    files.update({edited: photos(1, start=3, version=1)[edited]})  # the newer night: an edit, sent
    write_files(tmp_path / "archive", files)
    assert (await sync(config))[0].replaced == 1
    moved = "elsewhere/IMG_0003.jpg"  # then the file moves, and the state is restored
    (tmp_path / "archive" / "elsewhere").mkdir()
    os.replace(tmp_path / "archive" / edited, tmp_path / "archive" / moved)
    files[moved] = files.pop(edited)
    restore(config, tmp_path / "backup.db")

    report, log = await sync(config)

    assert (report.added, report.restored, report.renamed, report.exit_code) == (0, 1, 1, 0), log
    assert_in_step(config, emulator, files)
    (image,) = [i for i in emulator.images() if i.sha256 == sha(files[moved])]
    assert image.metadata[KEY_FIELD] == moved
    assert (await sync(config))[0].unchanged == len(files)


async def test_a_restored_state_deletes_what_a_newer_state_sent_for_a_file_gone_since(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Found by the 30-night soak: a newer night sent a new file, the next deleted it, and the state was
    restored: no row will ever hold that image, and the night has nothing to add to trigger the check."""
    config = listing_in_order(make_config(emulator.base_url, tmp_path))
    files = photos(10)
    write_files(tmp_path / "archive", files)
    assert (await sync(config))[0].exit_code == 0
    back_up(config, tmp_path / "backup.db")
    assert (await sync(config))[0].unchanged == 10  # a night later: the lock file has a newer epoch
    gone = photos(1, start=77)
    write_files(tmp_path / "archive", gone)
    assert (await sync(config))[0].added == 1
    (tmp_path / "archive" / next(iter(gone))).unlink()
    restore(config, tmp_path / "backup.db")

    report, log = await sync(config)

    assert report.exit_code == 0 and report.added == 0, log
    assert "restored from a backup" in log and "gone" in log, log
    assert_in_step(config, emulator, files)


async def test_a_restored_state_on_a_service_of_unknown_order_exits_1_until_reconcile(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """No listing end to read: the lock file's epoch tells the state is older than the last run, so what
    it uploads may double a newer state's images; it stays unsettled until reconcile, never exit 0."""
    config = make_config(emulator.base_url, tmp_path)  # no profile: the order is unknown
    files = photos(12)
    write_files(tmp_path / "archive", files)
    assert (await sync(config))[0].exit_code == 0
    back_up(config, tmp_path / "backup.db")
    files.update(photos(3, start=50))
    write_files(tmp_path / "archive", files)
    assert (await sync(config))[0].exit_code == 0
    restore(config, tmp_path / "backup.db")

    report, log = await sync(config)

    assert report.exit_code == 1 and report.unsettled == 3, log
    assert "restored from a backup" in log and "reconcile" in (report.error or ""), log
    assert (await sync(config))[0].exit_code == 1  # the next night too: the doubt is kept
    assert (await reconcile(config))[0].exit_code == 0
    report, log = await sync(config)
    assert report.exit_code == 0 and report.unsettled == 0, log
    assert_in_step(config, emulator, files)


async def test_the_restore_check_ignores_images_of_other_shards(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    config = listing_in_order(make_config(emulator.base_url, tmp_path))
    files = photos(20)
    write_files(tmp_path / "archive", files)
    assert (await sync(config, shard=(0, 2)))[0].exit_code == 0
    other = make_config(emulator.base_url, tmp_path, state=tmp_path / "other.db")
    assert (await sync(listing_in_order(other), shard=(1, 2), allow_foreign=True))[0].exit_code == 0
    files.update(photos(6, start=50))
    write_files(tmp_path / "archive", files)
    report, log = await sync(config, shard=(0, 2))  # the other shard's newest images are not its own
    assert report.exit_code == 0 and report.restored == 0 and report.added > 0, log
    assert (await sync(listing_in_order(other), shard=(1, 2)))[0].exit_code == 0
    assert remote_hashes(emulator) == Counter(sha(b) for b in files.values())


def rewrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    st = path.stat()
    assert len(data) == st.st_size
    with path.open("r+b") as out:  # in place, as `rsync --inplace` or `exiftool -P` do
        out.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def same_size_other_content(data: bytes) -> bytes:
    """The JPEG with its comment (``photos`` writes one) changed: other content, the same size."""
    at = data.index(b"night-v")
    return data[:at] + b"NIGHT-V" + data[at + 7 :]


async def test_a_rewrite_that_puts_size_and_mtime_back_is_sent(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    config = make_config(emulator.base_url, tmp_path)
    files = photos(6)
    write_files(tmp_path / "archive", files)
    assert (await sync(config))[0].exit_code == 0
    for key in list(files)[:3]:
        files[key] = same_size_other_content(files[key])
        rewrite_keeping_size_and_mtime(tmp_path / "archive" / key, files[key])

    report, log = await sync(config)

    assert report.replaced == 3 and report.exit_code == 0, log
    assert_in_step(config, emulator, files)


async def test_a_changed_ctime_alone_only_refreshes_the_row(emulator: EmulatorThread, tmp_path: Path) -> None:
    config = make_config(emulator.base_url, tmp_path)
    files = photos(4)
    write_files(tmp_path / "archive", files)
    assert (await sync(config))[0].exit_code == 0
    os.chmod(tmp_path / "archive" / next(iter(files)), 0o600)  # ctime moves; content, size, mtime do not
    before = len(emulator.requests())
    report, _ = await sync(config)
    assert report.retouched == 1 and report.replaced == 0 and len(emulator.requests()) == before
    assert (await sync(config))[0].retouched == 0


async def test_ignore_ctime_and_inode_trust_size_and_mtime_and_checksum_reads_everything(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    config = make_config(
        emulator.base_url,
        tmp_path,
        source_section={"path": str(tmp_path / "archive"), "ignore_ctime": True, "ignore_inode": True},
    )
    files = photos(5)
    write_files(tmp_path / "archive", files)
    assert (await sync(config))[0].exit_code == 0
    key = next(iter(files))
    files[key] = same_size_other_content(files[key])
    rewrite_keeping_size_and_mtime(tmp_path / "archive" / key, files[key])
    assert (await sync(config))[0].replaced == 0  # as asked: size and mtime alone

    before = len(emulator.requests())
    report, log = await sync(config, checksum=True)

    assert report.replaced == 1 and report.verified == 4 and report.exit_code == 0, log
    assert len(emulator.requests()) - before == 2  # the add, and the old image's DELETE
    assert_in_step(config, emulator, files)


async def test_rows_from_before_change_stamps_get_them_without_a_read(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    config = make_config(emulator.base_url, tmp_path)
    files = photos(3)
    write_files(tmp_path / "archive", files)
    assert (await sync(config))[0].exit_code == 0
    with sqlite3.connect(config.state.path) as db:  # as facesync before schema 8 left them
        db.execute("UPDATE items SET etag = NULL")
    report, _ = await sync(config)
    assert report.retouched == 3 and report.requests == 0
    assert all(r.etag for r in state_rows(config).values())
    assert (await sync(config))[0].unchanged == 3
