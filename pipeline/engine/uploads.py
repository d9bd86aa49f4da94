"""The upload path of a sync: the march's chunks dispatched, the upload workers' turns, then the
files held back until every removal is known.

Mixed into :class:`~pipeline.engine.sync.SyncEngine`, which owns the stop scopes this path obeys
(``_stop_intake``, ``_thread_stop``, ``_stop``) and the report it counts into: the march
(``engine/march.py``) pairs the scan with the state, each actionable pair goes to the upload queue,
the state writer or the removals, a fixed pool of workers (``engine/pool.py``) hands each to the
per-item work (``engine/operations.py``), and the new files whose content the state already holds are
paired with the removals last (``engine/renames.py``): a move, or a copy uploaded.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from pipeline.config import Config
from pipeline.engine.malloc import for_big_buffers
from pipeline.engine.march import March
from pipeline.engine.operations import Operations
from pipeline.engine.plan import Action, Planned
from pipeline.engine.pool import WorkerPool
from pipeline.engine.removals import Removals
from pipeline.engine.renames import apply_moves, pair_moves
from pipeline.errors import (
    Fatal,
    ForeignCollection,
    GuardRefused,
    PipelineError,
    QuotaSpent,
    ServiceFailing,
)
from pipeline.output.reporter import Reporter
from pipeline.output.summary import SyncReport
from pipeline.sources import Source
from pipeline.state import State

if TYPE_CHECKING:
    from pipeline.engine.sync import SyncOptions

_SENDS = frozenset({Action.ADD, Action.REPLACE, Action.METADATA})
#: What stops a run (the engine's stop scopes, ``SyncEngine._stop``), not only the item it came from.
STOPS = (Fatal, QuotaSpent, GuardRefused, ForeignCollection, ServiceFailing)


class Uploads:
    """The march, the dispatch and the upload workers of a :class:`~pipeline.engine.sync.SyncEngine`.

    What this path uses of the engine is declared below; the engine sets each in its ``__init__``."""

    config: Config
    state: State
    source: Source
    options: SyncOptions
    report: SyncReport
    reporter: Reporter
    removals: Removals
    _stop_intake: asyncio.Event
    _thread_stop: threading.Event
    _interrupted: bool
    _crash: Exception | None
    _held: list[tuple[Planned, str]]
    _hold_copies: bool
    _uploads: WorkerPool[Planned]

    if TYPE_CHECKING:

        @property
        def ops(self) -> Operations: ...

        @property
        def _counting(self) -> bool: ...

        def _stop(self, exc: PipelineError) -> None: ...

    # ------------------------------------------------------------------ march: scan × state
    async def _march_and_upload(self) -> None:
        """The march's chunks to the upload workers (engine/march.py), then the held-back files."""
        march = March(
            self.state,
            self.source,
            self.ops.metadata,
            self.ops.transformer.signature,
            shard=self.options.shard,
            stop=self._thread_stop,
            checksum=self.options.checksum,
        )
        self._start_workers()
        try:
            async with march:
                async for chunk in march:
                    if not self._stop_intake.is_set():
                        await self._dispatch(chunk)
                    elif self._counting:
                        self.report.not_tried += sum(1 for p in chunk if p.action in _SENDS)
        finally:
            await self._stop_workers()
            self.report.unchanged += march.unchanged
        if self._held and not self._stop_intake.is_set():
            await self._settle_held()

    async def _dispatch(self, chunk: list[Planned]) -> None:
        """Each planned pair to where it goes: the upload queue, the state writer, or the removals. A file
        queued to be read is named to a source that reads ahead (a local one: ``prefetch``), so that the
        kernel reads it while the ~2 x concurrency files before it are sent."""
        prefetch = getattr(self.source, "prefetch", None)
        for p in chunk:
            if self._stop_intake.is_set():
                self.report.not_tried += self._counting and p.action in _SENDS
                continue
            if p.action is Action.RETOUCH:
                p = self.ops.retag.retouch(p)
                if p.action is Action.SKIP:
                    continue
            if p.action in _SENDS:
                for_big_buffers()
                self.reporter.planned(1)
                if prefetch is not None and p.action is not Action.METADATA and p.item and not p.item.special:
                    prefetch(p.item)
                await self._uploads.put(p)
            elif p.action is Action.REMOVE and p.row is not None:
                self.removals.add(p.row)

    # ------------------------------------------------------------------ upload workers
    def _start_workers(self) -> None:
        self._uploads.start(self.config.limits.concurrency)

    async def _stop_workers(self) -> None:
        results = await self._uploads.stop()
        if not self._interrupted:
            for result in results:
                if result is not None:
                    raise result

    async def _handle(self, p: Planned) -> None:
        """One upload worker's turn: the planned pair sent (or, once intake stopped, counted)."""
        if self._stop_intake.is_set():
            self.report.not_tried += self._counting
            return
        try:
            if p.action is Action.METADATA:
                await self.ops.retag.update_metadata(p)
            else:
                sha = await self.ops.upload(p, defer_copies=self._hold_copies)
                if sha is not None:
                    self._held.append((p, sha))
        except STOPS as exc:
            self._stop(exc)
        except Exception as exc:  # a bug: stop cleanly and show it, never leave the queue unconsumed
            if self._crash is None:
                self._crash = exc
            self._stop_intake.set()
            self._thread_stop.set()
        finally:
            self.reporter.advance()

    async def _settle_held(self) -> None:
        """The held-back files, now that every removal is known: moves first, then copies uploaded."""
        found = pair_moves(self._held, self.removals.rows)
        self._held, self._hold_copies, self.removals.rows = [], False, found.removals
        try:
            await apply_moves(found.moves, self.ops)
        except STOPS as exc:
            self._stop(exc)
            return
        if found.copies:
            self._start_workers()
            for p in found.copies:
                if self._stop_intake.is_set():
                    self.report.not_tried += self._counting
                    continue
                await self._uploads.put(p)
            await self._stop_workers()
