"""Reconcile: list the collection, diff it against the state, adopt / delete / re-queue — safely.

List first, act after: the whole listing streams into the state's ``listing`` table
(:mod:`pipeline.engine.lister`; shift-safe paging, :mod:`pipeline.api.paging`) before anything is
changed; a listing that fails part-way is not a listing and nothing is done. With ``--adopt`` the state
is first rebuilt from it (:mod:`pipeline.engine.adopt`). Then the diff (:mod:`pipeline.engine.diff`, in
SQL) and, behind two guards — a listing empty or lacking more than ``max_missing`` of the synced
images; more orphans to delete than ``max_delete`` — the changes: adopt, re-queue, delete in batches.
Memory stays flat however large the collection: pages, chunks of rows and of ids, never the whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.engine.deletes import (
    PREVIEW,
    BatchSize,
    Deleter,
    WouldDelete,
    guard_deletes,
)
from pipeline.engine.diff import DUPLICATE, ORPHAN, Diff, classify
from pipeline.engine.lister import Lister
from pipeline.engine.runs import RunContext, RunOptions, RunRecord
from pipeline.errors import (
    EXIT_DEADLINE,
    EXIT_FAILED,
    Fatal,
    GuardRefused,
    PipelineError,
    QuotaSpent,
    Rejected,
    Retryable,
)
from pipeline.keys import ImageId, shard_of
from pipeline.output.summary import ReconcileReport
from pipeline.output.text import would_delete_detail
from pipeline.state import Status

if TYPE_CHECKING:
    from pipeline.sources import Source

#: How many ids a dry run or a refusal names on stderr, before the count and how to list them all.
FIRST_FEW = 10


@dataclass(frozen=True)
class ReconcileOptions(RunOptions):
    """How one ``reconcile`` runs. With ``shard``, only images whose ``facesync_key`` falls in the
    shard are considered; images with no key (added by hand) belong to shard 0."""

    #: Act even on an empty or far-too-small listing (the max_missing guard).
    force: bool = False
    #: Delete an orphan only if a previous reconcile saw it as an orphan at least this long ago.
    min_orphan_age: float | None = None
    #: First rebuild the state from the collection (engine/adopt.py): a lost state, a new host.
    adopt: bool = False
    #: A dry run: write every image it would delete to this file, one JSON object a line.
    would_delete_file: Path | None = None


class Reconciler:
    """One ``reconcile`` run: list into SQL, (adopt,) diff, guard, then adopt / re-queue / delete."""

    def __init__(
        self, ctx: RunContext, options: ReconcileOptions | None = None, source: Source | None = None
    ) -> None:
        self.ctx = ctx
        self.source = source
        self.config, self.state, self.client, self.reporter = ctx.config, ctx.state, ctx.client, ctx.reporter
        self.options = options or ReconcileOptions()
        self.report = ReconcileReport(dry_run=self.options.dry_run)
        self.listing = self.state.listing()

    async def run(self) -> ReconcileReport:
        """List, diff, guard, act; return the report (exit 1 when any delete failed)."""
        opts = self.options
        record = RunRecord(self.ctx, "reconcile", dry_run=opts.dry_run, max_duration=opts.max_duration)
        try:
            record.require_listing()  # a budget too small for the listing refuses up front
            has_metadata = await self._list()
            if self.options.adopt:
                await self._adopt()
            d = classify(self.listing, has_metadata=has_metadata)
            self._guard(d)
            await self._act(d)
        except (Fatal, QuotaSpent, GuardRefused) as exc:
            self._fail(exc, exc.exit_code)
        except (Retryable, Rejected) as exc:
            self._fail(exc, EXIT_FAILED)
        finally:
            self.listing.close()
            self.reporter.close()
        report = self.report
        report.deadline_hit, report.budget_left = report.exit_code == EXIT_DEADLINE, record.budget.left
        record.finish(report, report.exit_code or (EXIT_FAILED if report.failed else 0))
        return report

    def _fail(self, exc: PipelineError, code: int) -> None:
        self.report.error = str(exc)
        self.report.exit_code = code

    # -- the listing, into SQL ---------------------------------------------------------------------------
    async def _list(self) -> bool:
        """The whole listing into the ``listing`` table (:class:`~pipeline.engine.lister.Lister`), or an
        error (nothing is then changed). Returns whether any image showed metadata."""
        opts = self.options
        lister = Lister(
            self.client,
            self.listing,
            self.reporter,
            page_size=self.config.api.page_size,
            shard=opts.shard,
            adopt=opts.adopt,
            dry_run=opts.dry_run,
        )
        self.report.listed, has_metadata = await lister.run()
        return has_metadata

    async def _adopt(self) -> None:
        """Restore the rows the listing stands for (in a dry run, into a TEMP copy of the rows)."""
        from pipeline.engine.adopt import Adopter  # only --adopt: a nightly reconcile does not load it

        assert self.source is not None, "reconcile --adopt needs the source"
        if self.options.dry_run:
            self.listing.shadow_items()
        self.listing.index_keys()
        found = await Adopter(self.ctx, self.source, self.options.shard, self.listing).restore()
        self.report.restored = found.restored
        self.report.restored_changed = found.changed
        self.reporter.note(
            f"adopt: {found.restored} image(s) restored as the state of their files ({found.changed} out "
            f"of date, for the next sync to replace; {found.downloaded} checked by downloading)"
        )

    # -- guards and acts ---------------------------------------------------------------------------------
    def _guard(self, d: Diff) -> None:
        report, opts, limits = self.report, self.options, self.config.limits
        report.orphans = d.orphans
        if d.synced and not opts.force:
            allowed = limits.max_missing.limit(d.synced)
            if report.listed == 0 or d.missing > allowed:
                raise GuardRefused(
                    f"the listing has {report.listed} image(s) and lacks {d.missing} of {d.synced} synced "
                    f"(limits.max_missing {limits.max_missing} = {allowed}): refusing to re-queue or delete "
                    "anything; if the collection really was emptied, rerun with --force"
                )
        # Duplicates are our own superseded copies (their token or key is held by the state): the
        # guard is against deleting what the state does not account for, so only orphans count.
        try:
            guard_deletes(
                d.delete_orphans,
                threshold=limits.max_delete,
                synced=d.synced,
                listed=report.listed,
                override=opts.max_delete,
                what="orphan(s)",
                advice=self._all_listed(),
                preview=self._preview(),
                reporter=self.reporter,
                first=FIRST_FEW,
            )
        except GuardRefused:
            if opts.dry_run:  # what the run would delete were it allowed: counted, and listed to the file
                self._would_delete(d)
            raise

    def _preview(self) -> Iterator[tuple[str, str]]:
        """The orphans a refusal names first, each with its file (and, in a dry run, url and metadata)."""
        for i, key, kind, url, meta in self.listing.doomed_listed([ORPHAN]):
            yield str(i), would_delete_detail(kind, key, url, json.loads(meta) if meta else None)

    def _all_listed(self) -> str:
        """Where the user finds every image a run would delete: the dry run's list file, or the command
        that writes one (the same config and shard)."""
        import shlex

        if self.options.dry_run and self.options.would_delete_file is not None:
            return f"Every one is listed in {self.options.would_delete_file}"
        words = ["facesync"]
        if self.config.origin is not None:
            words += ["--config", str(self.config.origin)]
        if self.options.shard is not None:
            words += ["--shard", f"{self.options.shard[0]}/{self.options.shard[1]}"]
        words += ["reconcile", "--dry-run", "--would-delete-file", "would-delete.ndjson"]
        return f"List every one with `{shlex.join(words)}`"

    async def _act(self, d: Diff) -> None:
        report, now, age = self.report, time.time(), self.options.min_orphan_age
        if age is not None:
            report.deferred = self.listing.defer_young(now, age, record=not self.options.dry_run)
        report.adopted = len(d.adopt)
        report.missing_requeued = d.missing
        report.uploading_requeued = len(d.requeue_uploading)
        if self.options.dry_run:
            self._tell_dry_run(d)
            return
        if d.missing:  # the same query again otherwise: a nightly run's listing lacks nothing
            self.listing.requeue_missing()
        requeue = [
            replace(r, status=Status.PENDING, message="re-queued by reconcile") for r in d.requeue_uploading
        ]
        self.state.apply(
            put=[replace(r, updated_at=now) for r in d.adopt + requeue],
            delete=d.done_deleting,
            tombstones_add=d.superseded,
            tombstones_done=d.done_tombstones,
        )
        await self._delete(d)
        self._settle(listed_at=now)

    def _settle(self, *, listed_at: float) -> None:
        """Every upload left unsettled before the listing is settled by it once all its deletes are done
        (nothing failed, no orphan deferred: a duplicate may be among them); with ``--shard``, those
        of the shard's keys."""
        if self.report.failed or self.report.deferred:
            return
        shard = self.options.shard
        done = [
            u.token
            for u in self.state.unsettled()
            if u.since < listed_at and (shard is None or shard_of(u.key, shard[1]) == shard[0])
        ]
        if done:
            self.state.apply(unsettled_done=done)
            self.report.settled = len(done)

    async def _delete(self, d: Diff) -> None:
        """Orphans and duplicates, then what the state already meant to delete, batch by batch."""
        report = self.report

        def done(chunk: list[tuple[ImageId, str]]) -> None:
            # Each batch's outcome is recorded before the next is sent.
            known = [i for i, kind in chunk if kind == "known"]
            self.state.apply(tombstones_done=known)
            self.state.forget_deleting(known)
            report.duplicates_removed += sum(1 for _, kind in chunk if kind == DUPLICATE)

        deleter = Deleter[tuple[ImageId, str]](
            self.client,
            BatchSize(self.config.api.delete_batch, self.state),
            self.reporter,
            id_of=lambda pair: pair[0],
            after=done,
            label=lambda chunk: str(chunk[0][0]),
        )
        known = [(i, "known") for i in d.delete_known]
        for chunk in chain(self.listing.doomed([ORPHAN, DUPLICATE]), [known] if known else []):
            outcome = await deleter.delete(chunk)
            report.deleted += outcome.deleted
            report.failed += outcome.failed

    def _tell_dry_run(self, d: Diff) -> None:
        """A dry run says what the real run would do: the first :data:`PREVIEW` to adopt, the first
        :data:`FIRST_FEW` to delete, how many in all and where they are all listed."""
        say = self.reporter.event
        would = self._would_delete(d)
        for row in d.adopt[:PREVIEW]:
            say("would adopt", row.key, f"remote id {row.remote_id}")
        if d.missing:
            self.reporter.note(f"would re-queue {d.missing} synced file(s) whose image is missing")
        for image_id, key, reason, url, metadata in would.first[:FIRST_FEW]:
            meta = json.loads(metadata) if metadata is not None else None
            say("would delete", str(image_id), would_delete_detail(reason, key, url, meta))
        if would.count > FIRST_FEW:
            self.reporter.note(f"... and {would.count - FIRST_FEW} more to delete. {self._all_listed()}")
        elif would.count and self.options.would_delete_file is not None:
            self.reporter.note(self._all_listed())

    def _would_delete(self, d: Diff) -> WouldDelete:
        """What the run would delete, streamed from SQL once: counted, the first kept in the report,
        every one written to ``--would-delete-file`` when given (flat memory at any count)."""
        listing, file = self.listing, self.options.would_delete_file
        known = ((i, k, "pending_delete", u, m) for i in d.delete_known for k, u, m in [listing.listed(i)])
        would = WouldDelete(file)
        would.take(chain(listing.doomed_listed([ORPHAN, DUPLICATE]), known))
        report = self.report
        report.would_delete, report.would_delete_count = would.ids, would.count
        report.would_delete_items = would.items()
        report.would_delete_file = str(file) if file is not None else None
        return would
