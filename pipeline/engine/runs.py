"""What every engine run shares: what it works with, the options the command line gives, its record.

A run is recorded in the state's ``runs`` table (unless it is a dry run) with its exit code and its
``--json`` counts, so ``facesync status`` can show the last runs; its requests and wall time are
measured the same way for sync and reconcile. The record also arms the run's limits on the client's
limiter: the deadline (``--max-duration``, ``--until``, ``limits.max_duration``) and the request budget
(``limits.max_requests``, ``limits.requests_per_day``, counted in the state across runs).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.api import FaceSearchClient
from pipeline.api.budget import RequestBudget
from pipeline.config import Config
from pipeline.engine import pace
from pipeline.errors import BudgetSpent, ConfigError
from pipeline.output.reporter import Reporter
from pipeline.state import State


@dataclass(frozen=True)
class RunContext:
    """What a run works with: the config, the open state and client, and where it reports."""

    config: Config
    state: State
    client: FaceSearchClient
    reporter: Reporter
    #: The state is not the file the last run left (its epoch is not the lock file's): restored from a
    #: backup, or replaced. Images newer runs sent may be in the collection (``docs/state.md``).
    older_state: bool = False


@dataclass(frozen=True)
class RunOptions:
    """The command line's say over the config, for any run."""

    dry_run: bool = False
    #: Overrides ``limits.max_delete`` for one run (a count).
    max_delete: int | None = None
    #: (index, count): only keys whose stable hash falls in shard ``index`` of ``count``.
    shard: tuple[int, int] | None = None
    #: Seconds the run may take (``--max-duration``, ``--until``); the sooner of this and
    #: ``limits.max_duration`` is its deadline.
    max_duration: float | None = None


#: Seconds in the rolling day ``limits.requests_per_day`` counts.
DAY = 86400.0
#: The wall clock the request budget's day is read on (tests move it to "later days").
wall_clock = time.time


def seconds_until(hhmm: str, now: dt.datetime | None = None) -> float:
    """Seconds from ``now`` (local time) to the next ``HH:MM`` (``sync --until 06:00``): today's if it
    is still ahead, else tomorrow's."""
    try:
        hour, minute = (int(part) for part in hhmm.strip().split(":"))
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
    except ValueError:
        raise ConfigError(f"--until: expected a local time HH:MM like 06:00, got {hhmm!r}") from None
    now = now or dt.datetime.now().astimezone()
    at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at <= now:
        at = (at + dt.timedelta(days=1)).replace(hour=hour, minute=minute)
    return (at - now).total_seconds()


def sooner(*durations: float | None) -> float | None:
    """The shortest of the durations given (None: none given)."""
    found = [d for d in durations if d is not None]
    return min(found) if found else None


class Summary(Protocol):
    """What a run's report must carry for its record."""

    requests: int
    elapsed: float
    exit_code: int

    def to_json(self) -> dict[str, Any]: ...


class RunRecord:
    """One run's bookkeeping: its row in the runs table, the requests it sent, its wall time."""

    def __init__(
        self, ctx: RunContext, command: str, *, dry_run: bool, max_duration: float | None = None
    ) -> None:
        self.state = ctx.state
        self.client = ctx.client
        self._command = command
        self._dry_run = dry_run
        self._page_size = ctx.config.api.page_size
        #: The adaptive rate starts where the last run of this command ended (engine/pace.py).
        pace.resume(ctx.state, ctx.client.limiter, command)
        self._started = time.monotonic()
        self._requests = ctx.client.requests
        self._throttled = ctx.client.throttled
        self._id = None if dry_run else ctx.state.start_run(command)
        limits = ctx.config.limits
        #: Seconds the run may take (None: no deadline), and when it ends (``time.monotonic``).
        self.max_duration = sooner(max_duration, limits.max_duration)
        self.deadline = self._started + self.max_duration if self.max_duration is not None else None
        self.deadline_why = f"the deadline came ({_duration(self.max_duration)} after the run began)"
        self.budget = RequestBudget(
            per_run=limits.max_requests,
            per_day=limits.requests_per_day,
            used_today=ctx.state.requests_since(wall_clock() - DAY) if limits.requests_per_day else 0,
            record=self._spend if self._id is not None else None,
        )
        limiter = ctx.client.limiter
        if limiter is not None:
            limiter.budget = self.budget if self.budget.capped else None
            limiter.set_deadline(self.deadline, self.deadline_why)

    def _spend(self, requests: int) -> None:
        assert self._id is not None
        self.state.spend(self._id, requests, wall_clock())

    def deadline_timers(
        self,
        *,
        came: Callable[[], None],
        stop_counting: tuple[float, Callable[[], None]],
        cut: tuple[float, Callable[[], None]],
    ) -> list[asyncio.TimerHandle]:
        """Timers on the running loop: ``came`` at the deadline, then each (seconds after it, call);
        none without a deadline. The run cancels them when it ends."""
        if self.deadline is None:
            return []
        loop, left = asyncio.get_running_loop(), max(0.0, self.deadline - time.monotonic())
        after = [loop.call_later(left + delay, call) for delay, call in (stop_counting, cut)]
        return [loop.call_later(left, came), *after]

    def require_listing(self, what: str = "the listing") -> None:
        """Refuse up front (:class:`BudgetSpent`) a listing of the collection that would not fit in the
        budget: its pages are guessed from the images the state holds (one more for the short last
        page), so a reconcile never stops half way through its listing for want of requests."""
        pages = self.state.held_count() // max(1, self._page_size) + 1
        if not self.budget.fits(pages):
            raise BudgetSpent(
                f"request budget: {what} needs about {pages} request(s) (the {self.state.held_count()} "
                f"image(s) the state holds, {self._page_size} a page) and {self.budget.left} are left; "
                "nothing was listed or changed: run again when the budget allows"
            )

    @property
    def throttled(self) -> int:
        """Throttled answers seen since the run began."""
        return self.client.throttled - self._throttled

    def finish(self, report: Summary, exit_code: int) -> None:
        """Stamp the report (requests, elapsed, exit code) and record it as the run's outcome."""
        report.requests = self.client.requests - self._requests
        report.elapsed = time.monotonic() - self._started
        report.exit_code = exit_code
        self.budget.flush()
        limiter = self.client.limiter
        if limiter is not None:
            limiter.budget = None
            limiter.set_deadline(None)
        if not self._dry_run and report.requests:
            answered = report.requests - self.throttled
            achieved = answered / report.elapsed if report.elapsed > 0 else 0.0
            pace.remember(self.state, self.client.limiter, self._command, achieved)
        if self._id is not None:
            self.state.finish_run(self._id, exit_code=exit_code, counts=report.to_json())


def _duration(seconds: float | None) -> str:
    """``4h``, ``90m``, ``1h30m``, ``5s``: a duration as it is written on the command line."""
    if seconds is None:
        return "no limit"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"
