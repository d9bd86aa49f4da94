"""The limiter's throttle gate: one throttle stops everyone, one probe finds out whether it is over.

A fresh throttle (code 4, HTTP 429) closes the gate until ``now + max(retry_after, backoff(streak))``.
When that time comes the gate is half-open: one probe may go. Its success opens the gate and ends the
streak; its throttle closes it again with the next, longer step; a probe that ends with no answer
frees the slot for another.

Every close starts a new *epoch*. Throttles of requests that entered in an earlier epoch are *stale*
(the same burst that closed the gate): they may stretch the gate to their ``retry_after`` but do not
lengthen the streak, so eight workers throttled at once count as one step of back-off. Pure apart
from the back-off's random draw (a seeded ``rng`` makes it reproducible); every call takes ``now``.
"""

from __future__ import annotations

import enum
import random

from pipeline.api.retry import Backoff
from pipeline.config import LimitsConfig

__all__ = ["GATE_BACKOFF", "GateState", "ThrottleGate"]

#: The gate's default back-off: short first steps (a per-second limit clears fast), growing to
#: ``limits.backoff_max`` (a minute), half of each step random.
GATE_BACKOFF = Backoff(base=0.1, cap=LimitsConfig().backoff_max, jitter=0.5)


class GateState(enum.Enum):
    """Open: requests go. Closed: nobody goes until the back-off ends. Half-open: one probe goes."""

    OPEN = "open"
    CLOSED = "closed"
    HALF_OPEN = "half-open"


class ThrottleGate:
    """Closed for everyone by a fresh throttle, reopened by one probe's success."""

    def __init__(self, backoff: Backoff = GATE_BACKOFF, rng: random.Random | None = None) -> None:
        self.backoff = backoff
        self._rng = rng if rng is not None else random.Random()
        self.state = GateState.OPEN
        #: While closed: when the probe may go.
        self.until = 0.0
        #: Counts closes; a request carries the epoch it entered in.
        self.epoch = 0
        #: Fresh throttles since the gate was last open: the back-off step.
        self.streak = 0
        self.probe_out = False

    def wait(self, now: float) -> float:
        """Seconds a closed gate stays closed; when its time has come it turns half-open (0)."""
        if self.state is not GateState.CLOSED:
            return 0.0
        if now < self.until:
            return self.until - now
        self.state = GateState.HALF_OPEN
        self.probe_out = False
        return 0.0

    def may_enter(self) -> bool:
        """False while a half-open gate's probe is out: the others wait for its answer."""
        return not (self.state is GateState.HALF_OPEN and self.probe_out)

    def enter(self) -> bool:
        """A request goes through; True if it is the half-open gate's probe."""
        probe = self.state is GateState.HALF_OPEN
        self.probe_out = self.probe_out or probe
        return probe

    def is_stale(self, epoch: int) -> bool:
        """Whether a request that entered in ``epoch`` went before the gate last closed."""
        return epoch != self.epoch

    def probe_lost(self) -> None:
        """The probe ended with no answer (timeout, 5xx): let another probe go."""
        if self.state is GateState.HALF_OPEN:
            self.probe_out = False

    def on_throttle(
        self, now: float, retry_after: float | None, epoch: int | None = None, probe: bool = False
    ) -> bool:
        """A request of ``epoch`` (None: unknown, taken as fresh) was throttled; True if fresh.

        A fresh throttle lengthens the streak and (re)closes the gate for the next back-off step; a
        stale one only stretches a closed gate to its ``retry_after``.
        """
        if epoch is not None and self.is_stale(epoch):
            if self.state is GateState.CLOSED and retry_after:
                self.until = max(self.until, now + retry_after)
            return False
        if probe:
            self.probe_out = False
        self.streak += 1
        self.epoch += 1
        wait = max(retry_after or 0.0, self.backoff.delay(self.streak, self._rng))
        self.until = max(self.until, now + wait) if self.state is GateState.CLOSED else now + wait
        self.state = GateState.CLOSED
        return True

    def on_success(self, probe: bool) -> bool:
        """A fresh request succeeded; if it was a half-open gate's probe, open the gate (True)."""
        if self.state is not GateState.HALF_OPEN or not probe:
            return False
        self.state = GateState.OPEN
        self.streak = 0
        self.probe_out = False
        return True
