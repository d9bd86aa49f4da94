"""The S3 source: objects named by an S3 Inventory report or a key list, read with aiobotocore.

``scan()`` is synchronous and blocking (plain botocore plus local files): the engine runs it in a
worker thread. It streams the inventory's gzipped CSV files row by row, checks each file's MD5, and
sorts what it keeps in bounded memory (:func:`~pipeline.sources.s3_manifest.sorted_unique`); nothing
is yielded until every data file has been read and verified, so a corrupt inventory raises
:class:`~pipeline.errors.ScanError` before a single item could be mistaken for the whole archive.

``read()`` runs on the engine's event loop with one aiobotocore client kept for the source's life.
botocore's exceptions are translated here and go no further.
"""

from __future__ import annotations

import asyncio
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, contextmanager
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any

import botocore.session
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.config import SourceConfig
from pipeline.errors import AuthError, Retryable, ScanError, Skipped
from pipeline.sources import CHANGED, EMPTY, TOO_LARGE, UNREADABLE, VANISHED, SourceItem
from pipeline.sources.s3_manifest import (
    DEFAULT_SORT_BUFFER,
    DataFile,
    Entry,
    HashingReader,
    InventoryManifest,
    KeyFilter,
    datetime_ns,
    iter_inventory_rows,
    open_text,
    parse_key_line,
    parse_manifest,
    sorted_unique,
    split_s3_uri,
    strip_etag,
)

log = logging.getLogger(__name__)

#: HeadObject requests in flight while a key list without sizes is resolved.
DEFAULT_HEAD_CONCURRENCY = 16
_READ_CHUNK = 64 * 1024
_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket", "NoSuchVersion"})
_DENIED = frozenset({"AccessDenied", "403", "Forbidden", "InvalidObjectState", "AllAccessDisabled"})
_PRECONDITION = frozenset({"PreconditionFailed", "412"})
_BAD_CREDENTIALS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"}
)

#: Where a file lives: a local path, or (bucket, key) in S3.
Location = Path | tuple[str, str]


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(where: Location) -> str:
    return str(where) if isinstance(where, Path) else f"s3://{where[0]}/{where[1]}"


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
        self._single_bucket: str | None = config.bucket
        self._multi_bucket = False
        self._sync: Any = None
        self._client: Any = None
        self._client_cm: AbstractAsyncContextManager[Any] | None = None
        self._client_lock: asyncio.Lock | None = None

    # ---- AWS settings -------------------------------------------------------------------------------

    def _client_args(self) -> dict[str, Any]:
        """Region and endpoint from the config, else the environment; credentials: the default chain."""
        endpoint = (
            self.config.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )
        region = self.config.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        options: dict[str, Any] = {
            "retries": {"mode": "standard", "max_attempts": 5},
            "connect_timeout": 10,
            "read_timeout": 60,
            "max_pool_connections": max(self._head_concurrency, 10),
        }
        if endpoint:  # S3-compatible stores (MinIO, Ceph, moto) rarely do virtual-host buckets
            options["s3"] = {"addressing_style": "path"}
        return {"region_name": region, "endpoint_url": endpoint, "options": options}

    def _sync_client(self) -> Any:
        if self._sync is None:
            args = self._client_args()
            self._sync = botocore.session.get_session().create_client(
                "s3",
                region_name=args["region_name"],
                endpoint_url=args["endpoint_url"],
                config=BotoConfig(**args["options"]),
            )
        return self._sync

    async def _async_client(self) -> Any:
        if self._client is not None:
            return self._client
        if self._client_lock is None:
            self._client_lock = asyncio.Lock()
        async with self._client_lock:
            if self._client is None:
                args = self._client_args()
                cm = get_session().create_client(
                    "s3",
                    region_name=args["region_name"],
                    endpoint_url=args["endpoint_url"],
                    config=AioConfig(**args["options"]),
                )
                self._client = await cm.__aenter__()
                self._client_cm = cm
        return self._client

    async def close(self) -> None:
        """Close the aiobotocore client (and the scan's botocore client)."""
        cm, self._client_cm, self._client = self._client_cm, None, None
        if cm is not None:
            await cm.__aexit__(None, None, None)
        sync, self._sync = self._sync, None
        if sync is not None:
            sync.close()

    # ---- scan ---------------------------------------------------------------------------------------

    def scan(self) -> Iterator[SourceItem]:
        """Items in key order. Blocking: call it from a worker thread, not on the event loop."""
        self.scan_errors = []
        buckets: set[str] = set()

        def wanted(entries: Iterable[Entry]) -> Iterator[Entry]:
            for entry in entries:
                if self._filter(entry.key):
                    buckets.add(entry.bucket)
                    yield entry

        listing = self._inventory_entries() if self._is_inventory() else self._key_list_entries()
        ordered = sorted_unique(wanted(listing), self._sort_buffer)
        first = next(ordered, None)  # the sort has now read (and verified) the whole listing
        if first is None:
            return
        self._multi_bucket = len(buckets) > 1
        self._single_bucket = None if self._multi_bucket else first.bucket
        entries = self._with_heads(_chain_one(first, ordered))
        for entry in entries:
            key = f"{entry.bucket}/{entry.key}" if self._multi_bucket else entry.key
            yield SourceItem(key=key, size=entry.size or 0, mtime_ns=entry.mtime_ns, etag=entry.etag)

    def _is_inventory(self) -> bool:
        return self.manifest.split("?", 1)[0].lower().endswith(".json")

    def _manifest_location(self) -> Location:
        return split_s3_uri(self.manifest) if self.manifest.startswith("s3://") else Path(self.manifest)

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """botocore's errors while listing → ScanError (or AuthError for bad credentials), naming ``what``."""
        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            if code in _BAD_CREDENTIALS:
                raise AuthError(f"S3 rejected the credentials ({code}) reading {what}") from None
            if code in _MISSING:
                raise ScanError(f"{what}: not found ({code})") from None
            if code in _DENIED:
                raise ScanError(f"{what}: access denied ({code})") from None
            raise ScanError(f"{what}: S3 error {code}: {exc}") from None
        except BotoCoreError as exc:
            raise ScanError(f"{what}: {exc}") from None
        except FileNotFoundError:
            raise ScanError(f"{what}: file not found") from None
        except OSError as exc:
            raise ScanError(f"{what}: cannot read: {exc.strerror or exc}") from None

    @contextmanager
    def _open(self, where: Location) -> Iterator[Callable[[int], bytes]]:
        """A ``read(n)`` over a local file or an S3 object, streamed."""
        with self._translated(_describe(where)):
            if isinstance(where, Path):
                with where.open("rb") as file:
                    yield file.read
            else:
                body = self._sync_client().get_object(Bucket=where[0], Key=where[1])["Body"]
                try:
                    yield body.read
                finally:
                    body.close()

    def _read_manifest(self) -> InventoryManifest:
        with self._open(self._manifest_location()) as read:
            data = b"".join(iter(lambda: read(_READ_CHUNK), b""))
        return parse_manifest(data, self.manifest)

    def _inventory_entries(self) -> Iterator[Entry]:
        manifest = self._read_manifest()
        for data_file in manifest.files:
            yield from self._data_file_entries(manifest, data_file)

    def _data_file_location(self, manifest: InventoryManifest, data_file: DataFile) -> Location:
        """Next to a local manifest (as ``aws s3 sync`` lays a report out) if found there, else in S3."""
        here = self._manifest_location()
        if isinstance(here, Path):
            base = here.parent
            name = PurePosixPath(data_file.key).name
            candidates = [base / name, base / "data" / name, base.parent / "data" / name]
            candidates += [root / data_file.key for root in (base, *base.parents)]
            for candidate in candidates:
                if candidate.is_file():
                    return candidate
            if manifest.destination_bucket is None:
                raise ScanError(f"{self.manifest}: data file {data_file.key} not found next to the manifest")
            return manifest.destination_bucket, data_file.key
        return manifest.destination_bucket or here[0], data_file.key

    def _data_file_entries(self, manifest: InventoryManifest, data_file: DataFile) -> Iterator[Entry]:
        """Rows of one data file, streamed; its size and MD5 (of the gzipped bytes) checked at the end."""
        where = self._data_file_location(manifest, data_file)
        name = _describe(where)
        with self._open(where) as read:
            raw = HashingReader(read)
            try:
                with self._translated(name):
                    text = open_text(raw, gzipped=data_file.key.endswith(".gz"))
                    yield from iter_inventory_rows(text, manifest.columns, name, manifest.source_bucket)
                    raw.drain()
            except (ScanError, EOFError, zlib.error, UnicodeDecodeError) as exc:
                with self._translated(name):
                    raw.drain()
                self._verify(raw, data_file, name)  # a bad checksum explains the failure best
                if isinstance(exc, ScanError):
                    raise
                raise ScanError(f"inventory data file {name} is corrupt: {exc}") from None
        self._verify(raw, data_file, name)

    @staticmethod
    def _verify(raw: HashingReader, data_file: DataFile, name: str) -> None:
        if data_file.size is not None and raw.count != data_file.size:
            raise ScanError(
                f"inventory data file {name}: {raw.count} bytes, the manifest says {data_file.size}"
            )
        if data_file.md5 is not None and raw.md5.hexdigest() != data_file.md5:
            raise ScanError(
                f"inventory data file {name}: MD5 {raw.md5.hexdigest()} does not match "
                f"the manifest's {data_file.md5} (corrupt or replaced)"
            )

    def _key_list_entries(self) -> Iterator[Entry]:
        where = self._manifest_location()
        with self._open(where) as read, self._translated(self.manifest):
            text = open_text(HashingReader(read), gzipped=self.manifest.endswith(".gz"))
            for line in text:
                parsed = parse_key_line(line, self.config.bucket, self.manifest)
                if parsed is not None:
                    yield Entry(parsed.bucket, parsed.key, parsed.size, 0, parsed.etag)

    def _with_heads(self, entries: Iterator[Entry]) -> Iterator[Entry]:
        """Fill in size/etag/mtime with HeadObject for key-list lines that lack them; order is kept."""
        sent = failed = 0
        with ThreadPoolExecutor(max_workers=self._head_concurrency, thread_name_prefix="s3-head") as pool:
            while batch := list(islice(entries, self._head_concurrency * 16)):
                for entry, found in zip(batch, pool.map(self._head, batch), strict=True):
                    if entry.size is not None:
                        yield entry
                        continue
                    sent += 1
                    if isinstance(found, Entry):
                        yield found
                    elif found is not None:
                        failed += 1
                        self.scan_errors.append(found)
        if sent and failed == sent:
            raise ScanError(f"{self.manifest}: every HeadObject failed, e.g. {self.scan_errors[0]}")

    def _head(self, entry: Entry) -> Entry | str | None:
        """HeadObject → the completed entry; None when the object does not exist; an error message."""
        if entry.size is not None:
            return entry
        try:
            head = self._sync_client().head_object(Bucket=entry.bucket, Key=entry.key)
        except ClientError as exc:
            code = _code(exc)
            if code in _BAD_CREDENTIALS:
                raise AuthError(f"S3 rejected the credentials ({code})") from None
            if code in _MISSING:
                log.warning("s3://%s/%s: listed but not found (skipped)", entry.bucket, entry.key)
                return None
            return f"s3://{entry.bucket}/{entry.key}: HeadObject failed ({code})"
        except BotoCoreError as exc:
            return f"s3://{entry.bucket}/{entry.key}: HeadObject failed ({exc})"
        modified = head.get("LastModified")
        mtime_ns = datetime_ns(modified) if modified else 0
        return Entry(
            entry.bucket, entry.key, int(head.get("ContentLength", 0)), mtime_ns, strip_etag(head.get("ETag"))
        )

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

        ``IfMatch`` carries the inventory's ETag, so a changed object costs a 412, not a download.
        Transient S3 failures (after botocore's own retries) raise Retryable(sent=False).
        """
        if item.size > max_bytes:
            raise Skipped(TOO_LARGE, f"{item.size} bytes, over the limit of {max_bytes}")
        bucket, key = self._locate(item.key)
        client = await self._async_client()
        params: dict[str, str] = {"Bucket": bucket, "Key": key}
        if item.etag:
            params["IfMatch"] = item.etag
        try:
            response = await client.get_object(**params)
        except ClientError as exc:
            raise self._read_error(_code(exc), item) from None
        except (BotoCoreError, TimeoutError) as exc:
            raise Retryable(f"S3 GetObject {item.key}: {exc}", sent=False) from None
        self.downloads += 1
        async with response["Body"] as body:
            etag = strip_etag(response.get("ETag"))
            if item.etag and etag and etag != item.etag:
                raise Skipped(CHANGED, f"ETag {etag}, the inventory says {item.etag}")
            length = response.get("ContentLength")
            if length is not None and length > max_bytes:
                raise Skipped(TOO_LARGE, f"{length} bytes, over the limit of {max_bytes}")
            chunks: list[bytes] = []
            total = 0
            try:
                while chunk := await body.read(min(_READ_CHUNK, max_bytes + 1 - total)):
                    chunks.append(chunk)
                    total += len(chunk)
                    self.bytes_downloaded += len(chunk)
                    if total > max_bytes:
                        raise Skipped(TOO_LARGE, f"over the limit of {max_bytes} bytes")
            except (BotoCoreError, TimeoutError) as exc:
                raise Retryable(f"S3 GetObject {item.key}: {exc}", sent=False) from None
        if total == 0:
            raise Skipped(EMPTY, "0 bytes")
        return b"".join(chunks)

    @staticmethod
    def _read_error(code: str, item: SourceItem) -> Exception:
        if code in _MISSING:
            return Skipped(VANISHED, "deleted since the inventory was written")
        if code in _PRECONDITION:
            return Skipped(CHANGED, "ETag differs from the inventory's (changed since it was written)")
        if code in _DENIED:
            return Skipped(UNREADABLE, f"access denied ({code})")
        if code in _BAD_CREDENTIALS:
            return AuthError(f"S3 rejected the credentials ({code})")
        return Retryable(f"S3 GetObject {item.key}: {code}", sent=False)


def _chain_one(first: Entry, rest: Iterator[Entry]) -> Iterator[Entry]:
    yield first
    yield from rest
