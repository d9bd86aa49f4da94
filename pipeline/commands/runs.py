"""What each command does, as plain functions the CLI calls (and tests call directly).

Each opens what it needs (lock, state, source, client), runs one engine, and returns a report;
the CLI only parses arguments and prints.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pipeline.commands.runtime import on_interrupt, open_client
from pipeline.config import Config
from pipeline.engine.reconcile import ReconcileOptions, Reconciler
from pipeline.engine.runs import RunContext
from pipeline.engine.sync import SyncEngine, SyncOptions
from pipeline.errors import AuthError, PipelineError, Retryable
from pipeline.output.reporter import Reporter
from pipeline.output.summary import ReconcileReport, SyncReport
from pipeline.sources import open_source
from pipeline.state import State
from pipeline.state.lock import StateLock


async def sync(config: Config, options: SyncOptions, reporter: Reporter) -> SyncReport:
    """One ``facesync sync``: lock the state, march the source against it, upload, remove."""
    with StateLock(config.state.path, command="sync") as lock:
        if lock.taken_over_from is not None:
            reporter.note(f"took over a stale lock left by {lock.taken_over_from}")
        with State.open(config.state.path) as state:
            source = open_source(config.source)
            try:
                async with open_client(config) as client:
                    engine = SyncEngine(RunContext(config, state, client, reporter), source, options)
                    with on_interrupt(engine.interrupt):
                        return await engine.run()
            finally:
                await source.close()


async def reconcile(config: Config, options: ReconcileOptions, reporter: Reporter) -> ReconcileReport:
    """One ``facesync reconcile``: list the collection, diff it against the state, settle."""
    with StateLock(config.state.path, command="reconcile") as lock:
        if lock.taken_over_from is not None:
            reporter.note(f"took over a stale lock left by {lock.taken_over_from}")
        with State.open(config.state.path) as state:
            async with open_client(config) as client:
                return await Reconciler(RunContext(config, state, client, reporter), options).run()


def status(config: Config) -> dict[str, Any]:
    """Counts by status, pending removals and the last runs; opens the state read-only in spirit."""
    with State.open(config.state.path) as state:
        counts = state.counts()
        runs = state.last_runs(5)
        tombstones = len(state.tombstones())
    return {
        "state": str(config.state.path),
        "source": str(config.source.path or config.source.manifest or ""),
        "api": config.api.base_url,
        "total": sum(counts.values()),
        "counts": counts,
        "pending_remote_deletes": tombstones,
        "last_runs": runs,
    }


def check(config: Config) -> dict[str, Any]:
    """One ``facesync check``: reach the endpoint with one cheap call (a one-image listing page).

    Retries are off (``limits.retries`` 0), so an unreachable host fails within
    ``api.connect_timeout`` instead of after the whole retry budget; a throttled answer (code 4) is
    reported at once (``limits.quota_wait`` 0) instead of waited out. Never raises a
    :class:`PipelineError`: the answer is ``ok``, ``endpoint``, ``images`` (on that page),
    ``error`` (one line) and ``exit_code`` (0, 1 unreachable, 2 config, 3 bad credentials, 4 throttled).
    """
    config = config.with_limits(retries=0, quota_wait=0.0)
    endpoint = config.api.base_url
    result: dict[str, Any] = {"ok": False, "endpoint": endpoint, "images": None, "error": None}
    try:
        result["images"] = asyncio.run(_first_page_size(config))
    except AuthError as exc:
        result["error"] = f"bad credentials for {endpoint}: {_one_line(exc)}"
        result["exit_code"] = exc.exit_code
    except Retryable as exc:
        result["error"] = f"cannot reach {endpoint}: {_one_line(exc)}"
        result["exit_code"] = exc.exit_code
    except PipelineError as exc:
        result["error"] = f"{endpoint}: {_one_line(exc)}"
        result["exit_code"] = exc.exit_code
    else:
        result["ok"] = True
        result["exit_code"] = 0
    return result


async def _first_page_size(config: Config) -> int:
    async with open_client(config) as client:
        return len(await client.list_page(0, 1))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
