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
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from pipeline.api import FaceSearchClient, RemoteImage
from pipeline.config import KEY_FIELD, TOKEN_FIELD, Config
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
from pipeline.keys import ImageId, safe_key, shard_of
from pipeline.output.reporter import Reporter
from pipeline.output.summary import ReconcileReport
from pipeline.state import Row, State, Status, encode_metadata


@dataclass(frozen=True)
class ReconcileOptions:
    dry_run: bool = False
    max_delete: int | None = None
    force: bool = False
    #: Delete an orphan only if a previous reconcile saw it as an orphan at least this long ago.
    min_orphan_age: float | None = None
    #: (index, count): consider only images whose ``facesync_key`` falls in this shard; images with no
    #: key (added by hand) belong to shard 0.
    shard: tuple[int, int] | None = None


@dataclass
class Diff:
    """What reconcile will do, computed purely from the listing and the state rows."""

    adopt: list[Row] = field(default_factory=list)
    requeue_missing: list[Row] = field(default_factory=list)
    requeue_uploading: list[Row] = field(default_factory=list)
    delete_orphans: list[ImageId] = field(default_factory=list)
    delete_duplicates: list[ImageId] = field(default_factory=list)
    #: Ids the state already meant to delete (tombstones, ``deleting`` rows) that still exist.
    delete_known: list[ImageId] = field(default_factory=list)
    done_tombstones: list[ImageId] = field(default_factory=list)
    done_deleting: list[str] = field(default_factory=list)
    orphans: int = 0
    synced: int = 0


def _id_key(image_id: ImageId) -> str:
    """Compare ids across int/str renderings without losing the original value."""
    return str(image_id)


def _our_stale_copy(image: RemoteImage, token: str, keys: dict[str, str | None]) -> bool:
    """An earlier add attempt of a key the state still holds under a later token (or none).

    A crash or a lost answer can leave the copy of an attempt whose row has since moved on (the file
    changed, so the next attempt took a fresh token). The state holds the key, so the copy is provably
    ours and superseded: a duplicate, not a foreign orphan. An empty or lost state holds no key, so
    this never makes a whole collection deletable.
    """
    key = image.metadata.get(KEY_FIELD) if isinstance(image.metadata, dict) else None
    return isinstance(key, str) and key in keys and keys[key] != token


def diff(listing: Iterable[RemoteImage], rows: Iterable[Row], tombstones: Iterable[ImageId]) -> Diff:
    """The pure diff of a complete listing against the state (no I/O)."""
    remote: dict[str, RemoteImage] = {}
    for image in listing:
        remote.setdefault(_id_key(image.id), image)
    has_metadata = any(image.metadata is not None for image in remote.values())
    out = Diff()
    held: set[str] = set()
    uploading: dict[str, Row] = {}
    token_owner: dict[str, Row] = {}
    keys: dict[str, str | None] = {}  # the key as our metadata names it → the row's current token
    for row in rows:
        keys[safe_key(row.key)] = row.token
        if row.status is Status.DELETING:
            if row.remote_id is not None and _id_key(row.remote_id) in remote:
                out.delete_known.append(row.remote_id)
                held.add(_id_key(row.remote_id))
            else:
                out.done_deleting.append(row.key)
            continue
        if row.status is Status.UPLOADING:
            if row.token:
                uploading[row.token] = row
            if row.remote_id is not None:  # a replace in flight: the old id is still ours
                held.add(_id_key(row.remote_id))
            continue
        if row.remote_id is None:
            continue
        held.add(_id_key(row.remote_id))
        if row.token:
            token_owner[row.token] = row
        if row.status is Status.SYNCED:
            out.synced += 1
            if _id_key(row.remote_id) not in remote:
                out.requeue_missing.append(row)
    for tomb in tombstones:
        if _id_key(tomb) in remote and _id_key(tomb) not in held:
            out.delete_known.append(tomb)
            held.add(_id_key(tomb))
        else:
            out.done_tombstones.append(tomb)
    adopted: set[str] = set()
    for key, image in remote.items():
        if key in held:
            continue
        out.orphans += 1
        token = image.metadata.get(TOKEN_FIELD) if isinstance(image.metadata, dict) else None
        if isinstance(token, str) and token in uploading and token not in adopted:
            adopted.add(token)
            out.adopt.append(
                replace(uploading[token], status=Status.SYNCED, remote_id=image.id, message=None)
            )
        elif isinstance(token, str) and (
            token in adopted or token in token_owner or _our_stale_copy(image, token, keys)
        ):
            out.delete_duplicates.append(image.id)
        else:
            out.delete_orphans.append(image.id)
    for token, row in uploading.items():
        if token not in adopted:
            out.requeue_uploading.append(row)
    if not has_metadata:
        out.adopt = []
        out.requeue_uploading = list(uploading.values())
    return out


def _slim(image: RemoteImage) -> RemoteImage:
    """What the diff reads of a listed image: its id and the two fields facesync wrote."""
    meta = image.metadata
    if meta is None:
        return RemoteImage(id=image.id)
    return RemoteImage(id=image.id, metadata={k: meta[k] for k in (TOKEN_FIELD, KEY_FIELD) if k in meta})


class Reconciler:
    """One ``reconcile`` run over an open state and client."""

    def __init__(
        self,
        config: Config,
        state: State,
        client: FaceSearchClient,
        reporter: Reporter,
        options: ReconcileOptions | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.client = client
        self.reporter = reporter
        self.options = options or ReconcileOptions()
        self.report = ReconcileReport(dry_run=self.options.dry_run)

    async def run(self) -> ReconcileReport:
        started = time.monotonic()
        requests0 = self.client.requests
        run_id = None if self.options.dry_run else self.state.start_run("reconcile")
        try:
            listing = await self._snapshot()
            d = diff(listing, self.state.iter_rows(), [t.remote_id for t in self.state.tombstones()])
            self._guard(d)
            await self._act(d)
        except (Fatal, QuotaSpent, GuardRefused) as exc:
            self._fail(exc, exc.exit_code)
        except (Retryable, Rejected) as exc:
            self._fail(exc, EXIT_FAILED)
        finally:
            self.reporter.close()
        report = self.report
        report.requests = self.client.requests - requests0
        report.elapsed = time.monotonic() - started
        if not report.exit_code and report.failed:
            report.exit_code = EXIT_FAILED
        if run_id is not None:
            self.state.finish_run(run_id, exit_code=report.exit_code, counts=report.to_json())
        return report

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
                listing.append(_slim(image))
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
        deletes = len(d.delete_orphans)
        if opts.max_delete is not None:
            limit, shown = opts.max_delete, f"--max-delete {opts.max_delete}"
        else:
            base = max(d.synced, report.listed)
            limit = limits.max_delete.limit(base)
            shown = f"limits.max_delete {limits.max_delete} of {base} = {limit}"
        if deletes > limit:
            for image_id in d.delete_orphans[:20]:
                self.reporter.event("would delete", str(image_id), "orphan")
            raise GuardRefused(
                f"refusing to delete {deletes} orphan(s): over the max-delete guard ({shown}); nothing was "
                f"deleted. Check with --dry-run, then rerun with --max-delete {deletes}"
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
        duplicates = {_id_key(i) for i in d.delete_duplicates}
        known = {_id_key(i) for i in d.delete_known}
        batch = self.config.api.delete_batch
        for start in range(0, len(to_delete), batch):
            ids = to_delete[start : start + batch]
            try:
                await self.client.delete_batch(ids)
            except (Retryable, Rejected) as exc:
                report.failed += len(ids)
                self.reporter.event("failed", str(ids[0]), f"delete of {len(ids)} image(s): {exc}")
                continue
            # Each batch's outcome is recorded before the next is sent.
            done_known = [i for i in ids if _id_key(i) in known]
            self.state.apply(tombstones_done=done_known)
            self.state.forget_deleting([i for i in done_known])
            report.deleted += len(ids)
            report.duplicates_removed += sum(1 for i in ids if _id_key(i) in duplicates)

    def _old_enough(self, orphans: list[ImageId], now: float) -> list[ImageId]:
        """Two-pass mode: only orphans seen by an earlier reconcile at least ``min_orphan_age`` ago."""
        if self.options.min_orphan_age is None:
            return orphans
        seen = self.state.note_orphans(orphans, now, record=not self.options.dry_run)
        age = self.options.min_orphan_age
        ready = [i for i in orphans if _id_key(i) in seen and now - seen[_id_key(i)] >= age]
        self.report.deferred = len(orphans) - len(ready)
        return ready
