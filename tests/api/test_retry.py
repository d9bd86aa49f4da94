"""Back-off is a pure function of the attempt; only Retryable is retried, within the budget."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from pipeline.api.retry import Backoff, RetryPolicy, backoff_delay, is_testing, set_testing
from pipeline.config import LimitsConfig
from pipeline.errors import AuthError, QuotaSpent, Rejected, Retryable, Throttled


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def policy(slept: list[float]) -> RetryPolicy:
    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return RetryPolicy(attempts=4, base=1.0, cap=5.0, rng=random.Random(1), sleep=sleep)


def test_backoff_delay_is_full_jitter_under_an_exponential_cap() -> None:
    rng = random.Random(3)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 10.0), (60, 10.0)]:
        draws = [backoff_delay(attempt, 0.5, 10.0, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > 0.8 * ceiling


def test_backoff_delay_is_reproducible_with_a_seeded_rng() -> None:
    assert backoff_delay(4, 0.5, 60, random.Random(9)) == backoff_delay(4, 0.5, 60, random.Random(9))


def test_backoff_delay_survives_huge_attempt_numbers() -> None:
    assert 0.0 <= backoff_delay(100_000, 0.5, 60.0) <= 60.0


def test_backoff_with_half_jitter_never_waits_under_half_the_step() -> None:
    backoff = Backoff(base=1.0, cap=60.0, jitter=0.5)
    rng = random.Random(5)
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (8, 60.0)]:
        draws = [backoff.delay(attempt, rng) for _ in range(100)]
        assert all(step / 2 <= d <= step for d in draws)
    assert Backoff(base=1.0, cap=60.0, jitter=0.0).delay(3) == 4.0


def test_policy_from_limits_counts_the_first_try() -> None:
    policy = RetryPolicy.from_limits(LimitsConfig(retries=3, backoff_base=0.25, backoff_max=9.0))
    assert (policy.attempts, policy.base, policy.cap) == (4, 0.25, 9.0)
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


async def test_retryable_is_retried_until_success(policy: RetryPolicy, slept: list[float]) -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise Retryable("503")
        return "ok"

    assert await policy.call(flaky) == "ok"
    assert calls == 3
    assert len(slept) == 2
    assert 0 <= slept[0] <= 1.0 and 0 <= slept[1] <= 2.0


async def test_last_retryable_is_reraised_when_budget_is_spent(
    policy: RetryPolicy, slept: list[float]
) -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise Retryable(f"failure {calls}", sent=False)

    with pytest.raises(Retryable, match="failure 4") as info:
        await policy.call(down)
    assert info.value.sent is False
    assert calls == 4
    assert len(slept) == 3


@pytest.mark.parametrize(
    "error",
    [
        Rejected("no face", code=3),
        AuthError("bad key"),
        QuotaSpent("spent"),
        Throttled("slow down", retry_after=1.0),
        ValueError("a bug"),
    ],
)
async def test_only_retryable_is_retried(policy: RetryPolicy, slept: list[float], error: Exception) -> None:
    calls = 0

    async def refuse() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(type(error)):
        await policy.call(refuse)
    assert calls == 1
    assert slept == []


@pytest.fixture
def testing_mode() -> Iterator[None]:
    set_testing(True)
    yield
    set_testing(False)


async def test_set_testing_turns_default_sleep_off(testing_mode: None) -> None:
    assert is_testing()
    policy = RetryPolicy(attempts=3, base=3600.0, cap=3600.0)
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise Retryable("reset")
        return calls

    assert await policy.call(flaky) == 3
