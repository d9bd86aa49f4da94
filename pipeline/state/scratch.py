"""A reconcile's scratch beside the state: the ``listing`` table's own file, the TEMP tables, SQLite's
spills.

The table is a run's scratch, not the state: it lives in a file of its own beside the state
(``<state>.listing``, attached as ``scratch``), written without a journal or a sync — a page is one
INSERT of all its rows — and removed when the run ends (:meth:`Scratch.close`); a file left by a killed
run is replaced by the next. On the state's disk, not in SQLite's TEMP store, which may be a tmpfs (RAM)
and would hold ten million listed images there. The diff's own scratch tables (what is to be deleted)
are TEMP: they hold the orphans, not the collection; what they and the index builds spill goes beside
the state too, from :meth:`Scratch.start` to :meth:`Scratch.close` (docs/performance.md, "Reconcile at
scale", has the sizes at 2,000,000 and 10,000,000).

The questions asked of it are :class:`~pipeline.state.listing.Listing`'s, built on this class.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import sqlite3
from collections.abc import Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar, cast

from pipeline.errors import StateError, sqlite_advice

#: The columns of a listed image, in the order :meth:`Scratch.add` takes them; the last two (url and
#: metadata JSON) only when adopting or in a dry run, which names them beside each image it would delete
#: (every value bound costs, and a nightly run never reads them).
_COLUMNS = ("remote_text", "remote_id", "token", "key", "url", "metadata")
#: Values SQLite binds to one statement at most.
_MAX_VALUES = 32_766
#: Appended to page by page (an index kept in order row by row while the listing comes in nearly doubles
#: the cost of each row); :meth:`Scratch._sealed` indexes the ids once it is in.
_LISTING = """
    CREATE TABLE scratch.listing (
        remote_text TEXT NOT NULL, remote_id NOT NULL, token TEXT, key TEXT, url TEXT, metadata TEXT
    )
"""
_UNIQUE = "CREATE UNIQUE INDEX scratch.listing_text ON listing (remote_text)"
#: An id listed twice (a listing that shifted a long way under the pager): the first is kept.
_DEDUPE = """
    DELETE FROM scratch.listing
    WHERE rowid NOT IN (SELECT min(rowid) FROM scratch.listing GROUP BY remote_text)
"""


_Method = TypeVar("_Method", bound=Callable[..., Any])


def writes(method: _Method) -> _Method:
    """A method that writes the scratch file (or the state): a disk that is full or read-only is one
    clear StateError naming the file and what to do, never a traceback; nothing has been changed."""

    @functools.wraps(method)
    def guarded(self: Scratch, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            where = self.file or listing_path(self._path)
            raise StateError(
                f"state {self._path}: reconcile's listing {where}: {exc}{sqlite_advice(exc)}"
            ) from None

    return cast(_Method, guarded)


def _quoted(text: str) -> str:
    """``text`` as an SQL string literal (a PRAGMA takes no bound parameter)."""
    return "'" + text.replace("'", "''") + "'"


def spill_beside(db: sqlite3.Connection, state: Path) -> str:
    """SQLite's temporary files (``temp_store = FILE``) into the folder of the state at ``state``, from
    now until put back (:func:`spill_back`); the folder they went to before ("" for SQLite's default).
    Process-wide: set it while no other thread runs SQL. Setting it drops the TEMP tables."""
    found = db.execute("PRAGMA temp_store_directory").fetchone()
    db.execute("PRAGMA temp_store = FILE")
    db.execute(f"PRAGMA temp_store_directory = {_quoted(str(state.resolve().parent))}")
    return str(found[0]) if found and found[0] else ""


def spill_back(db: sqlite3.Connection, was: str) -> None:
    """SQLite's temporary folder as :func:`spill_beside` found it."""
    with contextlib.suppress(sqlite3.Error):
        db.execute(f"PRAGMA temp_store_directory = {_quoted(was)}")


def listing_path(db_path: Path) -> Path:
    """The file a reconcile of the state at ``db_path`` lists into, while it runs."""
    return db_path.with_name(db_path.name + ".listing")


class Scratch:
    """The scratch of one state's reconcile: the ``listing`` table filled page by page, then indexed
    once; the TEMP tables emptied; SQLite's temporary files beside the state until :meth:`close`."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path
        #: The scratch file, while it is attached.
        self.file: Path | None = None
        #: One INSERT statement per number of rows and of columns.
        self._inserts: dict[tuple[int, int], str] = {}
        #: The ids are indexed (unique): the listing is being read, not filled.
        self._indexed = False
        #: SQLite's temporary directory before :meth:`start` pointed it beside the state ("" : its own).
        self._spilled: str | None = None
        #: Rows in the listing, and doomed images by kind: counted as they are written (a count(*) of
        #: either is a pass over a table of up to the whole collection).
        self._listed = 0
        self._kinds: collections.Counter[str] = collections.Counter()

    # -- filling it ------------------------------------------------------------------------------------
    def start(self) -> None:
        """An empty listing in a new scratch file (and empty scratch tables), ready for :meth:`add`;
        whatever SQLite spills from here to :meth:`close` goes beside the state (:meth:`_spill_here`)."""
        db = self._db
        self.close()
        file = listing_path(self._path)
        try:
            self._spill_here()
            for table in ("doomed", "adopt_work"):
                db.execute(f"DROP TABLE IF EXISTS temp.{table}")
            # Each listed id is doomed once at most (the listing's ids are unique, and doom_tokenless()
            # and orphans() take disjoint rows): no key to keep, and none to keep in order.
            db.execute("CREATE TEMP TABLE doomed (remote_text TEXT NOT NULL, remote_id, kind TEXT NOT NULL)")
            self._kinds.clear()
            file.unlink(missing_ok=True)  # a killed run's
            db.execute("ATTACH DATABASE ? AS scratch", (str(file),))
            self.file = file
            # A run's scratch: nothing in it outlives the run, so no journal and no sync.
            db.execute("PRAGMA scratch.journal_mode = OFF")
            db.execute("PRAGMA scratch.synchronous = OFF")
            db.execute(_LISTING)
            self._indexed = False
            self._listed = 0
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise StateError(
                f"state {self._path}: cannot write the listing to {file}: {exc}{sqlite_advice(exc)}"
            ) from exc

    @writes
    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        """Listed images, as (remote_text, remote_id, token, key[, url, metadata JSON]), all rows
        of one width; an id listed twice is kept once (the first). A page is one statement (a row at a
        time, as ``executemany`` binds them, costs twice as much)."""
        if not rows:
            return
        width = len(rows[0])
        step = _MAX_VALUES // width
        for at in range(0, len(rows), step):
            part = rows[at : at + step]
            cur = self._db.execute(self._insert(len(part), width), list(chain.from_iterable(part)))
            self._listed += cur.rowcount

    def _insert(self, count: int, width: int) -> str:
        sql = self._inserts.get((count, width))
        if sql is None:
            marks = "(" + ", ".join("?" * width) + ")"
            sql = (
                f"INSERT OR IGNORE INTO scratch.listing ({', '.join(_COLUMNS[:width])}) "
                f"VALUES {', '.join([marks] * count)}"
            )
            self._inserts[(count, width)] = sql
        return sql

    @writes
    def _sealed(self) -> sqlite3.Connection:
        """The connection, once the listed ids are indexed: on the first question, the listing is in.
        An id listed twice fails the unique index; the later copies are then dropped and it is built
        again (an index built once is cheaper than one kept in order row by row)."""
        if not self._indexed:
            try:
                self._db.execute(_UNIQUE)
            except sqlite3.IntegrityError:
                self._listed -= self._db.execute(_DEDUPE).rowcount
                self._db.execute(_UNIQUE)
            self._indexed = True
        return self._db

    def index_keys(self) -> None:
        """The index :meth:`~pipeline.state.listing.Listing.candidates` reads (``reconcile --adopt``):
        built once the listing is in."""
        sql = "CREATE INDEX IF NOT EXISTS scratch.listing_key ON listing (key) WHERE key IS NOT NULL"
        self._sealed().execute(sql)

    def close(self) -> None:
        """The scratch file detached and removed, SQLite's temporary directory as it was before
        :meth:`start` (which drops the TEMP tables: SQLite does when it changes, out of a transaction)."""
        file, self.file = self.file, None
        if file is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("DETACH DATABASE scratch")
            with contextlib.suppress(OSError):
                file.unlink(missing_ok=True)
        spilled, self._spilled = self._spilled, None
        if spilled is not None:
            spill_back(self._db, spilled)

    def _spill_here(self) -> None:
        """SQLite's temporary files go into the state's folder until :meth:`close`: the sorter's runs
        while an index is built (the listed ids': 14.5 bytes a listed image at their peak), the TEMP
        tables (``doomed``, ``seen_now``, a dry run's copy of ``items``) once they outgrow the page
        cache. Left to SQLite they go to ``SQLITE_TMPDIR``, ``TMPDIR``, ``/var/tmp`` or ``/tmp`` — often a
        tmpfs, that is RAM, and another disk than the state's.

        ``temp_store = FILE`` so that a build made to keep them in memory spills too; the folder is
        SQLite's process-wide ``temp_store_directory`` (deprecated, but the only per-run way: the
        environment is read once, when SQLite starts), set while no other thread of a reconcile runs
        SQL, and put back by :meth:`close`. Setting either drops the TEMP tables: made after."""
        was = spill_beside(self._db, self._path)
        if self._spilled is None:
            self._spilled = was
