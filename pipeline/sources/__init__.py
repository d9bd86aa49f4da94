"""Sources: where the images come from (a directory tree, zip archives, an S3 manifest).

A source does two things. ``scan()`` yields :class:`SourceItem` in **key order**
(:func:`pipeline.keys.key_order`) without reading contents and without holding the whole listing in
memory. ``read()`` fetches one item's bytes inside an upload worker, refusing it with
:class:`~pipeline.errors.Skipped` (reason codes below) when it vanished, changed since the scan, is
unreadable or is over the size limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.keys import key_order, shard_of

if TYPE_CHECKING:
    from pipeline.config import SourceConfig

#: Skip reasons (``Skipped.reason``); stable strings, they appear in reports and ``--json``.
VANISHED = "vanished"
CHANGED = "changed"
UNREADABLE = "unreadable"
TOO_LARGE = "too_large"
NOT_AN_IMAGE = "not_an_image"
EMPTY = "empty"
NOT_A_FILE = "not_a_file"
TRUNCATED = "truncated"


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One file of the archive as the scan saw it. ``key`` is ``/``-separated, relative to the root;
    a non-UTF-8 name is carried surrogate-escaped (``os.fsdecode``), losslessly."""

    key: str
    size: int
    mtime_ns: int
    etag: str | None = None
    #: "size-mtime_ns" of a JSON sidecar (``photo.jpg.json``) beside the file, if there is one: its
    #: metadata is merged in, and a change to it is noticed without reading it.
    sidecar: str | None = None
    #: Why this entry is not a file the pipeline can send (a symlink not followed, a FIFO, a link that
    #: dangles or loops), or None. Such an item is recorded ``skipped`` with this reason, unread.
    special: str | None = None


class Source(Protocol):
    """What the engine needs of a source.

    Two methods are optional, looked up with ``getattr``: ``scan_raw()`` (the scan as plain tuples,
    for the march: :class:`~pipeline.sources.local.LocalSource`) and ``prefetch(item)`` (a hint that
    ``item`` will be read soon, given as it is queued for upload: a local source asks the kernel to
    read it ahead, ``sources/fileread.py``)."""

    #: Human description for messages ("directory /photos", "S3 manifest s3://b/m.json").
    description: str
    #: Problems met while scanning that did not stop it (an unreadable folder): removals are refused.
    scan_errors: list[str]

    def scan(self) -> Iterator[SourceItem]:
        """Items in key order. Raises ScanError if the source cannot be listed at all."""
        ...

    async def read(self, item: SourceItem, max_bytes: int) -> bytes:
        """The item's bytes. Raises Skipped(reason, detail) when it cannot or must not be sent."""
        ...

    async def read_sidecar(self, item: SourceItem) -> dict[str, Any]:
        """The JSON object of the item's sidecar (``item.sidecar`` is set); ValueError saying why not."""
        ...

    async def close(self) -> None: ...


def is_archive_path(path: Path) -> bool:
    """Whether ``source.path`` names zips (a ``.zip`` or a glob of them) rather than a folder."""
    return bool(set("*?[") & set(str(path))) or (path.suffix.lower() == ".zip" and not path.is_dir())


def open_source(config: SourceConfig, origin: object = None) -> Source:
    """The source the config names: ``source.path`` (a directory; zips: a ``.zip``, a glob of them, or a
    folder with ``source.archives``) or ``source.manifest`` (S3).

    ``origin`` (the config file) names where a missing or unusable source section is to be fixed.
    """
    from pipeline.errors import ConfigError

    where = f"{origin or '<config>'}: source"

    if config.path is not None:
        if config.archives or is_archive_path(config.path):
            from pipeline.sources.zipped import ZipSource  # zipfile and glob only for zips

            return ZipSource(config)
        from pipeline.sources.local import LocalSource

        return LocalSource(config)
    if config.manifest is not None:
        try:
            from pipeline.sources.s3 import S3Source
        except ImportError as exc:  # the optional extra is missing
            raise ConfigError(
                f"{where}.manifest needs the S3 extra: pip install 'facesync[s3]' ({exc})"
            ) from None
        return S3Source(config)
    raise ConfigError(f"{where}: give source.path (a directory) or source.manifest (an S3 manifest)")


__all__ = [
    "CHANGED",
    "EMPTY",
    "NOT_AN_IMAGE",
    "NOT_A_FILE",
    "TOO_LARGE",
    "TRUNCATED",
    "UNREADABLE",
    "VANISHED",
    "Source",
    "SourceItem",
    "key_order",
    "open_source",
    "shard_of",
]
