"""The adaptive rate a run starts at is where the last run of the same command ended (engine/pace.py):
a nightly run does not find the service's rate again from a modest start, nor overshoot a limit it
already found."""

from __future__ import annotations

from pathlib import Path

from pipeline.api import FaceSearchClient
from pipeline.api.adaptive import ADAPTIVE_START, START_PER_CONNECTION
from pipeline.config import Config
from pipeline.emulator import EmulatorThread
from pipeline.engine.pace import Pace
from pipeline.engine.runs import RunContext, RunRecord
from pipeline.output.summary import ReconcileReport
from pipeline.state import State
from tests.helpers import Captured, make_config, reconcile, sync, write_files

#: The seeded images are foreign to the state: reconcile may delete them all.
ANY_DELETE = {"max_delete": "100%"}


def remembered(config: Config, command: str = "reconcile") -> Pace | None:
    with State.open(config.state.path) as state:
        return Pace.from_text(state.learned(f"rate.{command}"))


def first_rate(config: Config) -> float:
    """The rate a fresh limiter of this config starts at."""
    return max(ADAPTIVE_START, START_PER_CONNECTION * config.limits.concurrency)


async def test_a_reconcile_remembers_the_rate_it_reached_and_the_next_starts_there(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.seed(400)
    config = make_config(emulator.base_url, tmp_path, api={"page_size": 10}, limits=ANY_DELETE)

    report, log = await reconcile(config)

    assert report.exit_code == 0, log
    pace = remembered(config)
    assert pace is not None and pace.slow_start  # no throttle: the service's limit is still unknown
    assert pace.rate >= first_rate(config)  # what the service admitted, never below the start
    with State.open(config.state.path) as state:
        client = FaceSearchClient.from_config(config.api, config.limits)
        async with client:
            RunRecord(RunContext(config, state, client, Captured().reporter), "reconcile", dry_run=True)
            assert client.limiter is not None and client.limiter.current_rate == pace.rate
            sync_client = FaceSearchClient.from_config(config.api, config.limits)
            RunRecord(RunContext(config, state, sync_client, Captured().reporter), "sync", dry_run=True)
            assert sync_client.limiter is not None
            assert sync_client.limiter.current_rate == first_rate(config)  # sync keeps its own
        state.learn("rate.reconcile", Pace(777.0, slow_start=False).to_text())  # a limit found earlier
        later = FaceSearchClient.from_config(config.api, config.limits)
        RunRecord(RunContext(config, state, later, Captured().reporter), "reconcile", dry_run=True)
        assert later.limiter is not None and later.limiter.adaptive is not None
        assert (later.limiter.current_rate, later.limiter.adaptive.slow_start) == (777.0, False)


async def test_a_limit_found_by_a_throttle_is_where_the_next_run_starts_without_slow_start(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.seed(300)
    emulator.configure(rate_limit=40)
    config = make_config(emulator.base_url, tmp_path, api={"page_size": 5}, limits=ANY_DELETE)

    report, log = await reconcile(config)

    assert report.exit_code == 0, log
    assert any(r.status_code == 4 for r in emulator.requests()), log
    pace = remembered(config)
    assert pace is not None and not pace.slow_start
    assert pace.rate < 40 * 1.5


async def test_a_dry_run_and_a_fixed_rate_leave_the_remembered_rate_alone(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    emulator.seed(200)
    config = make_config(emulator.base_url, tmp_path, api={"page_size": 10}, limits=ANY_DELETE)
    assert (await reconcile(config, dry_run=True))[0].exit_code == 0
    assert remembered(config) is None
    fixed = make_config(
        emulator.base_url, tmp_path, api={"page_size": 10}, limits={**ANY_DELETE, "rate": 500}
    )
    assert (await reconcile(fixed))[0].exit_code == 0
    assert remembered(config) is None


async def test_a_remembered_rate_that_makes_no_sense_is_ignored(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    config = make_config(emulator.base_url, tmp_path)
    with State.open(config.state.path) as state:
        for junk in ("", "not json", '{"rate": -3, "slow_start": true}', '{"rate": 50}', "[1]"):
            state.learn("rate.reconcile", junk)
            client = FaceSearchClient.from_config(config.api, config.limits)
            record = RunRecord(
                RunContext(config, state, client, Captured().reporter), "reconcile", dry_run=False
            )
            assert client.limiter is not None and client.limiter.current_rate == first_rate(config)
            record.finish(ReconcileReport(), 0)  # nothing sent: the rate did not move, nothing written
            assert state.learned("rate.reconcile") == junk


async def test_a_night_of_scattered_throttles_leaves_the_next_night_at_the_rate_it_kept_not_the_floor(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    """A fifth of answers throttled at random (a busy service, not a lower limit): the adaptive rate is
    cut again and again and may end near its 0.2 req/s floor. The next night starts at no less than
    the rate of answered requests the whole run kept."""
    from pipeline.api.adaptive import ADAPTIVE_MIN
    from pipeline.api.limiter import Limiter
    from pipeline.config import LimitsConfig
    from pipeline.engine import pace
    from tests.imagefactory import jpeg_bytes

    write_files(tmp_path / "archive", {f"{i:03}.jpg": jpeg_bytes(i) for i in range(12)})
    emulator.configure(throttle_share=0.2, seed=3)
    config = make_config(emulator.base_url, tmp_path, limits={"quota_wait": 30})
    report, log = await sync(config)
    assert report.added == 12 and report.requests > report.throttled > 0, log
    kept = (report.requests - report.throttled) / report.elapsed
    found = remembered(config, "sync")
    assert found is not None and found.rate >= kept * 0.999, (found, kept)

    limiter = Limiter.from_limits(LimitsConfig())  # the rule itself, on a rate cut to its floor
    assert limiter.adaptive is not None
    limiter.adaptive.rate, limiter.adaptive.slow_start = ADAPTIVE_MIN, False
    with State.open(tmp_path / "other.db") as state:
        pace.remember(state, limiter, "sync", achieved=12.5)
        assert Pace.from_text(state.learned("rate.sync")) == Pace(12.5, slow_start=False)
