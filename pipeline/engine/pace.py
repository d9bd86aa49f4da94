"""The adaptive rate a run starts at: where the last run of the same command ended.

With ``limits.rate`` unset, the limiter finds the service's rate (``pipeline/api/adaptive.py``): a slow
start from a modest rate until the first throttle, then AIMD. Found afresh each night, that costs a
nightly reconcile its first third of a second (the first twenty requests wait for their tokens) and, on
a service that does limit the rate, a burst of throttled requests each night to find the limit again.
So the state remembers (``learned``: ``rate.<command>``) the rate a run ended at — in slow start, only
what the service was seen to admit in the run's last second — and whether a throttle had ended its slow
start, and the next run of that command starts there. Sync and reconcile keep theirs
apart: listing pages and adds need not be limited alike. A dry run reads it but leaves it as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline.api.adaptive import ADAPTIVE_MAX, ADAPTIVE_MIN
from pipeline.api.limiter import Limiter
from pipeline.state import State

__all__ = ["Pace", "remember", "resume"]


@dataclass(frozen=True, slots=True)
class Pace:
    """Where an adaptive rate stood: requests/second, and whether it was still in slow start."""

    rate: float
    slow_start: bool

    def to_text(self) -> str:
        return json.dumps({"rate": round(self.rate, 3), "slow_start": self.slow_start})

    @classmethod
    def from_text(cls, text: object) -> Pace | None:
        """The pace a state remembers, or None when it holds none that makes sense."""
        try:
            raw = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            return None
        if not isinstance(raw, dict):
            return None
        rate, slow_start = raw.get("rate"), raw.get("slow_start")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not isinstance(slow_start, bool):
            return None
        if not ADAPTIVE_MIN <= rate <= ADAPTIVE_MAX:
            return None
        return cls(float(rate), slow_start)


def _name(command: str) -> str:
    return f"rate.{command}"


def resume(state: State, limiter: Limiter | None, command: str) -> None:
    """Start ``limiter``'s adaptive rate where the last ``command`` run left it."""
    adaptive = limiter.adaptive if limiter is not None else None
    if adaptive is None:
        return
    pace = Pace.from_text(state.learned(_name(command)))
    if pace is not None:
        adaptive.resume(pace.rate, pace.slow_start)


def remember(state: State, limiter: Limiter | None, command: str, achieved: float = 0.0) -> None:
    """Keep where ``limiter``'s adaptive rate ended (:meth:`AdaptiveRate.worth_keeping`) for the next
    ``command`` run — but never below ``achieved``, the rate of answered requests the whole run kept:
    a night of scattered throttles (a busy service, not a lower limit) can cut the rate to its floor in
    its last minutes, and the next night would crawl from there although the service admitted far
    more. The caller calls it only for a run that sent requests. Written only when it moved."""
    adaptive = limiter.adaptive if limiter is not None else None
    if adaptive is None:
        return
    rate = max(adaptive.worth_keeping(), min(achieved, ADAPTIVE_MAX))
    text = Pace(rate, adaptive.slow_start).to_text()
    if text != state.learned(_name(command)):
        state.learn(_name(command), text)
