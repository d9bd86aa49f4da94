"""What every engine run shares: what it works with, the options the command line gives, its record.

A run is recorded in the state's ``runs`` table (unless it is a dry run) with its exit code and its
``--json`` counts, so ``facesync status`` can show the last runs; its requests and wall time are
measured the same way for sync and reconcile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.api import FaceSearchClient
from pipeline.config import Config
from pipeline.engine import pace
from pipeline.output.reporter import Reporter
from pipeline.state import State


@dataclass(frozen=True)
class RunContext:
    """What a run works with: the config, the open state and client, and where it reports."""

    config: Config
    state: State
    client: FaceSearchClient
    reporter: Reporter
    #: The state is not the file the last run left (its epoch is not the lock file's): restored from a
    #: backup, or replaced. Images newer runs sent may be in the collection (``docs/state.md``).
    older_state: bool = False


@dataclass(frozen=True)
class RunOptions:
    """The command line's say over the config, for any run."""

    dry_run: bool = False
    #: Overrides ``limits.max_delete`` for one run (a count).
    max_delete: int | None = None
    #: (index, count): only keys whose stable hash falls in shard ``index`` of ``count``.
    shard: tuple[int, int] | None = None


class Summary(Protocol):
    """What a run's report must carry for its record."""

    requests: int
    elapsed: float
    exit_code: int

    def to_json(self) -> dict[str, Any]: ...


class RunRecord:
    """One run's bookkeeping: its row in the runs table, the requests it sent, its wall time."""

    def __init__(self, ctx: RunContext, command: str, *, dry_run: bool) -> None:
        self.state = ctx.state
        self.client = ctx.client
        self._command = command
        self._dry_run = dry_run
        #: The adaptive rate starts where the last run of this command ended (engine/pace.py).
        pace.resume(ctx.state, ctx.client.limiter, command)
        self._started = time.monotonic()
        self._requests = ctx.client.requests
        self._throttled = ctx.client.throttled
        self._id = None if dry_run else ctx.state.start_run(command)

    @property
    def throttled(self) -> int:
        """Throttled answers seen since the run began."""
        return self.client.throttled - self._throttled

    def finish(self, report: Summary, exit_code: int) -> None:
        """Stamp the report (requests, elapsed, exit code) and record it as the run's outcome."""
        report.requests = self.client.requests - self._requests
        report.elapsed = time.monotonic() - self._started
        report.exit_code = exit_code
        if not self._dry_run and report.requests:
            pace.remember(self.state, self.client.limiter, self._command)
        if self._id is not None:
            self.state.finish_run(self._id, exit_code=exit_code, counts=report.to_json())
