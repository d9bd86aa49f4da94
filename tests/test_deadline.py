"""A run's deadline (``--max-duration``, ``--until``, ``limits.max_duration``): nothing new starts after
it, what is in flight is recorded, exit 7, and the next run finishes the work with nothing doubled or
lost. A reconcile whose listing the deadline cuts changes nothing.

No timing is asserted: the emulator's ``delay`` makes the work outlast the deadline, and generous
guards only keep a broken run from hanging the suite.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.api.limiter import Limiter
from pipeline.config.model import parse_duration
from pipeline.emulator import EmulatorThread
from pipeline.engine.runs import seconds_until
from pipeline.errors import EXIT_DEADLINE, ConfigError, DeadlineReached
from pipeline.state import Status
from tests.helpers import (
    assert_in_step,
    config_data,
    make_config,
    reconcile,
    state_rows,
    sync,
    write_config_file,
    write_files,
)
from tests.imagefactory import jpeg_bytes

#: A hang guard, not a timing assertion.
GUARD = 120.0


def archive(n: int) -> dict[str, bytes]:
    return {f"d{i % 3}/IMG_{i:04d}.jpg": jpeg_bytes(i) for i in range(n)}


def test_durations_are_written_as_people_say_them() -> None:
    assert parse_duration("5s", "x") == 5
    assert parse_duration("90m", "x") == 5400
    assert parse_duration("4h", "x") == 4 * 3600
    assert parse_duration("1h30m", "x") == 5400
    assert parse_duration(12, "x") == 12
    assert parse_duration("2.5", "x") == 2.5
    for bad in ("", "0s", "4 hours", "h", "-5", True, None, "5x"):
        with pytest.raises(ConfigError, match="expected a duration"):
            parse_duration(bad, "limits.max_duration")


def test_until_is_the_next_occurrence_of_a_local_time() -> None:
    now = dt.datetime(2026, 3, 1, 22, 30, tzinfo=dt.UTC)
    assert seconds_until("06:00", now) == 7.5 * 3600  # tomorrow's
    assert seconds_until("23:00", now) == 1800  # still ahead today
    assert seconds_until("22:30", now) == 24 * 3600
    for bad in ("6", "24:00", "06:60", "six"):
        with pytest.raises(ConfigError, match="--until"):
            seconds_until(bad, now)


def test_the_config_key_is_read_and_checked(tmp_path: Path) -> None:
    config = make_config("http://127.0.0.1:9", tmp_path, limits={"max_duration": "90m"})
    assert config.limits.max_duration == 5400
    with pytest.raises(ConfigError, match="max_duration"):
        make_config("http://127.0.0.1:9", tmp_path, limits={"max_duration": "soon"})


async def test_the_limiter_refuses_after_the_deadline_and_wakes_its_waiters_at_it() -> None:
    limiter = Limiter(rate=1000.0, max_in_flight=1)
    loop = asyncio.get_running_loop()
    limiter.set_deadline(loop.time() + 0.2, "the deadline came (test)")
    held = await limiter.acquire()  # the one slot, held past the deadline
    with pytest.raises(DeadlineReached, match=r"\(test\)"):
        await asyncio.wait_for(limiter.acquire(), GUARD)  # waits for the slot, ends at the deadline
    limiter.release(held)
    with pytest.raises(DeadlineReached):
        await limiter.acquire()
    limiter.set_deadline(None)
    limiter.release(await limiter.acquire())


async def test_a_sync_stops_at_its_deadline_and_the_next_one_finishes_the_work(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = archive(60)
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path, limits={"concurrency": 2})
    emulator.configure(delay=0.5)  # about 15 s of work at 2 in flight

    report, log = await asyncio.wait_for(sync(config, max_duration=2.0), GUARD)

    assert report.exit_code == EXIT_DEADLINE, log
    assert report.deadline_hit and "deadline" in (report.error or "")
    assert 0 < report.added < len(files)
    assert report.left_exact and report.left == report.not_tried == len(files) - report.added
    assert report.failed == report.uncertain == report.unsettled == 0
    counts = report.to_json()
    assert counts["deadline_hit"] is True and counts["left"] == report.left
    with_images = {k for k, r in state_rows(config).items() if r.status is Status.SYNCED}
    assert len(with_images) == report.added == len(emulator.images())  # everything sent is recorded

    emulator.configure(delay=0.0)
    again, log = await asyncio.wait_for(sync(config), GUARD)
    assert again.exit_code == 0, log
    assert again.added == len(files) - report.added
    assert not again.deadline_hit and again.left == 0
    assert_in_step(config, emulator, files)


async def test_a_deadline_from_the_config_stops_a_run_too(emulator: EmulatorThread, tmp_path: Path) -> None:
    files = archive(40)
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path, limits={"concurrency": 2, "max_duration": "1s"})
    emulator.configure(delay=0.5)
    report, log = await asyncio.wait_for(sync(config), GUARD)
    assert report.exit_code == EXIT_DEADLINE, log
    assert report.left > 0


async def test_a_reconcile_whose_listing_the_deadline_cuts_changes_nothing(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = archive(6)
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path, api={"page_size": 2})
    assert (await sync(config))[0].exit_code == 0
    emulator.seed(30)  # orphans, on many small pages
    before_images, before_rows = len(emulator.images()), state_rows(config)
    emulator.configure(delay=0.5)

    report, log = await asyncio.wait_for(reconcile(config, max_duration=1.0, max_delete=100), GUARD)

    assert report.exit_code == EXIT_DEADLINE, log
    assert report.deadline_hit and report.deleted == 0
    assert len(emulator.images()) == before_images
    assert state_rows(config) == before_rows

    emulator.configure(delay=0.0)
    done, log = await asyncio.wait_for(reconcile(config, max_delete=100), GUARD)
    assert done.exit_code == 0, log
    assert done.deleted == 30 and not done.deadline_hit
    assert_in_step(config, emulator, files)


def test_the_command_line_exits_7_with_left_in_its_json(emulator: EmulatorThread, tmp_path: Path) -> None:
    files = archive(40)
    write_files(tmp_path / "archive", files)
    path = write_config_file(
        tmp_path / "c.yaml", config_data(emulator.base_url, tmp_path, limits={"concurrency": 2})
    )
    emulator.configure(delay=0.5)
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "--config", str(path), "sync", "--max-duration", "2s", "--json"],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert result.returncode == EXIT_DEADLINE, result.stderr
    out = json.loads(result.stdout)
    assert out["deadline_hit"] is True and out["exit_code"] == EXIT_DEADLINE
    assert out["left"] == len(files) - out["added"] > 0
    bad = subprocess.run(
        [sys.executable, "-m", "pipeline", "--config", str(path), "sync", "--until", "25:00"],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )
    assert bad.returncode == 2 and "--until" in bad.stderr
