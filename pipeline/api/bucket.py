"""The limiter's token bucket: requests spaced evenly at a rate, burst capacity 1.

A server that counts over a sliding one-second window throttles a burst even when the average is
under its limit, so tokens are never saved up: after an idle spell the next token is "now", not a
backlog. Pure: every call takes ``now``; sleeping is the caller's (:class:`~pipeline.api.limiter.Limiter`).
"""

from __future__ import annotations

import math

__all__ = ["FIXED_RATE_MARGIN", "TokenBucket"]

#: A fixed ``rate`` is paced this much under the nominal value, so timer jitter never puts
#: ``rate + 1`` requests inside one second of the server's window.
FIXED_RATE_MARGIN = 0.985


class TokenBucket:
    """Hands out one token every ``1 / rate`` seconds and never two at once."""

    def __init__(self) -> None:
        self.next_token = -math.inf
        #: One waiter sleeps for the next token; the others wait for a change instead of each
        #: sleeping for a slot reserved at the old rate.
        self.sleeping = False

    def wait(self, now: float) -> float:
        """Seconds until the next token (0: one is there now)."""
        return self.next_token - now if self.next_token > now else 0.0

    def take(self, now: float, rate: float) -> None:
        """Take the token due at ``now`` and set the next one ``1 / rate`` later.

        The next slot is computed here, at take time, so a changed rate applies at once. Late by less
        than one interval (timer jitter): keep the schedule, so jitter does not slowly eat the rate.
        Idle for longer: start afresh from ``now`` (burst capacity 1).
        """
        interval = 1.0 / rate
        at = self.next_token if now - self.next_token < interval else now
        self.next_token = at + interval

    def void(self) -> None:
        """Forget the schedule: the next token is due at once (the gate closed; do not leave a hole)."""
        self.next_token = -math.inf
