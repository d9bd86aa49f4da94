"""Pure parsing for the S3 source: inventory manifests, inventory CSV rows, key lists, sorting.

Nothing here touches the network: :mod:`pipeline.sources.s3_listing` opens the streams and hands them
over, so every rule about the formats (how AWS encodes keys, which rows count, how the listing is
ordered) is tested without a server.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import heapq
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import unquote_plus, urlsplit

from pipeline.errors import ConfigError, ScanError

#: Above this many items the scan spills sorted runs to temp files and merges them (bounded memory).
DEFAULT_SORT_BUFFER = 200_000
SUPPORTED_FORMAT = "CSV"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Entry(NamedTuple):
    """One object as a listing names it, before the item key is chosen (bucket known, key decoded)."""

    bucket: str
    key: str
    size: int | None
    mtime_ns: int
    etag: str | None


@dataclass(frozen=True)
class DataFile:
    """One inventory data file named by ``manifest.json``."""

    key: str
    size: int | None
    md5: str | None


@dataclass(frozen=True)
class InventoryManifest:
    """What a ``manifest.json`` says: where the data files are and how their columns are laid out."""

    source_bucket: str | None
    destination_bucket: str | None
    file_format: str
    columns: tuple[str, ...]
    files: tuple[DataFile, ...]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` → ``("bucket", "some/key")``; the key is taken verbatim (not URL-decoded)."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ConfigError(f"not an s3:// URI: {uri!r}")
    rest = uri[len("s3://") + len(parts.netloc) :]
    return parts.netloc, rest.removeprefix("/")


def bucket_from_arn(value: str) -> str:
    """``arn:aws:s3:::name`` (as inventory manifests write ``destinationBucket``) → ``name``."""
    return value.rsplit(":", 1)[-1] if value.startswith("arn:") else value


def parse_manifest(data: bytes, where: str) -> InventoryManifest:
    """Read an S3 Inventory ``manifest.json``. A format we cannot read is a ConfigError, not a crash."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScanError(f"{where}: manifest is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise ScanError(f"{where}: not an S3 Inventory manifest (no 'files' list)")
    file_format = str(doc.get("fileFormat") or SUPPORTED_FORMAT)
    if file_format.upper() != SUPPORTED_FORMAT:
        raise ConfigError(f"{where}: S3 Inventory format {file_format} is not supported yet (use CSV)")
    schema = doc.get("fileSchema")
    if not isinstance(schema, str) or not schema.strip():
        raise ScanError(f"{where}: manifest has no fileSchema")
    columns = tuple(name.strip() for name in schema.split(","))
    if "Key" not in columns:
        raise ScanError(f"{where}: fileSchema has no Key column: {schema!r}")
    files: list[DataFile] = []
    for raw in doc["files"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
            raise ScanError(f"{where}: malformed entry in 'files': {raw!r}")
        size = raw.get("size")
        md5 = raw.get("MD5checksum")
        files.append(
            DataFile(
                key=raw["key"],
                size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
                md5=str(md5).lower() if md5 else None,
            )
        )
    dest = doc.get("destinationBucket")
    return InventoryManifest(
        source_bucket=str(doc["sourceBucket"]) if doc.get("sourceBucket") else None,
        destination_bucket=bucket_from_arn(str(dest)) if dest else None,
        file_format=file_format,
        columns=columns,
        files=tuple(files),
    )


def parse_timestamp_ns(text: str) -> int:
    """``2024-05-01T12:00:00.000Z`` → nanoseconds since the epoch (0 when empty)."""
    if not text:
        return 0
    return datetime_ns(datetime.fromisoformat(text.replace("Z", "+00:00")))


def datetime_ns(moment: datetime) -> int:
    """A datetime (naive means UTC) → integer nanoseconds since the epoch, without float rounding."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def strip_etag(etag: str | None) -> str | None:
    """ETags come quoted from the API and bare from inventories; compare them bare."""
    if not etag:
        return None
    return etag.strip().strip('"') or None


def decode_key(raw: str) -> str:
    """An inventory CSV key → the object key. AWS URL-encodes it form-style (a space is ``+``)."""
    return unquote_plus(raw, encoding="utf-8", errors="surrogateescape")


def iter_inventory_rows(
    text: Iterable[str], columns: tuple[str, ...], where: str, default_bucket: str | None
) -> Iterator[Entry]:
    """Rows of one inventory CSV data file (no header) → entries, skipping delete markers and old versions."""
    index = {name: i for i, name in enumerate(columns)}

    def col(row: list[str], name: str) -> str:
        i = index.get(name)
        return row[i] if i is not None else ""

    for lineno, row in enumerate(csv.reader(text), start=1):
        if not row:
            continue
        if len(row) != len(columns):
            raise ScanError(f"{where}: line {lineno}: {len(row)} columns, fileSchema names {len(columns)}")
        if col(row, "IsDeleteMarker").lower() == "true" or col(row, "IsLatest").lower() == "false":
            continue
        bucket = col(row, "Bucket") or default_bucket
        if not bucket:
            raise ScanError(f"{where}: line {lineno}: no Bucket column and no sourceBucket in the manifest")
        size_text = col(row, "Size")
        try:
            size = int(size_text) if size_text else None
            mtime_ns = parse_timestamp_ns(col(row, "LastModifiedDate"))
        except ValueError as exc:
            raise ScanError(f"{where}: line {lineno}: {exc}") from None
        yield Entry(bucket, decode_key(col(row, "Key")), size, mtime_ns, strip_etag(col(row, "ETag")))


def parse_key_line(line: str, default_bucket: str | None, where: str) -> Entry | None:
    """``s3://bucket/key``, a bare key, or either followed by ``<TAB>size<TAB>etag``; None for comments.

    A bare line leaves size and etag None (HeadObject fills them in); a key list records no modified
    time, so ``mtime_ns`` is 0 until then.
    """
    line = line.rstrip("\r\n")
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    name, *rest = line.split("\t")
    if name.startswith("s3://"):
        bucket, key = split_s3_uri(name)
    elif default_bucket:
        bucket, key = default_bucket, name
    else:
        raise ConfigError(f"{where}: bare key {name!r} needs source.bucket (or write s3://bucket/key)")
    if not key:
        raise ScanError(f"{where}: {name!r} names no object key")
    if not rest:
        return Entry(bucket, key, None, 0, None)
    if len(rest) != 2 or not rest[0].isdigit():
        raise ScanError(f"{where}: expected key<TAB>size<TAB>etag, got {line!r}")
    return Entry(bucket, key, int(rest[0]), 0, strip_etag(rest[1]))


def _combined(entry: Entry) -> bytes:
    return (entry.bucket + "/" + entry.key).encode("utf-8", "surrogateescape")


def _sort_key(entry: Entry) -> tuple[bytes, int]:
    """By ``bucket/key`` bytes — with one bucket that is exactly the order of the bare key — newest first."""
    return _combined(entry), -entry.mtime_ns


def _write_run(entries: list[Entry], directory: str) -> str:
    entries.sort(key=_sort_key)
    fd, path = tempfile.mkstemp(prefix="run-", suffix=".jsonl", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for entry in entries:
            out.write(json.dumps(list(entry)))
            out.write("\n")
    return path


def _read_run(path: str) -> Iterator[Entry]:
    with open(path, encoding="utf-8") as run:
        for line in run:
            bucket, key, size, mtime_ns, etag = json.loads(line)
            yield Entry(bucket, key, size, mtime_ns, etag)


def sorted_unique(entries: Iterable[Entry], buffer: int = DEFAULT_SORT_BUFFER) -> Iterator[Entry]:
    """Entries sorted by ``bucket/key`` bytes, one per object (the newest), in bounded memory.

    Up to ``buffer`` entries sort in memory; beyond that, sorted runs are spilled to temp files (JSON
    lines: keys may hold any character, newlines included) and merged with :func:`heapq.merge`.
    """
    chunk: list[Entry] = []
    with tempfile.TemporaryDirectory(prefix="facesync-s3-sort-") as directory:
        runs: list[str] = []
        for entry in entries:
            chunk.append(entry)
            if len(chunk) >= buffer:
                runs.append(_write_run(chunk, directory))
                chunk = []
        chunk.sort(key=_sort_key)
        merged: Iterable[Entry] = (
            heapq.merge(*(_read_run(p) for p in runs), chunk, key=_sort_key) if runs else chunk
        )
        previous: bytes | None = None
        for entry in merged:
            combined = _combined(entry)
            if combined != previous:
                yield entry
            previous = combined


class HashingReader(io.RawIOBase):
    """A read-only stream that hashes (MD5) and counts the bytes passing through it.

    The MD5 of an inventory data file is the MD5 of its *gzipped* bytes, so the hash is taken under the
    decompressor, while the rows stream out above it.
    """

    def __init__(self, read: Callable[[int], bytes]) -> None:
        super().__init__()
        self._read = read
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.md5.update(data)
        self.count += n
        return n

    def drain(self) -> None:
        """Read to the end, so the hash covers bytes the decompressor did not need."""
        while self._read_more():
            pass

    def _read_more(self) -> bool:
        data = self._read(1 << 16)
        self.md5.update(data)
        self.count += len(data)
        return bool(data)


def open_text(raw: io.RawIOBase, gzipped: bool) -> io.TextIOWrapper:
    """Bytes → text lines (UTF-8), decompressing on the fly; ``newline=""`` as the csv module wants."""
    if gzipped:
        return io.TextIOWrapper(
            gzip.GzipFile(fileobj=raw, mode="rb"), encoding="utf-8", errors="surrogateescape", newline=""
        )
    return io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8", errors="surrogateescape", newline="")
