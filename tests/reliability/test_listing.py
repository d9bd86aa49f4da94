"""Scenario 6: reconcile over a listing that breaks part-way, or comes back empty — no delete, no re-queue."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipeline.emulator import EmulatorThread
from pipeline.state import State, Status
from tests.helpers import make_config, reconcile, state_rows, sync, write_files

from .conftest import Watch, archive

BROKEN_LISTINGS: list[dict[str, Any]] = [
    {"fail_list_from_offset": 0},
    {"fail_list_from_offset": 10},
    {"fail_list_from_offset": 25},
    {"fail_list_from_offset": 10, "fail_body_html": True, "fail_status": 502},
    {"list_empty": True},
]


async def broken_listing(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, fault: dict[str, Any]
) -> None:
    files = archive(range(30))
    write_files(tmp_path / "archive", files)
    watch.expect(files)
    config = make_config(
        emulator.base_url, tmp_path, api={"page_size": 5}, limits={"retries": 1, "max_delete": "50%"}
    )
    assert (await sync(config))[0].exit_code == 0
    # Work a trusted listing would do: two foreign images to delete, one lost answer to adopt.
    emulator.seed(2)
    key = sorted(files)[3]
    with State.open(config.state.path) as state:
        row = state.get(key)
        assert row is not None and row.remote_id is not None
        state.put_many([replace(row, status=Status.UPLOADING, remote_id=None)])
    before = state_rows(config)
    images_before = emulator.images()
    requests0 = len(emulator.requests())
    emulator.configure(**fault)

    report, log = await reconcile(config)

    assert report.exit_code in (1, 5), log
    assert (report.deleted, report.adopted, report.missing_requeued, report.uploading_requeued) == (
        0,
        0,
        0,
        0,
    )
    assert {r.method for r in emulator.requests()[requests0:]} == {"GET"}
    assert emulator.images() == images_before
    assert state_rows(config) == before
    await watch.settle(config, files)


@pytest.mark.parametrize("fault", BROKEN_LISTINGS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()))
async def test_a_broken_or_empty_listing_deletes_nothing_and_requeues_nothing(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, fault: dict[str, Any]
) -> None:
    await broken_listing(emulator, watch, tmp_path, fault)


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(100, 110))
async def test_broken_listing_soak(emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int) -> None:
    emulator.configure(id_kind="str" if seed % 2 else "int")
    fault = {"fail_list_from_offset": random.Random(seed).randrange(0, 30)}
    await broken_listing(emulator, watch, tmp_path, fault)


@pytest.mark.parametrize("deletes_per_page", [3, 12, 60])
async def test_foreign_deletions_during_paging_requeue_nothing_and_hide_no_orphan(
    emulator: EmulatorThread, tmp_path: Path, deletes_per_page: int
) -> None:
    """Another application deletes its images while reconcile pages: the offsets shift under it."""
    emulator.seed(300)  # another application's images, listed before ours
    files = archive(range(120))
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path, api={"page_size": 50})
    assert (await sync(config, allow_foreign=True))[0].exit_code == 0
    emulator.configure(list_shift_deletes=deletes_per_page)
    lists_before = sum(1 for r in emulator.requests() if r.method == "GET")

    report, log = await reconcile(config, max_delete=1000)

    assert report.exit_code == 0, log
    assert report.missing_requeued == 0  # no synced file looks missing ...
    again, _ = await sync(config)
    assert again.requests == 0  # ... so nothing is uploaded again
    pages = sum(1 for r in emulator.requests() if r.method == "GET") - lists_before
    print(f"deletes/page {deletes_per_page}: {pages} listing requests")  # docs/performance.md quotes these
    assert pages <= 8 * -(-(300 + 120) // 50)  # the extra reads the shifts cost stay bounded
    emulator.configure(list_shift_deletes=0)
    settled, log = await reconcile(config, max_delete=1000)  # no orphan was hidden for good
    assert (settled.exit_code, settled.orphans) == (0, 0), log
    assert len(emulator.images()) == len(files)
