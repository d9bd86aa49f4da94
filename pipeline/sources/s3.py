"""The S3 source: objects named by an S3 Inventory report or a key list, read with aiobotocore.

``scan()`` is synchronous and blocking (plain botocore plus local files): the engine runs it in a
worker thread. It reads the listing (:class:`~pipeline.sources.s3_listing.S3Listing`, which checks
every data file's MD5), filters it and sorts what it keeps in bounded memory
(:func:`~pipeline.sources.s3_manifest.sorted_unique`); nothing is yielded until every data file has
been read and verified, so a corrupt inventory raises :class:`~pipeline.errors.ScanError` before a
single item could be mistaken for the whole archive.

``read()`` runs on the engine's event loop with one aiobotocore client kept for the source's life.
botocore's exceptions are translated in :mod:`pipeline.sources.s3_client` and go no further.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Any

from pipeline.config import SourceConfig
from pipeline.errors import Skipped
from pipeline.sources import CHANGED, EMPTY, TOO_LARGE, UNREADABLE, SourceItem
from pipeline.sources.filters import KeyFilter
from pipeline.sources.s3_client import READ_CHUNK, S3Clients, read_errors
from pipeline.sources.s3_listing import DEFAULT_HEAD_CONCURRENCY, S3Listing
from pipeline.sources.s3_manifest import DEFAULT_SORT_BUFFER, Entry, sorted_unique, strip_etag


class S3Source:
    """Objects in S3 named by ``source.manifest``: an S3 Inventory ``manifest.json`` or a key list.

    A manifest whose name ends in ``.json`` is an inventory report; anything else is a key list (one
    ``s3://bucket/key`` or bare key under ``source.bucket`` a line, optionally ``<TAB>size<TAB>etag``).
    Item keys are object keys when every object is in one bucket, ``bucket/key`` otherwise.
    """

    def __init__(
        self,
        config: SourceConfig,
        *,
        sort_buffer: int = DEFAULT_SORT_BUFFER,
        head_concurrency: int = DEFAULT_HEAD_CONCURRENCY,
    ) -> None:
        if not config.manifest:
            raise ValueError("S3Source needs source.manifest")
        self.config = config
        self.manifest = config.manifest
        self.description = f"S3 manifest {config.manifest}"
        self.scan_errors: list[str] = []
        #: GetObject requests answered with a body, and the body bytes read (tests pin "nothing downloaded").
        self.downloads = 0
        self.bytes_downloaded = 0
        self._sort_buffer = sort_buffer
        self._head_concurrency = head_concurrency
        self._filter = KeyFilter(config.include, config.exclude, config.extensions)
        self._clients = S3Clients(config, pool_size=head_concurrency)
        self._single_bucket: str | None = config.bucket
        self._multi_bucket = False

    async def close(self) -> None:
        """Close the aiobotocore client (and the scan's botocore client)."""
        await self._clients.close()

    # ---- scan ---------------------------------------------------------------------------------------

    def scan(self) -> Iterator[SourceItem]:
        """Items in key order. Blocking: call it from a worker thread, not on the event loop."""
        listing = S3Listing(self.manifest, self.config.bucket, self._clients, self._head_concurrency)
        self.scan_errors = listing.errors
        buckets: set[str] = set()

        def wanted(entries: Iterable[Entry]) -> Iterator[Entry]:
            for entry in entries:
                if self._filter(entry.key):
                    buckets.add(entry.bucket)
                    yield entry

        ordered = sorted_unique(wanted(listing.entries()), self._sort_buffer)
        first = next(ordered, None)  # the sort has now read (and verified) the whole listing
        if first is None:
            return
        self._multi_bucket = len(buckets) > 1
        self._single_bucket = None if self._multi_bucket else first.bucket
        for entry in listing.with_heads(chain((first,), ordered)):
            key = f"{entry.bucket}/{entry.key}" if self._multi_bucket else entry.key
            yield SourceItem(key=key, size=entry.size or 0, mtime_ns=entry.mtime_ns, etag=entry.etag)

    # ---- read ---------------------------------------------------------------------------------------

    def _locate(self, key: str) -> tuple[str, str]:
        if self._multi_bucket:
            bucket, _, name = key.partition("/")
            return bucket, name
        if self._single_bucket is None:
            raise Skipped(UNREADABLE, "bucket unknown: scan() the source first (or set source.bucket)")
        return self._single_bucket, key

    async def read(self, item: SourceItem, max_bytes: int) -> bytes:
        """GetObject, streamed and capped at ``max_bytes``; refuses vanished, changed, denied, empty objects.

        ``IfMatch`` carries the inventory's ETag, so a changed object costs a 412, not a download. The
        inventory also gives the object's size: a body longer than that (a ``Content-Length``, or the
        bytes as they come) is refused as changed once one byte more is read, so a lying or broken store
        never fills memory. Transient S3 failures (after botocore's own retries) raise
        Retryable(sent=False).
        """
        if item.size > max_bytes:
            raise Skipped(TOO_LARGE, f"{item.size} bytes, over the limit of {max_bytes}")
        bucket, key = self._locate(item.key)
        client = await self._clients.aio()
        params: dict[str, str] = {"Bucket": bucket, "Key": key}
        if item.etag:
            params["IfMatch"] = item.etag
        with read_errors(item.key):
            response: dict[str, Any] = await client.get_object(**params)
        self.downloads += 1
        async with response["Body"] as body:
            etag = strip_etag(response.get("ETag"))
            if item.etag and etag and etag != item.etag:
                raise Skipped(CHANGED, f"ETag {etag}, the inventory says {item.etag}")
            # The inventory's size when it gives one (0: a listing without sizes), else the limit.
            cap, over = (item.size, _longer(item.size)) if item.size else (max_bytes, _too_large(max_bytes))
            length = response.get("ContentLength")
            if length is not None and length > cap:
                raise over(f"{length} bytes")
            with read_errors(item.key):
                data = await self._read_body(body, cap, over)
        if not data:
            raise Skipped(EMPTY, "0 bytes")
        return data

    async def _read_body(self, body: Any, cap: int, over: Callable[[str], Skipped]) -> bytes:
        """The body, a chunk at a time; ``over`` once more than ``cap`` bytes came."""
        chunks: list[bytes] = []
        total = 0
        while chunk := await body.read(min(READ_CHUNK, cap + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            self.bytes_downloaded += len(chunk)
            if total > cap:
                raise over(f"more than {cap} bytes")
        return b"".join(chunks)

    async def read_sidecar(self, item: SourceItem) -> dict[str, Any]:
        """Always ValueError: S3 items carry no sidecar (``item.sidecar`` is None), so none is read."""
        raise ValueError("S3 sources have no sidecars")


def _longer(size: int) -> Callable[[str], Skipped]:
    """The refusal of a body longer than the inventory says: the object is not the one it listed."""
    return lambda got: Skipped(CHANGED, f"{got}, the inventory says {size}")


def _too_large(limit: int) -> Callable[[str], Skipped]:
    return lambda got: Skipped(TOO_LARGE, f"{got}, over the limit of {limit}")
