"""The circuit breaker: when the service is failing, stop sending instead of failing file after file.

A call *fails* here when it ended in :class:`~pipeline.errors.Retryable` after all its retries (5xx,
timeouts, connection errors, answers not in the API's shape). The breaker opens when
:data:`CONSECUTIVE` calls in a row failed, or when at least :data:`SHARE` of the last :data:`WINDOW`
finished calls did (once :data:`MIN_CALLS` have finished). Open, it stays open for the rest of the
run: every later attempt — a new call, or the next retry of a call in flight — raises
:class:`~pipeline.errors.ServiceFailing` at once. So an outage costs about ``concurrency × (retries +
1)`` requests, whatever the archive size. Answers the service gave (refusals, throttling, bad
credentials) are not failures: the service is up.
"""

from __future__ import annotations

from collections import deque

from pipeline.errors import Retryable, ServiceFailing

#: Calls in a row that failed after all retries: the service is down.
CONSECUTIVE = 3
#: ... or this share of the last WINDOW finished calls (once MIN_CALLS have finished): it is failing.
WINDOW = 20
SHARE = 0.5
MIN_CALLS = 10


class CircuitBreaker:
    """Counts calls that failed after all their retries; open once the service is plainly failing."""

    def __init__(
        self,
        consecutive: int = CONSECUTIVE,
        window: int = WINDOW,
        share: float = SHARE,
        min_calls: int = MIN_CALLS,
    ) -> None:
        self.consecutive = consecutive
        self.share = share
        self.min_calls = min_calls
        self._recent: deque[bool] = deque(maxlen=window)
        self._in_a_row = 0
        self.last_error: Retryable | None = None
        self.failures = 0
        self._open = False

    @property
    def open(self) -> bool:
        """True once the service counts as failing: nothing more is sent this run."""
        return self._open

    def check(self, *, sent: bool = False) -> None:
        """Raise :class:`ServiceFailing` when open; ``sent``: an earlier attempt of this call was sent."""
        if self._open:
            raise ServiceFailing(self.describe(), sent=sent)

    def succeeded(self) -> None:
        """A call was answered (whatever the answer): the service is up."""
        self._in_a_row = 0
        self._recent.append(False)

    def failed(self, exc: Retryable) -> None:
        """A call ended in failure after all its retries."""
        self.failures += 1
        self.last_error = exc
        self._in_a_row += 1
        self._recent.append(True)
        share = sum(self._recent) / len(self._recent)
        if self._in_a_row >= self.consecutive or (
            len(self._recent) >= self.min_calls and share >= self.share
        ):
            self._open = True

    def describe(self) -> str:
        """Why the breaker is open, with the last error."""
        why = (
            f"{self._in_a_row} calls in a row"
            if self._in_a_row >= self.consecutive
            else f"{sum(self._recent)} of the last {len(self._recent)} calls"
        )
        return f"the service is failing ({why} failed after all retries; last: {self.last_error})"
