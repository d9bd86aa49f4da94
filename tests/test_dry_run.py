"""``sync --dry-run`` runs the real run's plan: it reads, checks and hashes what the run would, detects
renames and retouches, and its counts are the ones the real run that follows reports."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.emulator import EmulatorThread
from tests.helpers import make_config, state_rows, sync, write_files
from tests.imagefactory import jpeg_bytes, zero_by_zero_png

COUNTS = ("added", "replaced", "retouched", "metadata_updated", "renamed", "removed", "unchanged")


def counts(report: object) -> dict[str, object]:
    out: dict[str, object] = {name: getattr(report, name) for name in COUNTS}
    out["skipped"] = dict(getattr(report, "skipped"))  # noqa: B009
    return out


async def test_the_dry_run_counts_what_the_real_run_then_does(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    write_files(root, {f"old/IMG_{i:03d}.jpg": jpeg_bytes(i) for i in range(12)})
    write_files(root, {f"keep/IMG_{i:03d}.jpg": jpeg_bytes(100 + i) for i in range(10)})
    config = make_config(emulator.base_url, tmp_path, limits={"max_delete": "100%"})
    assert (await sync(config))[0].exit_code == 0
    # New, edited, retouched (mtime only), moved (a folder renamed), deleted, and broken files.
    write_files(root, {f"new/IMG_{i:03d}.jpg": jpeg_bytes(200 + i) for i in range(4)})
    write_files(root, {"keep/IMG_000.jpg": jpeg_bytes(300), "keep/IMG_001.jpg": jpeg_bytes(301)})
    os.utime(root / "keep/IMG_002.jpg", ns=(1, 1_000_000_000))
    shutil.move(root / "old", root / "moved")
    (root / "keep/IMG_009.jpg").unlink()
    good = jpeg_bytes(400)
    write_files(
        root,
        {
            "broken/cut.jpg": good[: len(good) // 2],
            "broken/notes.jpg": b"text",
            "broken/zero.png": zero_by_zero_png(),
        },
    )
    before_rows, before_requests = state_rows(config), len(emulator.requests())

    preview, log = await sync(config, dry_run=True)

    assert preview.exit_code == 0, log
    assert state_rows(config) == before_rows  # a dry run changes nothing ...
    assert len(emulator.requests()) == before_requests  # ... and sends nothing here (the state knows images)
    done, log = await sync(config)
    assert done.exit_code == 0, log
    # Only the service's refusals cannot be known without sending: the dry run counts those adds.
    assert preview.added == done.added + sum(done.rejected.values())
    assert counts(preview) | {"added": done.added} == counts(done)
    assert counts(done) == {
        "added": 4,
        "replaced": 2,
        "retouched": 1,
        "metadata_updated": 0,
        "renamed": 12,
        "removed": 1,
        "unchanged": 6,
        "skipped": {"not_an_image": 1, "truncated": 1},
    }
    assert dict(done.rejected) == {"3": 1}  # what the dry run said it could not know
    assert "known only by sending" in preview.summary_line()
    assert preview.planned == {"add": 5, "replace": 2, "retouch": 1, "rename": 12, "remove": 1}
