"""An honest plan: ``sync --dry-run`` and ``status`` say the requests the work needs, the rate the last
runs achieved, the time, and under a budget the number of nights. Requests are compared with a real
run; the time is not (the machine is noisy)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from pipeline import commands
from pipeline.emulator import EmulatorThread
from pipeline.engine.eta import plan, requests_needed
from pipeline.state import State, Status
from tests.helpers import config_data, make_config, sync, write_config_file, write_files
from tests.imagefactory import jpeg_bytes

GUARD = 120.0


def archive(n: int, start: int = 0) -> dict[str, bytes]:
    return {f"d{i % 3}/IMG_{i:04d}.jpg": jpeg_bytes(i) for i in range(start, start + n)}


def test_the_requests_the_work_needs() -> None:
    assert requests_needed({}, delete_batch=50) == 0
    assert requests_needed({"add": 10, "metadata": 2, "rename": 1}, delete_batch=50) == 13
    # a replace is an add and, later, its old image's delete; removals go in batches
    assert requests_needed({"replace": 3, "remove": 98}, delete_batch=50) == 3 + 3


def test_the_plan_under_a_rate_and_a_budget(tmp_path: Path) -> None:
    with State.open(tmp_path / "s.db") as state:
        unknown = plan(100, make_config("http://127.0.0.1:9", tmp_path), state)
        assert unknown["rate"] is None and unknown["seconds"] is None and unknown["runs"] == 1
        assert "not guessed" in unknown["text"]
        limits = {"rate": 10, "requests_per_day": 40, "max_duration": "3s"}
        capped = plan(100, make_config("http://127.0.0.1:9", tmp_path, limits=limits), state)
    assert capped["rate"] == 10 and capped["rate_source"] == "limits.rate" and capped["seconds"] == 10
    assert capped["per_run"] == 30 and capped["runs"] == 4  # 3 s at 10 req/s is less than the day's 40
    assert "≈ 4 nights" in capped["text"]


async def test_a_dry_run_plans_what_the_real_run_sends(emulator: EmulatorThread, tmp_path: Path) -> None:
    write_files(tmp_path / "archive", archive(40))
    config = make_config(emulator.base_url, tmp_path, limits={"rate": 200, "requests_per_day": 15})

    dry, log = await asyncio.wait_for(sync(config, dry_run=True), GUARD)
    assert dry.plan is not None, log
    assert dry.plan["rate_source"] == "limits.rate" and dry.plan["rate"] == 200
    assert dry.plan["runs"] == 3 and "nights" in dry.plan["text"]
    assert "plan: ~41 request(s)" in dry.summary_line()

    roomy = make_config(emulator.base_url, tmp_path, limits={"rate": 200})
    real, log = await asyncio.wait_for(sync(roomy), GUARD)
    assert real.exit_code == 0 and real.plan is None, log
    assert abs(real.requests - dry.plan["requests"]) <= 0.2 * real.requests

    write_files(tmp_path / "archive", archive(30, start=40))
    again, _ = await asyncio.wait_for(sync(roomy, dry_run=True), GUARD)
    assert again.plan is not None and again.plan["requests"] == 30
    assert again.plan["rate_source"] == "last runs" and again.plan["seconds"] is not None


async def test_status_plans_what_the_state_holds_waiting(emulator: EmulatorThread, tmp_path: Path) -> None:
    files = archive(30)
    write_files(tmp_path / "archive", files)
    assert (await asyncio.wait_for(sync(make_config(emulator.base_url, tmp_path)), GUARD))[0].exit_code == 0
    config = make_config(emulator.base_url, tmp_path, limits={"max_requests": 11})
    with State.open(config.state.path) as state:  # 25 rows waiting, as reconcile re-queues missing ones
        waiting = [replace(r, status=Status.PENDING) for r in list(state.iter_rows())[:25]]
        state.apply(put=waiting)
    info = commands.status(config)
    assert info["plan"]["requests"] == 25
    assert info["plan"]["per_run"] == 11 and info["plan"]["runs"] == 3

    path = write_config_file(tmp_path / "c.yaml", config_data(emulator.base_url, tmp_path))
    command = [sys.executable, "-m", "pipeline", "--config", str(path), "status", "--json"]
    out = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=GUARD, check=False
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["plan"]["requests"] == 25
