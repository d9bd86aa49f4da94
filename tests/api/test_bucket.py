"""The token bucket on a fake clock: ``now`` values in, waits and schedules out."""

from __future__ import annotations

import random

import pytest

from pipeline.api.bucket import FIXED_RATE_MARGIN, LATE_SLACK, TokenBucket


def test_first_token_is_there_at_once_and_the_next_one_an_interval_later() -> None:
    bucket = TokenBucket()
    assert bucket.wait(0.0) == 0.0
    bucket.take(0.0, rate=10.0)
    assert [bucket.wait(t) for t in (0.0, 0.04, 0.1, 0.2)] == pytest.approx([0.1, 0.06, 0.0, 0.0])


def test_tokens_are_not_saved_up_while_idle() -> None:
    bucket = TokenBucket()
    bucket.take(0.0, rate=10.0)
    bucket.take(5.0, rate=10.0)  # idle for 5 s: no backlog of 50 tokens, burst capacity 1
    assert bucket.wait(5.0) == pytest.approx(0.1)


def test_late_by_less_than_an_interval_keeps_the_schedule() -> None:
    bucket = TokenBucket()
    bucket.take(0.0, rate=10.0)
    bucket.take(0.13, rate=10.0)  # due at 0.1, taken 30 ms late (timer jitter)
    assert bucket.next_token == pytest.approx(0.2)


def test_a_changed_rate_applies_from_the_next_token() -> None:
    bucket = TokenBucket()
    bucket.take(0.0, rate=10.0)
    bucket.take(0.1, rate=2.0)
    assert bucket.next_token == pytest.approx(0.6)


def test_void_makes_the_next_token_due_at_once() -> None:
    bucket = TokenBucket()
    bucket.take(0.0, rate=1.0)
    bucket.void()
    assert bucket.wait(0.2) == 0.0
    bucket.take(0.2, rate=1.0)
    assert bucket.next_token == pytest.approx(1.2)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("rate", [5, 20, 100])
def test_fixed_rate_margin_keeps_rate_plus_one_out_of_any_second_despite_jitter(seed: int, rate: int) -> None:
    """Each token is taken up to 14 ms late (< 1.5 % of a second): no one-second window holds rate + 1."""
    jitter = random.Random(seed)
    bucket = TokenBucket()
    sent: list[float] = []
    now = 0.0
    for _ in range(20 * rate):
        now += bucket.wait(now) + jitter.uniform(0.0, 0.014)
        bucket.take(now, rate * FIXED_RATE_MARGIN)
        sent.append(now)
    assert min(later - first for first, later in zip(sent, sent[rate:], strict=False)) >= 1.0


def test_at_high_rates_a_few_milliseconds_of_tokens_go_at_once() -> None:
    """At 10,000 req/s a token is 0.1 ms: finer than the loop's timers, so LATE_SLACK's worth go
    without a sleep (a burst of answers no longer puts each next request to sleep in turn)."""
    bucket = TokenBucket()
    taken = 0
    while bucket.wait(0.0) == 0.0:
        bucket.take(0.0, rate=10_000.0)
        taken += 1
    assert taken == round(LATE_SLACK * 10_000)
    assert bucket.wait(0.0) == pytest.approx(0.0001)


def test_at_low_rates_no_token_goes_early() -> None:
    bucket = TokenBucket()
    bucket.take(0.0, rate=100.0)
    assert bucket.wait(0.0) == pytest.approx(0.01)
    bucket.take(0.0101, rate=200.0)
    assert bucket.wait(0.0101) == pytest.approx(bucket.next_token - 0.0101)


def test_late_by_up_to_the_slack_keeps_the_schedule_at_high_rates() -> None:
    bucket = TokenBucket()
    bucket.take(0.0, rate=10_000.0)
    bucket.take(0.003, rate=10_000.0)  # slot 0.0001, taken 2.9 ms late: the loop's timer, not idleness
    assert bucket.next_token == pytest.approx(0.0002)
    bucket.take(0.5, rate=10_000.0)  # idle for half a second: afresh
    assert bucket.next_token == pytest.approx(0.5001)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("rate", [150, 300, 1_000, 10_000])
def test_fixed_rate_margin_keeps_rate_plus_one_out_of_any_second_at_high_rates(seed: int, rate: int) -> None:
    """A greedy client (takes each token the moment it may, now and then a few ms late, as a busy loop
    wakes): the early and late tolerance never put rate + 1 requests in a one-second window."""
    jitter = random.Random(seed)
    bucket = TokenBucket()
    sent: list[float] = []
    now = 0.0
    for _ in range(5 * rate):
        now += bucket.wait(now)
        if jitter.random() < 0.05:
            now += jitter.uniform(0.0, 1.5 * LATE_SLACK)
        bucket.take(now, rate * FIXED_RATE_MARGIN)
        sent.append(now)
    assert min(later - first for first, later in zip(sent, sent[rate:], strict=False)) > 1.0
