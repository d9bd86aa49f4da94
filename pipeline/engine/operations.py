"""Per-item work of a sync: upload one file, update one image's metadata, retouch one row.

Each operation follows the crash-safety protocol (docs/architecture.md): an add's intent — the row
marked ``uploading`` with a fresh token that also travels in the image's metadata — is durable before
the request is sent; its outcome is recorded after. Refusals (Rejected, Skipped) and failures
(Retryable) are recorded on the row and counted in the report; what stops the run (Fatal,
QuotaSpent) is raised to the engine, with the row put back as it was. The add itself, once its intent
is durable, is :mod:`pipeline.engine.add`; the work on an image already stored, :mod:`pipeline.engine.retag`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from pipeline.config import KEY_FIELD, TOKEN_FIELD, TRANSFORM_FIELD
from pipeline.engine.add import Adder
from pipeline.engine.collection import FirstUploadCheck
from pipeline.engine.images import check_complete, sha256_hex, sniff
from pipeline.engine.plan import Planned
from pipeline.engine.restore import Restorer, restored_image
from pipeline.engine.retag import Retagger, new_token
from pipeline.engine.runs import RunContext
from pipeline.engine.transform import Transformer
from pipeline.errors import (
    Retryable,
    ServiceFailing,
    Skipped,
)
from pipeline.output.summary import SyncReport
from pipeline.sources import NOT_A_FILE, NOT_AN_IMAGE, Source
from pipeline.state import Row, Status, Tombstone, Unsettled, Writer


def row_after(p: Planned, status: Status, **changes: Any) -> Row:
    """The row for ``p`` after this run's attempt, keeping what the old row knew (its remote id)."""
    assert p.item is not None
    item, old = p.item, p.row
    values: dict[str, Any] = {"key": item.key, "size": item.size, "mtime_ns": item.mtime_ns, "status": status}
    values["etag"] = item.etag
    if old is not None:
        values.update(
            remote_id=old.remote_id,
            token=old.token,
            sha256=old.sha256,
            meta_hash=old.meta_hash,
            attempts=old.attempts,
            transform=old.transform,
        )
    values.update(changes)
    return Row(**values)  # one construction: ``dataclasses.replace`` on top cost as much again


class Operations:
    """The work one planned item needs, recorded through the state writer and counted in the report."""

    def __init__(
        self,
        ctx: RunContext,
        source: Source,
        writer: Writer,
        report: SyncReport,
        first_upload: FirstUploadCheck,
        transformer: Transformer,
        *,
        dry_run: bool = False,
        keep_unsettled: bool = False,
    ) -> None:
        self.config, self.state, self.reporter = ctx.config, ctx.state, ctx.reporter
        self.source = source
        self.writer = writer
        self.report = report
        self.first_upload = first_upload
        #: What is sent for each file (``transform:``), and the settings signature rows record.
        self.transformer = transformer
        #: Decide every item exactly as a real run does (read, check, hash, renames), but send nothing:
        #: the writer discards, and what would be sent is counted as if it had been.
        self.dry_run = dry_run
        #: Work on an image already stored: metadata PUTs and retouches (engine/retag.py).
        self.retag = Retagger(ctx, source, writer, report, dry_run=dry_run)
        self.metadata = self.retag.metadata
        #: The add itself, once its intent is durable: sent, and how it ended recorded (engine/add.py).
        self.adder = Adder(ctx, writer, report, transformer, keep_unsettled=keep_unsettled)
        self._any_synced: bool | None = None

    def synced_before(self) -> bool:
        """Whether the state held a synced row when the march began (``engine/sync.py`` asks first) or
        the first file was hashed. Without one no new file can be a moved one (a move pairs it with a
        synced row removed this run), so a first sync asks the state nothing per file (and keeps no
        content index meanwhile); a copy of a file sent this run is uploaded either way."""
        if self._any_synced is None:
            self._any_synced = self.state.has_synced()
        return self._any_synced

    async def upload(self, p: Planned, *, defer_copies: bool = False) -> str | None:
        """Read, check and hash the file, then add it (or settle it without an upload).

        Returns the content hash instead of uploading when ``defer_copies`` and the state already
        holds that content under another key: a rename or a copy, decided once all removals are known.
        """
        assert p.item is not None
        item, row, report, now = p.item, p.row, self.report, time.time()
        transform = self.transformer.signature
        read = await self._read(p, now)
        if read is None:
            return None
        data, kind = read
        sha = sha256_hex(data)
        if (
            row is not None
            and row.status is Status.SYNCED
            and row.sha256 == sha
            and row.remote_id is not None
            and row.transform == transform
        ):
            if self.retag.signature(item, row) != row.meta_hash:  # e.g. {mtime} in the template
                await self.retag.update_metadata(p)
            elif (item.size, item.mtime_ns, item.etag) == (row.size, row.mtime_ns, row.etag):
                report.verified += 1  # `sync --checksum`: read, hashed, the same as sent; nothing to write
            else:
                self.writer.submit(put=[row_after(p, Status.SYNCED, sha256=sha, updated_at=now)])
                report.did("retouch", item.key)
            return None
        if row is None and defer_copies and self.synced_before() and self.state.synced_with_sha(sha):
            return sha
        payload = await self._prepare(p, data, kind, now)
        if payload is None:
            return None
        reuse = row is not None and row.status is Status.UPLOADING and row.sha256 == sha and row.token
        token = row.token if reuse and row is not None and row.token else new_token()
        sidecar = await self.retag.sidecar(item)
        metadata = self.metadata.build(
            item.key,
            token=token,
            size=item.size,
            mtime_ns=item.mtime_ns,
            sha256=sha,
            sidecar=sidecar,
            transform=transform,
            data=data,
        )
        attempts = (row.attempts if row is not None else 0) + 1
        meta_hash = self.metadata.signature(
            item.key, size=item.size, mtime_ns=item.mtime_ns, sha256=sha, sidecar=item.sidecar
        )  # what ``retag.signature`` gives for the intent, which holds ``sha``
        intent = row_after(
            p,
            Status.UPLOADING,
            sha256=sha,
            token=token,
            attempts=attempts,
            updated_at=now,
            meta_hash=meta_hash,
            transform=transform,
        )
        try:
            await self.first_upload.before_upload()
        except ServiceFailing:  # the listing read before the first add failed: this file is not tried
            report.not_tried += 1
            raise
        restorer = self.first_upload.restorer
        if restorer is not None and await self._restore(p, restorer, sha, now):
            return None
        if self.dry_run:
            self.adder.count_sent(p, transformed=payload is not data)
            return None
        # The intent and its unsettled entry go in together: from here until a clean answer (or a
        # listing) says otherwise, the collection may hold any number of copies with this token.
        await self.writer.commit(put=[intent], unsettled_add=[Unsettled(token, item.key, now)])
        await self.adder.add(p, intent, (data, kind, payload), metadata, now, reused=bool(reuse))
        return None

    async def _restore(self, p: Planned, restorer: Restorer, sha: str, now: float) -> bool:
        """Images for this file that the state never issued (it is older than its collection: a backup):
        the one holding the file as it is becomes the row again (True: nothing to send) — under this
        key, or under the key the file had when a newer state sent it (moved since: one PUT of the new
        key); the others of this key are older versions, deleted at the run's end as a replace deletes
        its old image."""
        assert p.item is not None
        item, transform = p.item, self.transformer.signature
        copies = restorer.unknown_copies(item.key)
        match = restored_image(copies, sha)
        if match is not None and (match.metadata or {}).get(TRANSFORM_FIELD) != transform:
            match = None  # sent under other transform settings: this run sends it again
        moved = match is None and (match := restorer.moved_here(sha, transform)) is not None
        if match is None and not copies:
            return False
        old = [c.id for c in copies if c is not match]
        restorer.take([*old, *([match.id] if match is not None else [])])
        if match is not None and p.row is not None and p.row.remote_id is not None:
            old.append(p.row.remote_id)
        tombs = [Tombstone(i, item.key, "replaced", now) for i in old if match is None or i != match.id]
        if match is None:
            if not self.dry_run:
                self.writer.submit(tombstones_add=tombs)
            return False
        token = (match.metadata or {}).get(TOKEN_FIELD)
        row = row_after(
            p,
            Status.SYNCED,
            remote_id=match.id,
            token=token if isinstance(token, str) else None,
            sha256=sha,
            attempts=0,
            code=None,
            message=None,
            transform=transform,
            updated_at=now,
        )
        self.report.restored += 1
        if moved:  # the image names the file's old key: the row is written once the PUT says so
            was = (match.metadata or {}).get(KEY_FIELD)
            self.reporter.event(
                "restored", item.key, f"remote id {match.id}, sent by a newer state as {was}: renamed"
            )
            if not self.dry_run:
                self.writer.submit(tombstones_add=tombs)
            await self.retag.update_metadata(
                replace(p, row=replace(row, meta_hash=None)), renamed_from=str(was) if was else item.key
            )
            return True
        row = replace(row, meta_hash=self.retag.signature(item, row))
        if not self.dry_run:
            self.writer.submit(put=[row], tombstones_add=tombs)
        self.reporter.event(
            "restored", item.key, f"remote id {match.id}, sent by a newer state than this one"
        )
        return True

    async def _read(self, p: Planned, now: float) -> tuple[bytes, str] | None:
        """The file's bytes and format, or None once a local refusal or a failed read is recorded."""
        assert p.item is not None
        item = p.item
        try:
            if item.special is not None:
                raise Skipped(NOT_A_FILE, item.special)
            data = await self.source.read(item, self.transformer.read_limit)
            kind = sniff(data)
            if kind is None:
                raise Skipped(NOT_AN_IMAGE, "no known image signature in its first bytes")
            check_complete(kind, data)
        except Skipped as skip:
            self._skipped(p, skip, now)
            return None
        except Retryable as exc:  # the source itself failed (an S3 5xx after its retries): next run
            message = f"read failed: {exc}"
            self.writer.submit(put=[row_after(p, Status.FAILED, message=message, updated_at=now)])
            self.report.failed += 1
            self.reporter.event("failed", item.key, message)
            return None
        return data, kind

    async def _prepare(self, p: Planned, data: bytes, kind: str, now: float) -> bytes | None:
        """What is sent for the file (``transform:``), or None once a local refusal is recorded."""
        try:
            return await self.transformer.prepare(data, kind)
        except Skipped as skip:
            self._skipped(p, skip, now)
            return None

    def _skipped(self, p: Planned, skip: Skipped, now: float) -> None:
        """A local refusal, recorded under the transform settings it was made with (a change retries it)."""
        assert p.item is not None
        transform = self.transformer.signature
        skipped = row_after(p, Status.SKIPPED, message=str(skip), updated_at=now, transform=transform)
        self.writer.submit(put=[skipped])
        self.report.skipped[skip.reason] += 1
        self.reporter.event("skipped", p.item.key, str(skip))
