"""The limiter's token bucket: requests spaced evenly, burst capacity 1 (5 ms' worth above 200 req/s).

A server that counts over a sliding one-second window throttles a burst even when the average is
under its limit, so tokens are never saved up: after an idle spell the next token is "now", not a
backlog. Pure: every call takes ``now``; sleeping is the caller's (:class:`~pipeline.api.limiter.Limiter`).

Above 200 req/s (an interval under :data:`LATE_SLACK`) spacing each request exactly is finer than the
event loop's timers (epoll waits in whole milliseconds, and later when the loop is busy), so there a
token may be taken up to ``LATE_SLACK`` less one interval before its slot, and one taken up to
``LATE_SLACK`` late keeps the schedule: a generic cell rate algorithm with that tolerance. Without it,
at the adaptive rate's 10,000 req/s a burst of 32 answers put 31 requests to sleep in turn for 0.1 ms
tokens each woken a millisecond late. Any one-second window still holds at most
``rate × (1 + 2 × 0.005) + 1`` requests: under the nominal rate at the fixed rate's margin.
"""

from __future__ import annotations

import math

__all__ = ["FIXED_RATE_MARGIN", "TokenBucket"]

#: A fixed ``rate`` is paced this much under the nominal value, so timer jitter never puts
#: ``rate + 1`` requests inside one second of the server's window.
FIXED_RATE_MARGIN = 0.985
#: The timers' tolerance, in seconds: a token taken this late (or one interval late, if that is
#: longer) keeps the schedule, and at an interval shorter than this one may be taken this much less
#: one interval early (see the module's docstring).
LATE_SLACK = 0.005


class TokenBucket:
    """Hands out one token every ``1 / rate`` seconds and never two at once."""

    def __init__(self) -> None:
        self.next_token = -math.inf
        #: How long before its slot the next token may be taken (0 at 200 req/s and below).
        self.early = 0.0
        #: One waiter sleeps for the next token; the others wait for a change instead of each
        #: sleeping for a slot reserved at the old rate.
        self.sleeping = False

    def wait(self, now: float) -> float:
        """Seconds until the next token (0: one is there now)."""
        due = self.next_token - self.early
        return due - now if due > now else 0.0

    def take(self, now: float, rate: float) -> None:
        """Take the token due at ``now`` and set the next one ``1 / rate`` later.

        The next slot is computed here, at take time, so a changed rate applies at once. Late by less
        than one interval or :data:`LATE_SLACK` (timer jitter, a busy loop): keep the schedule, so
        jitter does not slowly eat the rate. Idle for longer: start afresh from ``now`` (burst
        capacity 1).
        """
        interval = 1.0 / rate
        at = self.next_token if now - self.next_token < max(interval, LATE_SLACK) else now
        self.next_token = at + interval
        self.early = LATE_SLACK - interval if interval < LATE_SLACK else 0.0

    def void(self) -> None:
        """Forget the schedule: the next token is due at once (the gate closed; do not leave a hole)."""
        self.next_token = -math.inf
