"""A limiter or retry policy built in code, without a config, behaves as a default config's."""

from __future__ import annotations

from pipeline.api.limiter import GATE_BACKOFF, Limiter
from pipeline.api.retry import Backoff, RetryPolicy
from pipeline.config import LimitsConfig

LIMITS = LimitsConfig()


def test_limiter_defaults_are_the_config_defaults() -> None:
    assert repr(Limiter()) == repr(Limiter.from_limits(LIMITS))
    assert f"in_flight=0/{LIMITS.concurrency}," in repr(Limiter())
    assert GATE_BACKOFF.cap == LIMITS.backoff_max


def test_default_limiter_is_spent_after_the_config_quota_wait() -> None:
    times = iter([0.0, LIMITS.quota_wait - 0.001, LIMITS.quota_wait])
    limiter = Limiter(clock=lambda: next(times))
    spent = []
    for _ in range(3):
        limiter.on_throttle()
        spent.append(limiter.spent)
    assert spent == [False, False, True]


def test_retry_defaults_are_the_config_defaults() -> None:
    assert RetryPolicy() == RetryPolicy.from_limits(LIMITS)
    assert RetryPolicy().attempts == LIMITS.retries + 1
    assert Backoff() == Backoff(base=LIMITS.backoff_base, cap=LIMITS.backoff_max)
