"""The adaptive rate on a fake clock: successes and throttles in, the rate out."""

from __future__ import annotations

import pytest

from pipeline.api.adaptive import (
    ADAPTIVE_MAX,
    ADAPTIVE_MIN,
    DECREASE_FACTOR,
    INCREASE_STEP,
    SLOW_START_EXIT,
    AdaptiveRate,
)


def past_slow_start(rate: float) -> AdaptiveRate:
    """An adaptive rate after its first throttle, set to ``rate``."""
    adaptive = AdaptiveRate()
    adaptive.on_throttle(0.0)
    adaptive.rate = rate
    return adaptive


@pytest.mark.parametrize(("max_in_flight", "start"), [(1, 10.0), (5, 10.0), (8, 16.0), (32, 64.0)])
def test_start_is_two_per_request_in_flight_and_at_least_ten(max_in_flight: int, start: float) -> None:
    assert AdaptiveRate.for_in_flight(max_in_flight).rate == start


def test_slow_start_grows_by_a_quarter_or_at_least_two() -> None:
    rates = []
    for start in (4.0, 10.0, 100.0):
        adaptive = AdaptiveRate(start)
        adaptive.on_success(now=0.0, sent_at=0.0, rate_bound=True)
        rates.append(adaptive.rate)
    assert rates == [6.0, 12.5, 125.0]


def test_slow_start_takes_ten_to_a_thousand_in_21_successes() -> None:
    adaptive = AdaptiveRate()
    rates = []
    for n in range(21):
        adaptive.on_success(now=n * 0.01, sent_at=n * 0.01, rate_bound=True)
        rates.append(adaptive.rate)
    assert rates[19] < 1000 <= rates[20]


def test_success_that_did_not_wait_for_a_token_does_not_grow_the_rate() -> None:
    slow, steady = AdaptiveRate(10.0), past_slow_start(10.0)
    for adaptive in (slow, steady):
        adaptive.on_success(now=1.0, sent_at=1.0, rate_bound=False)
    assert (slow.rate, steady.rate) == (10.0, 10.0)


def test_past_slow_start_each_success_adds_the_increase_step() -> None:
    adaptive = past_slow_start(20.0)
    for n in range(100):
        adaptive.on_success(now=n / 20, sent_at=n / 20, rate_bound=True)
    assert adaptive.rate == pytest.approx(20.0 + 100 * INCREASE_STEP)


def test_a_ten_percent_cut_is_won_back_in_about_seven_seconds() -> None:
    """Rate-bound successes arrive at the rate itself, so the rate grows about 1.5 % a second."""
    adaptive = past_slow_start(0.9 * 20.0)
    now = 0.0
    while adaptive.rate < 20.0:
        now += 1.0 / adaptive.rate
        adaptive.on_success(now=now, sent_at=now, rate_bound=True)
    assert 6.5 < now < 7.5


def test_first_throttle_ends_slow_start_at_95_percent_of_the_last_seconds_successes() -> None:
    adaptive = AdaptiveRate(100.0)
    for n in range(30):  # 10 sent more than a second before the throttle at 2.0, 20 within it
        adaptive.on_success(now=2.0, sent_at=0.52 + n * 0.05, rate_bound=False)
    adaptive.on_throttle(2.0)
    assert not adaptive.slow_start
    assert adaptive.rate == pytest.approx(SLOW_START_EXIT * 20)


def test_first_throttle_cuts_by_the_decrease_factor_when_that_is_lower() -> None:
    adaptive = AdaptiveRate(10.0)
    for n in range(50):
        adaptive.on_success(now=1.0, sent_at=0.5 + n * 0.01, rate_bound=False)
    adaptive.on_throttle(1.0)
    assert adaptive.rate == pytest.approx(10.0 * DECREASE_FACTOR)


def test_throttles_within_a_second_of_a_cut_do_not_cut_again() -> None:
    adaptive = past_slow_start(100.0)
    rates = []
    for now in (1.0, 1.5, 1.99, 2.0, 2.5, 3.5):
        adaptive.on_throttle(now)
        rates.append(adaptive.rate)
    assert rates == pytest.approx([90.0, 90.0, 90.0, 81.0, 81.0, 72.9])


def test_rate_stays_between_floor_and_ceiling() -> None:
    high = AdaptiveRate(ADAPTIVE_MAX - 1.0)
    high.on_success(now=0.0, sent_at=0.0, rate_bound=True)
    low = AdaptiveRate(1.0)
    low.on_throttle(0.0)  # no success in the last second: the exit share is 0
    for n in range(1, 100):
        low.on_throttle(float(n))
    assert (high.rate, low.rate) == (ADAPTIVE_MAX, ADAPTIVE_MIN)


def test_what_is_kept_for_the_next_run_is_what_the_server_was_seen_to_admit() -> None:
    adaptive = AdaptiveRate(16.0)
    for n in range(30):  # 30 answers that each waited for a token, 10 ms apart: × 1.25 each
        adaptive.on_success(now=n / 100, sent_at=n / 100, rate_bound=True)
    assert adaptive.rate > 1000  # slow start's rate says nothing the answers showed ...
    assert adaptive.worth_keeping() == 30  # ... the 30 admitted within one second do
    few = AdaptiveRate(16.0)
    few.on_success(now=0.0, sent_at=0.0, rate_bound=True)
    assert few.worth_keeping() == 16  # never less than the start
    found = past_slow_start(42.0)
    assert found.worth_keeping() == 42.0  # a limit a throttle showed is kept as found


def test_a_run_resumes_where_an_earlier_one_ended() -> None:
    adaptive = AdaptiveRate(16.0)
    adaptive.resume(900.0, slow_start=False)
    assert (adaptive.rate, adaptive.slow_start) == (900.0, False)
    adaptive.resume(1e9, slow_start=True)
    assert (adaptive.rate, adaptive.slow_start) == (ADAPTIVE_MAX, True)
