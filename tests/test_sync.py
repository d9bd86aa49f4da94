"""The sync engine end to end against the emulator on 127.0.0.1, real directories, real SQLite."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.emulator import EmulatorThread
from pipeline.sources.local import LocalSource
from pipeline.state import State, Status
from tests.helpers import (
    assert_in_step,
    config_data,
    make_config,
    reconcile,
    remote_hashes,
    sha,
    state_rows,
    sync,
    write_config_file,
    write_files,
)
from tests.imagefactory import jpeg_bytes, png_bytes, zero_by_zero_png


def archive(n: int, start: int = 0) -> dict[str, bytes]:
    """``n`` distinct valid images spread over two albums."""
    return {
        f"{'album-a' if i % 2 else 'album b'}/IMG_{i:04d}.{'png' if i % 5 == 0 else 'jpg'}": (
            png_bytes(i) if i % 5 == 0 else jpeg_bytes(i)
        )
        for i in range(start, start + n)
    }


async def test_first_sync_stores_exactly_the_valid_images(emulator: EmulatorThread, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    valid = archive(12)
    write_files(root, valid)
    good = jpeg_bytes(99)
    write_files(
        root,
        {
            "broken/empty.jpg": b"",
            "broken/notes.jpg": b"this is text, not a photo\n",
            "broken/truncated.jpg": good[: len(good) // 3],
            "broken/huge.jpg": jpeg_bytes(98, size=(400, 400)),
            "readme.txt": b"not considered: wrong extension",
        },
    )
    config = make_config(emulator.base_url, tmp_path, limits={"max_image_bytes": 5_000})
    assert len(valid["album-a/IMG_0001.jpg"]) < 5_000 < len((root / "broken/huge.jpg").read_bytes())

    report, log = await sync(config)

    assert report.exit_code == 0, log
    assert report.added == 12
    assert remote_hashes(emulator) == {sha(b): 1 for b in valid.values()}
    rows = state_rows(config)
    assert rows["broken/empty.jpg"].status is Status.SKIPPED and "empty" in (
        rows["broken/empty.jpg"].message or ""
    )
    assert rows["broken/notes.jpg"].status is Status.SKIPPED
    assert "not_an_image" in (rows["broken/notes.jpg"].message or "")
    assert rows["broken/huge.jpg"].status is Status.SKIPPED and "too_large" in (
        rows["broken/huge.jpg"].message or ""
    )
    assert rows["broken/truncated.jpg"].status is Status.SKIPPED and "truncated" in (
        rows["broken/truncated.jpg"].message or ""
    )
    assert "readme.txt" not in rows
    assert dict(report.skipped) == {"empty": 1, "not_an_image": 1, "too_large": 1, "truncated": 1}
    assert dict(report.rejected) == {}
    # Broken files cost no request: one listing page (is the collection empty before the first
    # upload?), then one add per valid image, nothing else.
    assert [r.method for r in emulator.requests()] == ["GET"] + ["POST"] * 12
    # Each refusal said what and where, in one line.
    assert "skipped broken/empty.jpg" in log and "skipped broken/truncated.jpg" in log
    assert_in_step(config, emulator, valid)


async def test_second_sync_sends_zero_requests(emulator: EmulatorThread, tmp_path: Path) -> None:
    write_files(tmp_path / "archive", archive(10))
    write_files(tmp_path / "archive", {"bad.jpg": b"text"})
    config = make_config(emulator.base_url, tmp_path)
    first, _ = await sync(config)
    assert first.exit_code == 0
    before = len(emulator.requests())

    second, log = await sync(config)

    assert second.exit_code == 0, log
    assert second.requests == 0
    assert len(emulator.requests()) == before
    assert (second.added, second.replaced, second.removed, second.unchanged) == (0, 0, 0, 11)


async def test_edits_removals_and_additions_propagate_exactly(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    files = archive(10)
    write_files(root, files)
    config = make_config(emulator.base_url, tmp_path, limits={"max_delete": "50%"})
    assert (await sync(config))[0].exit_code == 0
    old_ids = {k: r.remote_id for k, r in state_rows(config).items()}

    edited = "album-a/IMG_0001.jpg"
    files[edited] = jpeg_bytes(1001)
    write_files(root, {edited: files[edited]})
    removed = "album b/IMG_0002.jpg"
    (root / removed).unlink()
    del files[removed]
    added = archive(2, start=50)
    write_files(root, added)
    files.update(added)
    touched = "album b/IMG_0004.jpg"
    os.utime(root / touched, ns=(1, 1_000_000_000_000))

    report, log = await sync(config)

    assert report.exit_code == 0, log
    assert (report.added, report.replaced, report.removed, report.retouched) == (2, 1, 1, 1)
    rows = state_rows(config)
    assert rows[edited].remote_id != old_ids[edited]
    assert rows[touched].remote_id == old_ids[touched] and rows[touched].mtime_ns == 1_000_000_000_000
    assert removed not in rows
    assert_in_step(config, emulator, files)
    # The replaced image's old version was deleted remotely, not left behind.
    with State.open(config.state.path) as state:
        assert state.tombstones() == []


async def test_bad_credentials_stop_the_run_with_exit_3(emulator: EmulatorThread, tmp_path: Path) -> None:
    write_files(tmp_path / "archive", archive(30))
    config = make_config(emulator.base_url, tmp_path, api={"api_secret": "wrong-secret"})

    report, log = await sync(config)

    assert report.exit_code == 3
    assert len(emulator.requests()) <= config.limits.concurrency
    assert emulator.images() == []
    assert "wrong-secret" not in log and "wrong-secret" not in str(report.to_json())
    assert {r.status for r in state_rows(config).values()} <= {Status.PENDING}


async def test_spent_quota_exits_4_and_a_later_run_finishes_without_duplicates(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = archive(20)
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path, limits={"quota_wait": 0, "concurrency": 4})
    emulator.configure(quota=7)

    report, log = await sync(config)

    assert report.exit_code == 4, log
    stored = len(emulator.images())
    assert stored == 6  # 7 requests: the first-upload check's listing page, then 6 adds
    synced = [r for r in state_rows(config).values() if r.status is Status.SYNCED]
    assert len(synced) == 6 and report.not_tried == 14
    assert "14 file(s) not tried" in (report.error or "")
    throttled_at = next(i for i, r in enumerate(emulator.requests()) if r.status_code == 4)
    assert len(emulator.requests()) - throttled_at <= config.limits.concurrency

    emulator.configure(quota=None)
    report, log = await sync(config)
    assert report.exit_code == 0, log
    assert_in_step(config, emulator, files)


async def test_removals_over_max_delete_are_refused_whole(emulator: EmulatorThread, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    files = archive(10)
    write_files(root, files)
    config = make_config(emulator.base_url, tmp_path, limits={"max_delete": 2})
    assert (await sync(config))[0].exit_code == 0
    for key in list(files)[:3]:
        (root / key).unlink()

    report, log = await sync(config)

    assert report.exit_code == 5, log
    assert "refusing to delete 3 image(s)" in (report.error or "")
    assert len(emulator.images()) == 10
    report, _ = await sync(config, max_delete=3)
    assert report.exit_code == 0 and report.removed == 3
    assert len(emulator.images()) == 7


async def test_a_refused_run_keeps_every_row_even_those_with_no_image(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """An empty mount: the removals are refused (exit 5), and the rejected and skipped rows stay, so the
    next run does not send again what the service refused."""
    root = tmp_path / "archive"
    files = archive(6)
    write_files(root, files | {"zero.png": zero_by_zero_png(), "notes.jpg": b"text, not a photo"})
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    before = state_rows(config)
    assert {before["zero.png"].status, before["notes.jpg"].status} == {Status.REJECTED, Status.SKIPPED}
    mounted = tmp_path / "mounted"
    root.rename(mounted)
    root.mkdir()  # the mount point is there, empty

    refused, log = await sync(config)

    assert refused.exit_code == 5, log
    assert state_rows(config) == before
    root.rmdir()
    mounted.rename(root)
    again, log = await sync(config)
    assert (again.exit_code, again.requests, again.unchanged) == (0, 0, 8), log


async def test_dry_run_sends_nothing_and_changes_nothing(emulator: EmulatorThread, tmp_path: Path) -> None:
    write_files(tmp_path / "archive", archive(5))
    config = make_config(emulator.base_url, tmp_path)

    report, _ = await sync(config, dry_run=True)

    assert report.exit_code == 0
    assert dict(report.planned) == {"add": 5} and report.added == 5
    # It reads what the real run reads — the first-upload check's listing page — and changes nothing.
    assert [r.method for r in emulator.requests()] == ["GET"]
    assert emulator.images() == [] and state_rows(config) == {}


async def test_a_failed_scan_never_removes(emulator: EmulatorThread, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    files = archive(6)
    write_files(root, files)
    config = make_config(emulator.base_url, tmp_path, limits={"max_delete": "100%"})
    assert (await sync(config))[0].exit_code == 0
    shutil.rmtree(root)

    report, log = await sync(config)

    assert report.exit_code == 1
    assert "cannot list the source" in (report.error or ""), log
    assert len(emulator.images()) == 6


async def test_lost_answers_leave_rows_uploading_and_next_run_settles(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = archive(10)
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path, limits={"retries": 0})
    emulator.configure(store_then_fail=1.0)

    report, _ = await sync(config)

    # Every answer lost: after a few calls the circuit breaker stops the run (the service is failing).
    assert report.exit_code == 1 and "the service is failing" in (report.error or "")
    rows = state_rows(config)
    assert {r.status for r in rows.values()} == {Status.UPLOADING}
    assert all(r.token for r in rows.values())
    assert len(rows) == len(emulator.images()) and len(rows) + report.not_tried == 10
    emulator.configure(store_then_fail=0.0)
    # Where the service's order is not known, the next run re-sends them under the same tokens (so a
    # listing can tell the copies apart) and exits 1 until reconcile has settled them.
    report, _ = await sync(config)
    assert report.exit_code == 1 and report.unsettled == len(rows) and "reconcile" in (report.error or "")
    again = state_rows(config)
    assert {key: again[key].token for key in rows} == {key: row.token for key, row in rows.items()}
    assert (await reconcile(config))[0].settled == len(rows)
    assert (await sync(config))[0].exit_code == 0
    assert_in_step(config, emulator, files)


@pytest.mark.parametrize("id_kind", ["int", "str"])
async def test_remote_ids_are_kept_exactly_as_returned(
    emulator: EmulatorThread, tmp_path: Path, id_kind: str
) -> None:
    write_files(tmp_path / "archive", archive(3))
    emulator.configure(id_kind=id_kind)
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    ids = sorted(r.remote_id for r in state_rows(config).values())  # type: ignore[type-var]
    assert ids == sorted(i.id for i in emulator.images())  # type: ignore[type-var]
    assert all(isinstance(i, int if id_kind == "int" else str) for i in ids)


async def test_the_secret_never_reaches_the_state_db(emulator: EmulatorThread, tmp_path: Path) -> None:
    write_files(tmp_path / "archive", archive(3))
    config = make_config(emulator.base_url, tmp_path)
    report, log = await sync(config)
    assert report.exit_code == 0
    for path in tmp_path.glob("state.db*"):
        assert b"demo-secret" not in path.read_bytes()
    assert "demo-secret" not in log


async def test_a_bug_in_a_worker_stops_the_run_with_its_error_instead_of_hanging(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_files(tmp_path / "archive", archive(40))
    config = make_config(emulator.base_url, tmp_path, limits={"concurrency": 2})

    async def broken(self: object, item: object, max_bytes: int) -> bytes:
        raise RuntimeError("a bug in the source")

    monkeypatch.setattr(LocalSource, "read", broken)
    with pytest.raises(RuntimeError, match="a bug in the source"):
        await asyncio.wait_for(sync(config), timeout=30)
    assert emulator.requests() == []


def test_ctrl_c_stops_intake_records_work_in_flight_and_exits_130(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = archive(40)
    write_files(tmp_path / "archive", files)
    data = config_data(emulator.base_url, tmp_path, limits={"concurrency": 2})
    config_file = write_config_file(tmp_path / "c.yaml", data)
    emulator.configure(delay=0.3, seed=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(config_file), "sync", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(emulator.requests()) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 130, err
    report = json.loads(out)
    assert report["exit_code"] == 130 and 0 < report["added"] < 40
    # Everything answered was recorded: state holds exactly what the service stored, nothing stuck.
    stored = {i.sha256 for i in emulator.images()}
    rows = state_rows(make_config(emulator.base_url, tmp_path))
    assert {r.sha256 for r in rows.values() if r.status is Status.SYNCED} == stored
    assert all(r.status is Status.SYNCED for r in rows.values())
    emulator.configure(delay=0.0)
    config = make_config(emulator.base_url, tmp_path)
    final, log = asyncio.run(sync(config))
    assert final.exit_code == 0, log
    assert_in_step(config, emulator, files)


async def test_a_symlink_is_recorded_skipped_with_its_reason_and_not_sent_again(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    write_files(root, archive(2))
    (root / "link.jpg").symlink_to(root / "album-a" / "IMG_0001.jpg")
    config = make_config(emulator.base_url, tmp_path)

    first, log = await sync(config)

    assert first.exit_code == 0 and first.added == 2 and dict(first.skipped) == {"not_a_file": 1}
    assert "skipped link.jpg: not_a_file: a symlink, not followed" in log
    second, _ = await sync(config)
    assert (second.requests, second.unchanged, dict(second.skipped)) == (0, 3, {})
