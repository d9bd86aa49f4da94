"""A sync never ends "in step" while it knows duplicates may exist: adds whose answer was lost and
that were sent again are counted (``uncertain``), the run exits 1 and names reconcile, and
reconcile leaves exactly one image per file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pipeline.emulator import EmulatorThread
from tests.helpers import assert_in_step, make_config, reconcile, remote_hashes, sha, sync, write_files
from tests.imagefactory import jpeg_bytes


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("lost", [0.15, 0.2])
async def test_lost_answers_are_named_and_reconcile_leaves_one_image_per_file(
    emulator: EmulatorThread, tmp_path: Path, seed: int, lost: float
) -> None:
    files = {f"d{i % 5}/IMG_{i:04d}.jpg": jpeg_bytes(seed * 1000 + i) for i in range(60)}
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path, limits={"retries": 5})
    emulator.configure(seed=seed, store_then_fail=lost / 2, store_then_drop=lost / 2)

    report, log = await sync(config)

    copies = remote_hashes(emulator)
    duplicated = sum(1 for n in copies.values() if n > 1)
    assert report.added == len(files)  # each file got an answer in the end ...
    assert duplicated <= report.uncertain  # ... and every file that may be stored twice was counted
    if report.uncertain:
        assert report.exit_code == 1 and "facesync reconcile" in (report.error or ""), log
        assert f"uncertain {report.uncertain}" in report.summary_line()
    else:
        assert report.exit_code == 0 and duplicated == 0
    assert report.to_json()["uncertain"] == report.uncertain

    emulator.configure(store_then_fail=0.0, store_then_drop=0.0)
    settled, log = await reconcile(config)
    assert settled.exit_code == 0, log
    assert remote_hashes(emulator) == Counter(sha(b) for b in files.values())
    assert_in_step(config, emulator, files)
