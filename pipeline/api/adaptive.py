"""The limiter's adaptive rate (``limits.rate`` unset): additive increase, multiplicative decrease.

Start modest, grow fast ("slow start") until the first throttle, then grow slowly while requests wait
for tokens and succeed, and shrink by a factor on a fresh throttle, at most once a second. Only
successes that had to wait for a token count, so an idle or in-flight-bound client does not inflate
its rate. Pure: every call takes ``now``.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["AdaptiveRate"]

#: The first rate is at least this, or START_PER_CONNECTION per request allowed in flight (the user's
#: own statement of how much parallel load is fine); the rate never leaves [ADAPTIVE_MIN, ADAPTIVE_MAX].
ADAPTIVE_START = 10.0
START_PER_CONNECTION = 2.0
ADAPTIVE_MIN = 0.2
ADAPTIVE_MAX = 10_000.0
#: Per rate-bound success before the first throttle ("slow start") the rate is multiplied by this,
#: growing by at least SLOW_START_STEP: 10 → 1,000 req/s in 21 successes. (× 1.5 filled an unlimited
#: server faster but let 3.8–4.8 % be throttled at R = 20, near the 5 % target: `make bench`, in
#: docs/performance.md as of commit cae7e31.) ...
SLOW_START_FACTOR = 1.25
SLOW_START_STEP = 2.0
#: ... per rate-bound success after it (at R req/s that is +1.5 % of R a second: a 10 % cut is won
#: back in about 7 s) ...
INCREASE_STEP = 0.015
#: ... and the factor applied on each fresh throttle.
DECREASE_FACTOR = 0.9
#: At most one cut a second: a cut shows only once the server's window (commonly a second) has
#: moved past the requests sent before it, so throttles in between are the same overload.
CUT_SPACING = 1.0
#: Leaving slow start, the rate drops to this share of the successful requests sent in the last second
#: at most: slow start overshoots by the time the server's window fills, and that count is what it admitted.
SLOW_START_EXIT = 0.95
#: The window slow start counts successes over (the server's, commonly).
WINDOW = 1.0


class AdaptiveRate:
    """The rate an unknown server allows, found by AIMD from its successes and throttles."""

    def __init__(self, start: float = ADAPTIVE_START) -> None:
        self.rate = start
        self.start = start
        self.slow_start = True
        self._last_cut = -math.inf
        #: Slow start only: when each success of the last second was sent.
        self._recent: deque[float] = deque()

    @classmethod
    def for_in_flight(cls, max_in_flight: int) -> AdaptiveRate:
        """Start at START_PER_CONNECTION req/s per request allowed in flight, at least ADAPTIVE_START."""
        return cls(max(ADAPTIVE_START, START_PER_CONNECTION * max_in_flight))

    def resume(self, rate: float, slow_start: bool) -> None:
        """Start where an earlier run ended: its rate, and whether it was still in slow start (no
        throttle had shown the server's limit yet)."""
        self.rate = min(ADAPTIVE_MAX, max(ADAPTIVE_MIN, rate))
        self.slow_start = slow_start
        self._recent.clear()

    def worth_keeping(self) -> float:
        """The rate a later run may start at. Once a throttle has shown the server's limit, the rate
        found since. In slow start, what the server was seen to admit — the successes sent in the second
        before the last one, as slow start's exit counts them — and at least the start: the rate itself
        may have grown far past it (× 1.25 per answer that waited for its token, whatever the answers
        showed), and a nightly run must not take a rate no server ever answered for a known one."""
        if not self.slow_start:
            return self.rate
        return min(self.rate, max(self.start, float(len(self._recent))))

    def on_success(self, now: float, sent_at: float, rate_bound: bool) -> None:
        """A request sent at ``sent_at`` succeeded; grow if it had to wait for its token."""
        if self.slow_start:
            self._recent.append(sent_at)
            self._forget_before(now - WINDOW)
        if rate_bound:
            if self.slow_start:
                rate = max(self.rate + SLOW_START_STEP, self.rate * SLOW_START_FACTOR)
            else:
                rate = self.rate + INCREASE_STEP
            self.rate = min(ADAPTIVE_MAX, rate)

    def on_throttle(self, now: float) -> None:
        """A fresh throttle: cut the rate (at most once per CUT_SPACING); the first one ends slow start."""
        if now - self._last_cut < CUT_SPACING:
            return
        self._last_cut = now
        rate = self.rate * DECREASE_FACTOR
        if self.slow_start:
            self._forget_before(now - WINDOW)
            rate = min(rate, SLOW_START_EXIT * len(self._recent))
            self.slow_start = False
            self._recent.clear()
        self.rate = max(ADAPTIVE_MIN, rate)

    def _forget_before(self, cutoff: float) -> None:
        while self._recent and self._recent[0] <= cutoff:
            self._recent.popleft()
