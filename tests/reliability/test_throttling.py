"""Scenario 3: a throttling storm — 30% of calls answered 503, 10% answered 429 with ``Retry-After: 2``.

The run still finishes (exit 0), and it honours every Retry-After: once a 429 has been received, no
request sent after it arrives before the 429's time + Retry-After. The service sees arrival times
only, not send times, so the requests already in flight when the 429 came back (at most
``concurrency - 1`` of them) may still land inside that window.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.emulator import EmulatorThread
from pipeline.emulator.protocol import RequestRecord
from tests.helpers import make_config, sync, write_files

from .conftest import Watch, archive

RETRY_AFTER = 2.0
#: Seeds whose draws answer at least one call with a 429 (the check below would be vacuous otherwise).
QUICK_SEEDS = [24]
SOAK_SEEDS = range(100, 110)


def early_arrivals(log: list[RequestRecord], retry_after: float) -> list[tuple[float, int]]:
    """For each 429, the requests that arrived within its Retry-After window: (its time, how many)."""
    out = []
    for r in log:
        if r.outcome == "throttled":
            inside = [o for o in log if r.time < o.time < r.time + retry_after]
            out.append((r.time, len(inside)))
    return out


async def storm(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int, n: int, must_throttle: bool
) -> None:
    files = archive(range(seed * 100, seed * 100 + n))
    write_files(tmp_path / "archive", files)
    watch.expect(files)
    concurrency = 2
    config = make_config(
        emulator.base_url, tmp_path, limits={"concurrency": concurrency, "quota_wait": 60, "retries": 8}
    )
    emulator.configure(seed=seed, fail_before=0.3, throttle_share=0.1, retry_after=RETRY_AFTER)

    report, log = await sync(config)

    assert report.exit_code == 0, log
    requests = emulator.requests()
    windows = early_arrivals(requests, RETRY_AFTER)
    assert windows or not must_throttle, "the storm threw no 429: pick another seed"
    assert all(n <= concurrency - 1 for _, n in windows), windows
    assert report.throttled == len(windows)
    await watch.settle(config, files)


@pytest.mark.parametrize("seed", QUICK_SEEDS)
async def test_a_throttling_storm_finishes_and_no_request_beats_its_retry_after(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int
) -> None:
    await storm(emulator, watch, tmp_path, seed, n=6, must_throttle=True)


@pytest.mark.soak
@pytest.mark.parametrize("seed", SOAK_SEEDS)
async def test_throttling_storm_soak(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int
) -> None:
    await storm(emulator, watch, tmp_path, seed, n=20, must_throttle=False)
