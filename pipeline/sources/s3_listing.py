"""The entries ``source.manifest`` names, read and verified: an S3 Inventory report or a key list.

Blocking (plain botocore and local files): the scan runs it in a worker thread. An inventory's data
files are streamed row by row and each one's size and MD5 is checked against ``manifest.json``; a key
list's lines without a size are completed with HeadObject. The formats themselves are parsed by
:mod:`pipeline.sources.s3_manifest`; S3 is reached, and its errors translated, by
:mod:`pipeline.sources.s3_client`.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from pathlib import Path, PurePosixPath

from pipeline.errors import ScanError
from pipeline.sources.s3_client import READ_CHUNK, S3Clients, listing_errors
from pipeline.sources.s3_manifest import (
    DataFile,
    Entry,
    HashingReader,
    InventoryManifest,
    datetime_ns,
    iter_inventory_rows,
    open_text,
    parse_key_line,
    parse_manifest,
    split_s3_uri,
    strip_etag,
)

log = logging.getLogger(__name__)

#: HeadObject requests in flight while a key list without sizes is resolved.
DEFAULT_HEAD_CONCURRENCY = 16

#: Where a file lives: a local path, or (bucket, key) in S3.
Location = Path | tuple[str, str]


def describe(where: Location) -> str:
    """A file's name for messages: its path, or its ``s3://`` URI."""
    return str(where) if isinstance(where, Path) else f"s3://{where[0]}/{where[1]}"


class S3Listing:
    """One scan's read of ``source.manifest``: its entries, unsorted and unfiltered, and the scan errors.

    A manifest whose name ends in ``.json`` is an inventory report; anything else is a key list.
    """

    def __init__(self, manifest: str, bucket: str | None, clients: S3Clients, head_concurrency: int) -> None:
        self.manifest = manifest
        self.bucket = bucket
        self.clients = clients
        self.head_concurrency = head_concurrency
        #: HeadObject failures that did not stop the scan (removals are then refused).
        self.errors: list[str] = []
        self.location: Location = split_s3_uri(manifest) if manifest.startswith("s3://") else Path(manifest)

    def entries(self) -> Iterator[Entry]:
        """Every entry the report or key list names, in its own order; raises ScanError when unreadable."""
        if self.manifest.split("?", 1)[0].lower().endswith(".json"):
            return self._inventory_entries()
        return self._key_list_entries()

    @contextmanager
    def _open(self, where: Location) -> Iterator[Callable[[int], bytes]]:
        """A ``read(n)`` over a local file or an S3 object, streamed."""
        with listing_errors(describe(where)):
            if isinstance(where, Path):
                with where.open("rb") as file:
                    yield file.read
            else:
                with self.clients.stream(*where) as read:
                    yield read

    # ---- an inventory report ------------------------------------------------------------------------

    def _inventory_entries(self) -> Iterator[Entry]:
        with self._open(self.location) as read:
            data = b"".join(iter(lambda: read(READ_CHUNK), b""))
        manifest = parse_manifest(data, self.manifest)
        for data_file in manifest.files:
            yield from self._data_file_entries(manifest, data_file)

    def _data_file_location(self, manifest: InventoryManifest, data_file: DataFile) -> Location:
        """Next to a local manifest (as ``aws s3 sync`` lays a report out) if found there, else in S3."""
        here = self.location
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
        name = describe(where)
        with self._open(where) as read:
            raw = HashingReader(read)
            try:
                with listing_errors(name):
                    text = open_text(raw, gzipped=data_file.key.endswith(".gz"))
                    yield from iter_inventory_rows(text, manifest.columns, name, manifest.source_bucket)
                    raw.drain()
            except (ScanError, EOFError, zlib.error, UnicodeDecodeError) as exc:
                with listing_errors(name):
                    raw.drain()
                _verify(raw, data_file, name)  # a bad checksum explains the failure best
                if isinstance(exc, ScanError):
                    raise
                raise ScanError(f"inventory data file {name} is corrupt: {exc}") from None
        _verify(raw, data_file, name)

    # ---- a key list ---------------------------------------------------------------------------------

    def _key_list_entries(self) -> Iterator[Entry]:
        with self._open(self.location) as read, listing_errors(self.manifest):
            text = open_text(HashingReader(read), gzipped=self.manifest.endswith(".gz"))
            for line in text:
                entry = parse_key_line(line, self.bucket, self.manifest)
                if entry is not None:
                    yield entry

    def with_heads(self, entries: Iterator[Entry]) -> Iterator[Entry]:
        """Fill in size/etag/mtime with HeadObject for key-list lines that lack them; order is kept."""
        sent = failed = 0
        with ThreadPoolExecutor(max_workers=self.head_concurrency, thread_name_prefix="s3-head") as pool:
            while batch := list(islice(entries, self.head_concurrency * 16)):
                for entry, found in zip(batch, pool.map(self._head, batch), strict=True):
                    if entry.size is not None:
                        yield entry
                        continue
                    sent += 1
                    if isinstance(found, Entry):
                        yield found
                    elif found is not None:
                        failed += 1
                        self.errors.append(found)
        if sent and failed == sent:
            raise ScanError(f"{self.manifest}: every HeadObject failed, e.g. {self.errors[0]}")

    def _head(self, entry: Entry) -> Entry | str | None:
        """HeadObject → the completed entry; None when the object does not exist; an error message."""
        if entry.size is not None:
            return entry
        head = self.clients.head(entry.bucket, entry.key)
        if head is None:
            log.warning("s3://%s/%s: listed but not found (skipped)", entry.bucket, entry.key)
        if head is None or isinstance(head, str):
            return head
        modified = head.get("LastModified")
        mtime_ns = datetime_ns(modified) if modified else 0
        return Entry(
            entry.bucket, entry.key, int(head.get("ContentLength", 0)), mtime_ns, strip_etag(head.get("ETag"))
        )


def _verify(raw: HashingReader, data_file: DataFile, name: str) -> None:
    """ScanError when the bytes read are not the size or MD5 the manifest gives for the data file."""
    if data_file.size is not None and raw.count != data_file.size:
        raise ScanError(f"inventory data file {name}: {raw.count} bytes, the manifest says {data_file.size}")
    if data_file.md5 is not None and raw.md5.hexdigest() != data_file.md5:
        raise ScanError(
            f"inventory data file {name}: MD5 {raw.md5.hexdigest()} does not match "
            f"the manifest's {data_file.md5} (corrupt or replaced)"
        )
