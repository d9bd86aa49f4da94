"""The limiter's quota clock: throttling that lasts ``quota_wait`` seconds without a success spends it.

The clock starts at the first throttle of a streak and stops at the success that ends it. A spent
quota stays spent: the run stops cleanly (``QuotaSpent``, exit 4) and resumes another day. Pure:
every call takes ``now``.
"""

from __future__ import annotations

__all__ = ["QuotaClock"]


class QuotaClock:
    """Times a throttling streak against ``quota_wait`` and says when the quota is spent."""

    def __init__(self, quota_wait: float) -> None:
        self.quota_wait = max(0.0, quota_wait)
        #: When the current streak's first throttle came; None while no streak runs.
        self.started: float | None = None
        self.spent = False

    def deadline(self, now: float) -> float:
        """When the quota is spent if no success comes first (for a streak starting ``now`` if none runs)."""
        start = self.started if self.started is not None else now
        return start + self.quota_wait

    def left(self, now: float) -> float:
        """Seconds until :meth:`deadline`."""
        return self.deadline(now) - now

    def expire(self, now: float) -> bool:
        """Spend the quota if a streak runs and its deadline has come by ``now``; whether it is spent."""
        if self.started is not None and now >= self.deadline(now):
            self.spent = True
        return self.spent

    def on_throttle(self, now: float) -> bool:
        """A fresh throttle: start the clock if it is not running; whether the quota is now spent."""
        if self.started is None:
            self.started = now
        return self.expire(now)

    def on_success(self) -> None:
        """The streak is over: stop the clock."""
        self.started = None
