"""A reconcile that deletes many orphans takes what it deletes one chunk at a time from SQL: it used to
read every chunk into one list before the first DELETE, so its memory grew with the number of real
deletions (a legacy collection of millions). Real emulator, real state file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.api import FaceSearchClient
from pipeline.emulator import EmulatorThread
from pipeline.state import listing
from pipeline.state.listing import Listing
from tests.helpers import make_config, reconcile


async def test_orphans_are_deleted_chunk_by_chunk_as_sql_yields_them(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.seed(45)  # images the state does not hold: every one an orphan
    monkeypatch.setattr(listing, "CHUNK", 10)
    events: list[str] = []
    doomed, delete = Listing.doomed, FaceSearchClient.delete

    def doomed_noted(self: Listing, kinds: Any) -> Iterator[list[Any]]:
        for chunk in doomed(self, kinds):
            events.append(f"chunk {len(chunk)}")
            yield chunk

    async def delete_noted(self: FaceSearchClient, ids: list[Any]) -> None:
        events.append(f"delete {len(ids)}")
        await delete(self, ids)

    monkeypatch.setattr(Listing, "doomed", doomed_noted)
    monkeypatch.setattr(FaceSearchClient, "delete", delete_noted)
    (tmp_path / "archive").mkdir()
    config = make_config(emulator.base_url, tmp_path, limits={"max_delete": "100%"})

    report, log = await reconcile(config)

    assert report.exit_code == 0 and report.deleted == 45, log
    assert emulator.images() == []
    chunks = [e for e in events if e.startswith("chunk")]
    assert chunks == ["chunk 10"] * 4 + ["chunk 5"]
    # Each chunk is deleted before the next is read: never all of them at once.
    assert events.index("chunk 5") > next(i for i, e in enumerate(events) if e.startswith("delete")), events
    assert events[0] == "chunk 10" and events[1].startswith("delete"), events
