"""The two commands that run an engine: ``sync`` and ``reconcile``.

Each opens what it needs (source, lock, state, client), runs one engine, and returns its report;
the CLI only parses arguments and prints. Each imports its engine when it runs: a nightly ``sync``
does not load reconcile's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pipeline.commands.runtime import on_interrupt, open_client
from pipeline.config import Config
from pipeline.engine.runs import RunContext
from pipeline.output.reporter import Reporter
from pipeline.sources import open_source
from pipeline.state import State
from pipeline.state.lock import StateLock

if TYPE_CHECKING:
    from pipeline.engine.reconcile import ReconcileOptions
    from pipeline.engine.sync import SyncOptions
    from pipeline.output.summary import ReconcileReport, SyncReport


async def sync(config: Config, options: SyncOptions, reporter: Reporter) -> SyncReport:
    """One ``facesync sync``: lock the state, march the source against it, upload, remove."""
    from pipeline.engine.sync import SyncEngine

    source = open_source(config.source, origin=config.origin)  # a config error before anything is made
    try:
        with _locked_state(config, "sync", reporter) as state:
            async with open_client(config) as client:
                engine = SyncEngine(RunContext(config, state, client, reporter), source, options)
                with on_interrupt(engine.interrupt):
                    return await engine.run()
    finally:
        await source.close()


async def reconcile(config: Config, options: ReconcileOptions, reporter: Reporter) -> ReconcileReport:
    """One ``facesync reconcile``: list the collection, diff it against the state, settle (with
    ``--adopt``, first rebuild the state from the collection and the source's files)."""
    from pipeline.engine.reconcile import Reconciler

    source = open_source(config.source, origin=config.origin) if options.adopt else None
    try:
        with _locked_state(config, "reconcile", reporter) as state:
            async with open_client(config) as client:
                ctx = RunContext(config, state, client, reporter)
                return await Reconciler(ctx, options, source).run()
    finally:
        if source is not None:
            await source.close()


@contextmanager
def _locked_state(config: Config, command: str, reporter: Reporter) -> Iterator[State]:
    """The state, opened (or created) under its lock: one run at a time (exit 75 otherwise)."""
    with StateLock(config.state.path, command=command) as lock:
        if lock.taken_over_from is not None:
            reporter.note(f"took over a stale lock left by {lock.taken_over_from}")
        with State.open(config.state.path) as state:
            yield state
