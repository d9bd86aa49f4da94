"""An honest plan: the requests the work needs, the rate the last runs achieved, the time, the nights.

A migration of a million photos against a paid quota lasts weeks; ``sync --dry-run`` and ``status``
say how long, in figures a person can check: "61 requests; at 9.8 req/s (the last runs) ≈ 6 s; at 25
requests a day ≈ 3 nights". The rate is what the last syncs *achieved* (their requests over their wall
time, from the ``runs`` table), else ``limits.rate``, else where the adaptive rate last ended
(``learned``: ``rate.sync``, engine/pace.py); with none of them the time is not guessed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pipeline.config import Config
from pipeline.engine.deletes import BatchSize
from pipeline.engine.pace import Pace
from pipeline.state import State

__all__ = ["achieved_rate", "dry_run_plan", "plan", "requests_needed"]

#: Runs with fewer requests say little about a rate (a no-op night is mostly the scan).
MIN_REQUESTS = 20
#: How many of the last syncs the achieved rate is read from.
LAST_RUNS = 5


def requests_needed(would: Mapping[str, int], *, delete_batch: int) -> int:
    """Requests the planned work costs: one per add, replace, metadata update and rename, and the
    deletes in batches (each replace deletes its old image, each removal its image)."""
    one_each = sum(would.get(action, 0) for action in ("add", "replace", "metadata", "rename"))
    deletes = would.get("remove", 0) + would.get("replace", 0)
    return one_each + math.ceil(deletes / max(1, delete_batch))


def achieved_rate(state: State, command: str = "sync") -> float | None:
    """Requests per second the last real runs of ``command`` achieved (their wall time included), or None."""
    requests = elapsed = 0.0
    used = 0
    for run in state.last_runs(50):
        counts = run["counts"]
        if run["command"] != command or not counts or counts.get("dry_run"):
            continue
        sent, took = counts.get("requests") or 0, counts.get("elapsed") or 0.0
        if sent >= MIN_REQUESTS and took > 0:
            requests, elapsed, used = requests + sent, elapsed + took, used + 1
            if used >= LAST_RUNS:
                break
    return requests / elapsed if elapsed > 0 else None


def plan(requests: int, config: Config, state: State) -> dict[str, Any]:
    """The ``plan`` object of ``sync --dry-run --json`` and ``status --json``: ``requests``, ``rate``
    (req/s) and where it comes from, ``seconds`` (the time at that rate), ``per_run`` (the most one run
    may send under ``max_requests``, ``requests_per_day`` and ``max_duration``) and ``runs`` (how many
    nights the work takes under them), and ``text`` (the same in one sentence)."""
    rate, source = _rate(config, state)
    seconds = requests / rate if rate else None
    limits = config.limits
    caps = [c for c in (limits.max_requests, limits.requests_per_day) if c is not None]
    if limits.max_duration is not None and rate:
        caps.append(max(1, int(rate * limits.max_duration)))
    per_run = min(caps) if caps else None
    runs = math.ceil(requests / per_run) if per_run and requests else (1 if requests else 0)
    return {
        "requests": requests,
        "rate": round(rate, 3) if rate else None,
        "rate_source": source,
        "seconds": round(seconds, 1) if seconds is not None else None,
        "per_run": per_run,
        "runs": runs,
        "text": _sentence(requests, rate, source, seconds, per_run, runs),
    }


def dry_run_plan(would: Mapping[str, int], read: int, config: Config, state: State) -> dict[str, Any]:
    """A dry run's plan: what it would send (deletes in the batch size the state learned), and the
    requests it read itself (the first-upload check, the listing's end), which the real run reads too."""
    batch = BatchSize(config.api.delete_batch, state).value
    return plan(requests_needed(would, delete_batch=batch) + read, config, state)


def _rate(config: Config, state: State) -> tuple[float | None, str | None]:
    achieved = achieved_rate(state)
    if achieved:
        return achieved, "last runs"
    if config.limits.rate:
        return config.limits.rate, "limits.rate"
    pace = Pace.from_text(state.learned("rate.sync"))
    if pace is not None:
        return pace.rate, "learned"
    return None, None


def _sentence(
    requests: int,
    rate: float | None,
    source: str | None,
    seconds: float | None,
    per_run: int | None,
    runs: int,
) -> str:
    if not requests:
        return "nothing to send"
    parts = [f"~{requests:,} request(s)"]
    if rate and seconds is not None:
        where = {"last runs": "the last runs achieved", "limits.rate": "limits.rate", "learned": "learned"}
        parts.append(f"at {rate:.1f} req/s ({where.get(source or '', source)}) ≈ {_time(seconds)}")
    else:
        parts.append("no rate known yet (no run has sent enough): the time is not guessed")
    if per_run is not None and runs > 1:
        parts.append(f"at most {per_run:,} a run (limits) ≈ {runs} nights")
    return "; ".join(parts)


def _time(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
