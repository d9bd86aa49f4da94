"""Retry with back-off: pure delays, one retry loop, and a switch that turns sleeping off in tests.

tenacity is imported here and nowhere else (stamina's habit): the rest of the pipeline sees a
:class:`RetryPolicy` and plain functions, so the retry library can change without touching callers.

Only :class:`~pipeline.errors.Retryable` is retried. ``Throttled`` is not a retry-budget failure (the
client loops on it through the limiter's gate until the limiter says the quota is spent), and
``Rejected``, ``AuthError`` and ``QuotaSpent`` are answers, not accidents: retrying them would only
spend requests.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from pipeline.config import LimitsConfig
from pipeline.errors import Retryable, ServiceFailing

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["Backoff", "RetryPolicy", "backoff_delay", "is_testing", "set_testing"]

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

log = logging.getLogger(__name__)

#: The exponent stops growing here, so a huge attempt number cannot overflow a float.
_MAX_EXPONENT = 62

_testing = False

#: Every default below is the config's, so code that builds a policy by hand behaves as a default run.
_DEFAULTS = LimitsConfig()


def set_testing(on: bool) -> None:
    """Turn every retry sleep into a no-op (tests); the delays are still computed and logged."""
    global _testing
    _testing = on


def is_testing() -> bool:
    """Whether :func:`set_testing` turned sleeping off."""
    return _testing


def _ceiling(attempt: int, base: float, cap: float) -> float:
    """``base * 2**(attempt-1)``, capped at ``cap``; attempt 1 is the first retry."""
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    return max(0.0, min(cap, base * 2.0**exponent))


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential back-off with full jitter: uniform in ``[0, min(cap, base * 2**(attempt-1))]``.

    Pure apart from the random draw (pass a seeded ``rng`` for a reproducible value). Full jitter
    spreads the retries of many workers that failed together, so they do not come back together.
    """
    draw = rng.random() if rng is not None else random.random()
    return _ceiling(attempt, base, cap) * draw


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential back-off where only a share (``jitter``) of each delay is random.

    ``jitter=1`` is full jitter (as :func:`backoff_delay`); the limiter's gate uses ``0.5`` so a
    throttled client always waits at least half the step, never a near-zero draw.
    """

    base: float = _DEFAULTS.backoff_base
    cap: float = _DEFAULTS.backoff_max
    jitter: float = 1.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay before try ``attempt + 1`` (attempt counts from 1)."""
        draw = rng.random() if rng is not None else random.random()
        ceiling = _ceiling(attempt, self.base, self.cap)
        return ceiling * (1.0 - self.jitter * draw)


async def _default_sleep(seconds: float) -> None:
    if _testing:
        return
    await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times a :class:`Retryable` failure is tried (in all), and how long to wait between.

    ``attempts`` counts the first try: ``attempts=1`` never retries.
    """

    attempts: int = _DEFAULTS.retries + 1
    base: float = _DEFAULTS.backoff_base
    cap: float = _DEFAULTS.backoff_max
    #: No retry starts after this many seconds since the first try (attempts and waits included).
    max_time: float = _DEFAULTS.retry_time
    rng: random.Random | None = field(default=None, compare=False)
    #: None: ``asyncio.sleep``, unless :func:`set_testing` turned sleeping off.
    sleep: Sleep | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")

    @classmethod
    def from_limits(cls, limits: LimitsConfig) -> RetryPolicy:
        """``limits.retries`` retries after the first try, with the configured back-off."""
        return cls(
            attempts=limits.retries + 1,
            base=limits.backoff_base,
            cap=limits.backoff_max,
            max_time=limits.retry_time,
        )

    def delay(self, attempt: int) -> float:
        """The wait after failed try number ``attempt``."""
        return backoff_delay(attempt, self.base, self.cap, self.rng)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()``; on :class:`Retryable` wait and try again, re-raising the last one when spent.

        The first try is awaited as it is: nearly every call ends there, and a tenacity loop costs more
        than a listing page's own work. Only a failure worth retrying starts one (:meth:`_again`).
        """
        started = time.monotonic()
        try:
            return await fn()
        except Retryable as exc:
            if self.attempts < 2 or not _worth_retrying(exc):
                raise
            first = exc
        return await self._again(fn, first, time.monotonic() - started)

    async def _again(self, fn: Callable[[], Awaitable[T]], first: Retryable, spent: float) -> T:
        """The tries after a first that failed with ``first``, ``spent`` seconds after it started: the
        first try's failure is handed to tenacity as its own first attempt, so the waits, the log and
        the stop (attempts, and ``max_time`` since the first try started) are as if it had made it.
        tenacity is imported here, at the first failure: a run whose calls all succeed never loads it."""
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_after_delay

        sleep = self.sleep if self.sleep is not None else _default_sleep
        replay = [first]

        async def attempt_fn() -> T:
            if replay:
                raise replay.pop()
            return await fn()

        def wait(state: RetryCallState) -> float:
            return self.delay(state.attempt_number)

        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None else None
            wait_s = state.next_action.sleep if state.next_action is not None else 0.0
            log.info("retry %d/%d in %.2fs after: %s", state.attempt_number, self.attempts, wait_s, exc)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_time - spent),
            wait=wait,
            retry=retry_if_exception(_worth_retrying),
            reraise=True,
            sleep=sleep,
            before_sleep=before_sleep,
        )
        async for attempt in retrying:
            with attempt:
                return await attempt_fn()
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


def _worth_retrying(exc: BaseException) -> bool:
    """A Retryable failure is tried again, unless the circuit breaker stopped the run."""
    return isinstance(exc, Retryable) and not isinstance(exc, ServiceFailing)
