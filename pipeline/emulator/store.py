"""The emulator's image store: an in-memory ordered index, written through to SQLite and a files dir.

Listing 100,000 images a page at a time must cost O(page) per page, so the order lives in memory
(a dict by id plus a list of ids in insertion order); SQLite is only the write-through copy that
survives a restart, with one small INSERT per add on a connection kept open.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.emulator.imaging import Decoded
from pipeline.keys import ImageId

DB_NAME = "emulator.db"
FILES_DIR = "files"
STAGING_PREFIX = ".staging-"
#: Where a random large integer id sequence starts (when ``id_start`` is None).
RANDOM_START_RANGE = (10**11, 10**12)

SeedMetadata = Mapping[str, Any] | Callable[[int], Mapping[str, Any]] | None


@dataclass(frozen=True)
class StoredImage:
    """One stored image as tests see it: the id exactly as the API answered it."""

    id: ImageId
    sha256: str
    size: int
    metadata: dict[str, Any]
    url: str


@dataclass
class Entry:
    """One stored image as the store keeps it; ``key`` is the id's decimal or hex text."""

    id: ImageId
    sha256: str
    size: int
    metadata: dict[str, Any]
    dhash: int | None
    fmt: str | None
    has_file: bool
    seq: int = field(default=0)

    @property
    def key(self) -> str:
        return str(self.id)


def _to_signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _to_unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


_INSERT = "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    is_int INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    dhash INTEGER,
    fmt TEXT,
    has_file INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ImageStore:
    """The images of one data dir: ordered in memory, persisted in SQLite, bytes under ``files/``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.files_dir = data_dir / FILES_DIR
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(data_dir / DB_NAME, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._entries: dict[str, Entry] = {}
        self._order: list[str] = []
        self._next_seq = 1
        self._next_int = 0
        self._random_start: int | None = None
        self._oid_counter = 0
        self._oid_random: int | None = None
        self._load()

    def _load(self) -> None:
        rows = self._db.execute(
            "SELECT seq, key, is_int, sha256, size, metadata, dhash, fmt, has_file FROM images ORDER BY seq"
        )
        for seq, key, is_int, sha, size, md, dhash, fmt, has_file in rows:
            entry = Entry(
                int(key) if is_int else key,
                sha,
                size,
                json.loads(md),
                None if dhash is None else _to_unsigned(dhash),
                fmt,
                bool(has_file),
                seq,
            )
            self._entries[key] = entry
            self._order.append(key)
            self._next_seq = seq + 1
        meta = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        (top,) = self._db.execute("SELECT MAX(CAST(key AS INTEGER)) FROM images WHERE is_int").fetchone()
        self._next_int = max(int(meta.get("next_int", 0)), top + 1 if top is not None else 0)
        for stale in self.files_dir.glob(f"{STAGING_PREFIX}*"):
            stale.unlink(missing_ok=True)
        self._random_start = int(meta["random_start"]) if "random_start" in meta else None

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return len(self._order)

    # -- reading -------------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def page(self, offset: int, limit: int, *, newest_first: bool = False) -> list[Entry]:
        """Images ``offset .. offset+limit`` in insertion order (or its reverse): O(limit)."""
        if newest_first:
            end = max(0, len(self._order) - offset)
            return [self._entries[k] for k in reversed(self._order[max(0, end - limit) : end])]
        return [self._entries[k] for k in self._order[offset : offset + limit]]

    def with_sha256(self, sha256: str) -> Entry | None:
        """The oldest stored image with these bytes (``dedup``): O(n), only when dedup is on."""
        return next((e for k in self._order if (e := self._entries[k]).sha256 == sha256), None)

    def all(self) -> list[Entry]:
        return [self._entries[k] for k in self._order]

    def file_path(self, key: str) -> Path:
        return self.files_dir / key

    def search(self, dhash: int, threshold: int) -> list[tuple[Entry, int]]:
        """Stored images within ``threshold`` bits of ``dhash``, nearest first (ties: oldest first)."""
        found = []
        for key in self._order:
            entry = self._entries[key]
            if entry.dhash is not None:
                distance = (entry.dhash ^ dhash).bit_count()
                if distance <= threshold:
                    found.append((entry, distance))
        found.sort(key=lambda pair: (pair[1], pair[0].seq))
        return found

    # -- ids -----------------------------------------------------------------------------------

    def new_id(self, kind: str, start: int | None, rng: random.Random) -> ImageId:
        """A fresh id of ``kind``, never used before in this data dir (the sequence is persisted)."""
        if kind == "int":
            if start is None:
                if self._random_start is None:
                    self._random_start = rng.randrange(*RANDOM_START_RANGE)
                    self._set_meta("random_start", self._random_start)
                start = self._random_start
            value = max(self._next_int, start)
            self._next_int = value + 1
            return value
        if self._oid_random is None:
            self._oid_random = rng.getrandbits(40)
            self._oid_counter = rng.getrandbits(24)
        while True:
            self._oid_counter = (self._oid_counter + 1) & 0xFFFFFF
            oid = f"{int(time.time()) & 0xFFFFFFFF:08x}{self._oid_random:010x}{self._oid_counter:06x}"
            if oid not in self._entries:
                return oid

    def _set_meta(self, name: str, value: object) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, str(value)))

    # -- writing -------------------------------------------------------------------------------

    def stage(self, data: bytes) -> Path:
        """Write an add's bytes under a temporary name (in a worker thread, before the id is known)."""
        path = self.files_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        path.write_bytes(data)
        return path

    def add(self, image_id: ImageId, decoded: Decoded, staged: Path, metadata: dict[str, Any]) -> Entry:
        """Move the staged bytes to their id's name, INSERT one row, index it in memory."""
        entry = Entry(image_id, decoded.sha256, decoded.size, metadata, decoded.dhash, decoded.fmt, True)
        os.replace(staged, self.file_path(entry.key))
        self._insert([entry])
        return entry

    def add_bare(self, image_id: ImageId, sha256: str, size: int, metadata: dict[str, Any]) -> Entry:
        """An image with no file and no dHash (``fast_adds``): INSERT one row, index it in memory."""
        entry = Entry(image_id, sha256, size, metadata, None, None, False)
        self._insert([entry])
        return entry

    def _insert(self, entries: list[Entry]) -> None:
        for entry in entries:
            entry.seq = self._next_seq
            self._next_seq += 1
        rows = [
            (
                e.seq,
                e.key,
                int(isinstance(e.id, int)),
                e.sha256,
                e.size,
                json.dumps(e.metadata),
                None if e.dhash is None else _to_signed(e.dhash),
                e.fmt,
                int(e.has_file),
            )
            for e in entries
        ]
        if len(rows) == 1:
            self._db.execute(_INSERT, rows[0])
        else:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(_INSERT, rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        for entry in entries:
            self._entries[entry.key] = entry
            self._order.append(entry.key)

    def seed(self, ids: Iterable[ImageId], metadata: SeedMetadata = None) -> list[ImageId]:
        """Insert fake images (no file, no dHash: never found by search) in one transaction."""
        entries = []
        for i, image_id in enumerate(ids):
            md = metadata(i) if callable(metadata) else metadata
            fake = f"seed:{image_id}".encode()
            sha = hashlib.sha256(fake).hexdigest()
            entries.append(Entry(image_id, sha, len(fake), dict(md or {}), None, None, False))
        self._insert(entries)
        return [e.id for e in entries]

    def update_metadata(self, key: str, metadata: dict[str, Any]) -> Entry:
        entry = self._entries[key]
        self._db.execute("UPDATE images SET metadata = ? WHERE key = ?", (json.dumps(metadata), key))
        entry.metadata = metadata
        return entry

    def delete(self, keys: Iterable[str]) -> int:
        """Delete the known ones of ``keys`` (rows, files, index); return how many were deleted."""
        gone = {k for k in keys if k in self._entries}
        if not gone:
            return 0
        self._db.execute("BEGIN")
        try:
            self._db.executemany("DELETE FROM images WHERE key = ?", [(k,) for k in gone])
            self._set_meta("next_int", self._next_int)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        for key in gone:
            if self._entries.pop(key).has_file:
                self.file_path(key).unlink(missing_ok=True)
        self._order = [k for k in self._order if k not in gone]
        return len(gone)

    def wipe(self) -> None:
        """Forget every image and restart the id sequences: a brand-new, empty account."""
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM images")
        self._db.execute("DELETE FROM meta")
        self._db.execute("COMMIT")
        shutil.rmtree(self.files_dir, ignore_errors=True)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self._entries.clear()
        self._order.clear()
        self._next_seq = 1
        self._next_int = 0
        self._random_start = None
        self._oid_random = None
