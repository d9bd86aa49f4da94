"""The remote side as the state knows it beyond its rows: tombstones, unsettled uploads, ids held.

Mixed into :class:`~pipeline.state.store.State`, on its connection. Ids still to delete
(``tombstones``), adds whose outcome no answer or listing has settled (``unsettled``), and the
orphans an earlier reconcile saw (``orphans_seen``) are what the removals, the settling of a sync
(``engine/settle.py``) and reconcile ask of the state, with the lookups of remote ids and tokens
across them and ``items``; the rows themselves (read, streamed, written) stay in ``store.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager

from pipeline.keys import ImageId, key_from_order
from pipeline.state.rows import BY_REMOTE_ID, Tombstone, Unsettled


class Remote:
    """The ``tombstones``, ``unsettled`` and ``orphans_seen`` tables of a
    :class:`~pipeline.state.store.State`, and the lookups of ids and tokens across them and ``items``."""

    _db: sqlite3.Connection
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    # -- tombstones ----------------------------------------------------------------------------------------
    def tombstones(self) -> list[Tombstone]:
        """Remote ids still to be deleted remotely, oldest first."""
        found = self._db.execute(
            "SELECT remote_id, key, reason, created_at FROM tombstones ORDER BY created_at, rowid"
        )
        return [Tombstone(i, None if k is None else key_from_order(k), r, c) for i, k, r, c in found]

    def forget_deleting(self, remote_ids: Sequence[ImageId]) -> None:
        """Drop the ``deleting`` rows whose remote DELETE is confirmed (reconcile found them still listed)."""
        if remote_ids:
            with self._transaction() as db:
                db.executemany(
                    f"DELETE FROM items WHERE status = 'deleting' AND {BY_REMOTE_ID}",
                    ((i, i) for i in remote_ids),
                )

    # -- unsettled uploads (engine/settle.py) --------------------------------------------------------------
    def unsettled(self) -> list[Unsettled]:
        """The uploads whose outcome no answer or listing has settled yet, oldest first."""
        found = self._db.execute("SELECT token, key, since FROM unsettled ORDER BY since, token")
        return [Unsettled(t, key_from_order(k), s) for t, k, s in found]

    def unsettled_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM unsettled").fetchone()[0])

    def tokens_known(self, tokens: Iterable[str]) -> set[str]:
        """Of ``tokens``, those this state issued and still knows: a row's, or an unsettled upload's."""
        out: set[str] = set()
        for token in set(tokens):
            found = self._db.execute(
                "SELECT 1 FROM items WHERE token = ? "
                "UNION ALL SELECT 1 FROM unsettled WHERE token = ? LIMIT 1",
                (token, token),
            ).fetchone()
            if found:
                out.add(token)
        return out

    def held_ids(self, remote_ids: Iterable[ImageId]) -> set[str]:
        """Of ``remote_ids`` (as text), those a row or a tombstone holds: never a duplicate to delete."""
        out: set[str] = set()
        for text in {str(i) for i in remote_ids}:
            found = self._db.execute(
                "SELECT 1 FROM items WHERE remote_id IS NOT NULL AND CAST(remote_id AS TEXT) = ? "
                "UNION ALL SELECT 1 FROM tombstones WHERE CAST(remote_id AS TEXT) = ? LIMIT 1",
                (text, text),
            ).fetchone()
            if found:
                out.add(text)
        return out

    def stored_before(self, remote_ids: Iterable[ImageId], when: float) -> bool:
        """Whether a synced row, last written before ``when``, holds one of ``remote_ids``: an image that
        was stored before then (its answer came before then), so before any upload sent since."""
        texts = list({str(i) for i in remote_ids})
        for at in range(0, len(texts), 500):
            part = texts[at : at + 500]
            marks = ",".join("?" * len(part))
            found = self._db.execute(
                "SELECT 1 FROM items WHERE remote_id IS NOT NULL AND status = 'synced' AND updated_at < ? "
                f"AND CAST(remote_id AS TEXT) IN ({marks}) LIMIT 1",
                (when, *part),
            ).fetchone()
            if found:
                return True
        return False

    def held_count(self) -> int:
        """Images this state holds (rows with a remote id): a guess at the collection's size."""
        return int(self._db.execute("SELECT count(*) FROM items WHERE remote_id IS NOT NULL").fetchone()[0])

    # -- orphans seen (two-pass reconcile) -----------------------------------------------------------------
    def note_orphans(
        self, remote_ids: Sequence[ImageId], now: float, *, record: bool = True
    ) -> dict[str, float]:
        """When each of ``remote_ids`` was first seen as an orphan by an *earlier* reconcile, keyed by
        ``str(id)`` (ids seen for the first time are absent). With ``record``, the table becomes exactly
        these ids, new ones stamped ``now`` (an orphan that went away starts over)."""
        seen = {str(i): t for i, t in self._db.execute("SELECT remote_id, first_seen FROM orphans_seen")}
        earlier = {str(i): seen[str(i)] for i in remote_ids if str(i) in seen}
        if record:
            with self._transaction() as db:
                db.execute("DELETE FROM orphans_seen")
                db.executemany(
                    "INSERT OR IGNORE INTO orphans_seen (remote_id, first_seen) VALUES (?, ?)",
                    ((i, earlier.get(str(i), now)) for i in remote_ids),
                )
        return earlier
