"""A symlink to a directory, not followed, is reported as skipped with its reason — by ``sync --dry-run``,
``sync`` (its line, its count in ``--json``) and ``ls --status skipped`` — as a link to a file is, instead
of being left out without a word. Real ``facesync`` processes against the emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipeline.emulator import EmulatorThread
from tests.helpers import config_data, write_config_file, write_files
from tests.imagefactory import jpeg_bytes

REASON = (
    "not_a_file: a symlink to a directory, not followed (set source.follow_symlinks: true to follow links)"
)


def facesync(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_directory_link_is_a_skipped_line_counted_by_the_dry_run_the_sync_and_ls(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    write_files(tmp_path / "archive", {"2019/IMG_1.jpg": jpeg_bytes(1)})
    write_files(tmp_path / "elsewhere", {"IMG_2.jpg": jpeg_bytes(2)})
    (tmp_path / "archive" / "albums").symlink_to(tmp_path / "elsewhere")
    data = config_data(emulator.base_url, tmp_path, state=tmp_path / "state" / "facesync.db")
    config = write_config_file(tmp_path / "facesync.yaml", data)
    (tmp_path / "state").mkdir()

    dry = facesync(config, "sync", "--dry-run")

    assert dry.returncode == 0, dry.stderr
    assert f"facesync: skipped albums: {REASON}" in dry.stderr.splitlines()
    assert "would add 1; skip 1 locally" in dry.stderr

    run = facesync(config, "sync", "--json")

    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["added"], report["skipped"]) == (1, {"not_a_file": 1})
    assert f"facesync: skipped albums: {REASON}" in run.stderr.splitlines()
    assert [i.metadata["facesync_key"] for i in emulator.images()] == ["2019/IMG_1.jpg"]
    listed = facesync(config, "ls", "--status", "skipped", "--json")
    assert [(r["key"], r["message"]) for r in map(json.loads, listed.stdout.splitlines())] == [
        ("albums", REASON)
    ]
