"""The sync engine: scan → plan → upload workers → state writer, then the delete batcher.

``SyncEngine.run`` reads top to bottom: march the source against the state (in a thread: the scan
and the state cursor are blocking), feed actionable pairs to a fixed pool of upload workers, then —
only when the scan was complete and nothing fatal happened — send removals in batches behind the
max-delete guard. Two stop scopes: ``_stop_intake`` (quota spent, bad credentials, Ctrl-C) stops
feeding work and lets requests in flight finish and be recorded; cancelling the run stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pybase64

from pipeline.api import FaceSearchClient, Limiter
from pipeline.config import Config
from pipeline.engine.images import sha256_hex, sniff
from pipeline.engine.metadata import MetadataBuilder, reserved_in
from pipeline.engine.plan import Action, Planned, plan
from pipeline.errors import (
    AuthError,
    Fatal,
    GuardRefused,
    PipelineError,
    QuotaSpent,
    Rejected,
    Retryable,
    Skipped,
)
from pipeline.keys import shard_of
from pipeline.output.report import Reporter, SyncReport
from pipeline.sources import NOT_A_FILE, NOT_AN_IMAGE, Source, SourceItem
from pipeline.state import Row, State, Status, Tombstone
from pipeline.state.writer import StateWriter

#: Planned pairs handed from the march thread to the loop in chunks (fewer thread hops).
CHUNK = 128
_DONE = object()


@dataclass(frozen=True)
class SyncOptions:
    dry_run: bool = False
    #: Overrides ``limits.max_delete`` for one run (a count).
    max_delete: int | None = None
    #: (index, count): only keys whose stable hash falls in shard ``index`` of ``count``.
    shard: tuple[int, int] | None = None


def new_token() -> str:
    """A fresh crash-safety token: it travels in the image's metadata and in the state row."""
    return uuid.uuid4().hex


class SyncEngine:
    """One ``sync`` run over an open state, source and client."""

    def __init__(
        self,
        config: Config,
        state: State,
        source: Source,
        client: FaceSearchClient,
        reporter: Reporter,
        options: SyncOptions | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.source = source
        self.client = client
        self.reporter = reporter
        self.options = options or SyncOptions()
        self.metadata = MetadataBuilder(config.metadata)
        self.report = SyncReport(dry_run=self.options.dry_run)
        self._stop_intake = asyncio.Event()
        self._thread_stop = threading.Event()
        self._stopped_by: PipelineError | None = None
        #: An unexpected error in a worker: re-raised once everything in flight is recorded.
        self._crash: Exception | None = None
        self._interrupted = False
        self._removals: list[Row] = []
        #: New files whose content the state already holds: a rename, or a copy — decided once the
        #: removals are all known (after the march).
        self._deferred: list[tuple[Planned, str]] = []
        self._defer_renames = True
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max(2 * config.limits.concurrency, 8))
        self._writer: StateWriter | None = None

    # ------------------------------------------------------------------ the run, top to bottom
    async def run(self) -> SyncReport:
        started = time.monotonic()
        requests0, throttled0 = self.client.requests, self.client.throttled
        run_id = None if self.options.dry_run else self.state.start_run("sync")
        ticker = asyncio.create_task(self._watch_limiter(), name="limiter-watch")
        try:
            async with StateWriter(self.state) as writer:
                self._writer = writer
                await self._march_and_upload()
                if self._stopped_by is None and not self._interrupted and self._crash is None:
                    await self._remove(writer)
        except (Fatal, QuotaSpent, GuardRefused) as exc:
            self._stop(exc)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            self.reporter.close()
        if self._crash is not None:
            raise self._crash
        report = self.report
        report.scan_errors = list(self.source.scan_errors)
        report.requests = self.client.requests - requests0
        report.throttled = self.client.throttled - throttled0
        counts = self.state.counts()
        report.pending = sum(
            counts.get(s.value, 0) for s in (Status.PENDING, Status.UPLOADING, Status.FAILED)
        )
        report.elapsed = time.monotonic() - started
        report.exit_code = self._exit_code()
        if self._stopped_by is not None:
            report.error = str(self._stopped_by)
        if run_id is not None:
            self.state.finish_run(run_id, exit_code=report.exit_code, counts=report.to_json())
        return report

    def interrupt(self) -> None:
        """Ctrl-C: stop intake, let work in flight finish and be recorded."""
        self._interrupted = True
        self._stop_intake.set()
        self._thread_stop.set()

    def _stop(self, exc: PipelineError) -> None:
        if self._stopped_by is None or isinstance(exc, Fatal):
            self._stopped_by = exc
        self._stop_intake.set()
        self._thread_stop.set()

    def _exit_code(self) -> int:
        if self._stopped_by is not None:
            return self._stopped_by.exit_code
        if self._interrupted:
            return 130
        if self.report.failed or self.report.scan_errors:
            return 1
        return 0

    # ------------------------------------------------------------------ march: scan × state
    async def _march_and_upload(self) -> None:
        loop = asyncio.get_running_loop()
        bridge: asyncio.Queue[Any] = asyncio.Queue(maxsize=4)
        counts = {"unchanged": 0}
        thread = threading.Thread(
            target=self._march_thread, args=(loop, bridge, counts), name="facesync-march", daemon=True
        )
        workers = [
            asyncio.create_task(self._worker(), name=f"upload-{i}")
            for i in range(self.config.limits.concurrency)
        ]
        thread.start()
        finished = False
        try:
            while (chunk := await bridge.get()) is not _DONE:
                if isinstance(chunk, BaseException):
                    raise chunk
                if not self._stop_intake.is_set():
                    await self._dispatch(chunk)
            finished = True
        finally:
            if not finished:  # let the thread see the stop and hand its last chunk
                self._thread_stop.set()
                while (await bridge.get()) is not _DONE:
                    pass
            for _ in workers:
                await self._queue.put(_DONE)
            await asyncio.gather(*workers)
            await asyncio.to_thread(thread.join)
            self.report.unchanged += counts["unchanged"]
        if self._deferred and not self._stop_intake.is_set():
            await self._settle_deferred()

    def _march_thread(
        self, loop: asyncio.AbstractEventLoop, bridge: asyncio.Queue[Any], counts: dict[str, int]
    ) -> None:
        """Runs in a thread: pairs scan and state, hands only actionable pairs to the loop."""

        def hand(obj: object) -> None:
            asyncio.run_coroutine_threadsafe(bridge.put(obj), loop).result()

        rows = self.state.iter_rows()  # its own read connection: the state as it was when the run began
        try:
            chunk: list[Planned] = []
            for planned in plan(self._scan(), rows, meta=self._signature):
                if self._thread_stop.is_set():
                    break
                if planned.action is Action.SKIP:
                    counts["unchanged"] += 1
                    continue
                chunk.append(planned)
                if len(chunk) >= CHUNK:
                    hand(chunk)
                    chunk = []
            if chunk and not self._thread_stop.is_set():
                hand(chunk)
        except BaseException as exc:  # handed to the loop, raised there
            hand(exc)
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()
        hand(_DONE)

    def _scan(self) -> Iterator[SourceItem]:
        items = self.source.scan()
        if self.options.shard is None:
            return items
        index, count = self.options.shard
        return (item for item in items if shard_of(item.key, count) == index)

    def _signature(self, item: SourceItem, row: Row) -> str:
        return self.metadata.signature(
            item.key, size=item.size, mtime_ns=item.mtime_ns, sha256=row.sha256, sidecar=item.sidecar
        )

    async def _dispatch(self, chunk: list[Planned]) -> None:
        assert self._writer is not None
        report = self.report
        for p in chunk:
            if self._stop_intake.is_set():
                return
            if self.options.dry_run:
                if p.action is Action.REMOVE and (p.row is None or p.row.remote_id is None):
                    continue
                if p.item is not None and p.item.special is not None:
                    continue  # recorded as skipped by a real run; nothing would be sent
                report.planned[p.action.value] += 1
                if p.action is Action.REMOVE and p.row is not None:
                    self._removals.append(p.row)
                continue
            if p.action is Action.RETOUCH:
                p = self._retouch(p)
                if p.action is Action.SKIP:
                    continue
            if p.action in (Action.ADD, Action.REPLACE, Action.METADATA):
                self.reporter.planned(1)
                await self._queue.put(p)
            elif p.action is Action.REMOVE and p.row is not None:
                if p.row.remote_id is None:
                    self._writer.submit(delete=[p.row.key])
                else:
                    self._removals.append(p.row)

    def _retouch(self, p: Planned) -> Planned:
        """Only the stat changed (the ETag proves the content): record it — or, when the metadata
        depends on the stat (``{mtime}`` in the template), turn it into a metadata update."""
        assert self._writer is not None and p.item is not None and p.row is not None
        item, row = p.item, p.row
        if self._signature(item, row) != row.meta_hash:
            return Planned(Action.METADATA, p.key, item, row)
        moved = replace(row, size=item.size, mtime_ns=item.mtime_ns, etag=item.etag, updated_at=time.time())
        self._writer.submit(put=[moved])
        self.report.retouched += 1
        return Planned(Action.SKIP, p.key, item, moved)

    # ------------------------------------------------------------------ upload workers
    async def _worker(self) -> None:
        while (p := await self._queue.get()) is not _DONE:
            if self._stop_intake.is_set():
                continue
            try:
                if p.action is Action.METADATA:
                    await self._update_metadata(p)
                else:
                    await self._upload(p)
            except (Fatal, QuotaSpent) as exc:
                self._stop(exc)
            except Exception as exc:  # a bug: stop cleanly and show it, never leave the queue unconsumed
                if self._crash is None:
                    self._crash = exc
                self._stop_intake.set()
                self._thread_stop.set()
            finally:
                self.reporter.advance()

    async def _upload(self, p: Planned) -> None:
        assert self._writer is not None and p.item is not None
        writer, item, row, report = self._writer, p.item, p.row, self.report
        now = time.time()
        try:
            if item.special is not None:
                raise Skipped(NOT_A_FILE, item.special)
            data = await self.source.read(item, self.config.limits.max_image_bytes)
            if sniff(data) is None:
                raise Skipped(NOT_AN_IMAGE, "no known image signature in its first bytes")
        except Skipped as skip:
            writer.submit(put=[self._row(p, Status.SKIPPED, message=str(skip), updated_at=now)])
            report.skipped[skip.reason] += 1
            self.reporter.event("skipped", item.key, str(skip))
            return
        except Retryable as exc:  # the source itself failed (an S3 5xx after its retries): next run
            writer.submit(put=[self._row(p, Status.FAILED, message=f"read failed: {exc}", updated_at=now)])
            report.failed += 1
            self.reporter.event("failed", item.key, f"read failed: {exc}")
            return
        sha = sha256_hex(data)
        if (
            row is not None
            and row.status is Status.SYNCED
            and row.sha256 == sha
            and row.remote_id is not None
        ):
            if self._signature(item, row) != row.meta_hash:  # e.g. {mtime} in the template
                await self._update_metadata(p)
            else:
                writer.submit(put=[self._row(p, Status.SYNCED, sha256=sha, updated_at=now)])
                report.retouched += 1
            return
        if row is None and self._defer_renames and self.state.synced_with_sha(sha):
            self._deferred.append((p, sha))
            return
        reuse = row is not None and row.status is Status.UPLOADING and row.sha256 == sha and row.token
        token = row.token if reuse and row is not None and row.token else new_token()
        sidecar = await self._sidecar(item)
        metadata = self.metadata.build(
            item.key, token=token, size=item.size, mtime_ns=item.mtime_ns, sha256=sha, sidecar=sidecar
        )
        attempts = (row.attempts if row is not None else 0) + 1
        intent = self._row(p, Status.UPLOADING, sha256=sha, token=token, attempts=attempts, updated_at=now)
        intent = replace(intent, meta_hash=self._signature(item, intent))
        await writer.commit(put=[intent])
        try:
            remote = await self.client.add(pybase64.b64encode(data), metadata)
        except Rejected as exc:
            writer.submit(put=[replace(intent, status=Status.REJECTED, code=exc.code, message=str(exc))])
            report.rejected[str(exc.code) if exc.code is not None else f"http_{exc.http_status}"] += 1
            self.reporter.event("rejected", item.key, str(exc))
            return
        except Retryable as exc:
            # Sent and unanswered: it may be stored; the row stays `uploading` with its token for
            # reconcile (or the next run, same token) to settle. Never sent: plainly failed.
            status = Status.UPLOADING if exc.sent else Status.FAILED
            writer.submit(put=[replace(intent, status=status, message=str(exc))])
            report.failed += 1
            self.reporter.event("failed", item.key, str(exc))
            return
        except (AuthError, QuotaSpent):
            # The service refused the call (or the limiter never sent it): put the row back as it
            # was. Should an earlier attempt of this add have been stored, reconcile deletes that
            # orphan — the invariant holds either way.
            if row is None:
                writer.submit(delete=[item.key])
            else:
                writer.submit(put=[row])
            raise
        synced = replace(
            intent, status=Status.SYNCED, remote_id=remote.id, code=None, message=None, attempts=0
        )
        tombs = []
        if intent.remote_id is not None and intent.remote_id != remote.id:
            tombs.append(
                Tombstone(remote_id=intent.remote_id, key=item.key, reason="replaced", created_at=now)
            )
        writer.submit(put=[synced], tombstones_add=tombs)
        if row is not None and row.remote_id is not None:
            report.replaced += 1
        else:
            report.added += 1

    async def _sidecar(self, item: SourceItem) -> dict[str, Any] | None:
        """The item's JSON sidecar, if it has one; an unusable one is reported and left out."""
        read = getattr(self.source, "read_sidecar", None)
        if item.sidecar is None or read is None:
            return None
        try:
            sidecar: dict[str, Any] = await read(item)
        except ValueError as exc:
            self.reporter.event("sidecar ignored", item.key, str(exc))
            return None
        dropped = reserved_in(sidecar)
        if dropped:
            self.reporter.event("sidecar keys ignored", item.key, f"reserved: {', '.join(dropped)}")
        return sidecar

    async def _update_metadata(self, p: Planned, *, renamed: bool = False) -> None:
        """One PUT of the metadata an unchanged (or renamed) image should now carry; no upload."""
        assert self._writer is not None and p.item is not None and p.row is not None
        item, row = p.item, p.row
        assert row.remote_id is not None
        sidecar = await self._sidecar(item)
        token = row.token or new_token()
        metadata = self.metadata.build(
            item.key, token=token, size=item.size, mtime_ns=item.mtime_ns, sha256=row.sha256, sidecar=sidecar
        )
        done = replace(
            row,
            size=item.size,
            mtime_ns=item.mtime_ns,
            etag=item.etag,
            token=token,
            meta_hash=self._signature(item, row),
            updated_at=time.time(),
        )
        try:
            await self.client.update_metadata(row.remote_id, metadata)
        except Rejected as exc:
            # Refused for good (say a sidecar value the service will not take): recorded, not
            # retried every night; a later change of the metadata tries again.
            self._writer.submit(put=[replace(done, code=exc.code, message=f"metadata update refused: {exc}")])
            self.report.rejected[str(exc.code) if exc.code is not None else f"http_{exc.http_status}"] += 1
            self.reporter.event("rejected", item.key, f"metadata update refused: {exc}")
            return
        except Retryable as exc:
            self.report.failed += 1
            self.reporter.event("failed", item.key, f"metadata update failed: {exc}")
            return
        self._writer.submit(put=[replace(done, code=None, message=None)])
        if renamed:
            self.report.renamed += 1
        else:
            self.report.metadata_updated += 1

    async def _settle_deferred(self) -> None:
        """New files whose content the state held: a rename (one PUT, the old id kept, no delete, no
        upload) when a removed file had that content, else a copy, uploaded like any new file."""
        assert self._writer is not None
        gone: dict[str, list[Row]] = {}
        for r in self._removals:
            if r.status is Status.SYNCED and r.sha256 is not None:
                gone.setdefault(r.sha256, []).append(r)
        uploads: list[Planned] = []
        for p, sha in self._deferred:
            old = gone.get(sha)
            if not old or p.item is None:
                uploads.append(p)
                continue
            previous = old.pop()
            self._removals.remove(previous)
            moved = replace(previous, key=p.item.key, meta_hash=None, updated_at=time.time())
            # The move is durable before the PUT: a crash here loses no id, and the stale metadata
            # (meta_hash None) is sent by the next run.
            await self._writer.commit(put=[moved], delete=[previous.key])
            try:
                await self._update_metadata(Planned(Action.METADATA, moved.key, p.item, moved), renamed=True)
            except (Fatal, QuotaSpent) as exc:
                self._stop(exc)
                return
        self._deferred = []
        self._defer_renames = False
        await self._run_workers(uploads)

    async def _run_workers(self, items: list[Planned]) -> None:
        if not items:
            return
        workers = [asyncio.create_task(self._worker()) for _ in range(self.config.limits.concurrency)]
        for p in items:
            await self._queue.put(p)
        for _ in workers:
            await self._queue.put(_DONE)
        await asyncio.gather(*workers)

    @staticmethod
    def _row(p: Planned, status: Status, **changes: Any) -> Row:
        """The row for ``p`` after this run's attempt, keeping what the old row knew (its remote id)."""
        assert p.item is not None
        item, old = p.item, p.row
        base = Row(
            key=item.key,
            size=item.size,
            mtime_ns=item.mtime_ns,
            status=status,
            etag=item.etag,
            remote_id=old.remote_id if old is not None else None,
            token=old.token if old is not None else None,
            sha256=old.sha256 if old is not None else None,
            meta_hash=old.meta_hash if old is not None else None,
            attempts=old.attempts if old is not None else 0,
        )
        return replace(base, status=status, **changes)

    # ------------------------------------------------------------------ removals
    async def _remove(self, writer: StateWriter) -> None:
        removals = self._removals
        if self.source.scan_errors:
            if removals:
                errors = len(self.source.scan_errors)
                self.reporter.note(f"not removing {len(removals)} image(s): the scan hit {errors} error(s)")
            return
        self._guard(removals)
        if self.options.dry_run:
            for r in removals:
                self.reporter.event("would remove", r.key, f"remote id {r.remote_id}")
            return
        batch = self.config.api.delete_batch
        for start in range(0, len(removals), batch):
            chunk = removals[start : start + batch]
            await writer.commit(
                put=[replace(r, status=Status.DELETING, updated_at=time.time()) for r in chunk]
            )
            try:
                await self.client.delete_batch([r.remote_id for r in chunk if r.remote_id is not None])
            except (Retryable, Rejected) as exc:
                self.report.failed += len(chunk)
                self.reporter.event("failed", chunk[0].key, f"delete of {len(chunk)} image(s) failed: {exc}")
                continue
            writer.submit(delete=[r.key for r in chunk])
            self.report.removed += len(chunk)
        await self._delete_tombstones(writer)

    def _guard(self, removals: list[Row]) -> None:
        if not removals:
            return
        synced = self.state.counts().get(Status.SYNCED.value, 0) + sum(
            1 for r in removals if r.status is not Status.SYNCED
        )
        if self.options.max_delete is not None:
            limit, shown = self.options.max_delete, f"--max-delete {self.options.max_delete}"
        else:
            limit = self.config.limits.max_delete.limit(synced)
            shown = f"limits.max_delete {self.config.limits.max_delete} of {synced} synced = {limit}"
        if len(removals) > limit:
            for r in removals[:20]:
                self.reporter.event("would remove", r.key, f"remote id {r.remote_id}")
            if len(removals) > 20:
                self.reporter.note(f"... and {len(removals) - 20} more")
            raise GuardRefused(
                f"refusing to delete {len(removals)} image(s): over the max-delete guard ({shown}); "
                f"nothing was deleted. Check the source, then rerun with --max-delete {len(removals)}"
            )

    async def _delete_tombstones(self, writer: StateWriter) -> None:
        tombs = self.state.tombstones()
        batch = self.config.api.delete_batch
        for start in range(0, len(tombs), batch):
            ids = [t.remote_id for t in tombs[start : start + batch]]
            try:
                await self.client.delete_batch(ids)
            except (Retryable, Rejected) as exc:
                self.reporter.event(
                    "failed", "(replaced images)", f"delete of {len(ids)} old version(s): {exc}"
                )
                self.report.failed += len(ids)
                continue
            writer.submit(tombstones_done=ids)

    # ------------------------------------------------------------------ throttling shown
    async def _watch_limiter(self) -> None:
        limiter: Limiter | None = getattr(self.client, "limiter", None)
        if limiter is None:
            return
        last: tuple[bool, float | None] | None = None
        while True:
            now = (limiter.gate_closed, limiter.current_rate)
            if now != last:
                self.reporter.throttle(*now)
                last = now
            await asyncio.sleep(0.25)
