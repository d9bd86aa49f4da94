"""Reconcile: list the collection, diff it against the state, adopt / delete / re-queue — safely.

Snapshot first, act after: the whole listing is taken (every page, de-duplicated) before anything
is changed; a listing that fails part-way is not a listing and nothing is done. Then, behind two
guards (an empty or far-too-small listing; more orphans to delete than ``max_delete``):

- an orphan (a remote id the state does not hold) carrying the token of an ``uploading`` row is
  **adopted** (the row becomes ``synced`` with that id); further copies of one token are duplicates,
  and so is the copy of an earlier attempt of a key the state holds under another token. Duplicates
  are provably ours and superseded, so they do not count against ``max_delete``;
- every other orphan, and every duplicate, is deleted in batches;
- a ``synced`` row whose id the remote lacks goes back to ``pending`` (the next sync uploads it);
- an ``uploading`` row that no orphan claims was never stored: back to ``pending``.

Where the listing carries no metadata, nothing can be adopted: ``uploading`` rows go back to
``pending`` and their orphans are deleted — still exactly one image per file after the next sync.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from itertools import chain

from pipeline.api import RemoteImage
from pipeline.config import KEY_FIELD
from pipeline.engine.adopt import Adopter
from pipeline.engine.deletes import BatchSize, Deleter, guard_deletes
from pipeline.engine.diff import Diff, diff, id_key, slim
from pipeline.engine.runs import RunContext, RunOptions, RunRecord
from pipeline.errors import (
    EXIT_FAILED,
    ConfigError,
    Fatal,
    GuardRefused,
    PipelineError,
    QuotaSpent,
    Rejected,
    Retryable,
)
from pipeline.keys import ImageId, shard_of
from pipeline.output.summary import ReconcileReport
from pipeline.sources import Source
from pipeline.state import Row, Status, encode_metadata


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


class Reconciler:
    """One ``reconcile`` run: snapshot the listing, diff it, guard, then adopt / re-queue / delete."""

    def __init__(
        self, ctx: RunContext, options: ReconcileOptions | None = None, source: Source | None = None
    ) -> None:
        self.ctx = ctx
        self.source = source
        self.config, self.state, self.client, self.reporter = ctx.config, ctx.state, ctx.client, ctx.reporter
        self.options = options or ReconcileOptions()
        self.report = ReconcileReport(dry_run=self.options.dry_run)

    async def run(self) -> ReconcileReport:
        """Snapshot, diff, guard, act; return the report (exit 1 when any delete failed)."""
        record = RunRecord(self.ctx, "reconcile", dry_run=self.options.dry_run)
        try:
            listing = await self._snapshot()
            restored = await self._adopt(listing) if self.options.adopt else []
            rows = chain(self.state.iter_rows(), restored)  # written already, unless a dry run
            d = diff(listing, rows, [t.remote_id for t in self.state.tombstones()])
            self._guard(d)
            await self._act(d)
        except (Fatal, QuotaSpent, GuardRefused) as exc:
            self._fail(exc, exc.exit_code)
        except (Retryable, Rejected) as exc:
            self._fail(exc, EXIT_FAILED)
        finally:
            self.reporter.close()
        report = self.report
        record.finish(report, report.exit_code or (EXIT_FAILED if report.failed else 0))
        return report

    async def _adopt(self, listing: list[RemoteImage]) -> list[Row]:
        """Restore the rows the listing stands for; in a dry run, only return them (for the diff)."""
        assert self.source is not None, "reconcile --adopt needs the source"
        found = await Adopter(self.ctx, self.source, self.options.shard).restore(listing)
        self.report.restored = len(found.rows)
        self.report.restored_changed = found.changed
        self.reporter.note(
            f"adopt: {len(found.rows)} image(s) restored as the state of their files ({found.changed} out "
            f"of date, for the next sync to replace; {found.downloaded} checked by downloading)"
        )
        if self.options.dry_run:
            return found.rows
        self.state.apply(put=found.rows)
        return []

    def _fail(self, exc: PipelineError, code: int) -> None:
        self.report.error = str(exc)
        self.report.exit_code = code

    async def _snapshot(self) -> list[RemoteImage]:
        """The whole listing, or an error: a partial listing is never acted on.

        Only what the diff needs is kept per image (its id, and the token and key from its metadata);
        the full listing goes to the snapshot table as compact, already-encoded rows, in one
        transaction once the listing is complete.
        """
        listing: list[RemoteImage] = []
        stored: list[tuple[ImageId, str | None, str | None]] = []
        keep = not self.options.dry_run
        try:
            async for image in self.client.iter_images(self.config.api.page_size):
                listing.append(slim(image, whole=self.options.adopt))
                if keep:
                    meta = image.metadata
                    stored.append((image.id, image.url, None if meta is None else encode_metadata(meta)))
        except (Retryable, Rejected) as exc:
            raise Retryable(
                f"listing failed after {len(listing)} image(s): {exc}; nothing was deleted or re-queued",
                sent=True,
            ) from None
        if self.options.shard is not None:
            mask = self._in_shard(listing, self.options.shard)
            listing = [image for image, mine in zip(listing, mask, strict=True) if mine]
            stored = [row for row, mine in zip(stored, mask, strict=False) if mine]
        self.report.listed = len(listing)
        self.reporter.note(f"listed {len(listing)} remote image(s)")
        if keep:
            self.state.replace_snapshot(stored)
        return listing

    @staticmethod
    def _in_shard(listing: list[RemoteImage], shard: tuple[int, int]) -> list[bool]:
        """Which images this shard answers for: decided by the key in each image's metadata, so a
        listing without metadata cannot be split (a usage error, exit 2)."""
        if listing and all(image.metadata is None for image in listing):
            raise ConfigError(
                "reconcile --shard needs a listing that shows metadata (the service's does not): "
                "run reconcile without --shard"
            )
        index, count = shard
        mask = []
        for image in listing:
            key = image.metadata.get(KEY_FIELD) if isinstance(image.metadata, dict) else None
            mask.append((shard_of(key, count) if isinstance(key, str) else 0) == index)
        return mask

    def _guard(self, d: Diff) -> None:
        report, opts, limits = self.report, self.options, self.config.limits
        report.orphans = d.orphans
        missing = len(d.requeue_missing)
        if d.synced and not opts.force:
            allowed = limits.max_missing.limit(d.synced)
            if report.listed == 0 or missing > allowed:
                raise GuardRefused(
                    f"the listing has {report.listed} image(s) and lacks {missing} of {d.synced} synced "
                    f"(limits.max_missing {limits.max_missing} = {allowed}): refusing to re-queue or delete "
                    "anything; if the collection really was emptied, rerun with --force"
                )
        # Duplicates are our own superseded copies (their token or key is held by the state): the
        # guard is against deleting what the state does not account for, so only orphans count.
        guard_deletes(
            len(d.delete_orphans),
            threshold=limits.max_delete,
            synced=d.synced,
            listed=report.listed,
            override=opts.max_delete,
            what="orphan(s)",
            advice="Check with --dry-run",
            preview=((str(i), "orphan") for i in d.delete_orphans),
            reporter=self.reporter,
        )

    async def _act(self, d: Diff) -> None:
        report, now = self.report, time.time()
        orphans = self._old_enough(d.delete_orphans, now)
        to_delete = orphans + d.delete_duplicates + d.delete_known
        report.adopted = len(d.adopt)
        report.missing_requeued = len(d.requeue_missing)
        report.uploading_requeued = len(d.requeue_uploading)
        if self.options.dry_run:
            report.would_delete = to_delete
            for row in d.adopt:
                self.reporter.event("would adopt", row.key, f"remote id {row.remote_id}")
            for row in d.requeue_missing:
                self.reporter.event("would re-queue", row.key, f"remote id {row.remote_id} is missing")
            for image_id in to_delete:
                self.reporter.event("would delete", str(image_id), "not held by the state")
            return
        requeue = [
            replace(r, status=Status.PENDING, remote_id=None, token=None, message="re-queued by reconcile")
            for r in d.requeue_missing
        ] + [replace(r, status=Status.PENDING, message="re-queued by reconcile") for r in d.requeue_uploading]
        self.state.apply(
            put=[replace(r, updated_at=now) for r in d.adopt + requeue],
            delete=d.done_deleting,
            tombstones_done=d.done_tombstones,
        )
        duplicates = {id_key(i) for i in d.delete_duplicates}
        known = {id_key(i) for i in d.delete_known}

        def done(ids: list[ImageId]) -> None:
            # Each batch's outcome is recorded before the next is sent.
            done_known = [i for i in ids if id_key(i) in known]
            self.state.apply(tombstones_done=done_known)
            self.state.forget_deleting(done_known)
            report.duplicates_removed += sum(1 for i in ids if id_key(i) in duplicates)

        deleter = Deleter[ImageId](
            self.client,
            BatchSize(self.config.api.delete_batch, self.state),
            self.reporter,
            id_of=lambda i: i,
            after=done,
            label=lambda ids: str(ids[0]),
        )
        outcome = await deleter.delete(to_delete)
        report.deleted += outcome.deleted
        report.failed += outcome.failed

    def _old_enough(self, orphans: list[ImageId], now: float) -> list[ImageId]:
        """Two-pass mode: only orphans seen by an earlier reconcile at least ``min_orphan_age`` ago."""
        if self.options.min_orphan_age is None:
            return orphans
        seen = self.state.note_orphans(orphans, now, record=not self.options.dry_run)
        age = self.options.min_orphan_age
        ready = [i for i in orphans if id_key(i) in seen and now - seen[id_key(i)] >= age]
        self.report.deferred = len(orphans) - len(ready)
        return ready
