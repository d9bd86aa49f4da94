"""A dry run, or a max-delete refusal, of thousands of orphans stays a summary: a capped ``would_delete``
with the count beside it, every id in the ``--would-delete-file`` NDJSON (streamed from SQL), and a
bounded number of lines on stderr that says how to list them all."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import KEY_FIELD
from pipeline.emulator import EmulatorThread
from pipeline.engine.deletes import WOULD_DELETE_CAP
from pipeline.keys import ImageId
from tests.helpers import (
    config_data,
    make_config,
    reconcile,
    run_facesync,
    sync,
    write_config_file,
    write_files,
)
from tests.imagefactory import jpeg_bytes

ORPHANS = 3000
#: More than the few ids named, far fewer than the orphans: what "bounded" means here.
MAX_LINES = 40


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def facesync(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_facesync("--config", str(config), *args)


@pytest.fixture
def config_file(emulator: EmulatorThread, tmp_path: Path) -> tuple[Path, list[ImageId]]:
    """A config file whose state holds five synced files, against a collection with ORPHANS more."""
    write_files(tmp_path / "archive", {f"photos/IMG_{i}.jpg": jpeg_bytes(i) for i in range(5)})
    data = config_data(
        emulator.base_url,
        tmp_path,
        state=tmp_path / "state" / "facesync.db",
        api={"page_size": 500},
        limits={"max_delete": 10},
    )
    path = write_config_file(tmp_path / "facesync.yaml", data)
    assert facesync(path, "sync").returncode == 0
    foreign = emulator.seed(ORPHANS, lambda i: {KEY_FIELD: f"old/{i}.jpg"} if i % 3 == 0 else {})
    return path, foreign


def test_dry_run_json_caps_the_list_counts_them_all_and_the_file_lists_every_one(
    config_file: tuple[Path, list[ImageId]], tmp_path: Path, emulator: EmulatorThread
) -> None:
    config, foreign = config_file
    listed = tmp_path / "out" / "would-delete.ndjson"
    listed.parent.mkdir()

    run = facesync(
        config, "reconcile", "--dry-run", "--json", "--max-delete", "5000", "--would-delete-file", str(listed)
    )

    assert run.returncode == 0, run.stderr
    [line] = run.stdout.splitlines()
    out = json.loads(line)
    assert out["would_delete_count"] == ORPHANS
    assert out["would_delete_file"] == str(listed)
    assert len(out["would_delete"]) == WOULD_DELETE_CAP
    every = lines_of(listed)
    assert len(every) == ORPHANS
    assert {str(e["id"]) for e in every} == {str(i) for i in foreign}
    assert [e["id"] for e in every[:WOULD_DELETE_CAP]] == out["would_delete"]
    assert {e["reason"] for e in every} == {"orphan"}
    assert sum(e["key"] is not None for e in every) == len(range(0, ORPHANS, 3))
    assert set(every[0]) == {"id", "key", "reason", "url", "metadata"}
    assert len(run.stderr.splitlines()) <= MAX_LINES, run.stderr
    assert not listed.with_name(listed.name + ".partial").exists()
    assert len(emulator.images()) == ORPHANS + 5  # a dry run deletes nothing


def test_human_dry_run_prints_a_count_the_first_few_and_the_command_that_lists_them_all(
    config_file: tuple[Path, list[ImageId]],
) -> None:
    config, _ = config_file

    run = facesync(config, "reconcile", "--dry-run", "--max-delete", "5000")

    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) <= MAX_LINES, run.stderr
    assert sum(line.startswith("facesync: would delete ") for line in lines) == 10
    assert f"... and {ORPHANS - 10} more to delete" in run.stderr
    assert f"--config {config} reconcile --dry-run --would-delete-file" in run.stderr
    assert any(line.split()[-1] == str(ORPHANS) and "would delete" in line for line in lines)


def test_the_max_delete_refusal_is_a_summary_with_the_command_and_a_refused_dry_run_still_lists(
    config_file: tuple[Path, list[ImageId]], tmp_path: Path, emulator: EmulatorThread
) -> None:
    config, foreign = config_file

    refused = facesync(config, "reconcile")

    assert refused.returncode == 5, refused.stderr
    assert len(refused.stderr.splitlines()) <= MAX_LINES, refused.stderr
    assert f"refusing to delete {ORPHANS} orphan(s)" in refused.stderr
    assert f"... and {ORPHANS - 10} more" in refused.stderr
    assert "reconcile --dry-run --would-delete-file would-delete.ndjson" in refused.stderr
    assert len(emulator.images()) == ORPHANS + 5

    listed = tmp_path / "would-delete.ndjson"
    dry = facesync(config, "reconcile", "--dry-run", "--json", "--would-delete-file", str(listed))

    assert dry.returncode == 5, dry.stderr  # the real run would refuse: the dry run says so
    out = json.loads(dry.stdout)
    assert (out["would_delete_count"], len(out["would_delete"])) == (ORPHANS, WOULD_DELETE_CAP)
    assert f"Every one is listed in {listed}" in out["error"]
    assert {str(e["id"]) for e in lines_of(listed)} == {str(i) for i in foreign}
    assert len(dry.stderr.splitlines()) <= MAX_LINES, dry.stderr


def test_would_delete_file_needs_a_dry_run(config_file: tuple[Path, list[ImageId]], tmp_path: Path) -> None:
    config, _ = config_file
    run = facesync(config, "reconcile", "--would-delete-file", str(tmp_path / "x.ndjson"))
    assert run.returncode == 2
    assert "needs --dry-run" in run.stderr
    assert not (tmp_path / "x.ndjson").exists()


async def test_in_process_the_report_holds_the_cap_not_the_list(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    write_files(tmp_path / "archive", {f"photos/IMG_{i}.jpg": jpeg_bytes(i) for i in range(5)})
    config = make_config(emulator.base_url, tmp_path, api={"page_size": 500})
    assert (await sync(config))[0].exit_code == 0
    foreign = emulator.seed(ORPHANS)

    report, log = await reconcile(config, dry_run=True, max_delete=ORPHANS)

    assert report.exit_code == 0, log
    assert report.would_delete_count == ORPHANS
    assert report.would_delete == sorted(foreign, key=str)[:WOULD_DELETE_CAP]
    assert report.would_delete_file is None
    assert "would-delete.ndjson" in log
    assert report.to_json()["would_delete_count"] == ORPHANS
    plain, _ = await reconcile(config, max_delete=ORPHANS)
    assert "would_delete_count" not in plain.to_json()
    assert plain.deleted == ORPHANS
