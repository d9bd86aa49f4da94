"""The throttle gate on a fake clock: throttles, successes and ``now`` in, its state out."""

from __future__ import annotations

import random

import pytest

from pipeline.api.gate import GATE_BACKOFF, GateState, ThrottleGate
from pipeline.api.retry import Backoff

#: A back-off without jitter: 1, 2, 4, 8 ... seconds, so gate times are exact.
STEPS = Backoff(base=1.0, cap=60.0, jitter=0.0)


def closed_at(now: float, retry_after: float | None = None) -> ThrottleGate:
    gate = ThrottleGate(STEPS)
    assert gate.on_throttle(now, retry_after, epoch=gate.epoch)
    return gate


def half_open(gate: ThrottleGate) -> ThrottleGate:
    assert gate.wait(gate.until) == 0.0
    return gate


def test_fresh_throttle_closes_the_gate_for_the_backoff_step() -> None:
    gate = closed_at(10.0)
    assert (gate.state, gate.until, gate.streak) == (GateState.CLOSED, 11.0, 1)
    assert gate.wait(10.25) == 0.75
    assert gate.state is GateState.CLOSED


def test_retry_after_longer_than_the_step_wins() -> None:
    assert closed_at(10.0, retry_after=5.0).until == 15.0
    assert closed_at(10.0, retry_after=0.5).until == 11.0


def test_when_its_time_comes_the_gate_lets_one_probe_go() -> None:
    gate = half_open(closed_at(0.0))
    assert gate.state is GateState.HALF_OPEN
    assert gate.may_enter() and gate.enter()
    assert not gate.may_enter()


def test_probe_success_opens_the_gate_and_ends_the_streak() -> None:
    gate = half_open(closed_at(0.0))
    gate.enter()
    assert gate.on_success(probe=True)
    assert (gate.state, gate.streak, gate.may_enter(), gate.enter()) == (GateState.OPEN, 0, True, False)


def test_a_success_that_is_not_the_probe_leaves_the_gate_half_open() -> None:
    gate = half_open(closed_at(0.0))
    gate.enter()
    assert not gate.on_success(probe=False)
    assert gate.state is GateState.HALF_OPEN and not gate.may_enter()


def test_each_throttled_probe_closes_the_gate_for_twice_as_long() -> None:
    gate = closed_at(0.0)
    closes = [gate.until]
    for _ in range(4):
        half_open(gate)
        gate.enter()
        assert gate.on_throttle(gate.until, None, epoch=gate.epoch, probe=True)
        closes.append(gate.until)
    assert closes == [1.0, 3.0, 7.0, 15.0, 31.0]
    assert gate.may_enter()  # closed, not waiting on a probe: the next one goes when the time comes


def test_throttles_of_the_burst_that_closed_the_gate_are_stale() -> None:
    gate = ThrottleGate(STEPS)
    burst = gate.epoch
    assert gate.on_throttle(0.0, None, epoch=burst)
    assert not gate.on_throttle(0.1, None, epoch=burst)
    assert (gate.streak, gate.until) == (1, 1.0)
    assert not gate.on_throttle(0.2, 5.0, epoch=burst)  # but its retry_after still counts
    assert (gate.streak, gate.until) == (1, 5.2)
    assert gate.is_stale(burst)


def test_a_stale_retry_after_does_not_close_a_half_open_gate() -> None:
    gate = half_open(closed_at(0.0))
    assert not gate.on_throttle(1.0, 30.0, epoch=0)
    assert (gate.state, gate.until) == (GateState.HALF_OPEN, 1.0)


def test_a_throttle_of_unknown_epoch_counts_as_fresh() -> None:
    gate = closed_at(0.0)
    assert gate.on_throttle(0.5, None)
    assert (gate.streak, gate.until) == (2, 2.5)


def test_a_probe_lost_without_answer_lets_another_probe_go() -> None:
    gate = half_open(closed_at(0.0))
    gate.enter()
    gate.probe_lost()
    assert gate.may_enter() and gate.enter()


@pytest.mark.parametrize("seed", range(50))
def test_default_backoff_is_a_tenth_of_a_second_doubling_half_jittered_up_to_a_minute(seed: int) -> None:
    gate = ThrottleGate(GATE_BACKOFF, random.Random(seed))
    waits = []
    for streak in range(1, 14):
        now = 100.0 * streak
        gate.on_throttle(now, None)
        waits.append(gate.until - now)
        steps = [min(60.0, 0.1 * 2 ** (n - 1)) for n in range(1, streak + 1)]
        assert steps[-1] / 2 <= waits[-1] <= steps[-1]
