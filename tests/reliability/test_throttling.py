"""Scenario 3: a throttling storm — 30% of calls answered 503, 10% answered 429 with ``Retry-After``.

The run still finishes (exit 0), and it honours every Retry-After: once a 429 has been received, no
request sent after it arrives before the 429's time + Retry-After. The service sees arrival times
only, not send times, so the requests already in flight when the 429 came back (at most
``concurrency - 1`` of them) may still land inside that window. Retry-After is 0.5 s, five times the
longest the client's own gate back-off waits with these tests' ``backoff_max``: a client that ignored
it would be seen coming back inside the window.

The emulator draws each request's fate from its seeded RNG in arrival order, so which requests of a
seed are throttled is fixed; a seed may throw no 429 at these few files, so it is the range of seeds
that must see 429s. The quick range runs with the rate known (``limits.rate``), where a 429 costs its
Retry-After only; the soak runs with the rate unknown (adaptive), where each fresh 429 also cuts the
rate, so a soak run is slower than the storm alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.emulator import EmulatorThread
from pipeline.emulator.protocol import RequestRecord
from tests.helpers import make_config, sync, write_files

from .conftest import Watch, archive

RETRY_AFTER = 0.5
QUICK_SEEDS = range(8)
SOAK_SEEDS = range(100, 110)
#: The quick range's known rate: high enough never to be what paces these few requests.
RATE = 200


def early_arrivals(log: list[RequestRecord], retry_after: float) -> list[tuple[float, int]]:
    """For each 429, the requests that arrived within its Retry-After window: (its time, how many)."""
    out = []
    for r in log:
        if r.outcome == "throttled":
            inside = [o for o in log if r.time < o.time < r.time + retry_after]
            out.append((r.time, len(inside)))
    return out


async def storm(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int, n: int, rate: float | None
) -> int:
    """One seed's storm, checked and settled; how many 429s it threw (none is a possible draw)."""
    files = archive(range(seed * 100, seed * 100 + n))
    write_files(tmp_path / "archive", files)
    watch.expect(files)
    concurrency = 2
    limits: dict[str, Any] = {"concurrency": concurrency, "quota_wait": 60, "retries": 8}
    if rate is not None:
        limits["rate"] = rate
    config = make_config(emulator.base_url, tmp_path, limits=limits)
    emulator.configure(seed=seed, fail_before=0.3, throttle_share=0.1, retry_after=RETRY_AFTER)

    report, log = await sync(config)

    # A 503 on an add may have come after the image was stored: such adds are counted uncertain, and
    # the run names reconcile (exit 1); nothing failed.
    assert report.failed == 0 and report.exit_code == (1 if report.uncertain else 0), log
    windows = early_arrivals(emulator.requests(), RETRY_AFTER)
    assert all(n <= concurrency - 1 for _, n in windows), windows
    assert report.throttled == len(windows)
    await watch.settle(config, files)
    return len(windows)


async def test_a_throttling_storm_finishes_and_no_request_beats_its_retry_after(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path
) -> None:
    throttled: dict[int, int] = {}
    for seed in QUICK_SEEDS:
        emulator.reset()
        try:
            throttled[seed] = await storm(emulator, watch, tmp_path / f"seed-{seed}", seed, n=6, rate=RATE)
        except Exception as exc:
            exc.add_note(f"emulator seed {seed}")
            raise
    assert sum(throttled.values()) > 0, f"the storm threw no 429 under any seed: {throttled}"


@pytest.mark.soak
@pytest.mark.parametrize("seed", SOAK_SEEDS)
async def test_throttling_storm_soak(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, seed: int
) -> None:
    await storm(emulator, watch, tmp_path, seed, n=20, rate=None)
