"""The quota clock on a fake clock: throttles and successes in, spent or not out."""

from __future__ import annotations

from pipeline.api.quota import QuotaClock


def test_no_streak_never_spends_the_quota() -> None:
    clock = QuotaClock(quota_wait=10.0)
    assert not clock.expire(1e9)
    assert not clock.spent


def test_throttling_that_lasts_quota_wait_spends_it() -> None:
    clock = QuotaClock(quota_wait=10.0)
    assert not clock.on_throttle(5.0)
    assert [clock.expire(t) for t in (14.9, 15.0)] == [False, True]
    assert clock.spent


def test_later_throttles_of_the_streak_do_not_restart_the_clock() -> None:
    clock = QuotaClock(quota_wait=10.0)
    clock.on_throttle(0.0)
    assert not clock.on_throttle(8.0)
    assert clock.on_throttle(10.0)


def test_a_success_ends_the_streak_and_the_next_throttle_starts_afresh() -> None:
    clock = QuotaClock(quota_wait=10.0)
    clock.on_throttle(0.0)
    clock.on_success()
    clock.on_throttle(8.0)
    assert [clock.expire(t) for t in (10.0, 17.9, 18.0)] == [False, False, True]


def test_a_spent_quota_stays_spent() -> None:
    clock = QuotaClock(quota_wait=1.0)
    clock.on_throttle(0.0)
    clock.expire(1.0)
    clock.on_success()
    assert clock.spent and clock.expire(2.0)


def test_quota_wait_zero_spends_on_the_first_throttle() -> None:
    assert QuotaClock(quota_wait=0.0).on_throttle(3.0)
    assert QuotaClock(quota_wait=-5.0).on_throttle(3.0)


def test_time_left_counts_down_to_the_deadline() -> None:
    clock = QuotaClock(quota_wait=10.0)
    clock.on_throttle(2.0)
    assert (clock.deadline(5.0), clock.left(5.0)) == (12.0, 7.0)
