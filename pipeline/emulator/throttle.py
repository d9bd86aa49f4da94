"""The emulator's quota and rate window: whether a request is admitted or must get code 4."""

from __future__ import annotations

import collections

from pipeline.emulator.clock import Clock


class Throttle:
    """Counts admitted requests against a quota and a sliding rate window read from ``clock``.

    The window is 1 s, or 1/rate s when the rate is below 1 (so rate 0.5 admits one request in 2 s).
    A quota different from the last one seen restarts the count, however it was changed.
    """

    def __init__(self, clock: Clock, quota: int | None = None) -> None:
        self._clock = clock
        self._admitted: collections.deque[float] = collections.deque()
        self._quota_used = 0
        self._quota_seen = quota

    def restart_quota(self, quota: int | None) -> None:
        self._quota_used, self._quota_seen = 0, quota

    def clear_window(self) -> None:
        self._admitted.clear()

    def admit(self, quota: int | None, rate_limit: float | None) -> bool:
        """Count this request; False when it is over the quota or the rate (and so not counted)."""
        if quota != self._quota_seen:
            self.restart_quota(quota)
        if quota is not None and self._quota_used >= quota:
            return False
        if rate_limit is not None:
            window = max(1.0, 1.0 / rate_limit)
            now = self._clock.monotonic()
            while self._admitted and self._admitted[0] <= now - window:
                self._admitted.popleft()
            if len(self._admitted) + 1 > rate_limit * window + 1e-9:
                return False
            self._admitted.append(now)
        self._quota_used += 1
        return True
