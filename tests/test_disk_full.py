"""A full disk (and a read-only one) under the state, at the start of a run and in the middle of one: one
clear line, no traceback, the state intact, and the next run after the disk has room converges.

The disk is a real one: a small tmpfs mounted for the test (root only; skipped otherwise), filled with a
file until the kernel says ENOSPC. Runs are ``facesync`` processes against the emulator."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipeline.config import parse_config
from pipeline.config.profile import ServiceProfile, write_profile
from pipeline.emulator import EmulatorThread
from pipeline.state import State
from tests.helpers import assert_in_step, config_data, tmpfs, write_config_file, write_files
from tests.imagefactory import jpeg_bytes

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB file system (room for a WAL of 1,000 pages) of its own."""
    with tmpfs(tmp_path / "disk", "16m") as where:
        yield where


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` up to ``leave`` bytes of free room; the filler's path (delete it to make room)."""
    filler = disk / "filler"
    with filler.open("wb") as out, contextlib.suppress(OSError):
        while True:
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            if free <= leave:
                break
            out.write(b"\0" * min(65536, max(4096, free - leave)))
            out.flush()
    return filler


def facesync(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def setup(emulator: EmulatorThread, tmp_path: Path, disk: Path, n: int) -> tuple[Path, dict[str, bytes]]:
    files = {f"a/IMG_{i:04d}.jpg": jpeg_bytes(i) for i in range(n)}
    write_files(tmp_path / "archive", files)
    data = config_data(emulator.base_url, tmp_path, state=disk / "state.db", limits={"retries": 2})
    path = write_config_file(tmp_path / "facesync.yaml", data)
    # The service lists oldest first (what `facesync probe` measures): a lost result settles itself.
    profile = ServiceProfile(endpoint=emulator.base_url, measured_at=time.time(), list_order="oldest_first")
    write_profile(disk / "service-profile.json", profile)
    return path, files


def one_clear_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    return errors[0]


def converges(config: Path, emulator: EmulatorThread, files: dict[str, bytes]) -> None:
    done = facesync(config, "sync")
    assert done.returncode == 0, done.stderr
    parsed = parse_config(yaml.safe_load(config.read_text()), origin=config)
    assert_in_step(parsed, emulator, files)
    with State.open(parsed.state.path) as state:
        assert state.integrity_ok() and state.unsettled_count() == 0


def test_a_full_disk_at_the_start_is_one_line_and_the_next_run_converges(
    emulator: EmulatorThread, tmp_path: Path, disk: Path
) -> None:
    config, files = setup(emulator, tmp_path, disk, 4)
    assert facesync(config, "sync").returncode == 0
    files.update({f"b/IMG_{i:04d}.jpg": jpeg_bytes(100 + i) for i in range(3)})
    write_files(tmp_path / "archive", files)
    filler = fill(disk)

    done = facesync(config, "sync")

    line = one_clear_line(done)
    assert done.returncode == 2 and "disk is full" in line and "free some space" in line, done.stderr
    assert len(emulator.images()) == 4  # nothing was sent
    filler.unlink()
    converges(config, emulator, files)


def test_a_disk_that_fills_during_the_run_stops_it_cleanly_and_the_next_run_converges(
    emulator: EmulatorThread, tmp_path: Path, disk: Path
) -> None:
    config, files = setup(emulator, tmp_path, disk, 3)
    assert facesync(config, "sync").returncode == 0
    files.update({f"c/IMG_{i:04d}.jpg": jpeg_bytes(1000 + i) for i in range(300)})
    write_files(tmp_path / "archive", files)
    filler = fill(disk, leave=320 * 1024)  # room for the start, not for 300 rows and their journal

    done = facesync(config, "sync")

    line = one_clear_line(done)
    assert done.returncode == 2 and "disk is full" in line, done.stderr
    assert 3 < len(emulator.images()) < len(files), done.stderr  # it stopped part-way
    filler.unlink()
    converges(config, emulator, files)


def test_a_read_only_state_folder_is_one_line(emulator: EmulatorThread, tmp_path: Path, disk: Path) -> None:
    config, files = setup(emulator, tmp_path, disk, 2)
    assert facesync(config, "sync").returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    try:
        done = facesync(config, "sync")
        line = one_clear_line(done)
        assert done.returncode == 2 and "read-only" in line, done.stderr
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    converges(config, emulator, files)


def test_reconciles_scratch_file_on_a_full_disk_changes_nothing(
    emulator: EmulatorThread, tmp_path: Path, disk: Path
) -> None:
    config, files = setup(emulator, tmp_path, disk, 3)
    assert facesync(config, "sync").returncode == 0
    emulator.seed(3000, {"note": "x" * 200})  # a listing bigger than the room left
    filler = fill(disk, leave=64 * 1024)
    done = facesync(config, "reconcile", "--max-delete", "5000")
    line = one_clear_line(done)
    assert done.returncode == 2 and "disk is full" in line, done.stderr
    assert len(emulator.images()) == 3003  # nothing deleted
    assert not (disk / "state.db.listing").exists()  # the run's scratch file is gone with it
    filler.unlink()
    assert facesync(config, "reconcile", "--max-delete", "5000").returncode == 0
    converges(config, emulator, files)


@pytest.mark.parametrize("command", ["sync", "reconcile"])
def test_a_state_folder_removed_during_the_run_is_one_line_and_nothing_is_doubled(
    emulator: EmulatorThread, tmp_path: Path, command: str
) -> None:
    """A state folder deleted under a running sync (a cleanup script, a volume unmounted): the run's records
    went into a file no path names any more. It must not exit 0 as if in step; the next sync then sees a
    state that never sent anything and refuses (exit 6); `reconcile --adopt` rebuilds it, nothing doubled."""
    folder = tmp_path / "state"
    folder.mkdir()
    config, files = setup(emulator, tmp_path, folder, 2)
    assert facesync(config, "sync").returncode == 0
    files.update({f"d/IMG_{i:04d}.jpg": jpeg_bytes(2000 + i) for i in range(40)})
    write_files(tmp_path / "archive", files)
    emulator.configure(delay=0.1)
    args = ["sync"] if command == "sync" else ["reconcile"]
    if command == "reconcile":  # a listing of 9 slow pages of 5
        emulator.configure(delay=0.0)
        assert facesync(config, "sync").returncode == 0
        data = yaml.safe_load(config.read_text())
        data["api"]["page_size"] = 5
        config.write_text(yaml.safe_dump(data))
        emulator.configure(delay=0.3)
    before = len(emulator.requests())
    run = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(config), *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline, started = time.monotonic() + 60, 10 if command == "sync" else 3
    while len(emulator.requests()) - before < started and time.monotonic() < deadline:
        time.sleep(0.02)
    shutil.rmtree(folder)
    _, err = run.communicate(timeout=120)
    emulator.configure(delay=0.0)

    errors = [line for line in err.splitlines() if "error:" in line]
    assert "Traceback" not in err and len(errors) == 1, err
    assert run.returncode == 2 and "removed" in errors[0], err
    folder.mkdir()
    assert facesync(config, "sync").returncode == 6  # a state that never sent: no second upload
    assert facesync(config, "reconcile", "--adopt").returncode == 0
    converges(config, emulator, files)
