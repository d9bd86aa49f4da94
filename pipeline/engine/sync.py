"""The sync engine: scan → plan → upload workers → state writer, then the removals.

``SyncEngine.run`` reads top to bottom: march the source against the state (in a thread: the scan
and the state cursor are blocking), feed actionable pairs to a fixed pool of upload workers, then —
only when the scan was complete and nothing stopped the run — remove what is gone, behind the
max-delete guard. A dry run takes the very same path with a writer that keeps nothing and
operations that count instead of sending, so its counts are the real run's. The upload path — the
march's chunks dispatched, the workers' turns, the held-back files — is :mod:`pipeline.engine.uploads`,
mixed into :class:`SyncEngine`; this module keeps the run, its stop scopes and its report.

Stop scopes: ``_stop_intake`` stops feeding work and lets requests in flight finish and be
recorded. When the service is failing or the quota is spent, the march goes on without sending, to
count what was not tried; on Ctrl-C it stops at once, and requests still in flight after
:data:`GRACE` seconds are cut (their intents are durable: nothing is lost). Cancelling the run (a
second Ctrl-C) stops everything. The run's deadline (``RunRecord.deadline``) stops it as a spent
quota does (the limiter refuses every request after it, and a timer stops the intake at it): what is
in flight finishes (cut after ``api.timeout`` + :data:`GRACE`), and the march counts what is left for
at most :data:`COUNT_GRACE` seconds more.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass

from pipeline.engine.collection import FirstUploadCheck
from pipeline.engine.eta import dry_run_plan
from pipeline.engine.operations import Operations
from pipeline.engine.plan import Planned
from pipeline.engine.pool import WorkerPool
from pipeline.engine.removals import Removals
from pipeline.engine.restore import Restorer
from pipeline.engine.runs import RunContext, RunOptions, RunRecord
from pipeline.engine.settle import Settler, Tail, listing_order
from pipeline.engine.transform import Transformer, guard_change
from pipeline.engine.uploads import STOPS, Uploads
from pipeline.errors import (
    EXIT_FAILED,
    DeadlineReached,
    Fatal,
    PipelineError,
    QuotaSpent,
    ServiceFailing,
    StateError,
)
from pipeline.output.actions import hear_actions
from pipeline.output.reporter import watch_throttling
from pipeline.output.summary import SyncReport, interrupted_message
from pipeline.sources import Source
from pipeline.state import DiscardingWriter, StateWriter, Status, Tombstone, Writer

#: Seconds Ctrl-C lets requests in flight finish before they are cut.
GRACE = 1.0
#: Seconds past the deadline the march may go on counting what was not tried (then ``left`` is a floor).
COUNT_GRACE = 5.0
#: Stops after which the march goes on, sending nothing, to count what was not tried.
_COUNTING_STOPS = (ServiceFailing, QuotaSpent)


@dataclass(frozen=True)
class SyncOptions(RunOptions):
    """How one ``sync`` runs."""

    #: Upload even when the state has never sent an image and the collection holds some
    #: (engine/collection.py).
    allow_foreign: bool = False
    #: Read and hash every synced file, whatever its stat says (``sync --checksum``): a scrub.
    checksum: bool = False
    #: A dry run keeps every planned action in ``report.actions`` (``sync --dry-run --json``).
    list_actions: bool = False


class SyncEngine(Uploads):
    """One ``sync`` run: the march, the upload queue and its worker pool, the stop scopes, removals last."""

    def __init__(self, ctx: RunContext, source: Source, options: SyncOptions | None = None) -> None:
        self.ctx = ctx
        self.config, self.state, self.client, self.reporter = ctx.config, ctx.state, ctx.client, ctx.reporter
        self.source = source
        self.options = options or SyncOptions()
        self.report = SyncReport(dry_run=self.options.dry_run)
        hear_actions(self.report, self.reporter, listing=self.options.dry_run and self.options.list_actions)
        self._stop_intake = asyncio.Event()
        self._thread_stop = threading.Event()
        self._stopped_by: PipelineError | None = None
        #: An unexpected error in a worker: re-raised once everything in flight is recorded.
        self._crash: Exception | None = None
        self._interrupted = False
        #: The march was stopped before it had counted everything not tried (``left`` is a floor).
        self._count_cut = False
        self.removals = Removals(ctx, source, self.options, self.report)
        #: New files whose content the state already holds: a rename, or a copy (engine/renames.py).
        self._held: list[tuple[Planned, str]] = []
        self._hold_copies = True
        size = max(2 * self.config.limits.concurrency, 8)
        self._uploads: WorkerPool[Planned] = WorkerPool(self._handle, maxsize=size, name="upload")
        self._ops: Operations | None = None
        #: The newest images of the collection, read when something needs them (engine/settle.py).
        order, self._why_no_tail = listing_order(self.config)
        self._tail = Tail(ctx, order) if order is not None else None
        self._first_upload = FirstUploadCheck(
            ctx,
            shard=self.options.shard,
            allowed=self.options.allow_foreign,
            remember=not self.options.dry_run,
            restorer=Restorer(ctx, self._tail, self.options.shard),
        )

    # ------------------------------------------------------------------ the run, top to bottom
    async def run(self) -> SyncReport:
        """March, upload, then remove; return the report whose exit code is the most serious thing seen."""
        record = RunRecord(
            self.ctx, "sync", dry_run=self.options.dry_run, max_duration=self.options.max_duration
        )
        timers = self._arm_deadline(record)
        ticker = asyncio.create_task(watch_throttling(self.client, self.reporter))
        writing = DiscardingWriter() if self.options.dry_run else StateWriter(self.state)
        try:
            ctx_older = self.ctx.older_state
            if ctx_older:
                self.reporter.note(
                    f"state {self.state.path} is not the file the last run left (restored from a backup?): "
                    + (
                        "images sent since are taken back from the listing's end"
                        if self._tail is not None
                        else f"{self._why_no_tail}, so what this run uploads stays unsettled until "
                        "`facesync reconcile` (a newer state may have sent the same files)"
                    )
                )
            async with writing as writer, Transformer(self.config, self.state) as transformer:
                self._ops = Operations(
                    self.ctx,
                    self.source,
                    writer,
                    self.report,
                    self._first_upload,
                    transformer,
                    dry_run=self.options.dry_run,
                    keep_unsettled=ctx_older and self._tail is None,
                )
                guard_change(self.ctx, self.options, transformer.signature)  # before anything is sent
                settler = Settler(self.ctx, self._tail, self.report, dry_run=self.options.dry_run)
                await settler.run(writer, self._why_no_tail)
                if ctx_older and self._tail is not None:  # even a night with nothing to add
                    await self._first_upload.restore_check()
                bulk = self._content_index_off()
                try:
                    await self._march_and_upload()
                    if self._stopped_by is None and not self._interrupted and self._crash is None:
                        await self._forget_gone_files(writer)
                        await self.removals.run(writer)
                finally:
                    if bulk:
                        self._content_index_on()
        except STOPS as exc:
            self._stop(exc)
        finally:
            for timer in timers:
                timer.cancel()
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            self.reporter.close()
        if self._crash is not None:
            raise self._crash
        self._finish_report(record)
        return self.report

    def _content_index_off(self) -> bool:
        """A first sync (the state holds no synced row) looks nothing up by content, so the content-hash
        index is dropped for it and built once at its end: kept row by row, its random keys cost a page
        write a file, 20-30 µs (docs/performance.md, "Issue 23, round 5"). Any other run makes sure it is
        there (one killed in a first sync left it out). A dry run changes neither. True when dropped."""
        if self.options.dry_run:
            return False
        if self.ops.synced_before():
            self.state.build_content_index()
            return False
        self.state.drop_content_index()
        return True

    def _content_index_on(self) -> None:
        try:
            self.state.build_content_index()
        except StateError as exc:  # the rows are recorded; the next sync builds it before using it
            self.reporter.note(f"{exc}: the state's content index is left for the next sync to build")

    async def _forget_gone_files(self, writer: Writer) -> None:
        """Images a newer state sent for files that are gone since (a state restored from a backup):
        no row will ever hold them, so they go as a removed file's image does, at the run's end."""
        restorer = self._first_upload.restorer
        if restorer is None or not restorer.looked or self.report.scan_errors:
            return
        now = time.time()
        why = "removed: sent by a newer state"
        gone = [Tombstone(image.id, key, why, now) for key, image in restorer.leftovers()]
        if gone:
            restorer.take(t.remote_id for t in gone)
            await writer.commit(tombstones_add=gone)
            for t in gone:
                self.reporter.event("gone", t.key or "(image)", f"remote id {t.remote_id}: {why}")

    def interrupt(self) -> None:
        """Ctrl-C: stop intake; requests still in flight after :data:`GRACE` seconds are cut."""
        self._interrupted = True
        self._stop_intake.set()
        self._thread_stop.set()
        self._uploads.drop_queued()  # never sent: planned again by the next run
        asyncio.get_running_loop().call_later(GRACE, self._cut_in_flight)

    def _cut_in_flight(self) -> None:
        self._uploads.cancel()

    def _arm_deadline(self, record: RunRecord) -> list[asyncio.TimerHandle]:
        """At the deadline, stop intake as a spent quota does; then bound the count and the drain."""

        def stop_counting() -> None:
            self._count_cut = not self._thread_stop.is_set()
            self._thread_stop.set()

        return record.deadline_timers(
            came=lambda: self._stop(DeadlineReached(record.deadline_why)),
            stop_counting=(COUNT_GRACE, stop_counting),
            cut=(self.config.api.timeout + GRACE, self._cut_in_flight),
        )

    @property
    def _counting(self) -> bool:
        """Stopped by a failing service or a spent quota: what is left is counted as not tried."""
        return isinstance(self._stopped_by, _COUNTING_STOPS)

    def _stop(self, exc: PipelineError) -> None:
        if self._stopped_by is None or isinstance(exc, Fatal):
            self._stopped_by = exc
        self._stop_intake.set()
        if not isinstance(exc, _COUNTING_STOPS):
            self._thread_stop.set()

    def _finish_report(self, record: RunRecord) -> None:
        report = self.report
        report.scan_errors = list(self.source.scan_errors)
        report.throttled = record.throttled
        waiting = self.state.counts_of((Status.UPLOADING, Status.PENDING, Status.FAILED))
        report.pending = sum(waiting.values())
        report.waiting = {name: n for name, n in waiting.items() if n}
        report.not_tried += len(self._held) if self._counting else 0
        report.deadline_hit = isinstance(self._stopped_by, DeadlineReached)
        report.left = report.not_tried
        stopped = self._stopped_by is not None or self._interrupted
        report.left_exact = (self._counting or not stopped) and not self._count_cut
        report.budget_left = record.budget.left
        if self.options.dry_run:
            report.planned.update(report.would_send())
        exit_code = self._exit_code()
        if self._counting:
            floor = "" if report.left_exact else "at least "
            report.error = (
                f"{self._stopped_by}; stopped sending: {floor}{report.not_tried} file(s) not tried, and "
                "nothing was lost (what was sent is recorded); run `facesync sync` again later"
            )
        elif self._stopped_by is not None:
            report.error = str(self._stopped_by)
        elif self._interrupted:
            report.error = interrupted_message(report, "sync")
        report.unsettled = max(
            0, self.state.unsettled_count() - (report.settled if self.options.dry_run else 0)
        )
        if report.unsettled and self._stopped_by is None:
            settles = (
                "the next `facesync sync` settles them from the end of the listing (or `facesync reconcile`)"
                if self._tail is not None
                else f"{self._why_no_tail}, so `facesync reconcile` settles them"
            )
            report.error = (
                f"{report.unsettled} upload(s) lost an answer and may be stored twice, or not at all: "
                + settles
            )
            exit_code = exit_code or EXIT_FAILED
        record.finish(report, exit_code)
        if self.options.dry_run:  # what the real run would cost: its sends, and what this one read
            report.plan = dry_run_plan(report.planned, report.requests, self.config, self.state)

    def _exit_code(self) -> int:
        if self._stopped_by is not None:
            return self._stopped_by.exit_code
        if self._interrupted:
            return 130
        if self.report.failed or self.report.scan_errors:
            return EXIT_FAILED
        return 0

    @property
    def ops(self) -> Operations:
        assert self._ops is not None, "SyncEngine.ops used outside run()"
        return self._ops
