"""Work on an image already stored, without an upload: the metadata PUT an unchanged file needs when
what it should carry changed (a template field, its sidecar) or a renamed file needs (its new key),
and the retouch of a row whose stat alone changed. Recorded through the state writer and counted in
the report, like the uploads of :mod:`pipeline.engine.operations`, which uses it.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

from pipeline.engine.metadata import MetadataBuilder, reserved_in
from pipeline.engine.plan import Action, Planned
from pipeline.engine.runs import RunContext
from pipeline.engine.transform import read_limit
from pipeline.errors import QuotaSpent, Rejected, Retryable, ServiceFailing, Skipped
from pipeline.output.summary import SyncReport
from pipeline.sources import Source, SourceItem
from pipeline.state import Row, Writer


def new_token() -> str:
    """A fresh crash-safety token: it travels in the image's metadata and in the state row. 32 hex
    digits, as a uuid4's: the time in milliseconds (12), then 80 random bits (20) — so the tokens a run
    makes sort in the order it made them, and the state's token indexes (``items_token``, ``unsettled``)
    take each at their end instead of on a random page: about 10 µs less state write per upload
    (docs/performance.md). Nothing reads the time back; a token is only ever compared whole."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def refusal_code(exc: Rejected) -> str:
    """How a refusal is counted in the report: the service's status_code, else the HTTP status."""
    return str(exc.code) if exc.code is not None else f"http_{exc.http_status}"


class Retagger:
    """Metadata PUTs and retouches for one run: what a stored image should carry, and its sending."""

    def __init__(
        self, ctx: RunContext, source: Source, writer: Writer, report: SyncReport, *, dry_run: bool = False
    ) -> None:
        self.client, self.reporter = ctx.client, ctx.reporter
        self.source = source
        self.writer = writer
        self.report = report
        #: Count what would be sent, send nothing (the writer discards).
        self.dry_run = dry_run
        self.metadata = MetadataBuilder.for_config(ctx.config)
        self.read_limit = read_limit(ctx.config)

    def signature(self, item: SourceItem, row: Row) -> str:
        """What the item's metadata should be now, as a stamp comparable to ``row.meta_hash`` (no I/O)."""
        return self.metadata.signature(
            item.key, size=item.size, mtime_ns=item.mtime_ns, sha256=row.sha256, sidecar=item.sidecar
        )

    def retouch(self, p: Planned) -> Planned:
        """Only the stat changed (the ETag proves the content): record it — or, when the metadata
        depends on the stat (``{mtime}`` in the template), turn it into a metadata update."""
        assert p.item is not None and p.row is not None
        item, row = p.item, p.row
        if self.signature(item, row) != row.meta_hash:
            return Planned(Action.METADATA, p.key, item, row)
        moved = replace(row, size=item.size, mtime_ns=item.mtime_ns, etag=item.etag, updated_at=time.time())
        self.writer.submit(put=[moved])
        self.report.did("retouch", item.key)
        return Planned(Action.SKIP, p.key, item, moved)

    async def sidecar(self, item: SourceItem) -> dict[str, Any] | None:
        """The item's JSON sidecar, if it has one; an unusable one is reported and left out."""
        if item.sidecar is None:
            return None
        try:
            sidecar = await self.source.read_sidecar(item)
        except ValueError as exc:
            self.reporter.event("sidecar ignored", item.key, str(exc))
            return None
        dropped = reserved_in(sidecar)
        if dropped:
            self.reporter.event("sidecar keys ignored", item.key, f"reserved: {', '.join(dropped)}")
        return sidecar

    async def update_metadata(self, p: Planned, *, renamed_from: str | None = None) -> None:
        """One PUT of the metadata an unchanged (or renamed: from the key ``renamed_from``) image should
        now carry; no upload."""
        assert p.item is not None and p.row is not None
        item, row = p.item, p.row
        assert row.remote_id is not None
        sidecar = await self.sidecar(item)
        data = None
        if self.metadata.reads_file:  # the template names a photo field: read from the file itself
            try:
                data = await self.source.read(item, self.read_limit)
            except (Skipped, Retryable) as exc:  # the next run tries again
                self.report.failed += 1
                self.reporter.event("failed", item.key, f"metadata update: cannot read the file: {exc}")
                return
        token = row.token or new_token()
        metadata = self.metadata.build(
            item.key,
            token=token,
            size=item.size,
            mtime_ns=item.mtime_ns,
            sha256=row.sha256,
            sidecar=sidecar,
            transform=row.transform,
            data=data,
        )
        done = replace(
            row,
            size=item.size,
            mtime_ns=item.mtime_ns,
            etag=item.etag,
            token=token,
            meta_hash=self.signature(item, row),
            updated_at=time.time(),
        )
        if self.dry_run:
            self._count_metadata(item.key, renamed_from)
            return
        try:
            await self.client.update_metadata(row.remote_id, metadata)
        except Rejected as exc:
            # Refused for good (say a sidecar value the service will not take): recorded, not
            # retried every night; a later change of the metadata tries again.
            message = f"metadata update refused: {exc}"
            self.writer.submit(put=[replace(done, code=exc.code, message=message)])
            self.report.rejected[refusal_code(exc)] += 1
            self.reporter.event("rejected", item.key, message)
            return
        except QuotaSpent:
            self.report.not_tried += 1
            raise
        except Retryable as exc:
            if isinstance(exc, ServiceFailing):
                self.report.not_tried += not exc.sent
                raise
            self.report.failed += 1
            self.reporter.event("failed", item.key, f"metadata update failed: {exc}")
            return
        self.writer.submit(put=[replace(done, code=None, message=None)])
        self._count_metadata(item.key, renamed_from)

    def _count_metadata(self, key: str, renamed_from: str | None) -> None:
        if renamed_from is not None:
            self.report.did("rename", key, old=renamed_from)
        else:
            self.report.did("metadata", key)
