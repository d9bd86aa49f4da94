"""Reconcile against the emulator on 127.0.0.1: page cap 20, ids-per-delete cap 5, int and string ids,
listings with and without metadata."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import KEY_FIELD, TOKEN_FIELD, Config
from pipeline.emulator import EmulatorThread
from pipeline.engine.diff import classify
from pipeline.keys import ImageId
from pipeline.state import Row, State, Status
from pipeline.state.listing import Listing
from tests.helpers import assert_in_step, make_config, reconcile, sha, state_rows, sync, write_files
from tests.imagefactory import jpeg_bytes


@pytest.fixture(params=[("int", True), ("str", False)], ids=["int-ids-with-metadata", "str-ids-no-metadata"])
def service(emulator: EmulatorThread, request: pytest.FixtureRequest) -> EmulatorThread:
    id_kind, list_metadata = request.param
    emulator.configure(page_cap=20, delete_cap=5, id_kind=id_kind, list_metadata=list_metadata)
    return emulator


def synced_archive(tmp_path: Path, n: int) -> dict[str, bytes]:
    files = {f"photos/IMG_{i:04d}.jpg": jpeg_bytes(i) for i in range(n)}
    for key, data in files.items():
        (tmp_path / "archive" / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "archive" / key).write_bytes(data)
    return files


def config_for(emulator: EmulatorThread, tmp_path: Path, **limits: Any) -> Config:
    return make_config(
        emulator.base_url,
        tmp_path,
        api={"page_size": 50, "delete_batch": 5},
        limits={"max_delete": "50%", **limits},
    )


async def test_dry_run_lists_foreign_images_and_touches_nothing(
    service: EmulatorThread, tmp_path: Path
) -> None:
    files = synced_archive(tmp_path, 30)
    config = config_for(service, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    foreign = service.seed(7)
    before = state_rows(config)
    requests = len(service.requests())

    report, log = await reconcile(config, dry_run=True)

    assert report.exit_code == 0, log
    assert (report.listed, report.orphans) == (37, 7)
    assert sorted(map(str, report.would_delete)) == sorted(map(str, foreign))
    assert all(f"would delete {i}" in log for i in foreign)
    assert len(service.images()) == 37
    assert state_rows(config) == before
    assert {r.method for r in service.requests()[requests:]} == {"GET"}
    assert {str(i) for i in foreign} <= {str(i.id) for i in service.images()}  # foreign images untouched
    assert set(before) == set(files)


async def test_max_delete_refuses_the_whole_plan_then_a_plain_run_deletes_exactly_the_orphans(
    service: EmulatorThread, tmp_path: Path
) -> None:
    files = synced_archive(tmp_path, 30)
    config = config_for(service, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    foreign = service.seed(7)

    refused, log = await reconcile(config, max_delete=3)

    assert refused.exit_code == 5, log
    assert "refusing to delete 7 orphan(s)" in (refused.error or "")
    assert len(service.images()) == 37
    assert not any(r.method == "DELETE" for r in service.requests())

    report, log = await reconcile(config)

    assert report.exit_code == 0, log
    assert (report.orphans, report.deleted) == (7, 7)
    remaining = {str(i.id) for i in service.images()}
    assert not remaining & {str(i) for i in foreign}
    # Deletes went out in batches within the service's cap of 5 ids.
    assert sum(1 for r in service.requests() if r.method == "DELETE") == 2
    assert_in_step(config, service, files)


async def test_sync_and_reconcile_settle_lost_answers_to_one_image_per_file(
    service: EmulatorThread, tmp_path: Path
) -> None:
    files = synced_archive(tmp_path, 40)
    config = config_for(service, tmp_path, retries=2)
    service.configure(store_then_fail=0.1, store_then_drop=0.05, seed=7)

    await sync(config)
    service.configure(store_then_fail=0.0, store_then_drop=0.0)
    await sync(config)
    report, log = await reconcile(config)

    assert report.exit_code == 0, log
    assert report.duplicates_removed + report.deleted >= 1  # the faults did store extra copies
    assert_in_step(config, service, files)
    # A second reconcile has nothing left to do.
    again, _ = await reconcile(config)
    assert (again.orphans, again.deleted, again.missing_requeued) == (0, 0, 0)


async def test_an_interrupted_upload_is_adopted_when_the_listing_shows_its_token(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = synced_archive(tmp_path, 5)
    config = config_for(emulator, tmp_path, retries=0)
    emulator.configure(store_then_drop=1.0)
    report, _ = await sync(config)
    # Every answer lost: the circuit breaker stops the run; each add sent is stored, its row uploading.
    assert report.exit_code == 1
    uploading = [r for r in state_rows(config).values() if r.status is Status.UPLOADING]
    assert 0 < len(uploading) == len(emulator.images())
    emulator.configure(store_then_drop=0.0)

    report, log = await reconcile(config)

    assert report.exit_code == 0, log
    assert (report.adopted, report.deleted) == (len(uploading), 0)
    # What the breaker kept from being tried is uploaded by the next sync, nothing more.
    again, _ = await sync(config)
    assert again.added == 5 - len(uploading)
    assert_in_step(config, emulator, files)


async def test_a_listing_failing_on_page_3_deletes_nothing_and_requeues_nothing(
    service: EmulatorThread, tmp_path: Path
) -> None:
    synced_archive(tmp_path, 30)
    config = config_for(service, tmp_path, retries=1)
    assert (await sync(config))[0].exit_code == 0
    service.seed(7)
    service.configure(page_cap=10, fail_list_from_offset=20)
    before = state_rows(config)

    report, log = await reconcile(config, max_delete=100)

    assert report.exit_code == 1, log
    assert "listing failed after 28 image(s)" in (report.error or "")  # pages of 10, overlapping by 1
    assert len(service.images()) == 37
    assert state_rows(config) == before


async def test_an_empty_listing_with_a_full_state_exits_5_and_requeues_nothing(
    service: EmulatorThread, tmp_path: Path
) -> None:
    synced_archive(tmp_path, 30)
    config = config_for(service, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    service.configure(list_empty=True)
    before = state_rows(config)

    report, log = await reconcile(config)

    assert report.exit_code == 5, log
    assert "the listing has 0 image(s) and lacks 30 of 30 synced" in (report.error or "")
    assert state_rows(config) == before
    forced, _ = await reconcile(config, force=True)
    assert forced.exit_code == 0 and forced.missing_requeued == 30
    assert {r.status for r in state_rows(config).values()} == {Status.PENDING}


async def test_missing_images_are_requeued_and_the_next_sync_uploads_them(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = synced_archive(tmp_path, 10)
    config = config_for(emulator, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    lost = [i.id for i in emulator.images()[:2]]
    emulator.call(lambda emu: emu.store.delete(str(i) for i in lost))

    report, _ = await reconcile(config)
    assert report.missing_requeued == 2
    again, _ = await sync(config)
    assert again.added == 2
    assert_in_step(config, emulator, files)


async def test_two_pass_mode_deletes_an_orphan_only_on_its_second_sighting(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    synced_archive(tmp_path, 10)
    config = config_for(emulator, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    emulator.seed(2)

    first, _ = await reconcile(config, min_orphan_age=0)
    assert (first.deferred, first.deleted) == (2, 0)
    assert len(emulator.images()) == 12
    second, _ = await reconcile(config, min_orphan_age=0)
    assert (second.deferred, second.deleted) == (0, 2)
    assert len(emulator.images()) == 10


async def test_two_pass_mode_waits_for_the_minimum_age(emulator: EmulatorThread, tmp_path: Path) -> None:
    synced_archive(tmp_path, 4)
    config = config_for(emulator, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    emulator.seed(1)
    await reconcile(config, min_orphan_age=3600)
    second, _ = await reconcile(config, min_orphan_age=3600)
    assert (second.deferred, second.deleted) == (1, 0)


def listed(state: State, images: list[tuple[ImageId, dict[str, str] | None]]) -> Listing:
    """A listing of ``images`` (id, metadata) in the state's table, as a reconcile would write it."""
    listing = state.listing()
    listing.start()
    listing.add([(str(i), i, (m or {}).get(TOKEN_FIELD), (m or {}).get(KEY_FIELD)) for i, m in images])
    return listing


def doomed(listing: Listing, kind: str) -> list[ImageId]:
    return [i for chunk in listing.doomed([kind]) for i, _ in chunk]


def test_the_diff_keeps_one_image_per_token_and_deletes_the_other_copies(tmp_path: Path) -> None:
    with State.open(tmp_path / "state.db") as state:
        state.put_many(
            [
                Row(key="a.jpg", size=1, mtime_ns=1, status=Status.UPLOADING, token="t1"),
                Row(key="b.jpg", size=1, mtime_ns=1, status=Status.SYNCED, token="t2", remote_id="B"),
            ]
        )
        listing = listed(
            state,
            [("X", {TOKEN_FIELD: "t1"}), ("Y", {TOKEN_FIELD: "t1"}), ("B", {TOKEN_FIELD: "t2"}),
             ("C", {TOKEN_FIELD: "t2"}), ("F", {})],
        )  # fmt: skip

        d = classify(listing, has_metadata=True)

        assert [(r.key, r.remote_id, r.status) for r in d.adopt] == [("a.jpg", "X", Status.SYNCED)]
        assert doomed(listing, "duplicate") == ["C", "Y"]
        assert doomed(listing, "orphan") == ["F"]
        assert (d.missing, d.requeue_uploading, d.orphans) == (0, [], 4)


def test_the_diff_without_metadata_requeues_uploading_rows_and_deletes_their_orphans(tmp_path: Path) -> None:
    with State.open(tmp_path / "state.db") as state:
        state.put_many([Row(key="a.jpg", size=1, mtime_ns=1, status=Status.UPLOADING, token="t1")])
        listing = listed(state, [(1, None), (2, None)])

        d = classify(listing, has_metadata=False)

        assert d.adopt == [] and [r.key for r in d.requeue_uploading] == ["a.jpg"]
        assert doomed(listing, "orphan") == [1, 2]


def test_an_id_listed_as_text_matches_the_number_the_state_holds(tmp_path: Path) -> None:
    """The API page leaves the id's type open: "42" listed is the 42 an add answered."""
    with State.open(tmp_path / "state.db") as state:
        state.put_many([Row(key="a.jpg", size=1, mtime_ns=1, status=Status.SYNCED, token="t", remote_id=42)])
        listing = listed(state, [("42", {TOKEN_FIELD: "t"})])

        d = classify(listing, has_metadata=True)

        assert (d.missing, d.orphans) == (0, 0)


async def test_a_reconcile_run_is_recorded_in_the_runs_table(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    synced_archive(tmp_path, 3)
    config = config_for(emulator, tmp_path)
    await sync(config)
    report, _ = await reconcile(config)
    with State.open(config.state.path) as state:
        last = state.last_runs(1)[0]
    assert (last["command"], last["exit_code"], last["counts"]["listed"]) == ("reconcile", 0, report.listed)


async def test_a_server_delete_cap_is_found_and_the_next_run_starts_at_it(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """7 orphans, a cap of 5 ids per DELETE: all deleted, exit 0; the next reconcile sends no batch the
    service refuses."""
    synced_archive(tmp_path, 3)
    config = make_config(emulator.base_url, tmp_path)  # api.delete_batch 100: the cap is the service's
    assert (await sync(config))[0].exit_code == 0
    emulator.configure(delete_cap=5)
    emulator.seed(7)

    first, log = await reconcile(config, max_delete=7)

    assert (first.exit_code, first.deleted, first.failed) == (0, 7, 0), log
    refused = [r for r in emulator.requests() if r.method == "DELETE" and r.outcome == "rejected"]
    assert len(refused) == 1  # the first batch of 7, once: then batches of at most 3
    emulator.seed(7)
    before = len(emulator.requests())

    second, log = await reconcile(config, max_delete=7)

    assert (second.exit_code, second.deleted) == (0, 7), log
    later = emulator.requests()[before:]
    assert not [r for r in later if r.method == "DELETE" and r.outcome == "rejected"]


async def test_a_dead_probes_images_are_deleted_as_ours_and_a_running_probes_are_left(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    from pipeline.probe.journal import PROBE_FIELD, new_token

    synced_archive(tmp_path, 3)
    config = make_config(emulator.base_url, tmp_path, limits={"max_delete": 0})  # no orphan may go
    assert (await sync(config))[0].exit_code == 0
    dead = emulator.seed(2, {PROBE_FIELD: new_token(time.time() - 3600)})
    running = emulator.seed(1, {PROBE_FIELD: new_token()})

    report, log = await reconcile(config)

    assert (report.exit_code, report.deleted, report.duplicates_removed) == (0, 2, 2), log
    left = {i.id for i in emulator.images()}
    assert not left & set(dead) and set(running) <= left


async def test_a_file_gone_back_to_its_old_content_keeps_that_image_until_a_sync_stores_it_again(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    # Found by the state-machine soak: f.jpg is replaced (X -> Y) and the add's answer is lost, so its
    # row stays `uploading` and still names X's image; the file goes back to X; reconcile adopts Y's
    # image for the row. X's image, the only copy of what the file now holds, must not be deleted by
    # that reconcile or the next one: the next sync, which sees the file, stores X again first.
    x, y = jpeg_bytes(1), jpeg_bytes(2)
    root = tmp_path / "archive"
    write_files(root, {"f.jpg": x})
    config = make_config(emulator.base_url, tmp_path, limits={"retries": 0, "max_delete": "100%"})
    assert (await sync(config))[0].added == 1
    write_files(root, {"f.jpg": y})
    os.utime(root / "f.jpg", ns=(1, 2_000_000_000))
    emulator.configure(store_then_drop=1.0)  # Y is stored, its answer lost
    lost, log = await sync(config)
    emulator.configure(store_then_drop=0.0)
    assert (lost.exit_code, lost.uncertain) == (1, 1), log
    write_files(root, {"f.jpg": x})  # back to X
    os.utime(root / "f.jpg", ns=(1, 3_000_000_000))

    for _ in range(2):
        settled, log = await reconcile(config)
        assert settled.exit_code == 0, log
        assert sha(x) in {i.sha256 for i in emulator.images()}, log  # never without the file's content

    synced, log = await sync(config)
    assert (synced.exit_code, synced.replaced) == (0, 1), log
    assert [i.sha256 for i in emulator.images()] == [sha(x)]  # Y's image and X's old one deleted after
    assert_in_step(config, emulator, {"f.jpg": x})
