"""Helpers to lay out an S3 Inventory report the way AWS writes one, locally or into a bucket.

AWS writes ``<prefix>/<source-bucket>/<config-id>/<YYYY-MM-DDTHH-MMZ>/manifest.json`` and the gzipped
CSV data files under ``<prefix>/<source-bucket>/<config-id>/data/``; the CSV has no header, every field
is quoted, and keys are URL-encoded form-style (a space is ``+``, a literal ``+`` is ``%2B``).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from PIL import Image

SCHEMA = ("Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size", "LastModifiedDate", "ETag")
PREFIX = "inventories"
CONFIG_ID = "facesync-daily"
STAMP = "2024-05-01T00-00Z"


def image_bytes(seed: int, fmt: str = "JPEG", side: int = 8) -> bytes:
    """A small valid image, different for every seed."""
    colour = (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)
    image = Image.new("RGB", (side, side), colour)
    image.putpixel((seed % side, (seed // side) % side), (255 - colour[0], 0, 255))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@dataclass(frozen=True)
class Row:
    """One line of an inventory data file."""

    bucket: str
    key: str
    size: int | None
    etag: str | None
    last_modified: str = "2024-04-30T12:00:00.000Z"
    version_id: str = ""
    is_latest: bool = True
    is_delete_marker: bool = False

    def fields(self, schema: Sequence[str]) -> list[str]:
        values = {
            "Bucket": self.bucket,
            "Key": quote_plus(self.key, safe="/"),
            "VersionId": self.version_id,
            "IsLatest": "true" if self.is_latest else "false",
            "IsDeleteMarker": "true" if self.is_delete_marker else "false",
            "Size": "" if self.size is None else str(self.size),
            "LastModifiedDate": self.last_modified,
            "ETag": self.etag or "",
        }
        return [values[name] for name in schema]


def data_file(rows: Sequence[Row], schema: Sequence[str] = SCHEMA) -> bytes:
    """Gzipped CSV, no header, every field quoted — as S3 Inventory writes it."""
    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for row in rows:
        writer.writerow(row.fields(schema))
    return gzip.compress(text.getvalue().encode("utf-8"), mtime=0)


@dataclass
class Inventory:
    """A report: ``files`` maps each destination key to its bytes, ``manifest`` is manifest.json's content."""

    source_bucket: str
    destination_bucket: str
    manifest: dict[str, Any]
    files: dict[str, bytes]

    @property
    def manifest_key(self) -> str:
        return f"{PREFIX}/{self.source_bucket}/{CONFIG_ID}/{STAMP}/manifest.json"

    def manifest_bytes(self) -> bytes:
        return json.dumps(self.manifest, indent=2).encode("utf-8")

    def write_local(self, root: Path) -> Path:
        """Mirror the destination bucket under ``root`` (as ``aws s3 sync`` does); returns manifest.json."""
        for key, data in self.files.items():
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        manifest = root / self.manifest_key
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_bytes(self.manifest_bytes())
        return manifest

    def upload(self, client: Any) -> str:
        """Put the report into its destination bucket (botocore client); returns manifest.json's URI."""
        for key, data in self.files.items():
            client.put_object(Bucket=self.destination_bucket, Key=key, Body=data)
        client.put_object(Bucket=self.destination_bucket, Key=self.manifest_key, Body=self.manifest_bytes())
        return f"s3://{self.destination_bucket}/{self.manifest_key}"


def inventory(
    source_bucket: str,
    destination_bucket: str,
    chunks: Sequence[Sequence[Row]],
    *,
    schema: Sequence[str] = SCHEMA,
    file_format: str = "CSV",
) -> Inventory:
    """An inventory report with one data file per chunk of rows."""
    files: dict[str, bytes] = {}
    entries = []
    for n, rows in enumerate(chunks):
        key = f"{PREFIX}/{source_bucket}/{CONFIG_ID}/data/part-{n:04d}.csv.gz"
        data = data_file(rows, schema)
        files[key] = data
        entries.append({"key": key, "size": len(data), "MD5checksum": hashlib.md5(data).hexdigest()})
    manifest = {
        "sourceBucket": source_bucket,
        "destinationBucket": f"arn:aws:s3:::{destination_bucket}",
        "version": "2016-11-30",
        "creationTimestamp": "1714521600000",
        "fileFormat": file_format,
        "fileSchema": ", ".join(schema),
        "files": entries,
    }
    return Inventory(source_bucket, destination_bucket, manifest, files)
