"""The sync's removals: files gone from the source, and old versions of replaced images — deleted last.

Only after the uploads, only when the scan had no error and nothing stopped the run, and only within
the one max-delete guard; each batch of rows is marked ``deleting`` (durably) before its DELETE is
sent and dropped after, through the one delete path (:mod:`pipeline.engine.deletes`). Old ids of
replaced images are the tombstones the state keeps until their DELETE succeeds.
"""

from __future__ import annotations

import time
from dataclasses import replace

from pipeline.engine.deletes import BatchSize, Deleter, guard_deletes
from pipeline.engine.runs import RunContext, RunOptions
from pipeline.keys import ImageId
from pipeline.output.summary import SyncReport
from pipeline.sources import Source
from pipeline.state import Row, Status, Tombstone, Writer


class Removals:
    """The rows whose files are gone, collected during the march and deleted remotely at the end."""

    def __init__(self, ctx: RunContext, source: Source, options: RunOptions, report: SyncReport) -> None:
        self.ctx = ctx
        self.source = source
        self.options = options
        self.report = report
        #: Rows with an image whose file is gone (a rename takes its row out of here: engine/renames.py).
        self.rows: list[Row] = []
        #: Rows with no image (refused, skipped, never sent) whose file is gone: forgotten locally, but
        #: only when the removals go ahead — a refused run (an empty mount) keeps every row as it was.
        self.local: list[Row] = []

    def add(self, row: Row) -> None:
        """A row whose file the scan no longer finds."""
        (self.local if row.remote_id is None else self.rows).append(row)

    def _removed(self, writer: Writer, chunk: list[Row]) -> None:
        """A chunk's images deleted: their rows go, and ``-v`` names each (counted from the outcome)."""
        writer.submit(delete=[r.key for r in chunk])
        for r in chunk:
            self.report.tell("remove", r.key)

    async def run(self, writer: Writer) -> None:
        """Delete the removed files' images and the replaced images' old versions, behind the guard."""
        config, reporter, client = self.ctx.config, self.ctx.reporter, self.ctx.client
        removals = self.rows
        if self.source.scan_errors:
            if removals or self.local:
                errors = len(self.source.scan_errors)
                reporter.note(f"not removing {len(removals)} image(s): the scan hit {errors} error(s)")
            return
        if removals:  # the guard counts the synced rows: a run that removes nothing does not count them
            guard_deletes(
                len(removals),
                threshold=config.limits.max_delete,
                synced=self.ctx.state.counts()[Status.SYNCED.value]
                + sum(1 for r in removals if r.status is not Status.SYNCED),
                override=self.options.max_delete,
                preview=((r.key, f"remote id {r.remote_id}") for r in removals),
                verb="would remove",
                reporter=reporter,
            )
        if self.options.dry_run:
            for r in removals:
                reporter.event("would remove", r.key, f"remote id {r.remote_id}")
                self.report.did("remove", r.key)
            return
        if self.local:
            writer.submit(delete=[r.key for r in self.local])

        async def mark_deleting(chunk: list[Row]) -> None:
            now = time.time()
            await writer.commit(put=[replace(r, status=Status.DELETING, updated_at=now) for r in chunk])

        size = BatchSize(config.api.delete_batch, self.ctx.state)
        files = Deleter[Row](
            client,
            size,
            reporter,
            id_of=_remote_id,
            before=mark_deleting,
            after=lambda chunk: self._removed(writer, chunk),
            label=lambda chunk: chunk[0].key,
        )
        outcome = await files.delete(removals)
        self.report.removed += outcome.deleted
        self.report.failed += outcome.failed
        old_versions = Deleter[Tombstone](
            client,
            size,
            reporter,
            id_of=lambda t: t.remote_id,
            after=lambda chunk: writer.submit(tombstones_done=[t.remote_id for t in chunk]),
            label=lambda chunk: "(replaced images)",
        )
        self.report.failed += (await old_versions.delete(self.ctx.state.tombstones())).failed


def _remote_id(row: Row) -> ImageId:
    assert row.remote_id is not None, "only rows with a remote id are removed remotely"
    return row.remote_id
