"""What a state row is, and how it is stored: the dataclasses and their mapping to SQLite columns.

Keys are stored as BLOBs of :func:`~pipeline.keys.key_order`, so SQLite's BINARY order is the scan's
order. ``remote_id`` lives in a column with no declared type (no affinity), so an int id stays an int
and a str id (even ``"42"``) stays a str.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypedDict

from pipeline.keys import ImageId, key_from_order, key_order


class Status(StrEnum):
    """Where a key stands; see docs/state.md for the transitions."""

    PENDING = "pending"
    UPLOADING = "uploading"
    SYNCED = "synced"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    FAILED = "failed"
    DELETING = "deleting"


_STATUS = {s.value: s for s in Status}


@dataclass(frozen=True, slots=True)
class Row:
    """One key's state. ``updated_at`` 0.0 means "stamp it when written"."""

    key: str
    size: int
    mtime_ns: int
    status: Status
    etag: str | None = None
    sha256: str | None = None
    remote_id: ImageId | None = None
    token: str | None = None
    meta_hash: str | None = None
    attempts: int = 0
    code: int | None = None
    message: str | None = None
    updated_at: float = 0.0
    #: The transform signature the image was sent with, or a refusal made under (None: transform off).
    transform: str | None = None

    def synced(self, remote_id: ImageId) -> Row:
        """This intent once its add is answered: synced with ``remote_id``, no refusal, attempts reset.
        ``dataclasses.replace`` makes the same row at 2.4 x the cost (it looks the fields up each call:
        8 µs a file); ``tests/test_state.py`` holds the two equal."""
        return Row(
            self.key,
            self.size,
            self.mtime_ns,
            Status.SYNCED,
            self.etag,
            self.sha256,
            remote_id,
            self.token,
            self.meta_hash,
            0,
            None,
            None,
            self.updated_at,
            self.transform,
        )


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A remote id that must be deleted remotely, recorded durably before the DELETE is sent."""

    remote_id: ImageId
    key: str | None
    reason: str
    created_at: float = 0.0


NAMES = (
    "key", "size", "mtime_ns", "status", "etag", "sha256", "remote_id",
    "token", "meta_hash", "attempts", "code", "message", "updated_at", "transform",
)  # fmt: skip
COLUMNS = ", ".join(NAMES)
UPSERT = (
    f"INSERT INTO items ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in NAMES[1:])
)
#: What an add's answer changes in the row its intent wrote (:data:`ChangeSet` ``answered``): SQLite
#: then rewrites the indexes on those columns only, where the upsert sets (and so rewrites) them all.
ANSWERED = "UPDATE items SET status = ?, remote_id = ?, code = ?, message = ?, attempts = ? WHERE key = ?"

#: A row by its remote id (two parameters, the id twice): found through ``items_remote_text``, the
#: index on the id's text, then the id itself compared, as an int and its digits are two ids.
BY_REMOTE_ID = "remote_id IS NOT NULL AND CAST(remote_id AS TEXT) = CAST(? AS TEXT) AND remote_id = ?"


#: ``json.dumps(value, sort_keys=True)`` without building an encoder per call (a snapshot stores 100,000s).
canonical_json = json.JSONEncoder(sort_keys=True).encode


def encode_metadata(metadata: Mapping[str, Any]) -> str:
    """An image's metadata as the snapshot table stores it (canonical JSON)."""
    return canonical_json(metadata)


def to_row(r: tuple[Any, ...]) -> Row:
    """A row read back from the ``items`` table (columns in :data:`NAMES` order)."""
    return Row(
        key_from_order(r[0]),
        r[1], r[2], _STATUS[r[3]], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
    )  # fmt: skip


def _checked_id(row: Row) -> None:
    if row.remote_id is not None and not isinstance(row.remote_id, int | str):
        raise TypeError(f"remote_id must be int or str, got {row.remote_id!r}")


def params(row: Row, now: float) -> tuple[Any, ...]:
    """A row's values for :data:`UPSERT`; ``updated_at`` 0.0 becomes ``now``."""
    _checked_id(row)
    return (
        key_order(row.key), row.size, row.mtime_ns, row.status.value, row.etag, row.sha256, row.remote_id,
        row.token, row.meta_hash, row.attempts, row.code, row.message, row.updated_at or now, row.transform,
    )  # fmt: skip


def answered_params(row: Row) -> tuple[Any, ...]:
    """A row's values for :data:`ANSWERED`."""
    _checked_id(row)
    return (row.status.value, row.remote_id, row.code, row.message, row.attempts, key_order(row.key))


@dataclass(frozen=True, slots=True)
class Unsettled:
    """An add whose outcome is not known: sent (or about to be) with ``token`` for ``key`` at ``since``,
    and no clean answer recorded. The collection may hold no copy of it, one, or more, until a listing
    settles it (``engine/settle.py`` at a sync's start, or reconcile)."""

    token: str
    key: str
    since: float = 0.0


class ChangeSet(TypedDict, total=False):
    """One batch of changes to the state, as keyword arguments (``apply``, ``submit``, ``commit``)."""

    put: Sequence[Row]
    #: Rows an add's answer made, each differing from the intent the state holds for its key only in
    #: status, remote_id, code, message and attempts: only those are written (a row missing is put whole).
    answered: Sequence[Row]
    delete: Sequence[str]
    tombstones_add: Sequence[Tombstone]
    tombstones_done: Sequence[ImageId]
    #: Unsettled uploads recorded (an add's intent; a token already there keeps its first ``since``) ...
    unsettled_add: Sequence[Unsettled]
    #: ... and settled (their tokens): a clean answer, or a listing that showed what they left.
    unsettled_done: Sequence[str]


@dataclass
class Changes:
    """Changes gathered into one transaction: rows put and deleted, tombstones added and done."""

    put: list[Row] = field(default_factory=list)
    answered: list[Row] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    tombstones_add: list[Tombstone] = field(default_factory=list)
    tombstones_done: list[ImageId] = field(default_factory=list)
    unsettled_add: list[Unsettled] = field(default_factory=list)
    unsettled_done: list[str] = field(default_factory=list)

    def add(self, changes: ChangeSet) -> None:
        """Append a change set, keeping its order (a later put of the same key wins)."""
        self.put.extend(changes.get("put", ()))
        self.answered.extend(changes.get("answered", ()))
        self.delete.extend(changes.get("delete", ()))
        self.tombstones_add.extend(changes.get("tombstones_add", ()))
        self.tombstones_done.extend(changes.get("tombstones_done", ()))
        self.unsettled_add.extend(changes.get("unsettled_add", ()))
        self.unsettled_done.extend(changes.get("unsettled_done", ()))

    def size(self) -> int:
        return (
            len(self.put)
            + len(self.answered)
            + len(self.delete)
            + len(self.tombstones_add)
            + len(self.tombstones_done)
            + len(self.unsettled_add)
            + len(self.unsettled_done)
        )

    def as_set(self) -> ChangeSet:
        """These changes as keyword arguments of ``State.apply``."""
        return ChangeSet(
            put=self.put,
            answered=self.answered,
            delete=self.delete,
            tombstones_add=self.tombstones_add,
            tombstones_done=self.tombstones_done,
            unsettled_add=self.unsettled_add,
            unsettled_done=self.unsettled_done,
        )
