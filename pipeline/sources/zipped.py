"""Zip archives as a source, read in place: a Google Takeout export (``takeout-*.zip``) or any zip.

``source.path`` names one ``.zip``, a glob of them (``/data/takeout-*.zip``), or — with
``source.archives: true`` — a folder whose zips are read as if unpacked where they lie (its other files
as :class:`~pipeline.sources.local.LocalSource` reads them). A key is the path inside the archive (with
the folder of the zip before it), so a photo that moves to another part on the next export keeps its key.

Nothing is extracted to disk. A scan reads each archive's central directory only: a member's stat is
the zip's own record of it — its size, its CRC-32 as the ETag (a same-size, same-CRC member is the same
content) and its date — so a nightly no-op opens no member. A read holds one member's bytes, as a file's
read does. The central directories are held for the run (``zipfile`` keeps them): a Takeout part of
50 GB lists some tens of thousands of members. An archive that cannot be opened is a scan error (no
removals this run); a damaged member is one ``skipped`` line and the rest goes on.

Sidecars are matched as Takeout names them (:mod:`pipeline.sources.takeout`), across every archive: a
tree split over several parts often puts a photo in one and its JSON in the next.
"""

from __future__ import annotations

import asyncio
import calendar
import glob
import json
import os
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.config import SourceConfig
from pipeline.errors import ConfigError, ScanError, Skipped
from pipeline.sources import (
    CHANGED,
    EMPTY,
    TOO_LARGE,
    UNREADABLE,
    VANISHED,
    SourceItem,
    is_archive_path,
    key_order,
)
from pipeline.sources.filters import KeyFilter
from pipeline.sources.local import SIDECAR_MAX_BYTES, LocalSource, RawEntry
from pipeline.sources.takeout import match_sidecars

_GLOB = frozenset("*?[")


class _Archive:
    """One zip: where it is, the key prefix of its members, its stat at the scan and its open handle."""

    __slots__ = ("path", "prefix", "stat", "zip")

    def __init__(self, path: Path, prefix: str) -> None:
        self.path, self.prefix = path, prefix
        self.stat: tuple[int, int] = (0, 0)
        self.zip: zipfile.ZipFile | None = None


class ZipSource:
    """The images inside zip archives (and, with ``source.archives``, beside them in a folder)."""

    def __init__(self, config: SourceConfig) -> None:
        if config.path is None:
            raise ConfigError("source.path: a zip, a glob of zips or a folder is required")
        self.root = Path(config.path)
        self._folder = None if is_archive_path(self.root) else LocalSource(config)
        kind = "folder with zip archives" if self._folder is not None else "zip archives"
        self.description = f"{kind} {self.root}"
        self.scan_errors: list[str] = []
        self._filter = KeyFilter(config.include, config.exclude, config.extensions)
        self._archives: list[_Archive] = []
        #: Each member key the scan found: its archive and its entry in that archive's directory.
        self._members: dict[str, tuple[_Archive, zipfile.ZipInfo]] = {}
        #: ... and each JSON member (a sidecar, if a photo's name matches it).
        self._sidecars: dict[str, tuple[_Archive, zipfile.ZipInfo]] = {}

    # -- scan ----------------------------------------------------------------------------------------------
    def scan(self) -> Iterator[SourceItem]:
        """Members (and folder files) in key order; ScanError at once if there is nothing to read."""
        return (
            SourceItem(k.decode("utf-8", "surrogateescape"), size, mtime_ns, etag, sidecar, special)
            for k, size, mtime_ns, etag, sidecar, special in self.scan_raw()
        )

    def scan_raw(self) -> Iterator[RawEntry]:
        """:meth:`scan` as :data:`~pipeline.sources.local.RawEntry` tuples, sorted by key bytes."""
        folder = self._folder.scan_raw() if self._folder is not None else iter(())
        members = self._scan_archives()
        return self._merge(folder, members) if self._folder is not None else iter(members)

    def _find(self) -> list[_Archive]:
        """The archives to read, in name order."""
        if self._folder is None:
            text = str(self.root)
            paths = sorted(glob.glob(text)) if _GLOB & set(text) else [text]
            found = [_Archive(Path(p), "") for p in paths if os.path.isfile(p)]
            if not found:
                raise ScanError(f"{self.description}: no zip archive there (check source.path)")
            return found
        found = []
        for top, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel = os.path.relpath(top, self.root)
            prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            found += [_Archive(Path(top, f), prefix) for f in sorted(files) if f.lower().endswith(".zip")]
        return found

    def _scan_archives(self) -> list[RawEntry]:
        """Every kept member of every archive, with its sidecar matched, sorted by key."""
        self.close_archives()
        self._members = {}
        self._archives = self._find()
        jsons: dict[str, tuple[_Archive, zipfile.ZipInfo]] = {}
        folders: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
        for archive in self._archives:
            for info in self._directory(archive):
                key = archive.prefix + info.filename
                if key in self._members or key in jsons:
                    continue  # the same path in two archives: the first (in name order) is read
                parent, _, name = key.rpartition("/")
                if name.lower().endswith(".json"):
                    jsons[key] = (archive, info)
                    folders[parent][1].append(name)
                elif self._filter(key):
                    self._members[key] = (archive, info)
                    folders[parent][0].append(name)
        entries: list[RawEntry] = []
        for parent, (photos, sidecars) in folders.items():
            matched = match_sidecars(photos, sidecars) if sidecars else {}
            base = f"{parent}/" if parent else ""
            for name in photos:
                key = base + name
                info = self._members[key][1]
                side = matched.get(name)
                stamp = None
                if side is not None:
                    side_info = jsons[base + side][1]
                    stamp = f"{side_info.file_size}-{side_info.CRC:08x}:{base + side}"
                mtime_ns = calendar.timegm((*info.date_time, 0, 0, 0)) * 1_000_000_000
                entries.append(
                    (key_order(key), info.file_size, mtime_ns, f"crc32:{info.CRC:08x}", stamp, None)
                )
        self._sidecars = jsons
        entries.sort()
        return entries

    def _directory(self, archive: _Archive) -> list[zipfile.ZipInfo]:
        """The archive's file members whose path is a plain relative one; [] (recorded) if unreadable."""
        try:
            st = os.stat(archive.path)
            archive.stat = (st.st_size, st.st_mtime_ns)
            archive.zip = zipfile.ZipFile(archive.path)
        except (OSError, zipfile.BadZipFile, zlib.error, ValueError, EOFError) as exc:
            self.scan_errors.append(f"{archive.path}: not a readable zip archive: {exc}")
            return []
        out = []
        for info in archive.zip.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or not parts or info.filename.startswith("/") or "\\" in info.filename:
                continue
            if any(p in ("..", "__MACOSX") or p.startswith(".") for p in parts):
                continue  # outside the tree, or a resource fork / hidden file (as a folder walk skips)
            out.append(info)
        return out

    def _merge(self, folder: Iterator[RawEntry], members: list[RawEntry]) -> Iterator[RawEntry]:
        """The folder's files and the archives' members as one sorted stream; a file beside a zip wins
        over the member of the same path."""
        it = iter(members)
        member = next(it, None)
        for entry in folder:
            while member is not None and member[0] < entry[0]:
                yield member
                member = next(it, None)
            if member is not None and member[0] == entry[0]:
                self._members.pop(member[0].decode("utf-8", "surrogateescape"), None)
                member = next(it, None)
            yield entry
        while member is not None:
            yield member
            member = next(it, None)

    # -- read ----------------------------------------------------------------------------------------------
    async def read(self, item: SourceItem, max_bytes: int) -> bytes:
        """The member's bytes (CRC checked), refused (Skipped) when too large, gone, changed or damaged."""
        found = self._members.get(item.key)
        if found is None:
            if self._folder is not None:
                return await self._folder.read(item, max_bytes)
            raise Skipped(VANISHED, "not in the archives scanned")
        if item.size > max_bytes:
            raise Skipped(TOO_LARGE, f"{item.size} bytes > limit {max_bytes}")
        data = await asyncio.to_thread(self._read_member, *found)
        if not data:
            raise Skipped(EMPTY, "0 bytes")
        return data

    def _read_member(self, archive: _Archive, info: zipfile.ZipInfo) -> bytes:
        """One member's bytes, read to its end (where zipfile checks the CRC)."""
        try:
            st = os.stat(archive.path)
        except OSError as exc:
            raise Skipped(VANISHED, f"{archive.path.name}: {exc.strerror or exc}") from None
        if (st.st_size, st.st_mtime_ns) != archive.stat:
            raise Skipped(CHANGED, f"{archive.path.name} changed since the scan")
        assert archive.zip is not None
        try:
            with archive.zip.open(info) as f:
                return f.read(info.file_size + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError) as exc:
            raise Skipped(UNREADABLE, f"damaged member of {archive.path.name}: {exc}") from None
        except NotImplementedError as exc:  # a compression zipfile does not know
            raise Skipped(UNREADABLE, f"member of {archive.path.name}: {exc}") from None

    async def read_sidecar(self, item: SourceItem) -> dict[str, Any]:
        """The JSON object of the item's sidecar member; ValueError saying why when it is unusable."""
        if item.key not in self._members and self._folder is not None:
            return await self._folder.read_sidecar(item)
        side_key = (item.sidecar or "").partition(":")[2]
        found = self._sidecars.get(side_key)
        if found is None:
            raise ValueError("sidecar not in the archives scanned")
        archive, info = found
        if info.file_size > SIDECAR_MAX_BYTES:
            raise ValueError(f"sidecar over {SIDECAR_MAX_BYTES} bytes")
        try:
            raw = await asyncio.to_thread(self._read_member, archive, info)
            data = json.loads(raw)
        except Skipped as exc:
            raise ValueError(f"sidecar unreadable: {exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"sidecar is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("sidecar is not a JSON object")
        return data

    def where(self, key: str) -> tuple[Path, str] | None:
        """The archive holding ``key`` as the last scan found it, and the member's name in it; None for
        a key the scan did not find in an archive (a file of the folder, or gone)."""
        found = self._members.get(key)
        return (found[0].path, found[1].filename) if found is not None else None

    def close_archives(self) -> None:
        for archive in self._archives:
            if archive.zip is not None:
                archive.zip.close()
                archive.zip = None

    async def close(self) -> None:
        """Close the archives the scan opened."""
        self.close_archives()
        if self._folder is not None:
            await self._folder.close()
