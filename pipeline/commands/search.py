"""``facesync search IMAGE``: who else is in the archive? Matches mapped back to local files.

The service answers remote ids and urls; the state knows which file each id came from, so every
match is shown with its key (and, for a directory source, its path). An id the state does not know
(an image added by hand, or by another tool) is marked as such. With ``transform:`` on, the query is
sent as the archive's images were (a HEIC converted, a large photo scaled down).

Each match carries its metadata — the names in ``people`` are what a person wants to see. The
service's search answer has ``{id, url}`` only (a service that adds ``metadata`` is taken at its word),
so for a match from this archive the metadata is built again from the file, as a sync builds it (its
sidecar, its row of ``metadata_table``, its XMP and EXIF when the template names a photo field): a
read of each matched file, never of the archive. ``metadata_from`` says which: ``service``,
``archive`` or None (not known).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.commands.runtime import open_client
from pipeline.config import Config
from pipeline.engine.images import sniff
from pipeline.engine.metadata import MetadataBuilder
from pipeline.engine.transform import Transformer, read_limit
from pipeline.errors import ConfigError, Retryable, ScanError, Skipped
from pipeline.sources import Source, SourceItem, open_source
from pipeline.sources.zipped import is_archive_path
from pipeline.state import Row, State

#: What :func:`from_archive` finds of a file: where it is for a person, and its metadata (or None).
Found = tuple[str | None, dict[str, Any] | None]


def read_query(path: Path, max_bytes: int) -> bytes:
    """The photo to search with; a usage error (exit 2) when it is not a readable image."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ConfigError(f"{path}: {size} bytes, over limits.max_image_bytes ({max_bytes})")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the image: {exc.strerror or exc}") from None
    if not data or sniff(data) is None:
        raise ConfigError(f"{path}: not an image (no known image signature)")
    return data


async def search(config: Config, image: Path) -> list[dict[str, Any]]:
    """The matches for ``image``, best first, each with its local key and path where known."""
    data = read_query(image, read_limit(config))
    try:
        async with Transformer(config) as transformer:
            data = await transformer.prepare(data, sniff(data) or "")
    except Skipped as exc:
        raise ConfigError(f"{image}: cannot be sent: {exc}") from None
    with State.open(config.state.path, create=False) as state:  # refused before a request is spent
        async with open_client(config) as client:
            matches = await client.search(data)
        rows = state.by_remote_ids(m.id for m in matches)
    known = list({row.key: row for row in rows.values()}.values())
    found = await from_archive(config, known) if known else {}
    out = []
    for m in matches:
        row = rows.get(str(m.id))
        path, rebuilt = found.get(row.key, (None, None)) if row is not None else (None, None)
        metadata, origin = m.metadata, "service" if m.metadata is not None else None
        if metadata is None and rebuilt is not None:
            metadata, origin = rebuilt, "archive"
        out.append(
            {
                "id": m.id,
                "url": m.url,
                "score": m.score,
                "key": row.key if row is not None else None,
                "path": path,
                "known": row is not None,
                "metadata": metadata,
                "metadata_from": origin,
                "people": people_of(metadata),
            }
        )
    return out


def people_of(metadata: object) -> str | None:
    """The names in a match's metadata: its ``people`` field (text, or a plain sidecar's list)."""
    people = metadata.get("people") if isinstance(metadata, Mapping) else None
    if isinstance(people, list):
        people = ", ".join(str(p) for p in people if isinstance(p, str | int | float))
    return people.strip() or None if isinstance(people, str) else None


async def from_archive(config: Config, rows: Iterable[Row]) -> dict[str, Found]:
    """For each row's file: where it is for a person — its path, or ``archive.zip!/member`` for a zip
    member (a zip has no path of its own) — and the metadata a sync would send for it now (None when
    its file cannot be found or read: better no names than wrong ones). Reads only these files; an S3
    source (whose reads cost requests) gives nothing."""
    root = config.source.path
    if root is None:
        return {}
    builder = MetadataBuilder.for_config(config)
    source = open_source(config.source, config.origin)
    try:
        items = find_items(source, {row.key for row in rows})
        where = getattr(source, "where", None)  # a zip source: which archive holds a key
        in_zips = is_archive_path(root)
        out: dict[str, Found] = {}
        for row in rows:
            member = where(row.key) if where is not None else None
            path = f"{member[0]}!/{member[1]}" if member else None if in_zips else str(root / row.key)
            item = items.get(row.key)
            try:
                sidecar = await source.read_sidecar(item) if item and item.sidecar is not None else None
                data = await source.read(item, read_limit(config)) if item and builder.reads_file else None
            except (ValueError, Skipped, Retryable):
                item = None
            out[row.key] = (
                path,
                None
                if item is None
                else builder.build(
                    item.key,
                    token=row.token or "",
                    size=item.size,
                    mtime_ns=item.mtime_ns,
                    sha256=row.sha256,
                    sidecar=sidecar,
                    transform=row.transform,
                    data=data,
                ),
            )
        return out
    finally:
        await source.close()


def find_items(source: Source, keys: set[str]) -> Mapping[str, SourceItem]:
    """These keys' items as a scan sees them: looked up one by one where the source can (a folder),
    else picked from a scan (zips: their central directories only)."""
    lookup = getattr(source, "lookup", None)
    try:
        if lookup is not None:
            found = {key: lookup(key) for key in keys}
            return {key: item for key, item in found.items() if item is not None}
        return {item.key: item for item in source.scan() if item.key in keys}
    except ScanError:
        return {}
