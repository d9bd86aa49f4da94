"""The two commands that run an engine: ``sync`` and ``reconcile``.

Each opens what it needs (source, lock, state, client), runs one engine, and returns its report;
the CLI only parses arguments and prints. Each imports its engine when it runs: a nightly ``sync``
does not load reconcile's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pipeline.commands.runtime import on_interrupt, open_client
from pipeline.config import Config
from pipeline.engine.runs import RunContext
from pipeline.errors import EXIT_USAGE, StateError
from pipeline.output.reporter import Reporter
from pipeline.sources import open_source
from pipeline.state import State
from pipeline.state.lock import StateLock

if TYPE_CHECKING:
    from pipeline.engine.reconcile import ReconcileOptions
    from pipeline.engine.sync import SyncOptions
    from pipeline.output.summary import ReconcileReport, SyncReport


async def sync(
    config: Config,
    options: SyncOptions,
    reporter: Reporter,
    *,
    interrupts: Callable[[Callable[[], None]], AbstractContextManager[None]] = on_interrupt,
) -> SyncReport:
    """One ``facesync sync``: lock the state, march the source against it, upload, remove. ``interrupts``
    routes Ctrl-C / SIGTERM to the engine (``facesync watch`` keeps its own handlers across passes)."""
    from pipeline.engine.sync import SyncEngine

    source = open_source(config.source, origin=config.origin)  # a config error before anything is made
    try:
        with _locked_state(config, "sync", reporter, dry_run=options.dry_run) as (state, older):
            async with open_client(config) as client:
                engine = SyncEngine(RunContext(config, state, client, reporter, older), source, options)
                with interrupts(engine.interrupt):
                    return _in_place(state, await engine.run())
    finally:
        await source.close()


async def reconcile(config: Config, options: ReconcileOptions, reporter: Reporter) -> ReconcileReport:
    """One ``facesync reconcile``: list the collection, diff it against the state, settle (with
    ``--adopt``, first rebuild the state from the collection and the source's files)."""
    from pipeline.engine.reconcile import Reconciler

    source = open_source(config.source, origin=config.origin) if options.adopt else None
    try:
        with _locked_state(config, "reconcile", reporter, dry_run=options.dry_run) as (state, older):
            async with open_client(config) as client:
                ctx = RunContext(config, state, client, reporter, older)
                return _in_place(state, await Reconciler(ctx, options, source).run())
    finally:
        if source is not None:
            await source.close()


R = TypeVar("R", "SyncReport", "ReconcileReport")


def _in_place(state: State, report: R) -> R:
    """``report``, unless the state file was removed or replaced during the run: then what it recorded is
    in a file no path names, and the run is not in step whatever it did (exit 2, one line)."""
    if not state.still_in_place():
        report.error = (
            f"state {state.path} was removed or replaced during the run, and what it recorded with it: "
            "the next `facesync sync` will refuse to upload twice (exit 6); "
            "run `facesync reconcile --adopt` to rebuild the state from the collection"
        )
        report.exit_code = EXIT_USAGE
    return report


@contextmanager
def _locked_state(
    config: Config, command: str, reporter: Reporter, *, dry_run: bool
) -> Iterator[tuple[State, bool]]:
    """The state, opened (or created) under its lock (one run at a time, exit 75 otherwise), and whether it
    is older than the last run on it: its epoch is not the one that run left in the lock file. A run
    that may change the state gives it a new epoch, in the state first, then in the lock file.

    A dry run creates nothing: with no state file it plans against an empty state of its own (a first
    sync) in a temporary folder — unless the state's folder is missing too: a mistyped ``state.path``,
    not an empty archive (exit 2)."""
    path = config.state.path
    if dry_run and not path.exists():
        if not path.parent.is_dir():
            raise StateError(
                f"state {path}: its folder {path.parent} does not exist (a mistyped state.path?); a dry run "
                "creates nothing: check the path, or run `facesync sync` to start this state"
            )
        reporter.note(f"state {path} does not exist yet: planned as its first sync (nothing is created)")
        import tempfile  # only here: a run with a state does not load it (nor shutil, random, bz2, lzma)

        with (
            tempfile.TemporaryDirectory(prefix="facesync-dry-run-") as scratch,
            State.open(Path(scratch) / path.name) as state,
        ):
            yield state, False
        return
    with StateLock(config.state.path, command=command) as lock:
        if lock.taken_over_from is not None:
            reporter.note(f"took over a stale lock left by {lock.taken_over_from}")
        with State.open(config.state.path) as state:
            older = lock.epoch is not None and state.learned("epoch") != lock.epoch
            if not dry_run:
                epoch = os.urandom(8).hex()  # secrets.token_hex(8), without importing hmac
                state.learn("epoch", epoch)
                lock.keep_epoch(epoch)
            yield state, older
