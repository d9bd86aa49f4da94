"""The limiter in virtual time: a fake clock and sleep, so minutes of throttling take milliseconds."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections import deque
from collections.abc import Awaitable
from typing import Any

import pytest

from pipeline.api.bucket import FIXED_RATE_MARGIN
from pipeline.api.limiter import Limiter
from pipeline.api.retry import Backoff
from pipeline.config import LimitsConfig
from pipeline.errors import QuotaSpent

#: A back-off without jitter: 1, 2, 4, 8 ... seconds, so gate times are exact.
STEPS = Backoff(base=1.0, cap=60.0, jitter=0.0)


class VirtualTime:
    """A clock that moves only when every task is asleep: it jumps to the earliest wake-up."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._seq), future))
        await future

    async def run(self, *coros: Awaitable[Any]) -> list[Any]:
        """Run the coroutines to the end in virtual time; results (or exceptions) in order.

        Time moves only once the loop has nothing ready to run: every task is asleep or waiting.
        (``_ready`` is the loop's run queue; asyncio has no public way to ask whether it is empty.)
        """
        loop = asyncio.get_running_loop()
        tasks = [asyncio.ensure_future(c) for c in coros]
        while True:
            await asyncio.sleep(0)
            while loop._ready:  # type: ignore[attr-defined]  # noqa: ASYNC110 (draining, not waiting)
                await asyncio.sleep(0)
            if all(t.done() for t in tasks):
                break
            if not self._sleepers:
                raise AssertionError("deadlock: tasks wait on each other and nobody sleeps")
            when, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            if not future.done():
                future.set_result(None)
        return [t.exception() or t.result() for t in tasks]

    def limiter(self, seed: int = 0, **kwargs: Any) -> Limiter:
        """A limiter on this clock. With STEPS (no jitter) the seed changes nothing; tests on the
        jittered default back-off (``backoff=None``) take their seeds from a range."""
        kwargs.setdefault("backoff", STEPS)
        return Limiter(clock=self.clock, sleep=self.sleep, rng=random.Random(seed), **kwargs)


async def request(
    vt: VirtualTime, limiter: Limiter, log: list[float], latency: float = 0.0, throttle: Any = None
) -> None:
    """One request: enter, record the start, take ``latency``, report ``throttle(start)``'s verdict.

    ``throttle`` returns False for success, or the retry_after (None or seconds) of a throttle.
    """
    async with limiter as permit:
        start = vt.now
        log.append(start)
        await vt.sleep(latency)
        verdict = throttle(start) if throttle is not None else False
        if verdict is False:
            limiter.on_success(permit)
        else:
            limiter.on_throttle(verdict, permit)


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


async def test_fixed_rate_spaces_requests_evenly_without_bursts(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=10, max_in_flight=8)
    log: list[float] = []
    await vt.run(*(request(vt, limiter, log, latency=0.01) for _ in range(50)))
    gaps = [b - a for a, b in itertools.pairwise(sorted(log))]
    assert min(gaps) >= 1 / 10
    assert max(gaps) <= 1 / 9.8
    assert max(sum(1 for t in log if s <= t < s + 1.0) for s in log) <= 10


async def test_in_flight_cap_holds_requests_back(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=1000, max_in_flight=2)
    peak = 0

    async def one() -> None:
        nonlocal peak
        async with limiter:
            peak = max(peak, limiter.in_flight)
            await vt.sleep(1.0)

    await vt.run(*(one() for _ in range(6)))
    assert peak == 2
    assert vt.now == pytest.approx(3.0, abs=0.01)


async def test_requests_waiting_for_a_slot_go_in_the_order_they_came(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=1000, max_in_flight=1)
    order: list[int] = []

    async def one(n: int) -> None:
        await vt.sleep(n * 0.01)  # arrive in order, while the first holds the only slot
        async with limiter:
            order.append(n)
            await vt.sleep(1.0)

    await vt.run(*(one(n) for n in reversed(range(6))))
    assert order == list(range(6))


async def test_a_permit_or_an_answer_wakes_one_waiter_not_all(vt: VirtualTime) -> None:
    """31 requests waiting for a token: each permit lets the next waiter look, not all 31 (waking every
    waiter on every permit and answer cost ~8 µs of CPU a waiter each time: 260 µs a request)."""
    limiter = vt.limiter(rate=10, max_in_flight=32)
    waits = 0
    wait_change = limiter._wait_change

    async def counted(now: float, place: object) -> None:
        nonlocal waits
        waits += 1
        await wait_change(now, place)

    limiter._wait_change = counted  # type: ignore[method-assign]
    log: list[float] = []
    await vt.run(*(request(vt, limiter, log, latency=0.05) for _ in range(32)))
    assert len(log) == 32 and log[-1] == pytest.approx(31 / (10 * FIXED_RATE_MARGIN))
    assert waits <= 3 * 32


async def test_a_waiter_woken_then_cancelled_passes_its_turn_on(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=1000, max_in_flight=1)
    order: list[str] = []

    async def one(name: str, arrive: float, hold: float) -> None:
        await vt.sleep(arrive)
        async with limiter:
            order.append(name)
            await vt.sleep(hold)

    async def holder() -> None:
        await one("a", 0.0, 1.0)
        waiting_b.cancel()  # b was woken by a's release and has not run yet

    waiting_b = asyncio.ensure_future(one("b", 0.1, 1.0))
    await vt.run(holder(), one("c", 0.2, 1.0))  # without the turn passed on: "deadlock", c never goes
    assert order == ["a", "c"]
    assert waiting_b.cancelled()


async def test_throttle_closes_gate_for_everyone_until_retry_after(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=1000, max_in_flight=1)
    log: list[float] = []
    first = [True]

    def throttle_first(start: float) -> float | bool | None:
        if first[0]:
            first[0] = False
            return 5.0
        return False

    await vt.run(*(request(vt, limiter, log, throttle=throttle_first) for _ in range(4)))
    assert log[0] == 0.0
    assert all(t >= 5.0 for t in log[1:])
    assert not limiter.gate_closed
    assert limiter.throttle_events == 1


async def test_reopened_gate_lets_one_probe_through_before_the_rest(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=1000, max_in_flight=8)
    limiter.on_throttle(None)  # gate closed for STEPS(1) = 1 s
    log: list[float] = []
    await vt.run(*(request(vt, limiter, log, latency=0.5) for _ in range(4)))
    assert log[0] == pytest.approx(1.0)
    assert all(t >= 1.5 for t in log[1:])  # the others waited for the probe's success
    assert max(log[1:]) < 1.6  # ... and then went together


async def test_throttled_probe_closes_gate_again_with_longer_backoff(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=1000, max_in_flight=8, quota_wait=1000)
    log: list[float] = []

    def throttled_before_8(start: float) -> float | bool | None:
        return None if start < 8 else False

    async def until_ok() -> None:
        while limiter.throttle_events == len(log) - 1 or not log or log[-1] < 8:
            await request(vt, limiter, log, throttle=throttled_before_8)
            if log[-1] >= 8:
                return

    await vt.run(until_ok())
    # first at 0 (throttled: +1), probe at 1 (+2), probe at 3 (+4), probe at 7 (+8), probe at 15 succeeds
    assert log == pytest.approx([0.0, 1.0, 3.0, 7.0, 15.0])
    assert limiter.throttle_events == 4


async def test_throttles_of_one_burst_count_once_for_the_backoff(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=1000, max_in_flight=8)
    log: list[float] = []
    starts: list[float] = []

    def throttle_early(start: float) -> float | bool | None:
        starts.append(start)
        return None if start < 0.5 else False

    await vt.run(*(request(vt, limiter, log, latency=0.1, throttle=throttle_early) for _ in range(8)))
    # eight requests in flight at once, all throttled: the gate opens after STEPS(1) = 1 s, not 2**7 s
    assert limiter.throttle_events == 8
    assert max(log) < 2.0


async def test_throttling_that_outlasts_quota_wait_spends_the_limiter(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=1000, max_in_flight=4, quota_wait=10)
    log: list[float] = []

    async def keep_trying() -> None:
        while True:
            await request(vt, limiter, log, throttle=lambda s: None)

    results = await vt.run(*(keep_trying() for _ in range(5)))
    assert limiter.spent
    assert all(isinstance(r, QuotaSpent) for r in results)
    assert max(log) < 10 + 1e-9
    with pytest.raises(QuotaSpent):
        await limiter.__aenter__()


async def test_long_retry_after_spends_at_quota_wait_not_later(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=1000, quota_wait=30)
    limiter.on_throttle(3600.0)
    [result] = await vt.run(request(vt, limiter, []))
    assert isinstance(result, QuotaSpent)
    assert vt.now == pytest.approx(30.0)


async def test_quota_wait_zero_spends_on_first_throttle(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=100, quota_wait=0)  # 10 ms apart: one goes, then the throttle
    log: list[float] = []
    results = await vt.run(*(request(vt, limiter, log, throttle=lambda s: None) for _ in range(3)))
    assert limiter.spent
    assert log == [0.0]
    assert results[0] is None  # the request in flight finished; only the waiters were refused
    assert all(isinstance(r, QuotaSpent) for r in results[1:])


async def test_request_in_flight_finishes_when_limiter_is_spent(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=1000, quota_wait=0, max_in_flight=4)
    finished: list[str] = []

    async def slow() -> None:
        async with limiter:
            await vt.sleep(5.0)
            finished.append("slow")
            limiter.on_success()

    async def throttled() -> None:
        await vt.sleep(1.0)
        async with limiter:
            limiter.on_throttle(None)

    await vt.run(slow(), throttled())
    assert limiter.spent
    assert finished == ["slow"]


async def test_success_resets_streak_and_quota_clock(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=1000, quota_wait=5)
    log: list[float] = []
    # throttled at 0 (gate to 1), probe at 1 succeeds; throttled at 4 (a new streak: gate to 5) ...
    verdicts = iter([None, False, None, False])

    async def at(t: float) -> None:
        await vt.sleep(t - vt.now)
        await request(vt, limiter, log, throttle=lambda s: next(verdicts))

    for t in (0.0, 0.0, 4.0, 4.0):
        await vt.run(at(t))
    assert log == pytest.approx([0.0, 1.0, 4.0, 5.0])
    assert not limiter.spent  # 0 → 5 is five seconds, but a success came in between


async def test_probe_that_fails_without_answer_lets_another_probe_go(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=1000, max_in_flight=8)
    limiter.on_throttle(None)
    log: list[float] = []

    async def lost_probe() -> None:
        async with limiter:
            log.append(vt.now)
            await vt.sleep(0.5)  # e.g. a timeout: neither success nor throttle is reported

    await vt.run(lost_probe(), request(vt, limiter, log))
    assert log == pytest.approx([1.0, 1.5])
    assert not limiter.gate_closed


async def test_adaptive_rate_grows_on_success_and_shrinks_on_throttle(vt: VirtualTime) -> None:
    limiter = vt.limiter(rate=None, max_in_flight=8)
    start = limiter.current_rate
    assert start is not None
    await vt.run(*(request(vt, limiter, []) for _ in range(40)))
    grown = limiter.current_rate
    assert grown is not None and grown > start
    limiter.on_throttle(None)
    assert limiter.current_rate is not None and limiter.current_rate < grown


def test_from_limits_takes_rate_concurrency_and_quota_wait() -> None:
    limiter = Limiter.from_limits(LimitsConfig(concurrency=3, rate=7.5, quota_wait=0))
    assert limiter.current_rate == 7.5
    assert "0/3" in repr(limiter)
    assert not limiter.spent and not limiter.gate_closed and limiter.throttle_events == 0


class SlidingWindowServer:
    """The emulator's rate limit: ``rate`` admitted requests in any sliding one-second window."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.admitted: deque[float] = deque()
        self.ok = 0
        self.throttled = 0

    def __call__(self, now: float) -> float | bool | None:
        while self.admitted and self.admitted[0] <= now - 1.0:
            self.admitted.popleft()
        if len(self.admitted) + 1 > self.rate:
            self.throttled += 1
            return None
        self.admitted.append(now)
        self.ok += 1
        return False


async def saturate(vt: VirtualTime, limiter: Limiter, server: SlidingWindowServer, seconds: float) -> None:
    """Eight workers sending as fast as the limiter allows for ``seconds`` of virtual time."""

    async def worker() -> None:
        while vt.now < seconds:
            async with limiter as permit:
                verdict = server(vt.now)
                await vt.sleep(0.004)
                if verdict is False:
                    limiter.on_success(permit)
                else:
                    limiter.on_throttle(verdict, permit)

    await vt.run(*(worker() for _ in range(8)))


@pytest.mark.parametrize("server_rate", [10, 50])
async def test_fixed_rate_at_server_limit_is_never_throttled(vt: VirtualTime, server_rate: int) -> None:
    """No throttle, so the gate's jittered back-off (and its seed) never comes into play."""
    server = SlidingWindowServer(server_rate)
    limiter = vt.limiter(rate=server_rate, max_in_flight=8, backoff=None)
    await saturate(vt, limiter, server, seconds=60)
    assert server.throttled == 0
    assert server.ok / 60 >= 0.97 * server_rate


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("server_rate", [5, 20, 50])
async def test_adaptive_rate_sustains_most_of_server_limit(
    vt: VirtualTime, server_rate: int, seed: int
) -> None:
    """The figures docs/client.md gives for the adaptive rate: >= 0.93 R, <= 4 % throttled."""
    server = SlidingWindowServer(server_rate)
    limiter = vt.limiter(rate=None, max_in_flight=8, backoff=None, seed=seed)
    await saturate(vt, limiter, server, seconds=120)
    assert server.ok / 120 >= 0.93 * server_rate
    assert server.throttled <= 0.04 * (server.ok + server.throttled)
