"""A directory tree as a source: a streaming, sorted walk that never reads file contents.

Names are handled as bytes and decoded with ``surrogateescape``, so a non-UTF-8 name becomes a lossless key
whose :func:`~pipeline.sources.key_order` is exactly its bytes on disk. Each directory's entries are sorted by
``name`` (files) or ``name + "/"`` (directories), which makes the depth-first concatenation globally sorted by
key: ``a-c`` comes before ``a/b`` because ``-`` < ``/``. Only the directories on the current path are held.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any

from pipeline.config import SourceConfig
from pipeline.errors import ConfigError, ScanError, Skipped
from pipeline.sources import (
    CHANGED,
    EMPTY,
    NOT_A_FILE,
    TOO_LARGE,
    UNREADABLE,
    VANISHED,
    SourceItem,
    key_order,
)
from pipeline.sources.filters import KeyFilter


class _Dir:
    """One directory on the walk's current path: its sorted entries and where we are in them."""

    __slots__ = ("entries", "ident", "prefix", "sidecars")

    def __init__(
        self, prefix: bytes, entries: list[tuple[bytes, bool, os.DirEntry[bytes]]], ident: object
    ) -> None:
        self.prefix = prefix
        self.entries = iter(entries)
        self.sidecars = {n: e for n, d, e in entries if not d and n.endswith(b".json")}
        self.ident = ident


class LocalSource:
    """The images under one directory (``source.path``)."""

    def __init__(self, config: SourceConfig) -> None:
        if config.path is None:
            raise ConfigError("source.path: a directory is required for a local source")
        self.root = Path(config.path)
        self._root_b = os.fsencode(self.root)
        self.description = f"directory {self.root}"
        self.scan_errors: list[str] = []
        self.follow_symlinks = config.follow_symlinks
        self._filter = KeyFilter(config.include, config.exclude, config.extensions)

    # -- scan ----------------------------------------------------------------------------------------------
    def scan(self) -> Iterator[SourceItem]:
        """Files in key order; raises ScanError at once if the root cannot be listed."""
        try:
            st = os.stat(self._root_b)
        except OSError as exc:
            raise ScanError(
                f"{self.description}: cannot list the source: {exc.strerror or exc} (check source.path)"
            ) from None
        if not stat.S_ISDIR(st.st_mode):
            raise ScanError(f"{self.description}: not a directory")
        entries = self._list(self._root_b, b"", root=True)
        assert entries is not None
        return self._walk(_Dir(b"", entries, (st.st_dev, st.st_ino)))

    def _walk(self, top: _Dir) -> Iterator[SourceItem]:
        stack = [top]
        on_path = {top.ident}  # (st_dev, st_ino) of the directories being walked: a loop guard
        follow = self.follow_symlinks
        # The per-file path below is the no-op run's hot loop (docs/performance.md): names bound
        # locally, the KeyFilter's rules inlined (keys here never end in "/"), no call for a sidecar
        # that is not there.
        wanted = self._filter
        extensions, include, exclude, prune = wanted.extensions, wanted.include, wanted.exclude, wanted.prune
        is_reg = stat.S_ISREG
        while stack:
            current = stack[-1]
            step = next(current.entries, None)
            if step is None:
                stack.pop()
                on_path.discard(current.ident)
                continue
            name, is_dir, entry = step
            key_b = current.prefix + name
            if is_dir:
                key = key_b.decode("utf-8", "surrogateescape")
                if prune is not None and prune.fullmatch(key):
                    continue
                ident: object = None
                if follow:
                    try:
                        st = entry.stat(follow_symlinks=True)
                    except OSError:
                        continue
                    ident = (st.st_dev, st.st_ino)
                    if ident in on_path:
                        continue
                children = self._list(entry.path, key_b + b"/")
                if children is not None:
                    stack.append(_Dir(key_b + b"/", children, ident))
                    on_path.add(ident)
                continue
            key = key_b.decode("utf-8", "surrogateescape")
            if (
                not key.lower().endswith(extensions)
                or (include is not None and not include.fullmatch(key))
                or (exclude is not None and exclude.fullmatch(key))
            ):
                continue
            try:
                st = entry.stat(follow_symlinks=follow)
            except OSError as exc:  # a link that dangles or loops (or the entry just vanished)
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                reason = f"a symlink that cannot be followed: {exc.strerror or exc}"
                yield SourceItem(key, st.st_size, st.st_mtime_ns, special=reason)
                continue
            if is_reg(st.st_mode):
                side = current.sidecars.get(name + b".json") if current.sidecars else None
                stamp = _stamp(side, follow) if side is not None else None
                yield SourceItem(key, st.st_size, st.st_mtime_ns, sidecar=stamp)
            else:
                yield SourceItem(key, st.st_size, st.st_mtime_ns, special=_not_a_file(st.st_mode))

    def _list(
        self, path: bytes, prefix: bytes, root: bool = False
    ) -> list[tuple[bytes, bool, os.DirEntry[bytes]]] | None:
        """One directory's visible entries, sorted by key order; None (recorded) when it cannot be listed."""
        found: list[tuple[bytes, bool, os.DirEntry[bytes]]] = []
        follow = self.follow_symlinks
        try:
            with os.scandir(path) as it:
                for entry in it:
                    name = entry.name
                    if name.startswith(b"."):
                        continue
                    # A file (the common case: one call), or a link not followed: reported (skipped,
                    # unread) if it looks like a photo.
                    if not follow and (entry.is_file(follow_symlinks=False) or entry.is_symlink()):
                        found.append((name, False, entry))
                        continue
                    try:
                        is_dir = entry.is_dir(follow_symlinks=follow)
                    except OSError:  # a link looping on itself: reported by the walk, never followed
                        is_dir = False
                    found.append((name + b"/" if is_dir else name, is_dir, entry))
        except FileNotFoundError:
            if root:
                raise ScanError(f"{self.description}: vanished while listing") from None
            return None  # removed since its parent was listed: its files are simply gone
        except OSError as exc:
            where = os.fsdecode(path)
            if root:
                raise ScanError(
                    f"{self.description}: cannot list the source: {exc.strerror or exc}"
                ) from None
            self.scan_errors.append(f"{where}: {exc.strerror or exc}")
            return None
        found.sort(key=itemgetter(0))
        return [(n[:-1] if d else n, d, e) for n, d, e in found]

    # -- read ----------------------------------------------------------------------------------------------
    async def read_sidecar(self, item: SourceItem) -> dict[str, Any]:
        """The JSON object in ``<file>.json`` beside the item; ValueError saying why when it is unusable."""

        def load() -> dict[str, Any]:
            with open(self._path_b(item.key) + b".json", "rb") as f:
                raw = f.read(SIDECAR_MAX_BYTES + 1)
            if len(raw) > SIDECAR_MAX_BYTES:
                raise ValueError(f"sidecar over {SIDECAR_MAX_BYTES} bytes")
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("sidecar is not a JSON object")
            return data

        try:
            return await asyncio.to_thread(load)
        except OSError as exc:
            raise ValueError(f"sidecar unreadable: {exc.strerror or exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"sidecar is not valid JSON: {exc}") from None

    def local_path(self, key: str) -> Path:
        """Where ``key`` lives on disk."""
        return Path(os.fsdecode(self._path_b(key)))

    def _path_b(self, key: str) -> bytes:
        return os.path.join(self._root_b, key_order(key))

    async def read(self, item: SourceItem, max_bytes: int) -> bytes:
        """The item's bytes, refused (Skipped) when too large, gone, changed since the scan or unreadable.

        One ``asyncio.to_thread`` hop does open + fstat + read: 2.5× faster than aiofiles for 50 KB files,
        which pays a thread hop per call, and as fast for 4 MB ones (docs/performance.md, "Reads").
        """
        if item.size > max_bytes:
            raise Skipped(TOO_LARGE, f"{item.size} bytes > limit {max_bytes}")
        return await asyncio.to_thread(self._read_sync, item, max_bytes)

    def _read_sync(self, item: SourceItem, max_bytes: int) -> bytes:
        path = self._path_b(item.key)
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO swapped in cannot hang us
        if not self.follow_symlinks:
            flags |= os.O_NOFOLLOW
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise Skipped(VANISHED, "gone since the scan") from None
        except IsADirectoryError:
            raise Skipped(NOT_A_FILE, "a directory") from None
        except OSError as exc:
            raise Skipped(UNREADABLE, str(exc.strerror or exc)) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Skipped(NOT_A_FILE, "not a regular file")
            if st.st_size != item.size or st.st_mtime_ns != item.mtime_ns:
                raise Skipped(CHANGED, "size or mtime differs from the scan")
            with open(fd, "rb", closefd=False) as f:
                data = f.read(min(item.size, max_bytes) + 1)
            after = os.fstat(fd)
        except OSError as exc:
            raise Skipped(UNREADABLE, str(exc.strerror or exc)) from None
        finally:
            os.close(fd)
        if len(data) != item.size or after.st_mtime_ns != item.mtime_ns:
            raise Skipped(CHANGED, "changed while being read")
        if not data:
            raise Skipped(EMPTY, "0 bytes")
        return data

    async def close(self) -> None:
        """Nothing to release: every read opens and closes its own file."""


SIDECAR_MAX_BYTES = 64 * 1024


def _stamp(entry: os.DirEntry[bytes], follow: bool) -> str | None:
    """A sidecar's "size-mtime_ns", or None when it is not a file (or it vanished)."""
    try:
        st = entry.stat(follow_symlinks=follow)
    except OSError:
        return None
    return f"{st.st_size}-{st.st_mtime_ns}" if stat.S_ISREG(st.st_mode) else None


def _not_a_file(mode: int) -> str:
    """Why an entry with this mode is not sent."""
    if stat.S_ISLNK(mode):
        return "a symlink, not followed (set source.follow_symlinks: true to follow links)"
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"{kind}, not a regular file"
