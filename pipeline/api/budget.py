"""The request budget: what a run may still send under ``limits.max_requests`` and ``requests_per_day``.

The service's quota is paid, and its only signal is a throttle that lasts (``QuotaSpent``). A budget
is the same stop of our own making: the limiter takes one request from it per request let through —
adds, PUTs, deletes, listing pages, downloads, each retry — and once it is spent every later request
raises :class:`~pipeline.errors.BudgetSpent` (exit 4, resumable), while those in flight finish. The
day's count lives in the state (``docs/state.md``, "Request budget"), written ahead in small blocks
through ``record`` so a killed run has counted at least what it sent. Pure: no clock, no I/O but
``record``.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.errors import BudgetSpent

__all__ = ["BLOCK", "RequestBudget"]

#: Requests counted in the state ahead of sending them: a run killed with ``kill -9`` over-counts by
#: fewer than this, never under-counts.
BLOCK = 10


class RequestBudget:
    """Counts a run's requests against its two caps; raises :class:`BudgetSpent` once either is spent."""

    def __init__(
        self,
        *,
        per_run: int | None = None,
        per_day: int | None = None,
        used_today: int = 0,
        record: Callable[[int], None] | None = None,
    ) -> None:
        self.per_run = per_run
        self.per_day = per_day
        #: Requests earlier runs sent in the last 24 hours (the state's count when the run began).
        self.used_today = used_today
        #: Requests this run has sent (taken).
        self.used = 0
        #: What ``record`` was last given: this run's requests as the state counts them.
        self.recorded = 0
        self._record = record

    @property
    def capped(self) -> bool:
        """Whether any cap applies."""
        return self.per_run is not None or self.per_day is not None

    @property
    def left(self) -> int | None:
        """Requests this run may still send (None: no cap)."""
        caps = []
        if self.per_run is not None:
            caps.append(self.per_run - self.used)
        if self.per_day is not None:
            caps.append(self.per_day - self.used_today - self.used)
        return max(0, min(caps)) if caps else None

    def fits(self, need: int) -> bool:
        """Whether ``need`` more requests fit in what is left."""
        left = self.left
        return left is None or need <= left

    def take(self) -> None:
        """One request goes: counted (ahead, in the state), or :class:`BudgetSpent` when none is left."""
        left = self.left
        if left is not None and left <= 0:
            raise BudgetSpent(self.spent_message())
        self.used += 1
        if self._record is not None and self.used > self.recorded:
            self.recorded = self.used + min(BLOCK, left if left is not None else BLOCK) - 1
            self._record(self.recorded)

    def flush(self) -> None:
        """The run is over: the state counts exactly what it sent."""
        if self._record is not None and self.recorded != self.used:
            self.recorded = self.used
            self._record(self.used)

    def spent_message(self) -> str:
        """The report's line for a spent budget: which cap, and when the day's one refills."""
        if self.per_run is not None and self.used >= self.per_run:
            return f"request budget spent: limits.max_requests {self.per_run} sent by this run"
        assert self.per_day is not None
        return (
            f"request budget spent: limits.requests_per_day {self.per_day} "
            f"({self.used_today} by earlier runs in the last 24 h, {self.used} by this one); "
            "it refills as the last day's runs age past 24 h"
        )
