"""When the service is down, a sync stops sending (the circuit breaker), records what was in flight,
says what was not tried, and a sync after recovery completes with every file exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.api.breaker import CONSECUTIVE
from pipeline.emulator import EmulatorThread
from pipeline.state import Status
from tests.helpers import (
    assert_in_step,
    config_data,
    make_config,
    reconcile,
    state_rows,
    sync,
    wait_until,
    write_config_file,
    write_files,
)
from tests.imagefactory import jpeg_bytes

CONCURRENCY, RETRIES = 4, 2
#: A full round of retries for every worker, and the few calls started while the breaker counted.
BOUND = CONCURRENCY * (RETRIES + 1) + CONSECUTIVE - 1
OUTAGES: dict[str, dict[str, Any]] = {
    "every-call-500": {"fail_before": 1.0, "fail_status": 500},
    "connection-reset": {"reset_before": 1.0},
    "proxy-html-at-200": {"fail_before": 1.0, "fail_status": 200, "fail_body_html": True},
}


def stalled(emulator: EmulatorThread) -> int:
    return sum(r.outcome == "stalled" for r in emulator.requests())


def archive(n: int, start: int = 0) -> dict[str, bytes]:
    return {f"d{i % 4}/IMG_{i:04d}.jpg": jpeg_bytes(i) for i in range(start, start + n)}


@pytest.mark.parametrize("outage", list(OUTAGES), ids=list(OUTAGES))
async def test_an_outage_stops_the_run_within_one_round_of_retries_and_a_later_sync_finishes(
    emulator: EmulatorThread, tmp_path: Path, outage: str
) -> None:
    root = tmp_path / "archive"
    first = archive(5)
    write_files(root, first)
    limits = {"concurrency": CONCURRENCY, "retries": RETRIES}
    config = make_config(emulator.base_url, tmp_path, limits=limits)
    assert (await sync(config))[0].exit_code == 0
    later = archive(200, start=5)
    write_files(root, later)
    before = len(emulator.requests())
    emulator.configure(**OUTAGES[outage])

    report, log = await sync(config)

    assert report.exit_code == 1, log
    sent = len(emulator.requests()) - before
    assert 0 < sent <= BOUND  # whatever the archive size
    assert report.requests == sent
    assert "the service is failing" in (report.error or "") and "nothing was lost" in (report.error or "")
    # What was not tried is counted: the 200 new files, less those whose add was sent (they are
    # `uploading`: maybe stored, for reconcile to settle; the calls that failed before the breaker
    # opened are among them).
    uploading = [r for r in state_rows(config).values() if r.status is Status.UPLOADING]
    assert report.not_tried + len(uploading) == len(later) and report.failed < len(uploading)
    assert f"{report.not_tried} file(s) not tried" in (report.error or "")

    emulator.configure(fail_before=0.0, reset_before=0.0, fail_status=503, fail_body_html=False)
    # The adds sent into the outage are unsettled: with no profile to say how the service lists, every
    # sync exits 1 until reconcile has settled them; then a sync finishes the work.
    again, log = await sync(config)
    assert (again.exit_code, again.unsettled) == (1, len(uploading)), log
    settled, _ = await reconcile(config)
    assert (settled.exit_code, settled.settled) == (0, len(uploading))
    assert (await sync(config))[0].exit_code == 0
    assert_in_step(config, emulator, first | later)


async def test_an_unreachable_host_stops_the_run_the_same_way(tmp_path: Path) -> None:
    write_files(tmp_path / "archive", archive(50))
    closed_port = "http://127.0.0.1:9/api/v2/face_search"  # discard: nothing listens
    config = make_config(closed_port, tmp_path, limits={"concurrency": CONCURRENCY, "retries": RETRIES})

    report, log = await sync(config, allow_foreign=True)

    assert report.exit_code == 1, log
    assert "the service is failing" in (report.error or "")
    assert report.not_tried + report.failed == 50 and report.failed < CONSECUTIVE
    # Nothing was sent: no row is uploading; those tried are failed, the rest have no row yet.
    assert {r.status for r in state_rows(config).values()} == {Status.FAILED}


def test_ctrl_c_cuts_requests_that_hang_and_exits_130_with_their_intents_recorded(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """Ctrl-C while every request hangs (timeout 10 minutes): the run does not wait them out."""
    write_files(tmp_path / "archive", archive(12))
    data = config_data(emulator.base_url, tmp_path, api={"timeout": 600}, limits={"concurrency": 3})
    config_file = write_config_file(tmp_path / "c.yaml", data)
    assert asyncio.run(sync(make_config(emulator.base_url, tmp_path), allow_foreign=True))[0].exit_code == 0
    write_files(tmp_path / "archive", archive(12, start=12))
    emulator.configure(stall=1.0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "--config", str(config_file), "sync", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: stalled(emulator) == 3, "every worker's add to hang")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)  # a hang guard: a run that waited would take 10 min
    finally:
        proc.kill()
        emulator.configure(stall=0.0)

    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert json.loads(out)["exit_code"] == 130
    rows = state_rows(make_config(emulator.base_url, tmp_path))
    assert [r.status for r in rows.values()].count(Status.UPLOADING) == 3  # their intents, durable
