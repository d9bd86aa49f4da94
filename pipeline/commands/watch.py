"""``facesync watch``: keep a directory source in step continuously, one sync pass per burst of changes.

Why: a nightly cron leaves a new photo waiting up to a day. The kernel's file events (inotify, through
``watchfiles``) say when files change; a burst (a camera import of 500 files) is gathered into one
batch until the tree has been quiet for ``debounce`` seconds, the batch waits until each of its files
has stopped changing (a file still being written is never sent half-written), and then one ``sync``
pass runs: the very engine of ``facesync sync``, with its state, lock, limiter, breaker, transform and
metadata. A full pass also runs at the start (it settles what a killed watch left in flight and
catches what changed while nothing watched) and every ``rescan`` seconds, since inotify drops events
when its queue overflows. Ctrl-C / SIGTERM during a pass stops it as it stops a sync (exit 130);
between passes it ends the watch at once. An S3 manifest or a zip source has no events: refused
(exit 2) — run ``facesync sync`` from cron instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.commands import runs
from pipeline.commands.runtime import signal_handlers
from pipeline.config import Config
from pipeline.engine.sync import SyncOptions
from pipeline.errors import ConfigError, LockedError
from pipeline.output.reporter import Reporter
from pipeline.output.summary import SyncReport

#: Exit codes of a pass after which watching on makes no sense (the config, the state, the credentials).
_FATAL_EXITS = frozenset({2, 3, 6})


@dataclass(frozen=True)
class WatchOptions:
    """How ``facesync watch`` runs."""

    #: Seconds between full passes even without an event (``--rescan``); None: only at the start.
    rescan: float | None = 6 * 3600.0
    #: Seconds of quiet that close a batch of changes.
    debounce: float = 1.0
    #: Seconds a changed file's size and mtime must hold still before it is sent.
    settle: float = 1.0
    #: Stop after this many passes (the start's included); None: until Ctrl-C / SIGTERM.
    passes: int | None = None
    #: Passed to each pass (``--shard``, ``--allow-foreign``, ...).
    sync: SyncOptions = field(default_factory=SyncOptions)


def watched_root(config: Config) -> Path:
    """The directory the watch follows, or ConfigError (exit 2) for a source without file events."""
    from pipeline.sources.zipped import is_archive_path

    path = config.source.path
    if path is None or config.source.archives or is_archive_path(path):
        raise ConfigError(
            "facesync watch follows a directory source (source.path, a folder): an S3 manifest or zip "
            "files have no file events; run `facesync sync` from cron for them (docs/cron.md)"
        )
    if not path.is_dir():
        raise ConfigError(f"source.path {path} is not a directory")
    return path


async def watch(
    config: Config,
    options: WatchOptions,
    make_reporter: Callable[[], Reporter],
    on_pass: Callable[[SyncReport], None],
) -> int:
    """Run sync passes as the tree changes until stopped; the exit code: 130 when stopped by a signal,
    else the code of the pass that ended it (a config, credentials or foreign-collection refusal)."""
    root = watched_root(config)
    stop = asyncio.Event()
    signals = _Signals(stop)
    changed: asyncio.Queue[set[str]] = asyncio.Queue()
    events = asyncio.create_task(_follow(root, changed, stop), name="watch-events")
    passes, last = 0, 0
    try:
        with signals.installed():
            while not stop.is_set():
                if passes:  # the first pass runs at once
                    batch = await _next_batch(changed, stop, options)
                    if stop.is_set():
                        break
                    await _wait_still(batch, options.settle, stop)
                    if stop.is_set():
                        break
                report = await _one_pass(config, options.sync, make_reporter(), signals)
                passes += 1
                if report is not None:
                    on_pass(report)
                    last = report.exit_code
                    if last == 130 or last in _FATAL_EXITS:
                        return last
                if options.passes is not None and passes >= options.passes:
                    return last
        return 130
    finally:
        stop.set()
        events.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await events


class _Signals:
    """Ctrl-C / SIGTERM for the whole watch, never uninstalled between passes: between passes they end
    the watch; during one they stop it as they stop a sync (a second one stops it at once), and the
    watch ends after it."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self._handler: Callable[[], None] | None = None
        self._hits = 0
        self._task: asyncio.Task[object] | None = None

    def fire(self) -> None:
        self.stop.set()
        if self._handler is None:
            return
        self._hits += 1
        if self._hits == 1:
            self._handler()
        elif self._task is not None:
            self._task.cancel()

    @contextlib.contextmanager
    def during_pass(self, handler: Callable[[], None]) -> Iterator[None]:
        """What ``commands.runs.sync`` routes the signals through (its ``interrupts``)."""
        self._handler, self._hits, self._task = handler, 0, asyncio.current_task()
        try:
            yield
        finally:
            self._handler = self._task = None

    def installed(self) -> contextlib.AbstractContextManager[None]:
        return signal_handlers(self.fire)


async def _one_pass(
    config: Config, options: SyncOptions, reporter: Reporter, signals: _Signals
) -> SyncReport | None:
    """One sync pass; a lock held by another run (a cron sync, a reconcile) waits for the next batch."""
    try:
        return await runs.sync(config, options, reporter, interrupts=signals.during_pass)
    except LockedError as exc:
        reporter.note(f"watch: {exc}; trying again with the next change")
        return None


async def _follow(root: Path, changed: asyncio.Queue[set[str]], stop: asyncio.Event) -> None:
    """The tree's file events, as sets of paths, into ``changed`` until ``stop``."""
    from watchfiles import awatch

    async for found in awatch(root, stop_event=stop, debounce=400, step=50, recursive=True):
        changed.put_nowait({path for _, path in found})


async def _next_batch(
    changed: asyncio.Queue[set[str]], stop: asyncio.Event, options: WatchOptions
) -> set[str]:
    """The next batch: the first change (or the rescan timer: an empty batch), then every change until
    the tree has been quiet for ``debounce`` seconds."""
    batch: set[str] = set()
    first = await _get(changed, stop, options.rescan)
    if first is None:
        return batch
    batch |= first
    while not stop.is_set():
        more = await _get(changed, stop, options.debounce)
        if more is None:
            break
        batch |= more
    return batch


async def _get(queue: asyncio.Queue[set[str]], stop: asyncio.Event, within: float | None) -> set[str] | None:
    """The next item, or None after ``within`` seconds or once ``stop`` is set."""
    getting = asyncio.ensure_future(queue.get())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({getting, stopping}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (getting, stopping):
            task.cancel()
    if getting in done:
        return getting.result()
    return None


async def _wait_still(paths: Iterable[str], settle: float, stop: asyncio.Event) -> None:
    """Until every changed file has kept its size and mtime for ``settle`` seconds (or is gone)."""
    stamps = {path: _stamp(path) for path in paths}
    while stamps and not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settle)
        now = {path: _stamp(path) for path in stamps}
        stamps = {path: stamp for path, stamp in now.items() if stamp is not None and stamp != stamps[path]}


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)
