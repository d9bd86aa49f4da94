"""``reconcile --adopt``: rebuild the state from the collection, without an upload.

For a lost state file, a new host, a plain sync after sharded ones, or a change of N in
``--shard I/N``. A listed image whose metadata names a file of the source (``facesync_key``) that the
state holds no image for is *restored* as that file's synced row when it holds the file's content:
its ``facesync_sha256`` equals the file's, or — for images stored before facesync wrote that field —
the bytes at its url hash the same. An image that names the file but holds other content (the file
changed since) is restored as out of date: the next sync replaces it (one upload, the old image
deleted). Images that name no file of the source, and further copies of one file, stay orphans for
the reconcile that follows to settle. A listing without metadata names no file: adopting is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from pipeline.api import RemoteImage
from pipeline.config import KEY_FIELD, SHA_FIELD, TOKEN_FIELD
from pipeline.engine.images import sha256_hex
from pipeline.engine.metadata import MetadataBuilder
from pipeline.engine.runs import RunContext
from pipeline.errors import ConfigError, Rejected, Retryable, Skipped
from pipeline.keys import safe_key, shard_of
from pipeline.sources import Source, SourceItem
from pipeline.state import Row, Status


@dataclass
class Restored:
    """What adopting found: rows to write, and how many of them are out of date."""

    rows: list[Row] = field(default_factory=list)
    #: Restored rows whose image holds other content than the file: the next sync replaces them.
    changed: int = 0
    #: Images whose content was checked by downloading them (no facesync_sha256 in their metadata).
    downloaded: int = 0


class Adopter:
    """Matches listed images to the source's files and builds the state rows they stand for."""

    def __init__(self, ctx: RunContext, source: Source, shard: tuple[int, int] | None) -> None:
        self.ctx = ctx
        self.source = source
        self.shard = shard
        self.metadata = MetadataBuilder(ctx.config.metadata)

    async def restore(self, listing: list[RemoteImage]) -> Restored:
        """The rows the listing restores (nothing is written here)."""
        if listing and all(image.metadata is None for image in listing):
            raise ConfigError(
                "reconcile --adopt needs a listing that shows each image's metadata, and this service's "
                "shows none, so which file an image came from cannot be told. To start over: `facesync "
                "sync --allow-foreign` (every file is uploaded again), then `facesync reconcile` deletes "
                "the old copies (with --max-delete N)"
            )
        candidates = self._candidates(listing)
        if not candidates:
            return Restored()
        items = await asyncio.to_thread(self._matching_files, candidates)
        out = Restored()
        limit = asyncio.Semaphore(self.ctx.config.limits.concurrency)

        async def one(item: SourceItem) -> None:
            async with limit:
                row = await self._restore_one(item, candidates[safe_key(item.key)], out)
            if row is not None:
                out.rows.append(row)

        await asyncio.gather(*(one(item) for item in items))
        out.rows.sort(key=lambda r: r.key)
        return out

    def _candidates(self, listing: Iterable[RemoteImage]) -> dict[str, list[RemoteImage]]:
        """Listed images that name a file, by that name, leaving out those the state already holds."""
        state = self.ctx.state
        held = {str(r.remote_id) for r in state.iter_rows() if r.remote_id is not None}
        known = {safe_key(r.key) for r in state.rows(Status.SYNCED)}
        out: dict[str, list[RemoteImage]] = {}
        for image in listing:
            key = image.metadata.get(KEY_FIELD) if image.metadata else None
            if isinstance(key, str) and key not in known and str(image.id) not in held:
                out.setdefault(key, []).append(image)
        return out

    def _matching_files(self, candidates: dict[str, list[RemoteImage]]) -> list[SourceItem]:
        """The files of the source that a candidate names (runs in a thread: the scan blocks)."""
        found = []
        for item in self.source.scan():
            if item.special is not None or safe_key(item.key) not in candidates:
                continue
            if self.shard is not None and shard_of(item.key, self.shard[1]) != self.shard[0]:
                continue
            found.append(item)
        return found

    async def _restore_one(self, item: SourceItem, images: list[RemoteImage], out: Restored) -> Row | None:
        try:
            data = await self.source.read(item, self.ctx.config.limits.max_image_bytes)
        except (Skipped, Retryable) as exc:
            self.ctx.reporter.event("not adopted", item.key, f"cannot read the file: {exc}")
            return None
        sha = sha256_hex(data)
        image = next((i for i in images if i.metadata and i.metadata.get(SHA_FIELD) == sha), None)
        if image is None:
            image = await self._same_bytes_at_url(images, sha, out)
        if image is None:
            out.changed += 1
            image = images[0]
            self.ctx.reporter.event(
                "adopted, out of date", item.key, f"remote id {image.id}: sync re-sends it"
            )
            # A stat that cannot match (mtime 0) and no hash: the next sync replaces this image.
            return Row(item.key, item.size, 0, Status.SYNCED, remote_id=image.id, token=_token(image))
        row = Row(
            key=item.key,
            size=item.size,
            mtime_ns=item.mtime_ns,
            status=Status.SYNCED,
            etag=item.etag,
            sha256=sha,
            remote_id=image.id,
            token=_token(image),
        )
        try:
            sidecar = await self.source.read_sidecar(item) if item.sidecar is not None else None
        except ValueError:
            sidecar = None  # the sync reports it; here it only means a PUT may follow
        now = self.metadata.build(
            item.key,
            token=row.token or "",
            size=item.size,
            mtime_ns=item.mtime_ns,
            sha256=sha,
            sidecar=sidecar,
        )
        if now == image.metadata:  # it already carries what a sync would send: no PUT needed
            signature = self.metadata.signature(
                item.key, size=item.size, mtime_ns=item.mtime_ns, sha256=sha, sidecar=item.sidecar
            )
            row = replace(row, meta_hash=signature)
        return row

    async def _same_bytes_at_url(
        self, images: list[RemoteImage], sha: str, out: Restored
    ) -> RemoteImage | None:
        """An image without ``facesync_sha256`` whose bytes, downloaded from its url, hash as ``sha``."""
        for image in images:
            if (image.metadata and SHA_FIELD in image.metadata) or not image.url:
                continue
            try:
                data = await self.ctx.client.download(image.url)
            except (Retryable, Rejected):
                continue
            out.downloaded += 1
            if sha256_hex(data) == sha:
                return image
        return None


def _token(image: RemoteImage) -> str | None:
    token = image.metadata.get(TOKEN_FIELD) if image.metadata else None
    return token if isinstance(token, str) else None
