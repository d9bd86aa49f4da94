"""One limiter for every request: a token bucket, a cap on requests in flight, and a throttle gate.

Used as ``async with limiter:`` (aiolimiter's shape). Three things decide when a request may go:

* **tokens** — ``rate`` requests/second, spaced evenly (burst capacity 1), because a server that
  counts over a sliding one-second window throttles a burst even when the average is under its
  limit. ``rate=None`` is adaptive (AIMD): start modest, grow while requests wait for tokens and
  succeed, shrink by a factor on every fresh throttle.
* **in flight** — at most ``max_in_flight`` requests between ``__aenter__`` and ``__aexit__``.
* **the gate** — a throttled request (code 4, HTTP 429) calls :meth:`Limiter.on_throttle`, which
  closes the gate for *everyone* until ``now + max(retry_after, backoff(streak))``. When that time
  comes the gate is half-open: one probe request goes; its success (:meth:`Limiter.on_success`)
  reopens the gate, its throttle closes it again with a longer back-off. Throttling that lasts
  ``quota_wait`` seconds without a success spends the limiter: every waiter and every later
  ``__aenter__`` raises :class:`~pipeline.errors.QuotaSpent`; requests already in flight finish.

Throttles of requests that entered before the gate last closed are *stale* (the same burst that
closed it): they do not lengthen the streak or cut the rate again, so eight workers throttled at
once count as one event for the back-off. The clock and the sleep are injected so tests move time
instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

from pipeline.api.retry import Backoff
from pipeline.config import LimitsConfig
from pipeline.errors import QuotaSpent

__all__ = ["GATE_BACKOFF", "Limiter", "Permit"]

#: The gate's default back-off: short first steps (a per-second limit clears fast), growing to a minute.
GATE_BACKOFF = Backoff(base=0.1, cap=60.0, jitter=0.5)
#: A fixed ``rate`` is paced this much under the nominal value, so timer jitter never puts
#: ``rate + 1`` requests inside one second of the server's window.
FIXED_RATE_MARGIN = 0.985
#: Adaptive mode: the first rate — at least this, or START_PER_CONNECTION per request allowed in
#: flight (the user's own statement of how much parallel load is fine) — its floor and ceiling.
ADAPTIVE_START = 10.0
START_PER_CONNECTION = 2.0
ADAPTIVE_MIN = 0.2
ADAPTIVE_MAX = 10_000.0
#: Adaptive mode: per rate-bound success before the first throttle ("slow start") the rate is
#: multiplied by this, growing by at least SLOW_START_STEP (10 → 1,000 req/s in ~21 answers; measured in
#: docs/performance.md: 1.5 fills an unlimited server faster but nears 5 % throttled at R = 20) ...
SLOW_START_FACTOR = 1.25
SLOW_START_STEP = 2.0
#: ... per success after it (about +1.5 % a second: a 10 % cut is won back in ~7 s) ...
INCREASE_STEP = 0.015
#: ... and the factor applied on each fresh throttle.
DECREASE_FACTOR = 0.9
#: At most one cut a second: a cut shows only once the server's window (commonly a second) has
#: moved past the requests sent before it, so throttles in between are the same overload.
CUT_SPACING = 1.0
#: Leaving slow start, the rate drops to this share of the successful requests sent in the last second
#: at most: slow start overshoots by the time the server's window fills, and that count is what it admitted.
SLOW_START_EXIT = 0.95


class _Gate(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    HALF_OPEN = "half-open"


@dataclass(slots=True, eq=False)
class Permit:
    """One request's pass through the limiter: what the gate looked like when it went in."""

    epoch: int
    probe: bool
    rate_bound: bool
    at: float = 0.0
    reported: bool = False
    _token: contextvars.Token[Permit | None] | None = field(default=None, repr=False)


_current: contextvars.ContextVar[Permit | None] = contextvars.ContextVar("facesync_permit", default=None)


class Limiter:
    """Token bucket + in-flight cap + throttle gate, shared by every request of a run."""

    def __init__(
        self,
        rate: float | None = None,
        max_in_flight: int = 8,
        quota_wait: float = 300.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if rate is not None and not rate > 0:
            raise ValueError(f"Limiter rate must be > 0 or None (adaptive), got {rate}")
        if max_in_flight < 1:
            raise ValueError(f"Limiter max_in_flight must be >= 1, got {max_in_flight}")
        self._fixed = rate
        self._rate = rate if rate is not None else max(ADAPTIVE_START, START_PER_CONNECTION * max_in_flight)
        self._max_in_flight = max_in_flight
        self._quota_wait = max(0.0, quota_wait)
        self._backoff = backoff if backoff is not None else GATE_BACKOFF
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._next_token = -math.inf
        self._in_flight = 0
        self._gate = _Gate.OPEN
        self._until = 0.0
        self._epoch = 0
        self._streak = 0
        self._streak_start: float | None = None
        self._probe_out = False
        self._slow_start = True
        self._spent = False
        self._waiters: set[asyncio.Future[None]] = set()
        self._token_waiter = False
        self._last_cut = -math.inf
        self._recent: deque[float] = deque()
        self.throttle_events = 0

    @classmethod
    def from_limits(cls, limits: LimitsConfig) -> Limiter:
        """The limiter a run uses: ``limits.rate`` (None: adaptive), ``concurrency`` in flight."""
        backoff = Backoff(base=GATE_BACKOFF.base, cap=max(limits.backoff_max, GATE_BACKOFF.base), jitter=0.5)
        return cls(
            rate=limits.rate,
            max_in_flight=limits.concurrency,
            quota_wait=limits.quota_wait,
            backoff=backoff,
        )

    def __repr__(self) -> str:
        rate = f"{self._fixed:g}" if self._fixed is not None else f"adaptive@{self._rate:.2f}"
        return (
            f"Limiter(rate={rate}, in_flight={self._in_flight}/{self._max_in_flight}, "
            f"gate={self._gate.value}, spent={self._spent})"
        )

    # -- state, for the engine and the report ---------------------------------------------------

    @property
    def gate_closed(self) -> bool:
        """True from a fresh throttle until a probe succeeds (closed or half-open)."""
        return self._gate is not _Gate.OPEN

    @property
    def spent(self) -> bool:
        """True once throttling outlasted ``quota_wait``: nothing more will be let through."""
        return self._spent

    @property
    def current_rate(self) -> float | None:
        """The rate in requests/second being paced to now (the adaptive one moves)."""
        return self._rate

    @property
    def in_flight(self) -> int:
        return self._in_flight

    # -- async with ---------------------------------------------------------------------------

    async def __aenter__(self) -> Permit:
        permit = await self.acquire()
        permit._token = _current.set(permit)
        return permit

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        permit = _current.get()
        if permit is not None and permit._token is not None:
            _current.reset(permit._token)
            permit._token = None
        if permit is not None:
            self.release(permit)

    async def acquire(self) -> Permit:
        """Wait until the gate, the in-flight cap and the bucket all let one request go.

        Only one waiter sleeps for the next token (the others wait for a change), and the slot after
        it is computed when it is taken, so a new rate applies at once instead of after a queue of
        slots reserved at the old one.
        """
        waited = False
        while True:
            if self._spent:
                raise QuotaSpent(self._spent_message())
            now = self._clock()
            if self._gate is _Gate.CLOSED:
                deadline = self._deadline()
                if now >= deadline:
                    self._spend()
                    continue
                if now < self._until:
                    await self._sleep(min(self._until, deadline) - now)
                    continue
                self._gate = _Gate.HALF_OPEN
                self._probe_out = False
            if (
                (self._gate is _Gate.HALF_OPEN and self._probe_out)
                or self._in_flight >= self._max_in_flight
                or self._token_waiter
            ):
                await self._wait_change()
                continue
            if self._next_token > now:
                self._token_waiter = waited = True
                try:
                    await self._sleep(self._next_token - now)
                finally:
                    self._token_waiter = False
                    self._wake()
                continue
            interval = self._interval()
            # Late by less than one interval (timer jitter): keep the schedule, so jitter does not
            # slowly eat the rate. Idle for longer: start afresh from now (burst capacity 1).
            at = self._next_token if now - self._next_token < interval else now
            self._next_token = at + interval
            probe = self._gate is _Gate.HALF_OPEN
            self._probe_out = self._probe_out or probe
            self._in_flight += 1
            self._wake()
            return Permit(epoch=self._epoch, probe=probe, rate_bound=waited, at=now)

    def release(self, permit: Permit) -> None:
        """The request is over (answered or not); a probe that reported nothing frees the probe slot."""
        self._in_flight -= 1
        if permit.probe and not permit.reported and self._gate is _Gate.HALF_OPEN:
            self._probe_out = False
        self._wake()

    # -- outcomes -------------------------------------------------------------------------------

    def on_throttle(self, retry_after: float | None = None, permit: Permit | None = None) -> None:
        """A request was throttled: close the gate for everyone, slow down, maybe declare the quota spent.

        ``permit`` defaults to the one of the ``async with`` this task is inside.
        """
        permit = permit if permit is not None else _current.get()
        self.throttle_events += 1
        now = self._clock()
        if permit is not None:
            permit.reported = True
        if self._spent:
            return
        if permit is not None and permit.epoch != self._epoch:
            if self._gate is _Gate.CLOSED and retry_after:
                self._until = max(self._until, now + retry_after)
            return
        if permit is not None and permit.probe:
            self._probe_out = False
        self._streak += 1
        if self._streak_start is None:
            self._streak_start = now
        self._epoch += 1
        wait = max(retry_after or 0.0, self._backoff.delay(self._streak, self._rng))
        self._until = max(self._until, now + wait) if self._gate is _Gate.CLOSED else now + wait
        self._gate = _Gate.CLOSED
        self._next_token = -math.inf  # slots reserved before the close are void; do not leave a hole
        if self._fixed is None and now - self._last_cut >= CUT_SPACING:
            self._last_cut = now
            rate = self._rate * DECREASE_FACTOR
            if self._slow_start:
                self._forget_before(now - 1.0)
                rate = min(rate, SLOW_START_EXIT * len(self._recent))
                self._slow_start = False
                self._recent.clear()
            self._rate = max(ADAPTIVE_MIN, rate)
        if now >= self._deadline():
            self._spend()
        self._wake()

    def on_success(self, permit: Permit | None = None) -> None:
        """A request was answered without throttling: reopen a half-open gate, or grow the adaptive rate."""
        permit = permit if permit is not None else _current.get()
        if permit is not None:
            permit.reported = True
        if self._spent or (permit is not None and permit.epoch != self._epoch):
            return
        if self._gate is _Gate.HALF_OPEN and (permit is None or permit.probe):
            self._gate = _Gate.OPEN
            self._streak = 0
            self._streak_start = None
            self._probe_out = False
            self._wake()
        elif self._gate is _Gate.OPEN and self._fixed is None:
            if self._slow_start:
                now = self._clock()
                self._recent.append(permit.at if permit is not None else now)
                self._forget_before(now - 1.0)
            if permit is None or permit.rate_bound:
                if self._slow_start:
                    rate = max(self._rate + SLOW_START_STEP, self._rate * SLOW_START_FACTOR)
                else:
                    rate = self._rate + INCREASE_STEP
                self._rate = min(ADAPTIVE_MAX, rate)

    # -- internals ------------------------------------------------------------------------------

    def _interval(self) -> float:
        if self._fixed is not None:
            return 1.0 / (self._fixed * FIXED_RATE_MARGIN)
        return 1.0 / self._rate

    def _forget_before(self, cutoff: float) -> None:
        while self._recent and self._recent[0] <= cutoff:
            self._recent.popleft()

    def _deadline(self) -> float:
        start = self._streak_start if self._streak_start is not None else self._clock()
        return start + self._quota_wait

    def _spend(self) -> None:
        self._spent = True
        self._wake()

    def _spent_message(self) -> str:
        return (
            f"quota spent: throttled for {self._quota_wait:g}s or more without a success "
            f"({self.throttle_events} throttled answers)"
        )

    async def _wait_change(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        try:
            await future
        finally:
            self._waiters.discard(future)

    def _wake(self) -> None:
        for future in self._waiters:
            if not future.done():
                future.set_result(None)
        self._waiters.clear()
