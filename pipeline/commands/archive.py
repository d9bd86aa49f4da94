"""The commands about the archive's state: ``status``, ``ls`` and ``retry``.

``status`` and ``ls`` only read: a state file that is not there is refused (exit 2) and never
created — a mistyped ``state.path`` must not look like an empty archive. ``retry`` writes, under
the state lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pipeline.config import Config
from pipeline.engine.deletes import BatchSize
from pipeline.engine.eta import plan, requests_needed
from pipeline.engine.transform import signature
from pipeline.state import Row, State, StateLock, Status
from pipeline.state.schema import must_exist


def status(config: Config) -> dict[str, Any]:
    """Counts by status, pending remote deletes and the last runs (the ``status --json`` object)."""
    settings = signature(config.transform)
    with State.open(config.state.path, create=False) as state:
        counts = state.counts()
        runs = state.last_runs(5)
        tombstones = len(state.tombstones())
        other = state.synced_with_other_transform(settings)
        waiting = sum(counts.get(s.value, 0) for s in (Status.PENDING, Status.UPLOADING, Status.FAILED))
        batch = BatchSize(config.api.delete_batch, state).value
        # what the state knows is left (files new to the source only `sync --dry-run` sees)
        work = plan(
            requests_needed({"add": waiting, "remove": tombstones}, delete_batch=batch), config, state
        )
    return {
        "state": str(config.state.path),
        "source": str(config.source.path or config.source.manifest or ""),
        "api": config.api.base_url,
        "total": sum(counts.values()),
        "counts": counts,
        "pending_remote_deletes": tombstones,
        "last_runs": runs,
        # the transform: settings in force (None: off), and the synced images sent otherwise
        "transform": {"settings": settings, "synced_otherwise": other},
        # the requests the rows still waiting need, the rate, the time, the nights (engine/eta.py)
        "plan": work,
    }


def rows(config: Config, status: Status | None = None) -> Iterator[Row]:
    """The state's rows in key order (only those with ``status``), streamed; the state is opened first,
    so a missing one is refused before anything is printed."""
    state = State.open(config.state.path, create=False)
    return _closing(state, state.rows(status))


def _closing(state: State, found: Iterator[Row]) -> Iterator[Row]:
    try:
        yield from found
    finally:
        state.close()


def retry(config: Config, statuses: Iterable[Status]) -> int:
    """Rows with these statuses back to ``pending`` (the next sync sends them); how many."""
    must_exist(config.state.path)  # before the lock, which would create its folder
    with StateLock(config.state.path, command="retry"), State.open(config.state.path, create=False) as state:
        return state.requeue(statuses)
