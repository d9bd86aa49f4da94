"""Request budgets: ``limits.max_requests`` per run and ``limits.requests_per_day`` across runs (counted
in the state, rolling 24 h). Every request counts; a spent budget stops the run as a spent quota does
(exit 4, resumable); a reconcile whose listing would not fit refuses up front."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from pipeline.api.budget import BLOCK, RequestBudget
from pipeline.emulator import EmulatorThread
from pipeline.engine import runs
from pipeline.errors import EXIT_QUOTA, BudgetSpent
from pipeline.state import State
from tests.helpers import assert_in_step, make_config, reconcile, state_rows, sync, write_files
from tests.imagefactory import jpeg_bytes

GUARD = 120.0
DAY = 86400.0


def archive(n: int) -> dict[str, bytes]:
    return {f"d{i % 3}/IMG_{i:04d}.jpg": jpeg_bytes(i) for i in range(n)}


def test_a_budget_counts_ahead_in_blocks_and_exactly_at_the_end() -> None:
    recorded: list[int] = []
    budget = RequestBudget(per_run=25, per_day=100, used_today=80, record=recorded.append)
    assert budget.left == 20
    budget.take()
    assert recorded == [BLOCK]  # counted before it is sent: a killed run never under-counts
    for _ in range(19):
        budget.take()
    assert budget.left == 0 and max(recorded) <= 20
    with pytest.raises(BudgetSpent, match="requests_per_day 100"):
        budget.take()
    budget.flush()
    assert recorded[-1] == 20 and budget.used == 20
    assert RequestBudget().left is None and RequestBudget().fits(10**9)
    with pytest.raises(BudgetSpent, match="max_requests 1"):
        one = RequestBudget(per_run=1)
        one.take()
        one.take()


async def test_max_requests_caps_one_run(emulator: EmulatorThread, tmp_path: Path) -> None:
    files = archive(20)
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path, limits={"concurrency": 2, "max_requests": 8})

    report, log = await asyncio.wait_for(sync(config), GUARD)

    assert report.exit_code == EXIT_QUOTA, log
    assert len(emulator.requests()) == report.requests <= 8
    assert report.budget_left == 0 and "limits.max_requests 8" in (report.error or "")
    assert report.left == len(files) - report.added > 0
    assert report.to_json()["budget_left"] == 0
    assert "budget left 0" in report.summary_line()


async def test_requests_per_day_holds_across_runs_and_the_work_completes_on_later_days(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = archive(70)
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path, limits={"concurrency": 2, "requests_per_day": 50})
    today = time.time()
    monkeypatch.setattr(runs, "wall_clock", lambda: today)

    reports = [(await asyncio.wait_for(sync(config), GUARD))[0] for _ in range(3)]

    assert len(emulator.requests()) <= 50
    assert [r.exit_code for r in reports] == [EXIT_QUOTA] * 3
    assert [r.budget_left for r in reports] == [0, 0, 0]
    assert reports[0].added > 0 and reports[1].requests == reports[2].requests == 0
    assert all("requests_per_day 50" in (r.error or "") for r in reports)
    with State.open(config.state.path) as state:
        assert state.requests_since(today - DAY) == len(emulator.requests())

    days, report = 0, reports[-1]
    while report.exit_code != 0 and days < 5:  # later days: the last day's requests aged out
        days += 1
        monkeypatch.setattr(runs, "wall_clock", lambda d=days: today + d * (DAY + 60))
        before = len(emulator.requests())
        report, log = await asyncio.wait_for(sync(config), GUARD)
        assert len(emulator.requests()) - before <= 50, log
    assert report.exit_code == 0 and days == 1  # 70 adds and a listing page: two days' budget
    assert_in_step(config, emulator, files)


async def test_a_reconcile_whose_listing_would_not_fit_refuses_up_front(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = archive(6)
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path, api={"page_size": 2})
    assert (await sync(config))[0].exit_code == 0
    emulator.seed(3)
    before, rows = len(emulator.requests()), state_rows(config)
    tight = make_config(emulator.base_url, tmp_path, api={"page_size": 2}, limits={"max_requests": 3})

    report, log = await asyncio.wait_for(reconcile(tight, max_delete=10), GUARD)

    assert report.exit_code == EXIT_QUOTA, log
    assert "needs about 4 request(s)" in (report.error or "") and report.budget_left == 3
    assert len(emulator.requests()) == before and report.requests == 0
    assert state_rows(config) == rows and report.deleted == 0

    roomy = make_config(emulator.base_url, tmp_path, api={"page_size": 2}, limits={"max_requests": 20})
    done, log = await asyncio.wait_for(reconcile(roomy, max_delete=10), GUARD)
    assert done.exit_code == 0 and done.deleted == 3, log
    assert_in_step(config, emulator, files)
