"""The state's content-hash index (``items_sha256``) during a first sync: dropped while it loads, built
once at its end, and built again by the next sync when a run killed in between left it out.

Kept row by row, its random keys cost a page write a file (docs/performance.md, "Issue 23, round 5");
a first sync looks nothing up by content, so it builds the index at its end instead. What the tests
hold is where the index is at each point, read from the state file by a connection of their own, and
that a later sync still finds a moved file by its content.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from pipeline.api.client import FaceSearchClient
from pipeline.emulator import EmulatorThread
from pipeline.state import State
from tests.helpers import assert_in_step, make_config, sync, write_files
from tests.imagefactory import jpeg_bytes


def has_index(state: Path) -> bool:
    """Whether the state file holds the content index, asked on a connection of the test's own."""
    db = sqlite3.connect(state)
    try:
        found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'items_sha256'")
        return found.fetchone() is not None
    finally:
        db.close()


@pytest.fixture
def seen_by_adds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[bool]:
    """Whether the state held the content index when each add was sent."""
    seen: list[bool] = []
    add_image = FaceSearchClient.add_image

    async def recording(self: FaceSearchClient, data: bytes, metadata: Any = None) -> Any:
        seen.append(has_index(tmp_path / "state.db"))
        return await add_image(self, data, metadata)

    monkeypatch.setattr(FaceSearchClient, "add_image", recording)
    return seen


async def test_a_first_sync_keeps_no_content_index_while_it_loads_and_builds_it_at_its_end(
    emulator: EmulatorThread, tmp_path: Path, seen_by_adds: list[bool]
) -> None:
    files = {f"album/IMG_{i}.jpg": jpeg_bytes(i) for i in range(6)}
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path)

    report, log = await sync(config)

    assert report.exit_code == 0 and report.added == 6, log
    assert seen_by_adds == [False] * 6
    assert has_index(tmp_path / "state.db")
    assert_in_step(config, emulator, files)


async def test_a_later_sync_keeps_the_index_and_finds_a_moved_file_by_its_content(
    emulator: EmulatorThread, tmp_path: Path, seen_by_adds: list[bool]
) -> None:
    root = tmp_path / "archive"
    files = {f"inbox/IMG_{i}.jpg": jpeg_bytes(i) for i in range(3)}
    write_files(root, files)
    config = make_config(emulator.base_url, tmp_path)
    assert (await sync(config))[0].exit_code == 0
    # As a first sync killed before its end leaves it: the rows recorded, the index not built.
    with State.open(tmp_path / "state.db") as state:
        state.drop_content_index()

    (root / "sorted").mkdir()
    os.rename(root / "inbox/IMG_0.jpg", root / "sorted/IMG_0.jpg")
    files["sorted/IMG_0.jpg"] = files.pop("inbox/IMG_0.jpg")
    files["inbox/new.jpg"] = jpeg_bytes(50)
    write_files(root, {"inbox/new.jpg": files["inbox/new.jpg"]})
    seen_by_adds.clear()
    report, log = await sync(config)

    assert report.exit_code == 0, log
    assert (report.renamed, report.added, report.removed) == (1, 1, 0)
    assert seen_by_adds == [True]  # built at the start, before anything is looked up by it
    assert has_index(tmp_path / "state.db")
    assert_in_step(config, emulator, files)


async def test_a_dry_run_of_a_first_sync_leaves_the_state_as_it_was(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    write_files(tmp_path / "archive", {"a.jpg": jpeg_bytes(1)})
    config = make_config(emulator.base_url, tmp_path)
    State.open(tmp_path / "state.db").close()

    report, log = await sync(config, dry_run=True)

    assert report.exit_code == 0 and report.added == 1, log
    assert has_index(tmp_path / "state.db")
    assert emulator.images() == []
