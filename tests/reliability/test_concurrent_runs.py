"""Scenario 10: two ``facesync sync`` on one state — the second exits 75 at once; a killed run's
stale lock is taken over by the next run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.config.profile import ServiceProfile, profile_path, write_profile
from pipeline.emulator import EmulatorThread
from pipeline.errors import LockedError
from pipeline.state.lock import lock_path
from tests.helpers import make_config, sync, write_files

from .conftest import Watch, archive, write_config_yaml


def facesync_sync(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(cfg), "sync"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_holder(lock: Path, pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(lock.read_text() or "{}").get("pid") == pid:
                return
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} never took the lock {lock}")


async def test_a_second_sync_exits_75_at_once_and_a_killed_runs_stale_lock_is_taken_over(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path
) -> None:
    await two_runs_then_stale_lock(emulator, watch, tmp_path)


@pytest.mark.soak
@pytest.mark.parametrize("seed", range(5))
async def test_concurrent_runs_soak(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int
) -> None:
    await two_runs_then_stale_lock(emulator, watch, tmp_path)


async def two_runs_then_stale_lock(emulator: EmulatorThread, watch: Watch, tmp_path: Path) -> None:
    files = archive(range(30))
    write_files(tmp_path / "archive", files)
    watch.expect(files)
    cfg = write_config_yaml(tmp_path / "facesync.yaml", emulator.base_url, tmp_path, concurrency=2)
    config = make_config(emulator.base_url, tmp_path)
    # The service lists oldest first (as `facesync probe` would record): the run after the kill settles
    # the adds the kill left in flight by itself, so it can exit 0.
    profile = ServiceProfile(endpoint=emulator.base_url, measured_at=time.time(), list_order="oldest_first")
    write_profile(profile_path(config), profile)
    emulator.configure(delay=0.3, seed=1)
    lock = lock_path(config.state.path)

    first = facesync_sync(cfg)
    try:
        wait_for_holder(lock, first.pid)
        # In-process: refused while the holder still runs, so it did not wait for the lock.
        with pytest.raises(LockedError, match=f"pid {first.pid}"):
            await sync(config)
        assert first.poll() is None
        # As a process: exit 75, naming the holder, while the first is still running.
        second = facesync_sync(cfg)
        _, err = second.communicate(timeout=20)
        assert second.returncode == 75, err
        assert f"pid {first.pid}" in err
        assert first.poll() is None
        first.kill()
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    assert json.loads(lock.read_text())["pid"] == first.pid  # the killed run's lock file is left behind

    third = facesync_sync(cfg)
    _, err = third.communicate(timeout=60)
    assert third.returncode == 0, err
    assert f"took over a stale lock left by pid {first.pid}" in err
    assert list(json.loads(lock.read_text())) == ["epoch"]  # a clean exit names no holder, keeps the epoch
    await watch.settle(config, files)
