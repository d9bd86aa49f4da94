"""The collection as reconcile lists it, in SQL: the ``listing`` table and the diff's queries.

A listing streams into the table page by page and the diff is a few queries against the state, so
reconcile's memory does not grow with the collection. Ids are compared by their text
(``remote_text``, and the ``items_remote_text`` index on ``CAST(remote_id AS TEXT)``): the API page
leaves the id's type open, and an int and its digits must match.

The table is a run's scratch, in a file of its own beside the state: how that file is kept, filled and
removed, and where SQLite spills meanwhile, is :mod:`pipeline.state.scratch`, whose
:class:`~pipeline.state.scratch.Scratch` :class:`Listing` is built on.

What the rows *mean* — adopt, duplicate, orphan — is decided in :mod:`pipeline.engine.diff`; this
module only answers questions about the tables.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.keys import ImageId
from pipeline.state.rows import COLUMNS, Row, to_row
from pipeline.state.schema import transaction
from pipeline.state.scratch import Scratch, writes
from pipeline.state.scratch import listing_path as listing_path

#: Rows fetched (and ids deleted) per step: what reconcile holds in memory at once.
CHUNK = 5000
#: An id held by a row of the state (any status: a replace in flight, a delete recorded).
_HELD = "SELECT 1 FROM items i WHERE i.remote_id IS NOT NULL AND CAST(i.remote_id AS TEXT) = {id}"
_LISTED = "SELECT 1 FROM scratch.listing l WHERE l.remote_text = CAST({id} AS TEXT)"
_MISSING = (
    "items.status = 'synced' AND items.remote_id IS NOT NULL "
    f"AND NOT EXISTS ({_LISTED.format(id='items.remote_id')})"
)
#: Per listed image, its row if one holds it: the listed images none holds, and the synced rows met.
_TALLY = """
    SELECT coalesce(sum(i.status IS NULL), 0), coalesce(sum(i.status = 'synced'), 0)
    FROM scratch.listing l LEFT JOIN items i
        ON i.remote_id IS NOT NULL AND CAST(i.remote_id AS TEXT) = l.remote_text
"""
#: A listed image no row holds and no tombstone names.
_UNHELD = f"""NOT EXISTS ({_HELD.format(id="l.remote_text")})
        AND NOT EXISTS (SELECT 1 FROM tombstones t WHERE CAST(t.remote_id AS TEXT) = l.remote_text)"""
#: A listed id the state does not hold, that is no tombstone and carries a token: what the diff
#: classifies one by one (those without a token are orphans: ``_TOKENLESS``).
_ORPHANS = f"""
    SELECT l.remote_id, l.remote_text, l.token,
        (SELECT 1 FROM items u WHERE u.token = l.token AND u.status = 'uploading' LIMIT 1),
        (SELECT 1 FROM items o WHERE o.token = l.token AND o.status NOT IN ('uploading', 'deleting')
            AND o.remote_id IS NOT NULL LIMIT 1),
        (SELECT 1 FROM items k WHERE k.key = CAST(l.key AS BLOB)),
        (SELECT k.token FROM items k WHERE k.key = CAST(l.key AS BLOB))
    FROM scratch.listing l
    WHERE l.token <> '' AND {_UNHELD}
    ORDER BY l.remote_text
"""
#: The unheld listed images with no token: orphans whatever the state holds (nothing to adopt, no
#: copy of ours to recognise), doomed in one statement.
_TOKENLESS = f"""
    INSERT INTO doomed
    SELECT l.remote_text, l.remote_id, 'orphan' FROM scratch.listing l
    WHERE coalesce(l.token, '') = '' AND {_UNHELD}
    ORDER BY l.remote_text
"""


@dataclass(frozen=True, slots=True)
class Tally:
    """What one pass of the listing against the state counts (:meth:`Listing.tally`)."""

    #: Rows ``synced``, and of them those whose image the listing lacks.
    synced: int
    missing: int
    #: Listed images no row holds (the orphans and duplicates are among them).
    unheld: int


@dataclass(frozen=True, slots=True)
class Listed:
    """What the diff knows of one listed image the state does not hold."""

    remote_id: ImageId
    remote_text: str
    token: str | None
    #: A row is ``uploading`` with this token (the image may be that upload, answer lost).
    uploading: bool
    #: A row that holds an image carries this token (this is a second copy of it).
    owned: bool
    #: The state has a row for the key this image names, and that row's token.
    key_held: bool
    key_token: str | None


class Listing(Scratch):
    """The ``listing`` table of one state's run, and the diff's questions about it."""

    # -- the diff's questions ------------------------------------------------------------------------
    def count(self) -> int:
        """Listed images (each id once)."""
        self._sealed()
        return self._listed

    def named_count(self) -> int:
        """Listed images whose metadata names a key (a file of this archive)."""
        sql = "SELECT count(*) FROM scratch.listing WHERE key IS NOT NULL"
        return int(self._sealed().execute(sql).fetchone()[0])

    def tally(self) -> Tally:
        """Synced rows, those whose image the listing lacks, and the listed images no row holds.

        One pass over the listing, one probe of the state per listed image (the listed ids are unique,
        so each synced row's image is met at most once): the synced rows minus those met are the
        missing ones, exactly unless a synced row holds no id at all (the state never writes one, but
        if it did, the count is taken again row by row, as it is whenever anything looks missing).
        """
        db = self._sealed()
        synced = int(db.execute("SELECT count(*) FROM items WHERE status = 'synced'").fetchone()[0])
        unheld, met = db.execute(_TALLY).fetchone()
        missing = synced - int(met)
        if missing:
            missing = int(db.execute(f"SELECT count(*) FROM items WHERE {_MISSING}").fetchone()[0])
        return Tally(synced=synced, missing=missing, unheld=int(unheld))

    @writes
    def doom_tokenless(self) -> int:
        """Doom as orphans, in one statement, the unheld listed images that carry no token (a legacy
        collection's, or any listing without metadata): no rule can make one anything else. Returns
        how many."""
        doomed = int(self._sealed().execute(_TOKENLESS).rowcount)
        self._kinds["orphan"] += doomed
        return doomed

    def orphans(self) -> Iterator[Listed]:
        """Every listed image the state does not hold, that is no tombstone and carries a token, with
        what the state knows of its token and its key; streamed (:meth:`doom_tokenless` dooms the
        rest)."""
        cur = self._sealed().execute(_ORPHANS)
        while batch := cur.fetchmany(CHUNK):
            for r in batch:
                yield Listed(r[0], r[1], r[2], bool(r[3]), bool(r[4]), bool(r[5]), r[6])

    def uploading(self) -> list[Row]:
        """Rows ``uploading``: few, whatever the archive's size (the adds of one run at most)."""
        return [
            to_row(r) for r in self._db.execute(f"SELECT {COLUMNS} FROM items WHERE status = 'uploading'")
        ]

    def deleting(self) -> tuple[list[ImageId], list[str]]:
        """Rows ``deleting``: the ids still listed (to delete again), the keys of those gone (done)."""
        listed: list[ImageId] = []
        gone: list[str] = []
        for row in self._db.execute(f"SELECT {COLUMNS} FROM items WHERE status = 'deleting'"):
            r = to_row(row)
            if r.remote_id is not None and self._is_listed(r.remote_id):
                listed.append(r.remote_id)
            else:
                gone.append(r.key)
        return listed, gone

    def tombstones(self, *, leave: str | None = None) -> tuple[list[ImageId], list[ImageId]]:
        """Tombstones: ids listed and held by no row (to delete), and the rest (done); those whose reason
        is ``leave`` are in neither (left for the sync)."""
        todo: list[ImageId] = []
        done: list[ImageId] = []
        sql = "SELECT remote_id FROM tombstones WHERE reason IS NOT ? ORDER BY created_at, rowid"
        for (remote_id,) in self._db.execute(sql, (leave,)):
            held = self._db.execute(_HELD.format(id="CAST(? AS TEXT)"), (remote_id,)).fetchone()
            (todo if self._is_listed(remote_id) and not held else done).append(remote_id)
        return todo, done

    def _is_listed(self, remote_id: ImageId) -> bool:
        return bool(self._sealed().execute(_LISTED.format(id="?"), (remote_id,)).fetchone())

    # -- what is to be deleted --------------------------------------------------------------------------
    @writes
    def doom(self, verdicts: Sequence[tuple[str, ImageId, str]]) -> None:
        """Record (remote_text, remote_id, kind) of images to delete: ``orphan`` or ``duplicate``; each
        listed image once at most."""
        self._db.executemany("INSERT INTO doomed VALUES (?, ?, ?)", verdicts)
        self._kinds.update(kind for _, _, kind in verdicts)

    def doomed_count(self, kind: str) -> int:
        return self._kinds[kind]

    def doomed(self, kinds: Sequence[str]) -> Iterator[list[tuple[ImageId, str]]]:
        """The images to delete of these kinds, as (id, kind), in chunks of :data:`CHUNK`, in the order
        they were doomed. Each chunk is its own query, from the last one's rowid on: no statement stays
        open while the caller deletes a chunk and records it in the state, so the caller can take them
        one at a time — a reconcile deleting millions of orphans holds one chunk, not the list."""
        marks = ",".join("?" * len(kinds))
        sql = (
            f"SELECT rowid, remote_id, kind FROM doomed WHERE kind IN ({marks}) AND rowid > ? "
            f"ORDER BY rowid LIMIT {CHUNK}"
        )
        after = 0
        while batch := self._db.execute(sql, (*kinds, after)).fetchall():
            after = batch[-1][0]
            yield [(r[1], r[2]) for r in batch]

    def doomed_listed(self, kinds: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """The images to delete of these kinds as (id, key its metadata names, kind, url, metadata JSON),
        in the order they were doomed; streamed (a dry run's list of what it would delete)."""
        marks = ",".join("?" * len(kinds))
        cur = self._sealed().execute(
            "SELECT d.remote_id, l.key, d.kind, l.url, l.metadata FROM doomed d "
            "LEFT JOIN scratch.listing l ON l.remote_text = d.remote_text "
            f"WHERE d.kind IN ({marks}) ORDER BY d.rowid",
            tuple(kinds),
        )
        while batch := cur.fetchmany(CHUNK // 5):  # a dry run's metadata is up to 4 KiB a row
            yield from batch

    def listed(self, remote_id: ImageId) -> tuple[str | None, str | None, str | None]:
        """The key a listed image's metadata names, its url and its metadata JSON (each None: not
        listed, or not shown)."""
        sql = "SELECT key, url, metadata FROM scratch.listing WHERE remote_text = CAST(? AS TEXT)"
        found = self._sealed().execute(sql, (remote_id,)).fetchone()
        return (found[0], found[1], found[2]) if found else (None, None, None)

    @writes
    def defer_young(self, now: float, age: float, *, record: bool) -> int:
        """Two-pass mode: orphans not seen by an earlier reconcile at least ``age`` seconds ago become
        ``deferred`` (not deleted); with ``record``, ``orphans_seen`` becomes exactly this run's orphans,
        each with the time it was first seen. Returns how many were deferred."""
        db = self._db
        first_seen = (
            "(SELECT s.first_seen FROM orphans_seen s WHERE CAST(s.remote_id AS TEXT) = doomed.remote_text)"
        )
        deferred = db.execute(
            f"UPDATE doomed SET kind = 'deferred' WHERE kind = 'orphan' AND "
            f"({first_seen} IS NULL OR {first_seen} > ?)",
            (now - age,),
        ).rowcount
        self._kinds["orphan"] -= deferred
        self._kinds["deferred"] += deferred
        if record:
            with transaction(db, self._path):
                db.execute("DROP TABLE IF EXISTS temp.seen_now")
                db.execute(
                    f"CREATE TEMP TABLE seen_now AS SELECT remote_id, COALESCE({first_seen}, ?) "
                    "AS first_seen FROM doomed WHERE kind IN ('orphan', 'deferred')",
                    (now,),
                )
                db.execute("DELETE FROM orphans_seen")
                db.execute("INSERT INTO orphans_seen SELECT remote_id, first_seen FROM seen_now")
        return self.doomed_count("deferred")

    # -- the state's side ------------------------------------------------------------------------------
    @writes
    def requeue_missing(self) -> int:
        """Synced rows whose image the listing lacks go back to ``pending`` (one statement)."""
        with transaction(self._sealed(), self._path) as db:
            cur = db.execute(
                "UPDATE items SET status = 'pending', remote_id = NULL, token = NULL, "
                f"message = 're-queued by reconcile', updated_at = ? WHERE {_MISSING}",
                (time.time(),),
            )
        return cur.rowcount

    @writes
    def shadow_items(self) -> None:
        """A dry run that changes rows (``reconcile --adopt``): a TEMP copy of ``items`` (with the
        diff's indexes) that every later query and write of this connection sees instead."""
        db = self._db
        db.execute("CREATE TEMP TABLE items AS SELECT * FROM main.items")
        db.execute("CREATE UNIQUE INDEX temp.items_key ON items (key)")
        db.execute("CREATE INDEX temp.items_token ON items (token) WHERE token IS NOT NULL")
        db.execute(
            "CREATE INDEX temp.items_remote_text ON items (CAST(remote_id AS TEXT)) "
            "WHERE remote_id IS NOT NULL"
        )

    def candidates(self, key: str) -> list[tuple[ImageId, str | None, str | None]]:
        """Listed images naming ``key`` (its metadata form) that no row holds: (id, url, metadata)."""
        sql = (
            "SELECT remote_id, url, metadata FROM scratch.listing l WHERE key = ? "
            f"AND NOT EXISTS ({_HELD.format(id='l.remote_text')}) ORDER BY remote_text"
        )
        return [(r[0], r[1], r[2]) for r in self._sealed().execute(sql, (key,))]
