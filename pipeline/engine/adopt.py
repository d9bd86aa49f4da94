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
import json
from dataclasses import dataclass, replace
from typing import Any

from pipeline.api import RemoteImage
from pipeline.config import SHA_FIELD, TOKEN_FIELD, TRANSFORM_FIELD
from pipeline.engine.images import sha256_hex
from pipeline.engine.metadata import MetadataBuilder
from pipeline.engine.runs import RunContext
from pipeline.engine.transform import read_limit
from pipeline.errors import ConfigError, Rejected, Retryable, Skipped
from pipeline.keys import safe_key, shard_of
from pipeline.sources import Source, SourceItem
from pipeline.state import Row, Status
from pipeline.state.listing import Listing


@dataclass
class Restored:
    """What adopting did: rows restored, and how many of them are out of date."""

    restored: int = 0
    #: Restored rows whose image holds other content than the file: the next sync replaces them.
    changed: int = 0
    #: Images whose content was checked by downloading them (no facesync_sha256 in their metadata).
    downloaded: int = 0


#: Files handed from the scan thread to the loop at a time (each chunk's rows are written together).
CHUNK = 256
_DONE = object()


class Adopter:
    """Matches listed images (in the ``listing`` table) to the source's files and restores their rows."""

    def __init__(
        self, ctx: RunContext, source: Source, shard: tuple[int, int] | None, listing: Listing
    ) -> None:
        self.ctx = ctx
        self.source = source
        self.shard = shard
        self.listing = listing
        self.metadata = MetadataBuilder.for_config(ctx.config)

    async def restore(self) -> Restored:
        """Restore, chunk by chunk as the source is scanned, the rows the listing stands for."""
        if self.listing.count() and not self.listing.named_count():
            raise ConfigError(
                "reconcile --adopt needs a listing that shows each image's metadata, and this service's "
                "shows none, so which file an image came from cannot be told. To start over: `facesync "
                "sync --allow-foreign` (every file is uploaded again), then `facesync reconcile` deletes "
                "the old copies (with --max-delete N)"
            )
        out = Restored()
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[Any] = asyncio.Queue(maxsize=4)
        scan = loop.run_in_executor(None, self._scan, loop, chunks)
        while (chunk := await chunks.get()) is not _DONE:
            if isinstance(chunk, BaseException):
                raise chunk
            await self._restore_chunk(chunk, out)
        await scan
        return out

    def _scan(self, loop: asyncio.AbstractEventLoop, chunks: asyncio.Queue[Any]) -> None:
        """In a thread: the source's files (this shard's), handed to the loop in chunks."""

        def hand(obj: object) -> None:
            asyncio.run_coroutine_threadsafe(chunks.put(obj), loop).result()

        try:
            chunk: list[SourceItem] = []
            for item in self.source.scan():
                if item.special is not None:
                    continue
                if self.shard is not None and shard_of(item.key, self.shard[1]) != self.shard[0]:
                    continue
                chunk.append(item)
                if len(chunk) >= CHUNK:
                    hand(chunk)
                    chunk = []
            if chunk:
                hand(chunk)
        except BaseException as exc:  # raised in the loop
            hand(exc)
        hand(_DONE)

    async def _restore_chunk(self, items: list[SourceItem], out: Restored) -> None:
        """The chunk's files that listed images name (and the state has no image for): restored."""
        work = []
        for item in items:
            row = self.ctx.state.get(item.key)
            if row is not None and row.status is Status.SYNCED and row.remote_id is not None:
                continue
            found = self.listing.candidates(safe_key(item.key))
            if found:
                images = [RemoteImage(i, url, json.loads(m) if m else None) for i, url, m in found]
                work.append((item, images))
        limit = asyncio.Semaphore(self.ctx.config.limits.concurrency)

        async def one(item: SourceItem, images: list[RemoteImage]) -> Row | None:
            async with limit:
                return await self._restore_one(item, images, out)

        rows = [r for r in await asyncio.gather(*(one(i, imgs) for i, imgs in work)) if r is not None]
        if rows:
            self.ctx.state.apply(put=rows)
            out.restored += len(rows)

    async def _restore_one(self, item: SourceItem, images: list[RemoteImage], out: Restored) -> Row | None:
        try:
            data = await self.source.read(item, read_limit(self.ctx.config))
        except (Skipped, Retryable) as exc:
            self.ctx.reporter.event("not adopted", item.key, f"cannot read the file: {exc}")
            return None
        sha = sha256_hex(data)
        image = next((i for i in images if i.metadata and i.metadata.get(SHA_FIELD) == sha), None)
        if image is None:
            image = await self._same_bytes_at_url(images, sha, len(data), out)
        if image is None:
            out.changed += 1
            image = images[0]
            self.ctx.reporter.event(
                "adopted, out of date", item.key, f"remote id {image.id}: sync re-sends it"
            )
            # A stat that cannot match (mtime 0) and no hash: the next sync replaces this image.
            return Row(
                item.key, item.size, 0, Status.SYNCED, remote_id=image.id, token=_token(image),
                transform=_text(image, TRANSFORM_FIELD),
            )  # fmt: skip
        row = Row(
            key=item.key,
            size=item.size,
            mtime_ns=item.mtime_ns,
            status=Status.SYNCED,
            etag=item.etag,
            sha256=sha,
            remote_id=image.id,
            token=_token(image),
            # the settings it was sent with: a sync with others sends it again
            transform=_text(image, TRANSFORM_FIELD),
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
            transform=row.transform,
            data=data,
        )
        if now == image.metadata:  # it already carries what a sync would send: no PUT needed
            signature = self.metadata.signature(
                item.key, size=item.size, mtime_ns=item.mtime_ns, sha256=sha, sidecar=item.sidecar
            )
            row = replace(row, meta_hash=signature)
        return row

    async def _same_bytes_at_url(
        self, images: list[RemoteImage], sha: str, size: int, out: Restored
    ) -> RemoteImage | None:
        """An image without ``facesync_sha256`` whose bytes, downloaded from its url, hash as ``sha``;
        no more than the file's ``size`` is read (a longer body cannot be the file's content)."""
        for image in images:
            if (image.metadata and SHA_FIELD in image.metadata) or not image.url:
                continue
            try:
                data = await self.ctx.client.download(image.url, max_bytes=size)
            except (Retryable, Rejected):
                continue
            out.downloaded += 1
            if sha256_hex(data) == sha:
                return image
        return None


def _token(image: RemoteImage) -> str | None:
    return _text(image, TOKEN_FIELD)


def _text(image: RemoteImage, name: str) -> str | None:
    """A text field of an image's metadata, or None."""
    value = image.metadata.get(name) if image.metadata else None
    return value if isinstance(value, str) else None
