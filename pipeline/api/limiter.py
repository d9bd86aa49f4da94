"""One limiter for every request: a token bucket, a cap on requests in flight, a throttle gate, a quota clock.

Used as ``async with limiter:`` (aiolimiter's shape). :class:`Limiter` is the async part: it holds the
waiters and asks four pure parts, each in its own module, when a request may go:

* **tokens** (:class:`~pipeline.api.bucket.TokenBucket`) — ``rate`` requests/second, spaced evenly
  (burst capacity 1). ``rate=None`` is adaptive (:class:`~pipeline.api.adaptive.AdaptiveRate`, AIMD).
* **in flight** — at most ``max_in_flight`` requests between ``__aenter__`` and ``__aexit__``.
* **the gate** (:class:`~pipeline.api.gate.ThrottleGate`) — a throttled request (code 4, HTTP 429)
  calls :meth:`Limiter.on_throttle`, which closes the gate for *everyone*; one probe reopens it.
* **the quota clock** (:class:`~pipeline.api.quota.QuotaClock`) — throttling that lasts ``quota_wait``
  seconds without a success spends the limiter: every waiter and every later ``__aenter__`` raises
  :class:`~pipeline.errors.QuotaSpent`; requests already in flight finish.
* **the budget and the deadline** (:class:`~pipeline.api.budget.RequestBudget`, :meth:`set_deadline`)
  — the same stop of our own making: a request past the run's deadline raises
  :class:`~pipeline.errors.DeadlineReached`, one past its request budget
  :class:`~pipeline.errors.BudgetSpent` (both kinds of ``QuotaSpent``); every wait ends at the deadline.

The clock and the sleep are injected so tests move time instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from types import TracebackType

from pipeline.api.adaptive import AdaptiveRate
from pipeline.api.bucket import FIXED_RATE_MARGIN, TokenBucket
from pipeline.api.budget import RequestBudget
from pipeline.api.gate import GATE_BACKOFF, GateState, ThrottleGate
from pipeline.api.quota import QuotaClock
from pipeline.api.retry import Backoff
from pipeline.config import LimitsConfig
from pipeline.errors import DeadlineReached, QuotaSpent

__all__ = ["GATE_BACKOFF", "Limiter", "Permit"]

_DEFAULTS = LimitsConfig()


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
    """Token bucket + in-flight cap + throttle gate + quota clock, shared by every request of a run."""

    def __init__(
        self,
        rate: float | None = _DEFAULTS.rate,
        max_in_flight: int = _DEFAULTS.concurrency,
        quota_wait: float = _DEFAULTS.quota_wait,
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
        self._adaptive = AdaptiveRate.for_in_flight(max_in_flight) if rate is None else None
        self._max_in_flight = max_in_flight
        self._bucket = TokenBucket()
        self._gate = ThrottleGate(backoff if backoff is not None else GATE_BACKOFF, rng)
        self._quota = QuotaClock(quota_wait)
        self._clock = clock
        self._sleep = sleep
        self._in_flight = 0
        #: Waiters for a change, first come, first served: each ``acquire`` that waits has one place
        #: (its key, kept while it waits again) and the future it waits on now (a dict keeps the order).
        self._waiters: dict[object, asyncio.Future[None]] = {}
        self.throttle_events = 0
        #: The run's request budget (None: no cap); one request taken per permit.
        self.budget: RequestBudget | None = None
        self._deadline: float | None = None
        self._deadline_why = ""

    @classmethod
    def from_limits(cls, limits: LimitsConfig) -> Limiter:
        """The limiter a run uses: ``limits.rate`` (None: adaptive), ``concurrency`` in flight."""
        backoff = replace(GATE_BACKOFF, cap=max(limits.backoff_max, GATE_BACKOFF.base))
        return cls(
            rate=limits.rate,
            max_in_flight=limits.concurrency,
            quota_wait=limits.quota_wait,
            backoff=backoff,
        )

    def __repr__(self) -> str:
        rate = f"{self._fixed:g}" if self._fixed is not None else f"adaptive@{self.current_rate:.2f}"
        return (
            f"Limiter(rate={rate}, in_flight={self._in_flight}/{self._max_in_flight}, "
            f"gate={self._gate.state.value}, spent={self.spent})"
        )

    # -- state, for the engine and the report ---------------------------------------------------

    @property
    def gate_closed(self) -> bool:
        """True from a fresh throttle until a probe succeeds (closed or half-open)."""
        return self._gate.state is not GateState.OPEN

    @property
    def gate_wait(self) -> float:
        """Seconds until a closed gate lets its probe go (0 when open, or half-open: the probe is out)."""
        if self._gate.state is not GateState.CLOSED:
            return 0.0
        return max(0.0, self._gate.until - self._clock())

    @property
    def spent(self) -> bool:
        """True once throttling outlasted ``quota_wait``: nothing more will be let through."""
        return self._quota.spent

    @property
    def current_rate(self) -> float | None:
        """The rate in requests/second being paced to now (the adaptive one moves)."""
        return self._adaptive.rate if self._adaptive is not None else self._fixed

    @property
    def adaptive(self) -> AdaptiveRate | None:
        """The adaptive rate (``limits.rate`` unset), or None for a fixed one."""
        return self._adaptive

    @property
    def in_flight(self) -> int:
        """Requests between enter and exit now."""
        return self._in_flight

    def set_deadline(self, at: float | None, why: str = "") -> None:
        """No permit after ``at`` (the limiter's clock): :class:`DeadlineReached` with ``why``."""
        self._deadline, self._deadline_why = at, why
        self._wake_all()

    def _past_deadline(self, now: float) -> bool:
        return self._deadline is not None and now >= self._deadline

    def _until_deadline(self, now: float, wait: float) -> float:
        """``wait``, cut short at the deadline."""
        return wait if self._deadline is None else max(0.0, min(wait, self._deadline - now))

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
        """Wait until the quota, the gate, the in-flight cap and the bucket all let one request go.

        Only one waiter sleeps for the next token (the others wait for a change), and the slot after
        it is computed when it is taken, so a new rate applies at once instead of after a queue of
        slots reserved at the old one.
        """
        place = object()
        try:
            return await self._acquire(place)
        except BaseException:
            self._wake()  # a waiter woken to go that leaves instead (spent, past the deadline, cancelled)
            raise
        finally:
            self._waiters.pop(place, None)

    async def _acquire(self, place: object) -> Permit:
        waited = False
        while True:
            if self._quota.spent:
                raise QuotaSpent(self._spent_message())
            now = self._clock()
            if self._past_deadline(now):
                raise DeadlineReached(self._deadline_why or "the run's deadline came")
            if self._gate.state is GateState.CLOSED:
                if self._quota.expire(now):
                    self._wake_all()
                    continue
                closed_for = self._gate.wait(now)
                if closed_for > 0:
                    await self._sleep(self._until_deadline(now, min(closed_for, self._quota.left(now))))
                    continue
            if not self._gate.may_enter() or self._in_flight >= self._max_in_flight or self._bucket.sleeping:
                await self._wait_change(now, place)
                continue
            token_in = self._bucket.wait(now)
            if token_in > 0:
                self._bucket.sleeping = waited = True
                try:
                    await self._sleep(self._until_deadline(now, token_in))
                finally:
                    self._bucket.sleeping = False
                    self._wake()
                continue
            if self.budget is not None:
                self.budget.take()  # BudgetSpent when none is left: nothing taken
            self._bucket.take(now, self._paced_rate())
            probe = self._gate.enter()
            self._in_flight += 1
            self._wake()
            return Permit(epoch=self._gate.epoch, probe=probe, rate_bound=waited, at=now)

    def release(self, permit: Permit) -> None:
        """The request is over (answered or not); a probe that reported nothing frees the probe slot."""
        self._in_flight -= 1
        if permit.probe and not permit.reported:
            self._gate.probe_lost()
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
        if self._quota.spent:
            return
        epoch = permit.epoch if permit is not None else None
        probe = permit is not None and permit.probe
        if not self._gate.on_throttle(now, retry_after, epoch, probe):
            return  # stale: the same burst that closed the gate
        self._quota.on_throttle(now)
        self._bucket.void()
        if self._adaptive is not None:
            self._adaptive.on_throttle(now)
        self._wake_all()

    def on_success(self, permit: Permit | None = None) -> None:
        """A request was answered without throttling: reopen a half-open gate, or grow the adaptive rate."""
        permit = permit if permit is not None else _current.get()
        if permit is not None:
            permit.reported = True
        if self._quota.spent or (permit is not None and self._gate.is_stale(permit.epoch)):
            return
        if self._gate.on_success(probe=permit is None or permit.probe):
            self._quota.on_success()
            self._wake_all()
        elif self._gate.state is GateState.OPEN and self._adaptive is not None:
            now = self._clock()
            sent_at = permit.at if permit is not None else now
            self._adaptive.on_success(now, sent_at, rate_bound=permit is None or permit.rate_bound)

    # -- internals ------------------------------------------------------------------------------

    def _paced_rate(self) -> float:
        if self._adaptive is not None:
            return self._adaptive.rate
        assert self._fixed is not None
        return self._fixed * FIXED_RATE_MARGIN

    def _spent_message(self) -> str:
        return (
            f"quota spent: throttled for {self._quota.quota_wait:g}s or more without a success "
            f"({self.throttle_events} throttled answers)"
        )

    async def _wait_change(self, now: float, place: object) -> None:
        """Wait to be woken, in ``place`` (a waiter that looked and must wait again keeps its turn)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[place] = future
        if self._deadline is None:
            await future
        else:  # woken at the deadline at the latest
            await asyncio.wait([future], timeout=self._until_deadline(now, self._deadline - now))

    def _wake(self) -> None:
        """Let the first waiter look again. Every waiter waits for the same things (the gate, a slot in
        flight, the bucket), so when the first cannot go none could, and when it goes it wakes the next
        (taking a permit calls this), which stops at the first that cannot. Waking every waiter on every
        permit and every answer instead cost ~8 µs of CPU a waiter each time: 260 µs a request with 31
        waiting on a 10,000 req/s bucket (docs/performance.md, "Issue 23, round 4")."""
        for future in self._waiters.values():
            if not future.done():
                future.set_result(None)
                return

    def _wake_all(self) -> None:
        """Let every waiter look again: for what changes how each waits (a deadline set, the gate closed
        or reopened, the quota spent), which are rare."""
        for future in self._waiters.values():
            if not future.done():
                future.set_result(None)
