"""The state store: one SQLite file that remembers, per source key, what the remote side holds.

Rows come back in key order (:mod:`pipeline.state.rows`), so :meth:`State.iter_rows` streams straight
into the plan's merge-join. Writes are few, large transactions; reads that stream use their own
connection, which in WAL mode sees one consistent snapshot even while the engine's state writer
commits. Secrets never enter this file. The schema and its migrations are :mod:`pipeline.state.schema`;
statuses and transitions: ``docs/state.md``. What the state knows of the remote side beyond its rows
(tombstones, unsettled uploads, orphans seen) is :mod:`pipeline.state.remote`; the runs, the requests
they spent and what the service taught, :mod:`pipeline.state.history`: both are mixed into
:class:`State`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from pipeline.errors import StateError
from pipeline.keys import ImageId, key_order
from pipeline.state.history import History
from pipeline.state.raw import RawRows
from pipeline.state.remote import Remote
from pipeline.state.rows import (
    ANSWERED,
    BY_REMOTE_ID,
    COLUMNS,
    UPSERT,
    Changes,
    ChangeSet,
    Row,
    Status,
    Tombstone,
    Unsettled,
    answered_params,
    encode_metadata,
    params,
    to_row,
)
from pipeline.state.schema import APPLICATION_ID, CONTENT_INDEX, SCHEMA_VERSION, connect, open_db, transaction

if TYPE_CHECKING:
    from pipeline.state.listing import Listing

_FETCH = 2000
T = TypeVar("T")


class State(Remote, History):
    """The SQLite state DB of one archive. Use from one thread at a time; streams use their own connection."""

    def __init__(self, path: Path, db: sqlite3.Connection) -> None:
        self.path = path
        self._db = db
        self._ident = _ident(path)

    # -- opening -------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> State:
        """Open (or create) the state DB at ``path``; refuse anything that is not ours, intact and known."""
        path = Path(path)
        return cls(path, open_db(path, create=create))

    def close(self) -> None:
        self._db.close()

    def still_in_place(self) -> bool:
        """Whether ``path`` still names the file this state opened: not removed (with its folder, say) nor
        replaced while a run wrote into it. What a run records into a file no path names is lost."""
        return self._ident is not None and _ident(self.path) == self._ident

    def __enter__(self) -> State:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- items ---------------------------------------------------------------------------------------------
    def iter_rows(self) -> Generator[Row, None, None]:
        """Every row in key order, streamed from one snapshot (the plan merge-joins it against the scan)."""
        return self._stream(f"SELECT {COLUMNS} FROM items ORDER BY key", (), to_row)

    def raw_rows(self, *, sha256: bool = False) -> RawRows:
        """Every row as a plain tuple in key order, from one snapshot, whole rows on demand: what the
        sync's march reads (:mod:`pipeline.state.raw`). Close it when done."""
        return RawRows(self.path, sha256=sha256)

    def rows(self, status: Status | None = None) -> Generator[Row, None, None]:
        """Rows in key order, optionally only those with ``status``; streamed."""
        if status is None:
            return self.iter_rows()
        sql = f"SELECT {COLUMNS} FROM items WHERE status = ? ORDER BY key"
        return self._stream(sql, (Status(status).value,), to_row)

    def has_synced(self) -> bool:
        """Whether any row is synced (one probe of the status index)."""
        return self._db.execute("SELECT 1 FROM items WHERE status = 'synced' LIMIT 1").fetchone() is not None

    def has_content_index(self) -> bool:
        """Whether the content-hash index is there (:meth:`drop_content_index` takes it away for a while)."""
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'items_sha256'"
        return self._db.execute(sql).fetchone() is not None

    def drop_content_index(self) -> None:
        """Stop keeping the content-hash index, for a load of many rows into a state that looks nothing
        up by content meanwhile (a first sync: ``engine/sync.py``); :meth:`build_content_index` makes it
        again. Its keys are random: kept row by row, each row written dirties a page of its own."""
        with self._transaction() as db:
            db.execute("DROP INDEX IF EXISTS items_sha256")

    def build_content_index(self) -> bool:
        """Make the content-hash index if it is not there (after :meth:`drop_content_index`, or a run
        killed in between), its sort spilling beside the state; whether it had to be made."""
        if self.has_content_index():
            return False
        from pipeline.state.scratch import spill_back, spill_beside

        was = spill_beside(self._db, self.path)
        try:
            with self._transaction() as db:
                db.execute(CONTENT_INDEX)
        finally:
            spill_back(self._db, was)
        return True

    def synced_with_sha(self, sha256: str) -> list[Row]:
        """Synced rows whose content has this hash (a rename's old key, or a copy elsewhere)."""
        sql = f"SELECT {COLUMNS} FROM items WHERE sha256 = ? AND status = 'synced'"
        found = self._db.execute(sql, (sha256,))
        return [to_row(r) for r in found]

    def by_remote_ids(self, remote_ids: Iterable[ImageId]) -> dict[str, Row]:
        """Rows holding these remote ids, keyed by ``str(id)``."""
        out: dict[str, Row] = {}
        for image_id in remote_ids:
            for r in self._db.execute(
                f"SELECT {COLUMNS} FROM items WHERE {BY_REMOTE_ID}", (image_id, image_id)
            ):
                out[str(image_id)] = to_row(r)
        return out

    def requeue(self, statuses: Iterable[Status]) -> int:
        """Rows with these statuses back to ``pending`` (``facesync retry``); how many."""
        names = [s.value for s in statuses]
        marks = ",".join("?" * len(names))
        with self._transaction() as db:
            cur = db.execute(
                f"UPDATE items SET status = 'pending', code = NULL, message = 'queued again by retry', "
                f"attempts = 0, updated_at = ? WHERE status IN ({marks})",
                (time.time(), *names),
            )
        return cur.rowcount

    def get(self, key: str) -> Row | None:
        found = self._db.execute(f"SELECT {COLUMNS} FROM items WHERE key = ?", (key_order(key),)).fetchone()
        return to_row(found) if found else None

    def counts(self) -> dict[str, int]:
        """Rows per status; every status is present, zero when none."""
        out = dict.fromkeys((s.value for s in Status), 0)
        out.update(self._db.execute("SELECT status, count(*) FROM items GROUP BY status").fetchall())
        return out

    def counts_of(self, statuses: Iterable[Status]) -> dict[str, int]:
        """Rows per status of ``statuses`` (in that order, zero when none): a search of the status index,
        where :meth:`counts` reads all of it (7 ms per 100,000 rows here, which a no-op that only wants its
        waiting rows need not pay)."""
        out = dict.fromkeys((s.value for s in statuses), 0)
        marks = ", ".join("?" * len(out))
        sql = f"SELECT status, count(*) FROM items WHERE status IN ({marks}) GROUP BY status"
        out.update(self._db.execute(sql, list(out)).fetchall())
        return out

    def synced_with_other_transform(self, transform: str | None) -> int:
        """Synced rows whose image was sent with other transform settings than ``transform`` (None: off)."""
        sql = "SELECT count(*) FROM items WHERE status = 'synced' AND transform IS NOT ?"
        return int(self._db.execute(sql, (transform,)).fetchone()[0])

    def put_many(self, rows: Sequence[Row]) -> None:
        """Upsert whole rows in one transaction."""
        self.apply(put=rows)

    def delete_many(self, keys: Sequence[str]) -> None:
        self.apply(delete=keys)

    def apply(self, **changes: Unpack[ChangeSet]) -> None:
        """Apply one batch of changes atomically: all of it lands, or none (the state writer's one call).

        In this order: puts, answers, deletes, tombstones added, tombstones done. ``executemany`` binds
        one row's parameters per statement, so SQLite's variable limit never applies however large the
        batch.
        """
        batch = Changes()
        batch.add(changes)
        put, delete = batch.put, batch.delete
        tombstones_add, tombstones_done = batch.tombstones_add, batch.tombstones_done
        unsettled_add, unsettled_done = batch.unsettled_add, batch.unsettled_done
        now = time.time()
        with self._transaction() as db:
            if put:
                db.executemany(UPSERT, (params(r, now) for r in put))
            # An answered row whose intent is not there after all (nothing in a run removes one) is put
            # whole, as are the others (each is whole, so the upsert repeats what the update wrote).
            if (answered := batch.answered) and db.executemany(
                ANSWERED, map(answered_params, answered)
            ).rowcount != len(answered):
                db.executemany(UPSERT, (params(r, now) for r in answered))
            if delete:
                db.executemany("DELETE FROM items WHERE key = ?", ((key_order(k),) for k in delete))
            if tombstones_add:
                db.executemany(
                    "INSERT OR IGNORE INTO tombstones (remote_id, key, reason, created_at) VALUES (?,?,?,?)",
                    (
                        (
                            t.remote_id,
                            None if t.key is None else key_order(t.key),
                            t.reason,
                            t.created_at or now,
                        )
                        for t in tombstones_add
                    ),
                )
            if tombstones_done:
                db.executemany("DELETE FROM tombstones WHERE remote_id = ?", ((i,) for i in tombstones_done))
            if unsettled_add:
                db.executemany(
                    "INSERT OR IGNORE INTO unsettled (token, key, since) VALUES (?,?,?)",
                    ((u.token, key_order(u.key), u.since or now) for u in unsettled_add),
                )
            if unsettled_done:
                db.executemany("DELETE FROM unsettled WHERE token = ?", ((t,) for t in unsettled_done))

    # -- the listing reconcile diffs against ----------------------------------------------------------------
    def listing(self) -> Listing:
        """The ``listing`` table (a scratch file beside the state, while a reconcile runs) and the diff's
        queries (:mod:`pipeline.state.listing`), imported here: only a reconcile uses them."""
        from pipeline.state.listing import Listing

        return Listing(self._db, self.path)

    # -- health --------------------------------------------------------------------------------------------
    def integrity_ok(self) -> bool:
        """True when ``PRAGMA integrity_check`` finds nothing wrong (it reads the whole file)."""
        try:
            found = self._db.execute("PRAGMA integrity_check").fetchall()
        except sqlite3.DatabaseError:
            return False
        return found == [("ok",)]

    # -- internals -----------------------------------------------------------------------------------------
    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db, self.path)

    def _stream(
        self, sql: str, params: tuple[Any, ...], convert: Callable[[tuple[Any, ...]], T]
    ) -> Generator[T, None, None]:
        try:
            reader = connect(self.path)
            reader.execute("PRAGMA query_only = 1")
            cur = reader.execute(sql, params)
        except sqlite3.Error as exc:
            raise StateError(f"state {self.path}: cannot read: {exc}") from None
        return _drain(reader, cur, convert, self.path)


def _drain(
    reader: sqlite3.Connection, cur: sqlite3.Cursor, convert: Callable[[tuple[Any, ...]], T], path: Path
) -> Generator[T, None, None]:
    try:
        while batch := cur.fetchmany(_FETCH):
            for r in batch:
                yield convert(r)
    except sqlite3.Error as exc:
        raise StateError(f"state {path}: read failed: {exc}") from None
    finally:
        reader.close()


__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "ImageId",
    "Row",
    "State",
    "Status",
    "Tombstone",
    "Unsettled",
    "encode_metadata",
]


def _ident(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino
